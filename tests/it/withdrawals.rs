//! Withdrawals end to end: giftd's worker against tgsim (real MTProto, the real grammers client)
//! and the real stores. After each scenario tgsim's truth (who holds which gift, the Stars
//! spent), the store and the ledger agree: every requested gift left once, or not at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::gift::{ItemKey, LedgerKind, Status};
use giftd::store::{RequestState, Store, WaitReason, WithdrawalFilter, WithdrawalMove};
use tgsim::Fault;

use crate::support::{Backend, World, withdraw_section, withdrawal_in};

/// The collectible ids an account holds in tgsim.
fn collectibles_of(w: &World, account: i64) -> Vec<i64> {
    let mut ids: Vec<i64> = w
        .sim
        .saved_gifts(account)
        .expect("saved gifts")
        .iter()
        .filter_map(|g| g.unique.as_ref().map(|u| u.id))
        .collect();
    ids.sort_unstable();
    ids
}

fn collectible_id(w: &World, account: i64, msg_id: i32) -> i64 {
    w.sim
        .saved_gifts(account)
        .expect("saved gifts")
        .iter()
        .find(|g| g.msg_id == msg_id)
        .and_then(|g| g.unique.as_ref().map(|u| u.id))
        .expect("the collectible is there")
}

async fn last_entry(store: &Arc<dyn Store>, key: ItemKey) -> (LedgerKind, i64) {
    let history = store.item_history(key).await.expect("history");
    let last = history.last().expect("a ledger entry");
    (last.kind, last.stars)
}

async fn free_and_paid_transfers(backend: Backend) {
    let mut w = World::new(backend, 1).await;
    w.extra_sections = withdraw_section("");
    let player = w.player(0);
    let running = w.start().await;
    let free = w.send_collectible(player, None, None);
    let paid = w.send_collectible(player, Some(25), None);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let ids = [
        collectible_id(&w, w.deposit.id, free),
        collectible_id(&w, w.deposit.id, paid),
    ];
    let stars = w.sim.stars(w.deposit.id).unwrap();
    let store = w.store().await;
    let key = |m| ItemKey::new(w.deposit.id, m);
    let a = store.create_withdrawal(player, key(free)).await.unwrap();
    let b = store.create_withdrawal(player, key(paid)).await.unwrap();
    for id in [a, b] {
        withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(30)).await;
    }
    let mut want = ids.to_vec();
    want.sort_unstable();
    assert_eq!(collectibles_of(&w, player), want, "the player holds both");
    assert!(collectibles_of(&w, w.deposit.id).is_empty());
    assert_eq!(
        w.sim.stars(w.deposit.id).unwrap(),
        stars - 25,
        "one fee paid, once"
    );
    assert_eq!(
        last_entry(&store, key(free)).await,
        (LedgerKind::Withdrawn, 0)
    );
    assert_eq!(
        last_entry(&store, key(paid)).await,
        (LedgerKind::Withdrawn, 25)
    );
    w.expected.remove(&free);
    w.expected.remove(&paid);
    w.assert_exactly_once(Duration::from_secs(5)).await;
    // The worker updates the live inventory right after the store.
    let inv = running.daemon.inventory();
    let deadline = Instant::now() + Duration::from_secs(5);
    while inv.get(key(paid)).map(|i| i.status) != Some(Status::Withdrawn) {
        assert!(
            Instant::now() < deadline,
            "the live inventory shows {:?}",
            inv.get(key(paid)).map(|i| i.status)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
}

on_both_stores!(
    free_and_paid_transfers => free_and_paid_transfers_embedded, free_and_paid_transfers_supabase
);

/// A fee above the cap waits for an operator; no Stars at all waits for a top-up; a locked
/// collectible waits until Telegram allows it; each says why.
async fn requests_wait_for_what_they_need(backend: Backend) {
    let mut w = World::new(backend, 1).await;
    w.extra_sections = withdraw_section("max_fee_stars = 10\n");
    let player = w.player(0);
    let running = w.start().await;
    let costly = w.send_collectible(player, Some(25), None);
    let locked = w.send_collectible(player, None, Some(3600));
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let key = |m| ItemKey::new(w.deposit.id, m);

    // Above the cap: approval, with the quoted fee; approved, it goes.
    let id = store.create_withdrawal(player, key(costly)).await.unwrap();
    let waiting = withdrawal_in(
        &store,
        id,
        &[RequestState::Approval],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        (waiting.wait_reason, waiting.fee_stars),
        (Some(WaitReason::FeeCap), Some(25))
    );
    assert!(
        waiting
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("giftd withdrawals approve"),
        "{:?}",
        waiting.reason
    );
    // Approved, but the account has no Stars: it waits for a top-up.
    w.sim.set_stars(w.deposit.id, 0).unwrap();
    store
        .move_withdrawal(&WithdrawalMove::approve(&waiting, None))
        .await
        .unwrap();
    let broke = withdrawal_in(
        &store,
        id,
        &[RequestState::Waiting],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(broke.wait_reason, Some(WaitReason::Stars));
    assert_eq!(store.load_items(w.deposit.id).await.unwrap().len(), 2);
    w.sim.set_stars(w.deposit.id, 100).unwrap();
    store
        .move_withdrawal(&WithdrawalMove::retry(&broke))
        .await
        .unwrap();
    withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(20)).await;
    assert_eq!(w.sim.stars(w.deposit.id).unwrap(), 75);

    // Locked for an hour: it waits until then, as Telegram says.
    let id = store.create_withdrawal(player, key(locked)).await.unwrap();
    let later = withdrawal_in(
        &store,
        id,
        &[RequestState::Waiting],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(later.wait_reason, Some(WaitReason::TooEarly));
    let in_ms = later.not_before_ms.unwrap() - now_ms();
    assert!(
        (3_500_000..=3_600_000).contains(&in_ms),
        "unlocks in about an hour: {in_ms} ms"
    );
    assert!(collectibles_of(&w, w.deposit.id).contains(&collectible_id(&w, w.deposit.id, locked)));
    running.stop().await;
}

on_both_stores!(
    requests_wait_for_what_they_need =>
        requests_wait_for_what_they_need_embedded,
        requests_wait_for_what_they_need_supabase
);

/// A regular gift is bought again for its player; the original stays, kept by the house, and
/// no reconciliation credits it again. A sold-out gift fails and is the player's again.
async fn regular_gifts_are_resent_once(backend: Backend) {
    let mut w = World::new(backend, 1).await;
    w.extra_sections = withdraw_section("");
    let player = w.player(0);
    let running = w.start().await;
    let first = w.send(player, false);
    let second = w.send(player, true);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let key = |m| ItemKey::new(w.deposit.id, m);
    let gift_id = w.regular_gift();
    let price = w
        .sim
        .gift_catalogue()
        .iter()
        .find(|g| g.id == gift_id)
        .unwrap()
        .stars;
    let stars = w.sim.stars(w.deposit.id).unwrap();

    let id = store.create_withdrawal(player, key(first)).await.unwrap();
    withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(30)).await;
    let bought: Vec<_> = w
        .sim
        .saved_gifts(player)
        .unwrap()
        .into_iter()
        .filter(|g| g.gift_id == gift_id && g.from == Some(w.deposit.id))
        .collect();
    assert_eq!(bought.len(), 1, "one gift bought for the player");
    assert_eq!(w.sim.stars(w.deposit.id).unwrap(), stars - price);
    assert!(
        w.sim
            .saved_gifts(w.deposit.id)
            .unwrap()
            .iter()
            .any(|g| g.msg_id == first),
        "the original stays in the deposit account"
    );
    assert_eq!(
        last_entry(&store, key(first)).await,
        (LedgerKind::Withdrawn, price)
    );

    // Sold out: the request fails, the player is told why, the gift is theirs again.
    w.sim.sell_out_gift(gift_id).unwrap();
    let id = store.create_withdrawal(player, key(second)).await.unwrap();
    let failed = withdrawal_in(&store, id, &[RequestState::Failed], Duration::from_secs(30)).await;
    assert!(
        failed.reason.as_deref().unwrap_or("").contains("sold out"),
        "{:?}",
        failed.reason
    );
    running.stop().await;

    // A restart reconciles everything Telegram lists: the kept original is not credited
    // again, the failed one is held.
    let running = w.start().await;
    let loaded = store.load_items(w.deposit.id).await.unwrap();
    let status = |m| loaded.iter().find(|i| i.key.msg_id == m).map(|i| i.status);
    assert_eq!(status(first), Some(Status::Withdrawn));
    assert_eq!(status(second), Some(Status::Held));
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    let history = store.item_history(key(first)).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.kind == LedgerKind::Deposit)
            .count(),
        1
    );
    running.stop().await;
}

on_both_stores!(
    regular_gifts_are_resent_once =>
        regular_gifts_are_resent_once_embedded,
        regular_gifts_are_resent_once_supabase
);

/// Telegram applies the transfer or the payment and the connection drops before its answer:
/// the outcome is unknown until giftd looks, and the gift leaves exactly once, the fee is paid
/// exactly once. A FLOOD_WAIT on a transfer is a wait, not an error.
async fn lost_answers_are_resolved_by_looking(backend: Backend) {
    let mut w = World::new(backend, 1).await;
    w.extra_sections = withdraw_section("");
    let player = w.player(0);
    let running = w.start().await;
    let free = w.send_collectible(player, None, None);
    let paid = w.send_collectible(player, Some(25), None);
    let flooded = w.send_collectible(player, None, None);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let key = |m| ItemKey::new(w.deposit.id, m);
    let stars = w.sim.stars(w.deposit.id).unwrap();

    for (msg, method) in [
        (free, "payments.transferStarGift"),
        (paid, "payments.sendStarsForm"),
    ] {
        w.sim.inject(Fault::DropAnswer {
            method: method.into(),
            count: 1,
        });
        let id = store.create_withdrawal(player, key(msg)).await.unwrap();
        let unknown = withdrawal_in(
            &store,
            id,
            &[RequestState::Unknown, RequestState::Sent],
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(
            unknown.state,
            RequestState::Unknown,
            "{method}: {unknown:?}"
        );
        assert_eq!(
            store
                .load_items(w.deposit.id)
                .await
                .unwrap()
                .iter()
                .find(|i| i.key == key(msg))
                .map(|i| i.status),
            Some(Status::Withdrawing),
            "never given back while the outcome is unknown"
        );
        let sent = withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(30)).await;
        assert_eq!(sent.attempt, 1, "{method}: resolved, not sent again");
        w.sim.clear_faults();
    }
    assert_eq!(
        w.sim.stars(w.deposit.id).unwrap(),
        stars - 25,
        "the fee paid once"
    );
    let calls = w.sim.stats().calls;
    assert_eq!(calls.get("payments.transferStarGift").copied(), Some(1));

    w.sim.inject(Fault::FloodWait {
        method: "payments.transferStarGift".into(),
        seconds: 2,
        count: 1,
    });
    let id = store.create_withdrawal(player, key(flooded)).await.unwrap();
    let waited = withdrawal_in(
        &store,
        id,
        &[RequestState::Waiting, RequestState::Sent],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(waited.wait_reason, Some(WaitReason::Retry), "{waited:?}");
    withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(20)).await;
    assert_eq!(collectibles_of(&w, player).len(), 3);
    assert!(collectibles_of(&w, w.deposit.id).is_empty());
    running.stop().await;
}

on_both_stores!(
    lost_answers_are_resolved_by_looking =>
        lost_answers_are_resolved_by_looking_embedded,
        lost_answers_are_resolved_by_looking_supabase
);

/// Settings for resolving purchases: forms expire (2 s in tgsim) before the settle delay (4 s)
/// ends, so the resolution cannot lean on paying the same form again.
fn resolve_section() -> String {
    "[withdraw]\nregular = \"resend\"\nresend_hold = \"0s\"\ncall_timeout = \"2s\"\nsettle_delay = \"4s\"\n\
     lease = \"5s\"\npoll_interval = \"100ms\"\n"
        .to_owned()
}

fn short_forms() -> tgsim::Ttls {
    tgsim::Ttls {
        payment_form: Duration::from_secs(2),
        ..tgsim::Ttls::default()
    }
}

/// Regular gifts of `gift_id` the deposit account bought for `player`.
fn bought_for(w: &World, player: i64, gift_id: i64) -> usize {
    w.sim
        .saved_gifts(player)
        .unwrap()
        .iter()
        .filter(|g| g.gift_id == gift_id && g.from == Some(w.deposit.id))
        .count()
}

/// A resend whose purchase went through and whose answer was lost, while the player floods
/// the chat with the deposit account (60 messages) before the settle delay ends and the form
/// expires: the account's own Stars history shows the purchase, the request is `sent`, one
/// gift is bought.
async fn a_lost_purchase_is_found_in_the_stars_history_not_the_chat(backend: Backend) {
    let mut w = World::with_ttls(backend, 1, short_forms()).await;
    w.extra_sections = resolve_section();
    let player = w.player(0);
    let running = w.start().await;
    let msg = w.send(player, false);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let gift_id = w.regular_gift();
    w.sim.inject(Fault::DropAnswer {
        method: "payments.sendStarsForm".into(),
        count: 1,
    });
    let id = store
        .create_withdrawal(player, ItemKey::new(w.deposit.id, msg))
        .await
        .unwrap();
    let unknown = withdrawal_in(
        &store,
        id,
        &[RequestState::Unknown, RequestState::Sent],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(unknown.state, RequestState::Unknown, "{unknown:?}");
    for i in 0..60 {
        w.sim
            .send_text_to_bot(player, w.deposit.id, &format!("flood {i}"))
            .expect("the player writes to the deposit account");
    }
    let done = withdrawal_in(
        &store,
        id,
        &[
            RequestState::Sent,
            RequestState::Approval,
            RequestState::Requested,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done.state, RequestState::Sent, "{done:?}");
    assert!(
        done.reason
            .as_deref()
            .unwrap_or("")
            .contains("Stars history"),
        "{:?}",
        done.reason
    );
    assert_eq!(done.attempt, 1, "resolved, not bought again");
    assert_eq!(
        bought_for(&w, player, gift_id),
        1,
        "exactly one gift bought"
    );
    running.stop().await;
}

on_both_stores!(
    a_lost_purchase_is_found_in_the_stars_history_not_the_chat =>
        a_lost_purchase_is_found_in_the_stars_history_not_the_chat_embedded,
        a_lost_purchase_is_found_in_the_stars_history_not_the_chat_supabase
);

/// The payment fails inside Telegram (500: whether it was made is not known; tgsim made
/// none) and its form expires before the settle delay ends: no evidence either way, so the
/// request goes to an operator (`approval`) and nothing is bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_without_evidence_after_its_form_expired_goes_to_an_operator() {
    let mut w = World::with_ttls(Backend::sqlite(), 1, short_forms()).await;
    w.extra_sections = resolve_section();
    let player = w.player(0);
    let running = w.start().await;
    let msg = w.send(player, false);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let gift_id = w.regular_gift();
    let stars = w.sim.stars(w.deposit.id).unwrap();
    w.sim.inject(Fault::RpcError {
        method: "payments.sendStarsForm".into(),
        code: 500,
        message: "RPC_CALL_FAIL".into(),
        count: 1,
    });
    let id = store
        .create_withdrawal(player, ItemKey::new(w.deposit.id, msg))
        .await
        .unwrap();
    let done = withdrawal_in(
        &store,
        id,
        &[
            RequestState::Sent,
            RequestState::Approval,
            RequestState::Failed,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done.state, RequestState::Approval, "{done:?}");
    assert_eq!(done.wait_reason, Some(WaitReason::Operator));
    // Approval is not claimable: nothing can be bought after it without an operator.
    assert_eq!(bought_for(&w, player, gift_id), 0, "nothing bought");
    assert_eq!(w.sim.stars(w.deposit.id).unwrap(), stars);
    // The player cannot take it back while nobody knows whether it left.
    let refused = store
        .move_withdrawal(&WithdrawalMove::cancel(
            &done,
            giftd::store::Canceller::Player(player),
        ))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    running.stop().await;
}

/// The payment fails inside Telegram (500) and paying the same form again is refused
/// (`USER_DISALLOWED_STARGIFTS`): a refusal of the second payment says nothing about the
/// first, so the request goes to an operator, and at most one gift is bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_second_payment_is_no_proof_the_first_was_not_made() {
    let mut w = World::new(Backend::sqlite(), 1).await;
    w.extra_sections = resolve_section();
    let player = w.player(0);
    let running = w.start().await;
    let msg = w.send(player, false);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let gift_id = w.regular_gift();
    w.sim.inject(Fault::RpcError {
        method: "payments.sendStarsForm".into(),
        code: 500,
        message: "RPC_CALL_FAIL".into(),
        count: 1,
    });
    let id = store
        .create_withdrawal(player, ItemKey::new(w.deposit.id, msg))
        .await
        .unwrap();
    let unknown = withdrawal_in(
        &store,
        id,
        &[RequestState::Unknown, RequestState::Sent],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(unknown.state, RequestState::Unknown, "{unknown:?}");
    w.sim.inject(Fault::RpcError {
        method: "payments.sendStarsForm".into(),
        code: 403,
        message: "USER_DISALLOWED_STARGIFTS".into(),
        count: 1,
    });
    let done = withdrawal_in(
        &store,
        id,
        &[
            RequestState::Sent,
            RequestState::Approval,
            RequestState::Failed,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done.state, RequestState::Approval, "{done:?}");
    assert!(
        bought_for(&w, player, gift_id) <= 1,
        "one gift bought at most"
    );
    running.stop().await;
}

/// A regular gift refunded by Telegram after its player asked for it (while the worker is
/// asking the price): the resend checks, just before paying, that the original is still
/// claimed and still in the account unrefunded, so nothing is bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_refunded_after_the_claim_is_not_bought_again() {
    let mut w = World::new(Backend::sqlite(), 1).await;
    w.extra_sections = "[withdraw]\nregular = \"resend\"\nresend_hold = \"0s\"\n\
                        call_timeout = \"10s\"\nsettle_delay = \"11s\"\nlease = \"12s\"\n\
                        poll_interval = \"100ms\"\n"
        .to_owned();
    let player = w.player(0);
    let running = w.start().await;
    let msg = w.send(player, false);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let gift_id = w.regular_gift();
    let key = ItemKey::new(w.deposit.id, msg);
    // The price answer waits 4 s: the refund lands while the request is claimed.
    w.sim.inject(Fault::Delay {
        method: Some("payments.getPaymentForm".into()),
        millis: 4_000,
    });
    let id = store.create_withdrawal(player, key).await.unwrap();
    withdrawal_in(
        &store,
        id,
        &[
            RequestState::Claimed,
            RequestState::Sending,
            RequestState::Sent,
        ],
        Duration::from_secs(10),
    )
    .await;
    w.sim.refund_gift(w.deposit.id, msg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.daemon.inventory().get(key).map(|i| i.status) != Some(Status::Refunded) {
        assert!(Instant::now() < deadline, "the refund was never seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = withdrawal_in(
        &store,
        id,
        &[RequestState::Sent, RequestState::Failed],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done.state, RequestState::Failed, "{done:?}");
    assert_eq!(bought_for(&w, player, gift_id), 0, "nothing bought");
    w.sim.clear_faults();
    running.stop().await;
}

/// A regular gift is resent (the house keeps the original), then Telegram refunds the
/// original: the house paid for nothing. The refund is in the item's ledger
/// (`refunded_after_resend`) and counted for the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_after_a_resend_is_recorded_and_counted() {
    let mut w = World::new(Backend::sqlite(), 1).await;
    w.extra_sections = withdraw_section("");
    let player = w.player(0);
    let running = w.start().await;
    let msg = w.send(player, false);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let store = w.store().await;
    let key = ItemKey::new(w.deposit.id, msg);
    let id = store.create_withdrawal(player, key).await.unwrap();
    withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(30)).await;
    w.sim.refund_gift(w.deposit.id, msg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history = store.item_history(key).await.unwrap();
        if history
            .iter()
            .any(|e| e.kind == LedgerKind::RefundedAfterResend)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no refunded_after_resend entry: {history:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counted = running
        .daemon
        .health()
        .metrics
        .refunds_after_resend
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted, 1);
    assert_eq!(
        running.daemon.inventory().get(key).map(|i| i.status),
        Some(Status::Refunded)
    );
    running.stop().await;
}

/// The operator's web app: a player's own JWT asks for their own held item through PostgREST;
/// someone else's JWT and the anon key are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_asks_with_the_players_own_jwt() {
    let mut w = World::new(Backend::supabase(), 2).await;
    w.extra_sections = withdraw_section("");
    let (alice, bob) = (w.player(0), w.player(1));
    let running = w.start().await;
    let gift = w.send_collectible(alice, None, None);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let Backend::Supabase { rest_url, .. } = &w.backend else {
        unreachable!("a supabase world")
    };
    let call = async |bearer: Option<String>| -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{rest_url}/rpc/request_withdrawal"))
            .json(&serde_json::json!({ "p_account_id": w.deposit.id, "p_msg_id": gift }));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.expect("postgrest answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    };
    let jwt = |user: i64| {
        crate::support::mint_jwt(serde_json::json!({
            "role": "authenticated", "app_metadata": { "telegram_id": user.to_string() }
        }))
    };
    let (status, body) = call(None).await;
    assert!(status >= 400, "anon may not ask: {status} {body}");
    let (status, body) = call(Some(jwt(bob))).await;
    // Someone else's item is no item to the caller: the same answer as a missing one.
    assert_eq!(
        (status, body["error"].as_str()),
        (200, Some("not_found")),
        "{body}"
    );
    let (status, body) = call(Some(jwt(alice))).await;
    assert_eq!(
        (status, body["created"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let id = body["id"].as_i64().expect("the request id");
    let store = w.store().await;
    withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(30)).await;
    assert_eq!(collectibles_of(&w, alice).len(), 1);
    running.stop().await;
}

/// Two giftd processes on one database race for 200 requests of one deposit account: each
/// gift is transferred exactly once, none is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_for_200_requests() {
    let mut w = World::new(Backend::supabase(), 1).await;
    w.extra_sections = withdraw_section("");
    let player = w.player(0);
    w.provision_session().await;
    let msgs: Vec<i32> = (0..200)
        .map(|_| w.send_collectible(player, None, None))
        .collect();
    // Each process has its own copy of the session file, as two machines would: a grammers
    // session file is one process's (SQLite, written as updates arrive).
    let config_a = w.write_config();
    let session_b = w.dir.path().join("deposit-b.session");
    std::fs::copy(w.session_file(), &session_b).unwrap();
    let config_b = w.dir.path().join("giftd-b.toml");
    std::fs::write(
        &config_b,
        w.config_text().replace(
            &w.session_file().display().to_string(),
            &session_b.display().to_string(),
        ),
    )
    .unwrap();
    let log = |name: &str| w.dir.path().join(format!("giftd-{name}.log"));
    let spawn = |name: &str| {
        let config = if name == "a" { &config_a } else { &config_b };
        std::process::Command::new(env!("CARGO_BIN_EXE_giftd"))
            .args(["--config"])
            .arg(config)
            .arg("run")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log(name)).expect("log file"))
            .spawn()
            .expect("giftd starts")
    };
    let mut a = spawn("a");
    let mut b = spawn("b");
    w.assert_exactly_once(Duration::from_secs(60)).await;
    let store = w.store().await;
    let mut ids = Vec::new();
    for &m in &msgs {
        ids.push(
            store
                .create_withdrawal(player, ItemKey::new(w.deposit.id, m))
                .await
                .unwrap(),
        );
    }
    for &id in &ids {
        withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(120)).await;
    }
    for child in [&mut a, &mut b] {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for (name, child) in [("a", &mut a), ("b", &mut b)] {
        let status = wait_exit(child, Duration::from_secs(30));
        assert!(
            status.success(),
            "giftd {name} exit status {status}:\n{}",
            std::fs::read_to_string(log(name)).unwrap_or_default()
        );
    }
    assert_eq!(collectibles_of(&w, player).len(), 200);
    assert!(collectibles_of(&w, w.deposit.id).is_empty());
    assert_eq!(
        w.sim
            .stats()
            .calls
            .get("payments.transferStarGift")
            .copied(),
        Some(200),
        "one transfer per gift"
    );
    let all = store
        .list_withdrawals(&WithdrawalFilter {
            account_id: Some(w.deposit.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
    assert!(all.iter().all(|r| r.state == RequestState::Sent));
}

/// kill -9 of giftd at each step of a withdrawal (after the claim, after the intent is
/// written, after Telegram answered and before giftd recorded it), then a restart: the gift
/// leaves exactly once and the ledger is a valid path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_each_step_then_restarted() {
    assert!(
        giftd::failpoints_enabled(),
        "this test crashes giftd at chosen points: run it with `--features giftd/failpoints` \
         (scripts/test.sh does)"
    );
    for point in [
        "withdraw-after-claim",
        "withdraw-after-sending",
        "withdraw-after-answer",
    ] {
        let mut w = World::new(Backend::sqlite(), 1).await;
        w.extra_sections = withdraw_section("");
        let player = w.player(0);
        w.provision_session().await;
        let msg = w.send_collectible(player, Some(25), None);
        let config = w.write_config();
        let run = |failpoint: Option<&str>| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_giftd"));
            cmd.args(["--config"])
                .arg(&config)
                .arg("run")
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if let Some(p) = failpoint {
                cmd.env("FAILPOINTS", format!("{p}=return"));
            }
            cmd.spawn().expect("giftd starts")
        };
        let stars = w.sim.stars(w.deposit.id).unwrap();
        let mut crashing = run(Some(point));
        w.assert_exactly_once(Duration::from_secs(30)).await;
        let store = w.store().await;
        let key = ItemKey::new(w.deposit.id, msg);
        let id = store.create_withdrawal(player, key).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = crashing.try_wait().expect("giftd's status") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = crashing.kill();
                panic!("{point}: giftd never reached its crash point within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(!status.success(), "{point}: giftd crashed there ({status})");
        let mut restarted = run(None);
        withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(60)).await;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &restarted.id().to_string()])
            .status();
        assert!(
            wait_exit(&mut restarted, Duration::from_secs(30)).success(),
            "{point}: the restarted giftd stops cleanly on SIGTERM"
        );
        assert_eq!(collectibles_of(&w, player).len(), 1, "{point}");
        assert!(collectibles_of(&w, w.deposit.id).is_empty(), "{point}");
        assert_eq!(
            w.sim.stars(w.deposit.id).unwrap(),
            stars - 25,
            "{point}: paid once"
        );
        let kinds: Vec<LedgerKind> = store
            .item_history(key)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds.first(),
            Some(&LedgerKind::Deposit),
            "{point}: {kinds:?}"
        );
        assert_eq!(
            kinds.last(),
            Some(&LedgerKind::Withdrawn),
            "{point}: {kinds:?}"
        );
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == LedgerKind::Withdrawn)
                .count(),
            1,
            "{point}: {kinds:?}"
        );
    }
}

/// Waits for a child to exit, killing it (and failing) after `within`.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("giftd did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
