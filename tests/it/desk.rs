//! One operator's desk across instances: two `giftd run` processes share one PostgreSQL store,
//! each serving one deposit account; the bot runs on the first. Its `/admin` lists both
//! accounts (items and Stars, lease holder, balance, queue, from the store), and Approve and
//! Cancel work for requests of the account the other instance serves: the store checks each
//! move, the serving instance sends what was approved, once.

use std::time::{Duration, Instant};

use giftd::gift::{ItemKey, Status};
use giftd::store::{RequestState, account_lease};

use crate::support::{Bot, Cluster, Patience, withdrawal_in};

/// Runs a bot on the shared database: in the nextest group that runs such tests one at a time
/// (its name ends in `bot_supabase`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_desk_for_accounts_served_by_other_instances_bot_supabase() {
    let mut c = Cluster::new(2).await;
    let (player, admin) = (c.w.players[0].id, c.w.players[1].id);
    let mut bot = Bot::create(&c.w, "onedeskbot", "desk-bot.session").await;
    bot.patience = Patience::CLUSTER;
    // Instance 0 lists alpha and runs the bot; instance 1 lists beta. A transfer fee above 10
    // Stars waits for an operator.
    let section = format!("{}admins = \"{admin}\"\n", bot.section(None));
    c.start_split(&bot, &section, |config| {
        config.replace("[withdraw]\n", "[withdraw]\nmax_fee_stars = 10\n")
    })
    .await;

    // Beta (served by instance 1) gets two collectibles whose transfer costs 25 Stars.
    let mut paid = Vec::new();
    for _ in 0..2 {
        let msg = c.send_collectible(player, c.beta.id, Some(25));
        paid.push(msg);
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;
    let store = c.w.store().await;
    let mut ids = Vec::new();
    for msg_id in &paid {
        ids.push(
            store
                .create_withdrawal(player, ItemKey::new(c.beta.id, *msg_id))
                .await
                .expect("request created"),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &ids {
        while store.withdrawal(*id).await.unwrap().unwrap().state != RequestState::Approval {
            assert!(
                Instant::now() < deadline,
                "request {id} never waited for approval"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let beta_holder = store
        .lease(&account_lease(c.beta.id))
        .await
        .unwrap()
        .expect("beta's lease")
        .holder;

    // The desk of instance 0 shows beta, served by instance 1, with its queue.
    let desk = bot.ask(admin, "/admin", "2 awaiting approval").await;
    let text = &desk.text;
    let beta_line = format!("Account {}: 2 gifts worth", c.beta.id);
    assert!(text.contains(&beta_line), "{text}");
    assert!(
        text.contains(&format!(
            "served by {beta_holder}; queue: 0 queued, 0 waiting, 2 awaiting approval, 0 unknown"
        )),
        "beta served elsewhere, with its queue: {text}"
    );
    assert!(
        text.contains(&format!("Account {}:", c.alpha.id))
            && text.contains("served by this instance ("),
        "alpha served here: {text}"
    );
    let beta_at = text.find(&beta_line).unwrap();
    let beta_text = &text[beta_at
        ..text[beta_at..]
            .find('\n')
            .map_or(text.len(), |e| beta_at + e)];
    assert!(
        !beta_text.contains("not read yet"),
        "beta's Stars balance, read by instance 1: {beta_text}"
    );

    // Approve the first from this desk: instance 1 sends it, once.
    let answer = toast(
        bot.press(admin, &desk, &format!("Approve #{}", ids[0]))
            .await,
    );
    assert!(answer.contains(&format!("Request {}", ids[0])), "{answer}");
    withdrawal_in(
        &store,
        ids[0],
        &[RequestState::Sent],
        Duration::from_secs(30),
    )
    .await;
    // Cancel the second from a fresh desk: the item is the player's again.
    let desk = bot.ask(admin, "/admin", "1 awaiting approval").await;
    let answer = toast(
        bot.press(admin, &desk, &format!("Cancel #{}", ids[1]))
            .await,
    );
    assert!(answer.contains("cancelled"), "{answer}");
    let w = store.withdrawal(ids[1]).await.unwrap().unwrap();
    assert_eq!(w.state, RequestState::Cancelled);
    let items = store.load_items(c.beta.id).await.unwrap();
    let second = items
        .iter()
        .find(|i| i.key.msg_id == paid[1])
        .expect("the item");
    assert_eq!(second.status, Status::Held);
    // A press on a request already cancelled changes nothing (re-checked in the store).
    let answer = bot
        .forge(admin, desk.msg_id, &format!("1:ac:{}", ids[1]))
        .await
        .message
        .unwrap_or_default();
    assert!(answer.contains(&format!("Request {}", ids[1])), "{answer}");
    assert_eq!(
        store.withdrawal(ids[1]).await.unwrap().unwrap().state,
        RequestState::Cancelled
    );
    let arrived = c.w.collectible_count(player);
    assert_eq!(
        arrived, 1,
        "the approved collectible reached the player once"
    );
}

/// The toast a press was answered with.
fn toast((answer, _): (tgsim::CallbackAnswer, tgsim::BotMessage)) -> String {
    answer.message.unwrap_or_default()
}
