//! The store's side of the companion bot, on both stores (the contract pattern of
//! `store_contract.rs`): link tokens for web accounts and the notifications outbox; and,
//! through PostgREST only, row level security for a JWT that carries only `sub`, and the
//! `request_link_token` RPC.
//!
//! Claims hand out every pending row of the database, other tests' too: the tests that claim
//! have `notifications_claim` in their name and run one at a time (.config/nextest.toml), and
//! look only at their own users' rows. The tests that only write notifications read their rows
//! beside the store and never assert a row's state, which a claiming test may change.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use giftd::gift::{ItemKey, Owner, Status, UserId};
use giftd::store::{
    Canceller, LinkLabel, LinkOutcome, Notification, NotificationKind, NotificationOutcome,
    Replaced, RequestState, Store, StoreError, WaitReason, WebUserId, WithdrawalMove,
};

use crate::store_contract::{attribution, claim, collectible, departures, deposit, regular};
use crate::support::{Backend, NoteRow, unique_id};

contract!(
    link_tokens_link_once_and_say_why_not,
    relinking_needs_the_players_consent_and_tells_the_replaced_account,
    links_made_at_once_for_one_player_leave_one_link,
    credits_are_announced_once_even_when_replayed,
    each_withdrawal_step_is_announced_once,
    notifications_claim_and_finish_at_most_once,
    notifications_claimers_never_share_a_row,
    notifications_claim_prunes_old_rows_and_gives_up_stale_ones,
    notifications_claim_again_what_could_not_reach_a_player_once_within_the_age,
    players_languages_keep_a_choice_over_telegrams_code,
);

const LEASE: Duration = Duration::from_secs(120);

fn web_user() -> WebUserId {
    WebUserId::new(uuid::Builder::from_random_bytes(rand::random()).into_uuid())
}

fn kinds(rows: &[NoteRow]) -> Vec<&str> {
    rows.iter().map(|r| r.kind.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Link tokens
// ---------------------------------------------------------------------------------------------

fn label(text: &str) -> LinkLabel {
    LinkLabel::new(text).unwrap()
}

async fn link_tokens_link_once_and_say_why_not(backend: Backend) {
    let store = backend.open().await;
    let (web, player, other) = (web_user(), unique_id(), unique_id());
    let token = store
        .create_link_token(web, &label("a•••@example.com"), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(format!("{:?}", token.token), "[redacted]");
    assert_eq!(token.web_user, web);
    assert_eq!(token.token.expose().len(), 64);
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), None);
    let linked = LinkOutcome::Linked {
        web_user: web,
        label: "a•••@example.com".into(),
    };

    // Looking writes nothing: the player is asked first.
    for _ in 0..2 {
        assert_eq!(
            store
                .peek_link_token(token.token.expose(), player)
                .await
                .unwrap(),
            LinkOutcome::Ask {
                web_user: web,
                label: "a•••@example.com".into(),
                replaces: None
            }
        );
    }
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), None);

    assert_eq!(
        store
            .consume_link_token(token.token.expose(), player, false)
            .await
            .unwrap(),
        linked
    );
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(player));
    // The same player opening the same link again: the same answer, nothing changes.
    assert_eq!(
        store
            .consume_link_token(token.token.expose(), player, false)
            .await
            .unwrap(),
        linked
    );
    assert_eq!(
        store
            .peek_link_token(token.token.expose(), player)
            .await
            .unwrap(),
        linked
    );
    // Anyone else: used, and the link stays.
    assert_eq!(
        store
            .consume_link_token(token.token.expose(), other, true)
            .await
            .unwrap(),
        LinkOutcome::Used
    );
    assert_eq!(
        store
            .peek_link_token(token.token.expose(), other)
            .await
            .unwrap(),
        LinkOutcome::Used
    );
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(player));

    let expired = store
        .create_link_token(web_user(), &label("x"), Duration::ZERO)
        .await
        .unwrap();
    for outcome in [
        store.peek_link_token(expired.token.expose(), other).await,
        store
            .consume_link_token(expired.token.expose(), other, false)
            .await,
    ] {
        assert_eq!(outcome.unwrap(), LinkOutcome::Expired);
    }
    assert_eq!(
        store.linked_telegram_user(expired.web_user).await.unwrap(),
        None,
        "an expired token links nothing"
    );
    assert_eq!(
        store
            .consume_link_token("no-such-token", other, false)
            .await
            .unwrap(),
        LinkOutcome::Unknown
    );
    // A token's hash is all the store has: the hash itself is not a token.
    let hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(token.token.expose().as_bytes()))
    };
    assert_eq!(
        store.consume_link_token(&hash, other, false).await.unwrap(),
        LinkOutcome::Unknown
    );

    let err = store
        .create_link_token(web, &label("x"), Duration::from_secs(25 * 3600))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LinkTokenTtl { .. }), "{err}");
    assert!(!err.is_retryable());
}

/// A web account linking another Telegram user replaces its own earlier link (its owner minted
/// the token). A player linked to one web account is linked to another only with their second
/// confirmation (`replace`); without it nothing is written, and the replaced web account can
/// read that it was replaced.
async fn relinking_needs_the_players_consent_and_tells_the_replaced_account(backend: Backend) {
    let store = backend.open().await;
    let (w1, w2) = (web_user(), web_user());
    let (t1, t2) = (unique_id(), unique_id());
    let mint = |web: WebUserId, name: &'static str| {
        let store = store.clone();
        async move {
            store
                .create_link_token(web, &label(name), Duration::from_secs(600))
                .await
                .unwrap()
        }
    };
    let linked = |web: WebUserId, name: &str| LinkOutcome::Linked {
        web_user: web,
        label: name.into(),
    };
    let first = mint(w1, "one").await;
    assert_eq!(
        store
            .consume_link_token(first.token.expose(), t1, false)
            .await
            .unwrap(),
        linked(w1, "one")
    );
    // The web account links another Telegram user: its own link moves, no question.
    let again = mint(w1, "one").await;
    assert_eq!(
        store
            .consume_link_token(again.token.expose(), t2, false)
            .await
            .unwrap(),
        linked(w1, "one")
    );
    assert_eq!(store.linked_telegram_user(w1).await.unwrap(), Some(t2));

    // That Telegram user opens another web account's token: asked, and a plain Confirm is not
    // enough.
    let other = mint(w2, "two").await;
    let replaces = Some(Replaced {
        web_user: w1,
        label: "one".into(),
    });
    assert_eq!(
        store
            .peek_link_token(other.token.expose(), t2)
            .await
            .unwrap(),
        LinkOutcome::Ask {
            web_user: w2,
            label: "two".into(),
            replaces: replaces.clone()
        }
    );
    assert_eq!(
        store
            .consume_link_token(other.token.expose(), t2, false)
            .await
            .unwrap(),
        LinkOutcome::NeedsReplace {
            web_user: w2,
            label: "two".into(),
            replaces: replaces.clone().unwrap()
        }
    );
    assert_eq!(store.linked_telegram_user(w1).await.unwrap(), Some(t2));
    assert_eq!(store.linked_telegram_user(w2).await.unwrap(), None);
    assert!(store.replaced_links(w1).await.unwrap().is_empty());

    // Confirmed: replaced, and w1 can see it.
    assert_eq!(
        store
            .consume_link_token(other.token.expose(), t2, true)
            .await
            .unwrap(),
        linked(w2, "two")
    );
    assert_eq!(store.linked_telegram_user(w2).await.unwrap(), Some(t2));
    assert_eq!(store.linked_telegram_user(w1).await.unwrap(), None);
    let replaced = store.replaced_links(w1).await.unwrap();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(
        (replaced[0].telegram_user, replaced[0].replaced_by),
        (t2, w2)
    );
    assert!(store.replaced_links(w2).await.unwrap().is_empty());
}

async fn links_made_at_once_for_one_player_leave_one_link(backend: Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    for _ in 0..5 {
        let (w1, w2, player) = (web_user(), web_user(), unique_id());
        let t1 = a.create_link_token(w1, &label("1"), LEASE).await.unwrap();
        let t2 = a.create_link_token(w2, &label("2"), LEASE).await.unwrap();
        let (r1, r2) = tokio::join!(
            a.consume_link_token(t1.token.expose(), player, true),
            b.consume_link_token(t2.token.expose(), player, true),
        );
        assert_eq!(
            r1.unwrap(),
            LinkOutcome::Linked {
                web_user: w1,
                label: "1".into()
            }
        );
        assert_eq!(
            r2.unwrap(),
            LinkOutcome::Linked {
                web_user: w2,
                label: "2".into()
            }
        );
        let linked = (
            a.linked_telegram_user(w1).await.unwrap(),
            a.linked_telegram_user(w2).await.unwrap(),
        );
        assert!(
            linked == (Some(player), None) || linked == (None, Some(player)),
            "{linked:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications: written with the change, once
// ---------------------------------------------------------------------------------------------

async fn credits_are_announced_once_even_when_replayed(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let (alice, bob, carol) = (unique_id(), unique_id(), unique_id());
    let anonymous = regular(account, 3, Owner::Unattributed);
    let assigned = regular(account, 4, Owner::Unattributed);
    let items = vec![
        regular(account, 1, Owner::User(alice)),
        collectible(account, 2, Owner::User(alice), unique_id()),
        anonymous.clone(),
        assigned.clone(),
    ];
    let batch = deposit(items.clone());
    store.apply_batch(&batch).await.unwrap();
    store.apply_batch(&batch).await.unwrap();
    let rows = backend.notifications_of(alice).await;
    assert_eq!(kinds(&rows), vec!["deposit", "deposit"], "{rows:?}");
    assert_eq!(
        rows.iter().map(|r| r.msg_id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(rows[0].dedupe_key, format!("deposit:{account}/1"));
    assert_eq!(rows[0].stars, 15);
    assert_eq!(rows[1].stars, 350);
    assert_eq!(
        rows[1].title.as_deref(),
        Some("Plush Pepe"),
        "the gift's title travels with the row"
    );

    // Named later: one notice, however often the attribution is replayed.
    let named = attribution(&anonymous, bob, 1_760_000_100);
    store.apply_batch(&named).await.unwrap();
    store.apply_batch(&named).await.unwrap();
    assert_eq!(
        kinds(&backend.notifications_of(bob).await),
        vec!["attributed"]
    );

    // Assigned by an operator: once.
    assert!(store.assign_owner(assigned.key, carol).await.unwrap());
    assert!(!store.assign_owner(assigned.key, carol).await.unwrap());
    assert_eq!(
        kinds(&backend.notifications_of(carol).await),
        vec!["assigned"]
    );

    // A departure tells nobody; a replayed deposit after it neither.
    store
        .apply_batch(&departures(&items[..1], Status::Converted, 1_760_000_200))
        .await
        .unwrap();
    store.apply_batch(&batch).await.unwrap();
    assert_eq!(backend.notifications_of(alice).await.len(), 2);

    // Another store handle (a restarted giftd) replaying the old batch writes nothing either.
    let restarted = backend.open().await;
    restarted.apply_batch(&batch).await.unwrap();
    assert_eq!(backend.notifications_of(alice).await.len(), 2);
}

async fn each_withdrawal_step_is_announced_once(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let player = unique_id();
    let items: Vec<_> = (1..=4)
        .map(|m| collectible(account, m, Owner::User(player), unique_id()))
        .collect();
    store.apply_batch(&deposit(items.clone())).await.unwrap();
    let deposits = backend.notifications_of(player).await.len();
    assert_eq!(deposits, 4);

    // Item 1: queued, waits (too early) twice for the same reason (told once), a transient
    // retry (not told), then sent.
    let id = store.create_withdrawal(player, items[0].key).await.unwrap();
    assert_eq!(
        store.create_withdrawal(player, items[0].key).await.unwrap(),
        id
    );
    // Unlock times already past, so the worker claims it again at once.
    let until = giftd_now_ms() - 1000;
    let w = claim(&store, account, id).await;
    let mv = WithdrawalMove::defer(&w, WaitReason::TooEarly, Some(until), "locked until then");
    store.move_withdrawal(&mv).await.unwrap();
    replay(&store, &mv).await;
    let w = claim(&store, account, id).await;
    store
        .move_withdrawal(&WithdrawalMove::defer(
            &w,
            WaitReason::TooEarly,
            Some(until),
            "still locked",
        ))
        .await
        .unwrap();
    let w = claim(&store, account, id).await;
    store
        .move_withdrawal(&WithdrawalMove::defer(
            &w,
            WaitReason::Retry,
            Some(until),
            "FLOOD_WAIT",
        ))
        .await
        .unwrap();
    let w = claim(&store, account, id).await;
    let sending = store
        .move_withdrawal(&WithdrawalMove::begin_send(&w, 0, None, 120_000, None))
        .await
        .unwrap();
    let sent = WithdrawalMove::sent(&sending, "transferred");
    store.move_withdrawal(&sent).await.unwrap();
    replay(&store, &sent).await;

    // Item 2: queued, failed. Item 3: queued, cancelled by the player. Item 4: queued, then the
    // gift left the account (cancelled, with the reason).
    let id2 = store.create_withdrawal(player, items[1].key).await.unwrap();
    let w = claim(&store, account, id2).await;
    let failed = WithdrawalMove::failed(&w, "USER_DISALLOWED_STARGIFTS");
    store.move_withdrawal(&failed).await.unwrap();
    replay(&store, &failed).await;
    let id3 = store.create_withdrawal(player, items[2].key).await.unwrap();
    let w3 = store.withdrawal(id3).await.unwrap().unwrap();
    let cancel = WithdrawalMove::cancel(&w3, Canceller::Player(player));
    store.move_withdrawal(&cancel).await.unwrap();
    replay(&store, &cancel).await;
    let id4 = store.create_withdrawal(player, items[3].key).await.unwrap();
    let gone = departures(&items[3..], Status::Gone, 1_760_000_300);
    store.apply_batch(&gone).await.unwrap();
    store.apply_batch(&gone).await.unwrap();
    assert_eq!(
        store.withdrawal(id4).await.unwrap().unwrap().state,
        RequestState::Cancelled
    );

    let rows = backend.notifications_of(player).await;
    let steps: Vec<(&str, Option<i64>)> = rows[deposits..]
        .iter()
        .map(|r| (r.kind.as_str(), r.withdrawal_id))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("withdrawal_queued", Some(id)),
            ("withdrawal_waiting", Some(id)),
            ("withdrawal_sent", Some(id)),
            ("withdrawal_queued", Some(id2)),
            ("withdrawal_failed", Some(id2)),
            ("withdrawal_queued", Some(id3)),
            ("withdrawal_cancelled", Some(id3)),
            ("withdrawal_queued", Some(id4)),
            ("withdrawal_cancelled", Some(id4)),
        ],
        "{rows:#?}"
    );
    let waiting = &rows[deposits + 1];
    assert_eq!(
        (
            waiting.wait_reason.as_deref(),
            waiting.until_ms,
            waiting.reason.as_deref()
        ),
        (Some("too_early"), Some(until), Some("locked until then"))
    );
    assert_eq!(
        rows[deposits + 4].reason.as_deref(),
        Some("USER_DISALLOWED_STARGIFTS")
    );
    assert_eq!(
        rows[deposits + 6].reason.as_deref(),
        Some("cancelled by the player")
    );
    assert_eq!(
        rows[deposits + 8].reason.as_deref(),
        Some("item left the account: gone")
    );
    assert!(rows.iter().all(|r| r.stars == 350 && r.title.is_some()));
}

/// A move sent again (an answer lost on the way back): done already, or refused because the
/// request moved on; either way nothing is written.
async fn replay(store: &Arc<dyn Store>, mv: &WithdrawalMove) {
    match store.move_withdrawal(mv).await {
        Ok(w) => assert_eq!(w.state, mv.to),
        Err(StoreError::WithdrawalMoveRefused { .. }) => {}
        Err(e) => panic!("replaying {mv:?}: {e}"),
    }
}

fn giftd_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// Notifications: handed out at most once
// ---------------------------------------------------------------------------------------------

/// Claims until `want` rows of `users` were handed out (other tests' rows are claimed too and
/// left alone), with a deadline.
async fn claim_ours(
    store: &Arc<dyn Store>,
    users: &[UserId],
    want: usize,
    limit: usize,
    lease: Duration,
) -> Vec<Notification> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut ours = Vec::new();
    while ours.len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {want} notifications were handed out: {ours:#?}",
            ours.len()
        );
        let got = store.claim_notifications(limit, lease).await.unwrap();
        if got.is_empty() {
            break;
        }
        ours.extend(got.into_iter().filter(|n| users.contains(&n.user_id)));
    }
    ours
}

async fn notifications_claim_and_finish_at_most_once(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let (alice, bob) = (unique_id(), unique_id());
    let items: Vec<_> = (1..=6)
        .map(|m| regular(account, m, Owner::User(if m <= 3 { alice } else { bob })))
        .collect();
    store.apply_batch(&deposit(items)).await.unwrap();

    let first = claim_ours(&store, &[alice, bob], 6, 500, LEASE).await;
    assert_eq!(first.len(), 6, "{first:#?}");
    assert!(first.windows(2).all(|p| p[0].id < p[1].id), "oldest first");
    assert!(first.iter().all(|n| n.kind == NotificationKind::Deposit));
    assert_eq!(
        first.iter().map(|n| n.key).collect::<Vec<_>>(),
        (1..=6)
            .map(|m| ItemKey::new(account, m))
            .collect::<Vec<_>>()
    );
    assert!(
        first
            .iter()
            .all(|n| n.stars == 15 && n.withdrawal_id.is_none())
    );
    // Claimed rows are not handed out again.
    assert!(
        claim_ours(&store, &[alice, bob], 1, 100, LEASE)
            .await
            .is_empty()
    );

    let ids = |ns: &[Notification]| ns.iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(
        store
            .finish_notifications(&ids(&first[..2]), &NotificationOutcome::Sent)
            .await
            .unwrap(),
        2
    );
    // Reporting again changes nothing.
    assert_eq!(
        store
            .finish_notifications(&ids(&first[..2]), &NotificationOutcome::Sent)
            .await
            .unwrap(),
        0
    );
    let blocked = NotificationOutcome::Undeliverable {
        reason: "USER_IS_BLOCKED".into(),
    };
    assert_eq!(
        store
            .finish_notifications(&ids(&first[2..3]), &blocked)
            .await
            .unwrap(),
        1
    );
    // Released: definitely not sent, handed out again.
    assert_eq!(
        store
            .finish_notifications(&ids(&first[3..4]), &NotificationOutcome::Released)
            .await
            .unwrap(),
        1
    );
    let again = claim_ours(&store, &[alice, bob], 1, 100, LEASE).await;
    assert_eq!(ids(&again), ids(&first[3..4]));

    // Claimed with a lease that runs out at once, never reported (a crash): the next claim
    // marks them unknown and never hands them out again; a late report is still recorded.
    let account2 = unique_id();
    let carol = unique_id();
    store
        .apply_batch(&deposit(
            (1..=2)
                .map(|m| regular(account2, m, Owner::User(carol)))
                .collect(),
        ))
        .await
        .unwrap();
    let crashed = claim_ours(&store, &[carol], 2, 100, Duration::ZERO).await;
    assert_eq!(crashed.len(), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(claim_ours(&store, &[carol], 1, 100, LEASE).await.is_empty());
    let states: Vec<String> = backend
        .notifications_of(carol)
        .await
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, vec!["unknown", "unknown"]);
    assert_eq!(
        store
            .finish_notifications(&ids(&crashed[..1]), &NotificationOutcome::Sent)
            .await
            .unwrap(),
        1
    );
    let states: Vec<String> = backend
        .notifications_of(carol)
        .await
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, vec!["sent", "unknown"]);

    let states: Vec<String> = backend
        .notifications_of(alice)
        .await
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, vec!["sent", "sent", "undeliverable"]);
    assert_eq!(store.finish_notifications(&[], &blocked).await.unwrap(), 0);
}

async fn notifications_claim_prunes_old_rows_and_gives_up_stale_ones(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let player = unique_id();
    store
        .apply_batch(&deposit(
            (1..=3)
                .map(|m| regular(account, m, Owner::User(player)))
                .collect(),
        ))
        .await
        .unwrap();
    // Item 1's notice waited 8 days: stale. Item 2's was sent 31 days ago: pruned.
    let first = claim_ours(&store, &[player], 3, 500, LEASE).await;
    let sent_long_ago = first[1].id;
    store
        .finish_notifications(&[sent_long_ago], &NotificationOutcome::Sent)
        .await
        .unwrap();
    store
        .finish_notifications(&[first[0].id, first[2].id], &NotificationOutcome::Released)
        .await
        .unwrap();
    backend
        .execute(
            &format!(
                "UPDATE notifications SET created_at_ms = created_at_ms - 8 * 86400000
                 WHERE user_id = {player} AND msg_id = 1;
                 UPDATE notifications SET finished_at_ms = finished_at_ms - 31 * 86400000
                 WHERE user_id = {player} AND msg_id = 2;"
            ),
            &format!(
                "update public.notifications set created_at = created_at - interval '8 days'
                 where user_id = {player} and msg_id = 1;
                 update public.notifications set finished_at = finished_at - interval '31 days'
                 where user_id = {player} and msg_id = 2;"
            ),
        )
        .await;
    let got = claim_ours(&store, &[player], 1, 500, LEASE).await;
    assert_eq!(
        got.iter().map(|n| n.key.msg_id).collect::<Vec<_>>(),
        vec![3],
        "{got:#?}"
    );
    let rows = backend.notifications_of(player).await;
    let states: Vec<(i32, &str)> = rows.iter().map(|r| (r.msg_id, r.state.as_str())).collect();
    assert_eq!(
        states,
        vec![(1, "undeliverable"), (3, "claimed")],
        "{rows:#?}"
    );
}

async fn notifications_claimers_never_share_a_row(backend: Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let account = unique_id();
    let players: Vec<UserId> = (0..20).map(|_| unique_id()).collect();
    let items: Vec<_> = (0..200)
        .map(|m| regular(account, m, Owner::User(players[m as usize % 20])))
        .collect();
    a.apply_batch(&deposit(items)).await.unwrap();

    async fn drain(store: Arc<dyn Store>, players: Vec<UserId>) -> Vec<i64> {
        let mut got = Vec::new();
        loop {
            match store.claim_notifications(7, LEASE).await {
                Ok(batch) if batch.is_empty() => return got,
                Ok(batch) => got.extend(
                    batch
                        .into_iter()
                        .filter(|n| players.contains(&n.user_id))
                        .map(|n| n.id),
                ),
                Err(e) if e.is_retryable() => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let (ga, gb) = tokio::join!(
        tokio::spawn(drain(a.clone(), players.clone())),
        tokio::spawn(drain(b.clone(), players.clone())),
    );
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    let unique: HashSet<i64> = ga.iter().chain(&gb).copied().collect();
    assert_eq!(
        ga.len() + gb.len(),
        200,
        "every row handed out (a: {}, b: {})",
        ga.len(),
        gb.len()
    );
    assert_eq!(unique.len(), 200, "no row handed out twice");
}

// ---------------------------------------------------------------------------------------------
// Through PostgREST only: a web account's JWT (only `sub`) and request_link_token
// ---------------------------------------------------------------------------------------------

mod supabase_web {
    use super::*;
    use crate::support::{env, mint_jwt};

    async fn call(
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}/{path}", env("GIFTD_TEST_REST_URL")))
            .header("apikey", env("GIFTD_TEST_ANON_KEY"))
            .bearer_auth(bearer)
            .timeout(Duration::from_secs(20));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    async fn get(path: &str, bearer: &str) -> (u16, serde_json::Value) {
        call(reqwest::Method::GET, path, bearer, None).await
    }

    /// A signed-in (not anonymous) web user's JWT, as Supabase Auth issues it.
    fn web_jwt(web: WebUserId) -> String {
        mint_jwt(serde_json::json!({
            "role": "authenticated", "sub": web.to_string(), "email": "owner@example.com",
            "is_anonymous": false
        }))
    }

    fn count(rows: &serde_json::Value) -> Option<usize> {
        rows.as_array().map(Vec::len)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sub_only_jwt_reads_its_linked_players_rows_and_nothing_else() {
        let store = Backend::supabase().open().await;
        let account = unique_id();
        let (player, stranger) = (unique_id(), unique_id());
        store
            .apply_batch(&deposit(vec![
                regular(account, 1, Owner::User(player)),
                regular(account, 2, Owner::User(player)),
                regular(account, 3, Owner::User(stranger)),
                regular(account, 4, Owner::Unattributed),
            ]))
            .await
            .unwrap();
        store
            .create_withdrawal(stranger, ItemKey::new(account, 3))
            .await
            .unwrap();
        let (linked, unlinked) = (web_user(), web_user());
        let token = store
            .create_link_token(linked, &label("l"), Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(
            store
                .consume_link_token(token.token.expose(), player, false)
                .await
                .unwrap(),
            LinkOutcome::Linked {
                web_user: linked,
                label: "l".into()
            }
        );

        let path = format!("inventory?account_id=eq.{account}&order=msg_id");
        let (status, rows) = get(&path, &web_jwt(linked)).await;
        assert_eq!(status, 200, "{rows}");
        let msgs: Vec<i64> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["msg_id"].as_i64().unwrap())
            .collect();
        assert_eq!(msgs, vec![1, 2], "the linked player's items, nobody else's");
        let (_, rows) = get(
            &format!("transactions?account_id=eq.{account}"),
            &web_jwt(linked),
        )
        .await;
        assert_eq!(count(&rows), Some(2), "{rows}");
        let (_, rows) = get(
            &format!("withdrawals?account_id=eq.{account}"),
            &web_jwt(linked),
        )
        .await;
        assert_eq!(count(&rows), Some(0), "{rows}");
        let (_, rows) = get(
            &format!("users?id=in.({player},{stranger})"),
            &web_jwt(linked),
        )
        .await;
        assert_eq!(count(&rows), Some(1), "{rows}");
        let (_, rows) = get("web_links", &web_jwt(linked)).await;
        assert_eq!(count(&rows), Some(1), "{rows}");
        assert_eq!(rows[0]["telegram_user_id"].as_i64(), Some(player));

        // An unlinked web account, a JWT with a sub that is no uuid, anon: nothing.
        for bearer in [
            web_jwt(unlinked),
            mint_jwt(serde_json::json!({ "role": "authenticated", "sub": "1 or 1=1" })),
            env("GIFTD_TEST_ANON_KEY"),
        ] {
            for path in [
                format!("inventory?account_id=eq.{account}"),
                format!("transactions?account_id=eq.{account}"),
                format!("withdrawals?account_id=eq.{account}"),
                format!("users?id=in.({player},{stranger})"),
                "web_links".to_owned(),
            ] {
                let (status, rows) = get(&path, &bearer).await;
                assert!(
                    status >= 400 || count(&rows) == Some(0),
                    "{path}: {status} {rows}"
                );
            }
            for table in ["notifications", "link_tokens"] {
                let (status, rows) = get(table, &bearer).await;
                assert!(
                    status >= 400 || count(&rows) == Some(0),
                    "{table}: {status} {rows}"
                );
            }
        }
        // Nor does a linked web account see the outbox or the tokens.
        for table in ["notifications", "link_tokens"] {
            let (status, rows) = get(table, &web_jwt(linked)).await;
            assert!(
                status >= 400 || count(&rows) == Some(0),
                "{table}: {status} {rows}"
            );
        }

        // The web app asks for a withdrawal for the linked player: only their own items.
        let (status, answer) = call(
            reqwest::Method::POST,
            "rpc/request_withdrawal",
            &web_jwt(linked),
            Some(serde_json::json!({ "p_account_id": account, "p_msg_id": 1 })),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["created"], true, "{answer}");
        let (_, answer) = call(
            reqwest::Method::POST,
            "rpc/request_withdrawal",
            &web_jwt(linked),
            Some(serde_json::json!({ "p_account_id": account, "p_msg_id": 3 })),
        )
        .await;
        // Someone else's item: the same answer as no item.
        assert_eq!(answer["error"], "not_found", "{answer}");
        let (_, answer) = call(
            reqwest::Method::POST,
            "rpc/request_withdrawal",
            &web_jwt(unlinked),
            Some(serde_json::json!({ "p_account_id": account, "p_msg_id": 2 })),
        )
        .await;
        assert_eq!(answer["error"], "not_signed_in", "{answer}");
        let (_, rows) = get(
            &format!("withdrawals?account_id=eq.{account}"),
            &web_jwt(linked),
        )
        .await;
        assert_eq!(count(&rows), Some(1), "{rows}");
    }

    /// The web account whose link a player replaced reads the replacement (and only its own).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_web_account_sees_its_replacement() {
        let store = Backend::supabase().open().await;
        let (old, new, stranger) = (web_user(), web_user(), web_user());
        let player = unique_id();
        for (web, replace) in [(old, false), (new, true)] {
            let token = store
                .create_link_token(web, &label("x"), Duration::from_secs(600))
                .await
                .unwrap();
            store
                .consume_link_token(token.token.expose(), player, replace)
                .await
                .unwrap();
        }
        let (status, rows) = get("web_link_replacements", &web_jwt(old)).await;
        assert_eq!(status, 200, "{rows}");
        assert_eq!(count(&rows), Some(1), "{rows}");
        assert_eq!(rows[0]["replaced_by"], new.to_string(), "{rows}");
        assert_eq!(rows[0]["telegram_user_id"], player, "{rows}");
        for other in [new, stranger] {
            let (_, rows) = get("web_link_replacements", &web_jwt(other)).await;
            assert_eq!(count(&rows), Some(0), "{rows}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_link_token_mints_for_the_signed_in_web_user_only() {
        let store = Backend::supabase().open().await;
        let web = web_user();
        let (status, answer) = call(
            reqwest::Method::POST,
            "rpc/request_link_token",
            &web_jwt(web),
            Some(serde_json::json!({ "p_ttl_seconds": 600 })),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["web_user_id"], web.to_string(), "{answer}");
        // The label is made from the JWT's e-mail, masked: never from an argument.
        assert_eq!(answer["label"], "o•••@example.com", "{answer}");
        let token = answer["token"].as_str().expect("a token").to_owned();
        // Without an argument: 15 minutes.
        let (_, default) = call(
            reqwest::Method::POST,
            "rpc/request_link_token",
            &web_jwt(web_user()),
            Some(serde_json::json!({})),
        )
        .await;
        let left = default["expires_at_ms"].as_i64().expect("a token") - giftd_now_ms();
        assert!((800_000..=1_000_000).contains(&left), "{default}");
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        let expires = answer["expires_at_ms"].as_i64().unwrap();
        let left = expires - giftd_now_ms();
        assert!((500_000..=700_000).contains(&left), "{left} ms left");
        // Only the hash is stored.
        let stored = crate::support::psql(
            &env("GIFTD_TEST_PG_URL"),
            &format!("select count(*) from public.link_tokens where token_hash = '{token}'"),
        );
        assert_eq!(stored, "0");

        let player = unique_id();
        assert_eq!(
            store.peek_link_token(&token, player).await.unwrap(),
            LinkOutcome::Ask {
                web_user: web,
                label: "o•••@example.com".into(),
                replaces: None
            }
        );
        assert_eq!(
            store
                .consume_link_token(&token, player, false)
                .await
                .unwrap(),
            LinkOutcome::Linked {
                web_user: web,
                label: "o•••@example.com".into()
            }
        );
        assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(player));

        // No sub, a sub that is no uuid, a bad ttl: refused; anon may not call it at all.
        for (bearer, ttl, error) in [
            (
                mint_jwt(serde_json::json!({ "role": "authenticated" })),
                600,
                "not_signed_in",
            ),
            (
                mint_jwt(serde_json::json!({ "role": "authenticated", "sub": "42" })),
                600,
                "not_signed_in",
            ),
            (web_jwt(web), 10, "bad_ttl"),
            (web_jwt(web), 100_000, "bad_ttl"),
            // An anonymous Supabase session (signInAnonymously) is anyone: no token.
            (
                mint_jwt(serde_json::json!({
                    "role": "authenticated", "sub": web_user().to_string(), "is_anonymous": true
                })),
                600,
                "anonymous",
            ),
            // No e-mail and no phone: nothing to show the player.
            (
                mint_jwt(serde_json::json!({
                    "role": "authenticated", "sub": web_user().to_string()
                })),
                600,
                "no_identity",
            ),
        ] {
            let (status, answer) = call(
                reqwest::Method::POST,
                "rpc/request_link_token",
                &bearer,
                Some(serde_json::json!({ "p_ttl_seconds": ttl })),
            )
            .await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (200, Some(error)),
                "{answer}"
            );
        }
        let (status, answer) = call(
            reqwest::Method::POST,
            "rpc/request_link_token",
            &env("GIFTD_TEST_ANON_KEY"),
            Some(serde_json::json!({ "p_ttl_seconds": 600 })),
        )
        .await;
        assert!(
            status >= 400 && answer.get("token").is_none(),
            "anon: {status} {answer}"
        );

        // At most 10 live tokens per web account.
        let busy = web_user();
        for n in 0..11 {
            let (_, answer) = call(
                reqwest::Method::POST,
                "rpc/request_link_token",
                &web_jwt(busy),
                Some(serde_json::json!({ "p_ttl_seconds": 600 })),
            )
            .await;
            if n < 10 {
                assert!(answer["token"].is_string(), "{n}: {answer}");
            } else {
                assert_eq!(answer["error"], "too_many_tokens", "{answer}");
            }
        }
        // Players cannot call giftd's own link functions.
        let (status, _) = call(
            reqwest::Method::POST,
            "rpc/giftd_consume_link_token",
            &web_jwt(web),
            Some(serde_json::json!({ "p_token_hash": "x", "p_telegram_user_id": 1 })),
        )
        .await;
        assert!(status >= 400, "{status}");
    }
}

/// A file written by a giftd of schema version 3 (link tokens naming a Telegram user, no links,
/// no outbox) is upgraded when opened; what was deposited before is not announced afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_version_3_file_is_upgraded() {
    let backend = Backend::sqlite();
    let account = unique_id();
    let player = unique_id();
    {
        let store = backend.open().await;
        store
            .apply_batch(&deposit(vec![regular(account, 1, Owner::User(player))]))
            .await
            .unwrap();
    }
    {
        let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        conn.execute_batch(
            "DROP TABLE link_tokens; DROP TABLE web_links; DROP TABLE notifications;
             CREATE TABLE link_tokens (token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL,
               created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL,
               used_at_ms INTEGER);
             CREATE INDEX link_tokens_user ON link_tokens (user_id);
             INSERT INTO link_tokens VALUES ('abc', 42, 0, 9999999999999, NULL);
             UPDATE schema_version SET version = 3;",
        )
        .await
        .unwrap();
    }
    let store = backend.open().await;
    assert_eq!(
        store.check_schema().await.unwrap(),
        giftd::store::SCHEMA_VERSION
    );
    assert!(backend.notifications_of(player).await.is_empty());
    store
        .apply_batch(&deposit(vec![regular(account, 2, Owner::User(player))]))
        .await
        .unwrap();
    assert_eq!(
        kinds(&backend.notifications_of(player).await),
        vec!["deposit"]
    );
    let web = web_user();
    let token = store
        .create_link_token(web, &label("w"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store
            .consume_link_token(token.token.expose(), player, false)
            .await
            .unwrap(),
        LinkOutcome::Linked {
            web_user: web,
            label: "w".into()
        }
    );
    assert_eq!(
        store
            .consume_link_token("abc", player, false)
            .await
            .unwrap(),
        LinkOutcome::Unknown,
        "version 3's tokens are gone"
    );
}

async fn notifications_claim_again_what_could_not_reach_a_player_once_within_the_age(
    backend: Backend,
) {
    let store = backend.open().await;
    let account = unique_id();
    let (player, other) = (unique_id(), unique_id());
    store
        .apply_batch(&deposit(vec![
            regular(account, 1, Owner::User(player)),
            regular(account, 2, Owner::User(player)),
            regular(account, 3, Owner::User(player)),
            regular(account, 4, Owner::User(player)),
            regular(account, 5, Owner::User(other)),
        ]))
        .await
        .unwrap();
    let rows = claim_ours(&store, &[player, other], 5, 500, LEASE).await;
    assert_eq!(rows.len(), 5);
    let id = |m: i32| rows.iter().find(|n| n.key.msg_id == m).unwrap().id;
    let unreachable = NotificationOutcome::Undeliverable {
        reason: giftd::store::notify::UNREACHABLE.into(),
    };
    // 1, 2 and 5 could not reach their player; 3 was refused for another reason; 4 was sent.
    store
        .finish_notifications(&[id(1), id(2), id(5)], &unreachable)
        .await
        .unwrap();
    store
        .finish_notifications(
            &[id(3)],
            &NotificationOutcome::Undeliverable {
                reason: "telegram refused messages.sendMessage: MESSAGE_TOO_LONG (code 400)".into(),
            },
        )
        .await
        .unwrap();
    store
        .finish_notifications(&[id(4)], &NotificationOutcome::Sent)
        .await
        .unwrap();
    // Row 1 is four days old.
    backend
        .execute(
            &format!(
                "UPDATE notifications SET created_at_ms = created_at_ms - 4 * 86400000
                 WHERE user_id = {player} AND msg_id = 1"
            ),
            &format!(
                "update public.notifications set created_at = created_at - interval '4 days'
                 where user_id = {player} and msg_id = 1"
            ),
        )
        .await;

    let three_days = Duration::from_secs(3 * 86_400);
    assert_eq!(
        store.requeue_undelivered(player, three_days).await.unwrap(),
        1
    );
    let states = |rows: Vec<crate::support::NoteRow>| {
        rows.into_iter()
            .map(|r| (r.msg_id, r.state))
            .collect::<Vec<_>>()
    };
    let s = |m: i32, st: &str| (m, st.to_owned());
    assert_eq!(
        states(backend.notifications_of(player).await),
        vec![
            s(1, "undeliverable"),
            s(2, "pending"),
            s(3, "undeliverable"),
            s(4, "sent"),
        ]
    );
    assert_eq!(
        states(backend.notifications_of(other).await),
        vec![s(5, "undeliverable")],
        "another player's rows are left alone"
    );
    // Handed out again, sent once: asking again finds nothing.
    let again = claim_ours(&store, &[player, other], 1, 500, LEASE).await;
    assert_eq!(
        again.iter().map(|n| n.key.msg_id).collect::<Vec<_>>(),
        vec![2]
    );
    store
        .finish_notifications(&[again[0].id], &NotificationOutcome::Sent)
        .await
        .unwrap();
    assert_eq!(
        store.requeue_undelivered(player, three_days).await.unwrap(),
        0
    );
    // A longer age takes the older row too.
    assert_eq!(
        store
            .requeue_undelivered(player, Duration::from_secs(5 * 86_400))
            .await
            .unwrap(),
        1
    );
}

async fn players_languages_keep_a_choice_over_telegrams_code(backend: Backend) {
    use giftd::store::PlayerLanguage;
    let store = backend.open().await;
    let player = unique_id();
    let lang = |code: &str, chosen| PlayerLanguage {
        code: code.into(),
        chosen,
    };
    assert_eq!(store.language(player).await.unwrap(), None);
    assert_eq!(
        store.note_language(player, "en-GB", false).await.unwrap(),
        lang("en-GB", false)
    );
    assert_eq!(
        store.note_language(player, "de", false).await.unwrap(),
        lang("de", false),
        "Telegram's code follows the app"
    );
    assert_eq!(
        store.note_language(player, "fr", true).await.unwrap(),
        lang("fr", true)
    );
    assert_eq!(
        store.note_language(player, "en", false).await.unwrap(),
        lang("fr", true),
        "a choice stands over the app's language"
    );
    assert_eq!(
        store.note_language(player, "en", true).await.unwrap(),
        lang("en", true)
    );
    assert_eq!(
        store.language(player).await.unwrap(),
        Some(lang("en", true))
    );
    for bad in ["", "fr'; drop table players; --", &"x".repeat(36)] {
        assert!(
            matches!(
                store.note_language(player, bad, false).await,
                Err(StoreError::InvalidLanguage(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        store.language(player).await.unwrap(),
        Some(lang("en", true))
    );
}
