use grammers_client::SignInError;

use crate::support::*;

#[tokio::test]
async fn the_world_survives_a_restart_with_a_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("world.json");
    let cfg = || tgsim::SimConfig {
        state_file: Some(state.clone()),
        ..Default::default()
    };
    let sim = tgsim::Sim::start(cfg()).await.expect("first run");
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let pw = sim
        .create_user(tgsim::CreateUser {
            username: "secure".into(),
            phone: "+15550999".into(),
            password: Some("pw".into()),
            ..Default::default()
        })
        .expect("2fa user");
    let bot = sim.create_bot("giftd_bot").expect("bot");
    let sent = sim.burst(5, &[p.id], deposit.id).expect("gifts");
    let unique = sim
        .send_unique_gift(tgsim::SendUniqueGift {
            from: p.id,
            to: deposit.id,
            gift_id: sim.gift_catalogue()[0].id,
            transfer_lock_secs: Some(600),
            ..Default::default()
        })
        .expect("unique");
    sim.send_text_to_bot(p.id, bot.account.id, "/start")
        .expect("text");
    let limited = sim.gift_catalogue()[1].id;
    sim.set_gift_limit(limited, 10, 3).expect("limit");
    let refuses = tgsim::DisallowedGifts {
        unique: true,
        ..Default::default()
    };
    sim.set_disallowed_gifts(p.id, refuses).expect("privacy");
    let before = sim.saved_gifts(deposit.id).expect("saved");
    let catalogue = sim.gift_catalogue();
    sim.shutdown().await;
    assert!(state.exists());

    let sim = tgsim::Sim::start(cfg()).await.expect("second run");
    assert_eq!(sim.saved_gifts(deposit.id).expect("saved"), before);
    // Catalogue availability and privacy settings too.
    assert_eq!(sim.gift_catalogue(), catalogue);
    assert_eq!(sim.disallowed_gifts(p.id).expect("privacy"), refuses);
    assert_eq!(sim.account_id("player"), Some(p.id));
    // The old key still works (only the port changed, so rewrite the session).
    let c = TestClient::connect(&sim, deposit.auth_key).await;
    let me = c.client.get_me().await.expect("old key accepted");
    assert_eq!(me.id().bare_id(), Some(deposit.id));
    let grammers_client::tl::enums::updates::State::State(st) = c
        .invoke(&grammers_client::tl::functions::updates::GetState {})
        .await
        .expect("state");
    assert!(st.pts > sent.len() as i32, "pts survived: {}", st.pts);
    // Ids keep growing and collectible numbers continue.
    let next = sim
        .send_unique_gift(tgsim::SendUniqueGift {
            from: p.id,
            to: deposit.id,
            gift_id: sim.gift_catalogue()[0].id,
            ..Default::default()
        })
        .expect("unique");
    assert!(next.msg_id > unique.msg_id);
    assert_eq!(next.num, unique.num.map(|n| n + 1));
    // Passwords and bot tokens survive.
    let login = TestClient::connect(&sim, sim.new_auth_key(None)).await;
    let token = login
        .client
        .request_login_code("+15550999", API_HASH)
        .await
        .expect("code");
    let code = sim.login_code("+15550999").expect("code");
    let Err(SignInError::PasswordRequired(t)) = login.client.sign_in(&token, &code).await else {
        panic!("password expected");
    };
    let me = login
        .client
        .check_password(t, "pw")
        .await
        .expect("password");
    assert_eq!(me.id().bare_id(), Some(pw.id));
    let b = TestClient::connect(&sim, sim.new_auth_key(None)).await;
    b.client
        .bot_sign_in(&bot.token, API_HASH)
        .await
        .expect("bot token");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_state_file_is_an_error_not_an_empty_world() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("world.json");
    std::fs::write(&state, b"{ not json").expect("write");
    let r = tgsim::Sim::start(tgsim::SimConfig {
        state_file: Some(state),
        ..Default::default()
    })
    .await;
    assert!(matches!(r, Err(tgsim::SimError::State { .. })), "{r:?}");
}
