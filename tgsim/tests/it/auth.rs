use grammers_client::{InvocationError, SignInError};

use crate::support::*;

#[tokio::test]
async fn login_with_code_after_a_wrong_code() {
    let sim = sim().await;
    let acc = sim
        .create_user(tgsim::CreateUser {
            username: "bob".into(),
            phone: "+1 555 0101".into(),
            ..Default::default()
        })
        .expect("user");
    let key = sim.new_auth_key(None);
    let c = TestClient::connect(&sim, key).await;
    assert!(!c.client.is_authorized().await.expect("is_authorized"));
    let token = c
        .client
        .request_login_code("+15550101", API_HASH)
        .await
        .expect("send code");
    let code = sim.login_code("+15550101").expect("a code was sent");
    let wrong = if code == "00000" { "11111" } else { "00000" };
    match c.client.sign_in(&token, wrong).await {
        Err(SignInError::InvalidCode) => {}
        other => panic!("wrong code must be InvalidCode, got {other:?}"),
    }
    let me = c.client.sign_in(&token, &code).await.expect("sign in");
    assert_eq!(me.id().bare_id(), Some(acc.id));
    assert!(c.client.is_authorized().await.expect("is_authorized"));
    let again = c.client.get_me().await.expect("get_me");
    assert_eq!(again.username(), Some("bob"));
}

#[tokio::test]
async fn login_with_two_factor_password() {
    let sim = sim().await;
    let acc = sim
        .create_user(tgsim::CreateUser {
            username: "carol".into(),
            phone: "+15550202".into(),
            password: Some("correct horse".into()),
            ..Default::default()
        })
        .expect("user");
    let c = TestClient::connect(&sim, sim.new_auth_key(None)).await;
    let token = c
        .client
        .request_login_code("+15550202", API_HASH)
        .await
        .expect("send code");
    let code = sim.login_code("+15550202").expect("code");
    let pw = match c.client.sign_in(&token, &code).await {
        Err(SignInError::PasswordRequired(pw)) => pw,
        other => panic!("expected PasswordRequired, got {other:?}"),
    };
    let pw = match c.client.check_password(pw, "battery staple").await {
        Err(SignInError::InvalidPassword(pw)) => pw,
        other => panic!("expected InvalidPassword, got {other:?}"),
    };
    // Before the password is checked the key is not signed in.
    assert!(!c.client.is_authorized().await.expect("is_authorized"));
    let me = c
        .client
        .check_password(pw, "correct horse")
        .await
        .expect("check password");
    assert_eq!(me.id().bare_id(), Some(acc.id));
    assert!(c.client.is_authorized().await.expect("is_authorized"));
}

#[tokio::test]
async fn bot_sign_in_good_and_bad_token() {
    let sim = sim().await;
    let bot = sim.create_bot("giftd_bot").expect("bot");
    let bad = TestClient::connect(&sim, sim.new_auth_key(None)).await;
    match bad.client.bot_sign_in("123:nope", API_HASH).await {
        Err(InvocationError::Rpc(e)) => {
            assert_eq!(e.code, 400);
            assert_eq!(e.name, "ACCESS_TOKEN_INVALID");
        }
        other => panic!("bad token must fail, got {other:?}"),
    }
    let good = TestClient::connect(&sim, sim.new_auth_key(None)).await;
    let me = good
        .client
        .bot_sign_in(&bot.token, API_HASH)
        .await
        .expect("bot sign in");
    assert_eq!(me.id().bare_id(), Some(bot.account.id));
    assert!(me.is_bot());
}

#[tokio::test]
async fn log_out_unbinds_the_key() {
    let sim = sim().await;
    let acc = user(&sim, "dave");
    let c = TestClient::connect(&sim, acc.id).await;
    assert!(c.client.is_authorized().await.expect("is_authorized"));
    c.client.sign_out().await.expect("log out");
    assert!(!c.client.is_authorized().await.expect("is_authorized"));
}
