//! The notifications outbox: written with the change that causes it, once, and handed out at
//! most once.

use super::*;

// ---------------------------------------------------------------------------------------------
// Notifications: written with the change, once
// ---------------------------------------------------------------------------------------------

pub(super) async fn credits_are_announced_once_even_when_replayed(backend: Backend) {
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

pub(super) async fn each_withdrawal_step_is_announced_once(backend: Backend) {
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
pub(super) async fn replay(store: &Arc<dyn Store>, mv: &WithdrawalMove) {
    match store.move_withdrawal(mv).await {
        Ok(w) => assert_eq!(w.state, mv.to),
        Err(StoreError::WithdrawalMoveRefused { .. }) => {}
        Err(e) => panic!("replaying {mv:?}: {e}"),
    }
}

pub(super) fn giftd_now_ms() -> i64 {
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
pub(super) async fn claim_ours(
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

pub(super) async fn notifications_claim_and_finish_at_most_once(backend: Backend) {
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

pub(super) async fn notifications_claim_prunes_old_rows_and_gives_up_stale_ones(backend: Backend) {
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

pub(super) async fn notifications_claimers_never_share_a_row(backend: Backend) {
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

pub(super) async fn notifications_claim_again_what_could_not_reach_a_player_once_within_the_age(
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
