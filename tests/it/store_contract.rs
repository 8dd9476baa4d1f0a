//! The store contract: one suite, run against the embedded SQLite store and against Supabase
//! (real PostgreSQL 15 behind postrust, started by `scripts/test-env.sh`).
//!
//! Each test makes its own deposit account and user ids, so the Supabase tests share one
//! database and run in parallel. The tests that stop the database or lower its schema version
//! use the separate chaos instance, one at a time (`chaos` in their name; .config/nextest.toml).

use std::sync::Arc;
use std::time::Duration;

use giftd::gift::{
    GiftType, Item, ItemKey, LedgerKind, Owner, Status, UniqueInfo, UserId, UserInfo,
};
use giftd::store::{
    Attribution, Canceller, ChangeBatch, RefusedChange, RequestState, StatusChange, Store,
    StoreError, SyncLog, WaitReason, Withdrawal, WithdrawalFilter, WithdrawalKind, WithdrawalMove,
};

use crate::support::{Backend, unique_id};

contract!(
    replaying_a_batch_changes_nothing,
    departures_are_checked_against_the_state_machine,
    batch_of_5000_items_in_one_call,
    concurrent_writers_of_overlapping_batches,
    redeposit_of_unique_gift_after_withdrawal,
    concurrent_claimers_never_share_a_request,
    withdrawal_rules,
    a_resent_gift_is_kept_by_the_house,
    the_daily_budget_is_checked_when_the_intent_is_written,
    expired_leases_are_rescued,
    unattributed_items_wait_for_an_operator,
    a_sender_named_later_is_credited_once_never_over_an_operator,
    an_upgrade_points_both_ways_whichever_is_written_first,
    stats_and_sync_logs,
    sync_logs_travel_in_batches_once_per_pass,
);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const T0: i64 = 1_760_000_000;

pub(crate) fn regular(account: UserId, msg_id: i32, owner: Owner) -> Item {
    Item {
        key: ItemKey::new(account, msg_id),
        owner,
        gift_id: 5_983_471_780_763_796_287,
        stars: 15,
        unique: None,
        status: Status::Held,
        received_at: T0 + i64::from(msg_id),
        convert_stars: Some(13),
        transfer_stars: None,
        can_transfer_at: None,
        upgraded_from: None,
    }
}

pub(crate) fn collectible(account: UserId, msg_id: i32, owner: Owner, collectible_id: i64) -> Item {
    Item {
        gift_id: 6_028_601_630_662_853_006,
        stars: 350,
        unique: Some(Box::new(UniqueInfo {
            collectible_id,
            slug: format!("PlushPepe-{collectible_id}"),
            number: 7,
            value: Default::default(),
        })),
        convert_stars: None,
        transfer_stars: Some(25),
        can_transfer_at: Some(T0 + 86_400),
        ..regular(account, msg_id, owner)
    }
}

/// A deposit batch: the items with their senders and gift kinds.
pub(crate) fn deposit(items: Vec<Item>) -> ChangeBatch {
    let mut users: Vec<UserInfo> = items
        .iter()
        .filter_map(|i| i.owner.user_id())
        .map(|id| UserInfo {
            id,
            username: Some(format!("player{id}")),
            first_name: Some("Player".into()),
        })
        .collect();
    users.dedup_by_key(|u| u.id);
    let mut gifts: Vec<GiftType> = items
        .iter()
        .map(|i| GiftType {
            gift_id: i.gift_id,
            title: i.unique.as_ref().map(|_| "Plush Pepe".to_owned()),
            stars: i.stars,
            unique: i.unique.is_some(),
        })
        .collect();
    gifts.sort_by_key(|g| g.gift_id);
    gifts.dedup_by_key(|g| g.gift_id);
    ChangeBatch {
        users,
        gifts,
        items,
        ..ChangeBatch::default()
    }
}

pub(crate) fn departures(items: &[Item], to: Status, at: i64) -> ChangeBatch {
    ChangeBatch {
        changes: items
            .iter()
            .map(|i| StatusChange::new(i, to, at).unwrap())
            .collect(),
        ..ChangeBatch::default()
    }
}

fn keys(items: &[Item]) -> Vec<ItemKey> {
    items.iter().map(|i| i.key).collect()
}

async fn kinds(store: &Arc<dyn Store>, key: ItemKey) -> Vec<LedgerKind> {
    store
        .item_history(key)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

async fn replaying_a_batch_changes_nothing(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let (alice, bob) = (unique_id(), unique_id());
    let items = vec![
        regular(account, 10, Owner::User(alice)),
        collectible(account, 11, Owner::User(bob), unique_id()),
        regular(account, 12, Owner::Unattributed),
    ];
    let batch = deposit(items.clone());

    let first = store.apply_batch(&batch).await.unwrap();
    assert_eq!((first.items_new, first.items_known), (3, 0));
    let loaded = store.load_items(account).await.unwrap();
    assert_eq!(loaded, items, "what was written reads back exactly");

    let again = store.apply_batch(&batch).await.unwrap();
    assert_eq!((again.items_new, again.items_known), (0, 3));
    assert_eq!(store.load_items(account).await.unwrap(), items);
    for item in &items {
        assert_eq!(kinds(&store, item.key).await, vec![LedgerKind::Deposit]);
    }

    // A departure, applied twice, then the old deposit batch replayed: nothing moves back.
    let gone = departures(&items[..1], Status::Converted, T0 + 100);
    let applied = store.apply_batch(&gone).await.unwrap();
    assert_eq!((applied.changes_applied, applied.changes_unchanged), (1, 0));
    let replayed = store.apply_batch(&gone).await.unwrap();
    assert_eq!(
        (replayed.changes_applied, replayed.changes_unchanged),
        (0, 1)
    );
    assert!(replayed.refused.is_empty());
    store.apply_batch(&batch).await.unwrap();
    assert_eq!(
        keys(&store.load_items(account).await.unwrap()),
        keys(&items[1..]),
        "the replayed deposit did not bring the converted item back"
    );
    assert_eq!(
        kinds(&store, items[0].key).await,
        vec![LedgerKind::Deposit, LedgerKind::Converted]
    );
}

async fn departures_are_checked_against_the_state_machine(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let owner = unique_id();
    let items: Vec<Item> = (1..=3)
        .map(|m| regular(account, m, Owner::User(owner)))
        .collect();
    store.apply_batch(&deposit(items.clone())).await.unwrap();
    store
        .apply_batch(&departures(&items[..1], Status::Refunded, T0 + 5))
        .await
        .unwrap();

    // One batch: a legal move, an illegal one (refunded -> gone), an unknown item, an upgrade.
    let unknown = regular(account, 99, Owner::User(owner));
    let mut batch = departures(&items[..1], Status::Gone, T0 + 6);
    batch
        .changes
        .extend(departures(&items[1..2], Status::Gone, T0 + 6).changes);
    batch
        .changes
        .extend(departures(std::slice::from_ref(&unknown), Status::Gone, T0 + 6).changes);
    let upgraded = collectible(account, 40, Owner::User(owner), unique_id());
    let upgraded = Item {
        upgraded_from: Some(3),
        ..upgraded
    };
    batch
        .changes
        .extend(departures(&items[2..3], Status::Upgraded { into: 40 }, T0 + 6).changes);
    let deposit_new = deposit(vec![upgraded.clone()]);
    batch.items = deposit_new.items;
    batch.gifts = deposit_new.gifts;
    batch.users = deposit_new.users;

    let outcome = store.apply_batch(&batch).await.unwrap();
    assert_eq!(outcome.changes_applied, 2, "{outcome:?}");
    assert_eq!(outcome.items_new, 1);
    let mut refused = outcome.refused.clone();
    refused.sort_by_key(|r| r.key);
    assert_eq!(
        refused,
        vec![
            RefusedChange {
                key: items[0].key,
                to: Status::Gone,
                current: Some(Status::Refunded),
            },
            RefusedChange {
                key: unknown.key,
                to: Status::Gone,
                current: None,
            },
        ]
    );
    assert_eq!(
        kinds(&store, items[0].key).await,
        vec![LedgerKind::Deposit, LedgerKind::Refunded],
        "a refused change writes no ledger entry"
    );
    assert_eq!(
        keys(&store.load_items(account).await.unwrap()),
        vec![upgraded.key]
    );
    assert_eq!(
        store.load_items(account).await.unwrap()[0].upgraded_from,
        Some(3)
    );
    assert_eq!(
        kinds(&store, items[2].key).await,
        vec![LedgerKind::Deposit, LedgerKind::Upgraded]
    );

    // A batch must not carry withdrawal moves: those have their own calls.
    let bad = ChangeBatch {
        changes: vec![StatusChange::new(&upgraded, Status::WithdrawRequested, T0).unwrap()],
        ..ChangeBatch::default()
    };
    let err = store.apply_batch(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch(_)), "{err}");
}

async fn batch_of_5000_items_in_one_call(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let owners: Vec<UserId> = (0..50).map(|_| unique_id()).collect();
    let items: Vec<Item> = (0..5000)
        .map(|m| {
            regular(
                account,
                1000 + m,
                Owner::User(owners[m as usize % owners.len()]),
            )
        })
        .collect();
    let outcome = store.apply_batch(&deposit(items.clone())).await.unwrap();
    assert_eq!(outcome.items_new, 5000);
    let loaded = store.load_items(account).await.unwrap();
    assert_eq!(loaded.len(), 5000, "reads page past any row cap");
    assert_eq!(loaded, items);
    let stats = store.owner_stats(owners[0]).await.unwrap();
    assert_eq!(stats.held, 100);
    assert_eq!(
        store
            .list_owner(Owner::User(owners[1]))
            .await
            .unwrap()
            .len(),
        100
    );

    // And 5000 departures in one call.
    let outcome = store
        .apply_batch(&departures(&items, Status::Gone, T0 + 50))
        .await
        .unwrap();
    assert_eq!(outcome.changes_applied, 5000);
    assert!(store.load_items(account).await.unwrap().is_empty());
}

async fn concurrent_writers_of_overlapping_batches(backend: Backend) {
    // Two handles: two daemons (or a daemon and a replay) writing at once.
    let (a, b) = (backend.open().await, backend.open().await);
    let account = unique_id();
    let owner = unique_id();
    let items: Vec<Item> = (0..900)
        .map(|m| regular(account, m, Owner::User(owner)))
        .collect();
    let first = deposit(items[..600].to_vec());
    let second = deposit(items[300..].to_vec());
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(
            {
                let a = a.clone();
                let first = first.clone();
                tokio::spawn(async move { a.apply_batch(&first).await })
            },
            {
                let b = b.clone();
                let second = second.clone();
                tokio::spawn(async move { b.apply_batch(&second).await })
            },
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let (ra, rb) = match (ra, rb) {
            (Ok(ra), Ok(rb)) => (ra, rb),
            (ra, rb) => {
                // Contention may make one side retry; it must say so and change nothing.
                for e in [ra.as_ref().err(), rb.as_ref().err()].into_iter().flatten() {
                    assert!(e.is_retryable(), "{e}");
                }
                (
                    a.apply_batch(&first).await.unwrap(),
                    b.apply_batch(&second).await.unwrap(),
                )
            }
        };
        assert!(ra.items_new + ra.items_known == 600 && rb.items_new + rb.items_known == 600);
    }
    assert_eq!(a.load_items(account).await.unwrap(), items);
    let stats = b.owner_stats(owner).await.unwrap();
    assert_eq!((stats.held, stats.deposited), (900, 900));
    for key in [items[0].key, items[450].key, items[899].key] {
        assert_eq!(kinds(&a, key).await, vec![LedgerKind::Deposit]);
    }
}

async fn redeposit_of_unique_gift_after_withdrawal(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let (alice, bob) = (unique_id(), unique_id());
    let collectible_id = unique_id();
    let first = collectible(account, 10, Owner::User(alice), collectible_id);
    store
        .apply_batch(&deposit(vec![first.clone()]))
        .await
        .unwrap();

    let id = store.create_withdrawal(alice, first.key).await.unwrap();
    let claimed = store
        .claim_withdrawal(account, "worker-1", LEASE, None)
        .await
        .unwrap()
        .expect("the request is open");
    assert_eq!(
        (claimed.id, claimed.key, claimed.owner),
        (id, first.key, alice)
    );
    let sending = store
        .move_withdrawal(&WithdrawalMove::begin_send(&claimed, 0, None, 60_000, None))
        .await
        .unwrap();
    store
        .move_withdrawal(&WithdrawalMove::sent(&sending, "transferred"))
        .await
        .unwrap();
    assert!(store.load_items(account).await.unwrap().is_empty());

    // Alice gave it to Bob, who deposits it: same collectible, new service message.
    let again = collectible(account, 20, Owner::User(bob), collectible_id);
    let outcome = store
        .apply_batch(&deposit(vec![again.clone()]))
        .await
        .unwrap();
    assert_eq!(outcome.items_new, 1);
    assert_eq!(
        store.load_items(account).await.unwrap(),
        vec![again.clone()]
    );
    assert!(
        store
            .list_owner(Owner::User(alice))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_owner(Owner::User(bob)).await.unwrap(),
        vec![again.clone()]
    );
    assert_eq!(
        kinds(&store, first.key).await,
        vec![
            LedgerKind::Deposit,
            LedgerKind::WithdrawRequested,
            LedgerKind::WithdrawStarted,
            LedgerKind::WithdrawSending,
            LedgerKind::Withdrawn
        ]
    );
    assert_eq!(kinds(&store, again.key).await, vec![LedgerKind::Deposit]);
    assert_eq!(store.owner_stats(alice).await.unwrap().withdrawn, 1);
}

const LEASE: Duration = Duration::from_secs(120);

async fn concurrent_claimers_never_share_a_request(backend: Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let account = unique_id();
    let owner = unique_id();
    let items: Vec<Item> = (0..20)
        .map(|m| regular(account, m, Owner::User(owner)))
        .collect();
    a.apply_batch(&deposit(items.clone())).await.unwrap();
    let mut requested = Vec::new();
    for item in &items {
        requested.push(a.create_withdrawal(owner, item.key).await.unwrap());
    }

    async fn drain(store: Arc<dyn Store>, account: UserId, worker: &'static str) -> Vec<i64> {
        let mut got = Vec::new();
        loop {
            match store.claim_withdrawal(account, worker, LEASE, None).await {
                Ok(Some(w)) => got.push(w.id),
                Ok(None) => return got,
                Err(e) if e.is_retryable() => continue,
                Err(e) => panic!("{worker}: {e}"),
            }
        }
    }
    let (ga, gb) = tokio::join!(
        tokio::spawn(drain(a.clone(), account, "worker-a")),
        tokio::spawn(drain(b.clone(), account, "worker-b")),
    );
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    let mut all: Vec<i64> = ga.iter().chain(&gb).copied().collect();
    all.sort_unstable();
    let mut expected = requested.clone();
    expected.sort_unstable();
    assert_eq!(
        all, expected,
        "each request claimed exactly once (a: {ga:?}, b: {gb:?})"
    );
    for item in a.load_items(account).await.unwrap() {
        assert_eq!(item.status, Status::Withdrawing);
    }
}

/// Claims the only claimable request of `account`, which must be `id`.
pub(crate) async fn claim(store: &Arc<dyn Store>, account: UserId, id: i64) -> Withdrawal {
    let w = store
        .claim_withdrawal(account, "w", LEASE, None)
        .await
        .unwrap()
        .expect("a claimable request");
    assert_eq!((w.id, w.state), (id, RequestState::Claimed));
    w
}

async fn item_status(store: &Arc<dyn Store>, key: ItemKey) -> Option<Status> {
    store
        .load_items(key.account_id)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.key == key)
        .map(|i| i.status)
}

async fn withdrawal_rules(backend: Backend) {
    use RequestState::*;
    let store = backend.open().await;
    let account = unique_id();
    let (alice, mallory) = (unique_id(), unique_id());
    let items: Vec<Item> = (1..=3)
        .map(|m| collectible(account, m, Owner::User(alice), unique_id()))
        .collect();
    store.apply_batch(&deposit(items.clone())).await.unwrap();
    let key = items[0].key;

    let err = store.create_withdrawal(mallory, key).await.unwrap_err();
    assert!(matches!(err, StoreError::NotOwner { .. }), "{err}");
    let missing = ItemKey::new(account, 404);
    let err = store.create_withdrawal(alice, missing).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ItemNotFound(k) if k == missing),
        "{err}"
    );

    // Asking twice gives the same request; nothing moves out of `requested` but a claim.
    let id = store.create_withdrawal(alice, key).await.unwrap();
    assert_eq!(store.create_withdrawal(alice, key).await.unwrap(), id);
    let w = store.withdrawal(id).await.unwrap().unwrap();
    assert_eq!(
        (w.state, w.kind, w.owner, w.attempt),
        (Requested, WithdrawalKind::Transfer, alice, 0)
    );
    let err = store
        .move_withdrawal(&WithdrawalMove::sent(&w, "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WithdrawalMoveRefused {
                state: Requested,
                ..
            }
        ),
        "{err}"
    );

    // Telegram says too early: the request waits and is not claimable before then.
    let w = claim(&store, account, id).await;
    assert_eq!((w.attempt, w.worker.as_deref()), (1, Some("w")));
    assert_eq!(item_status(&store, key).await, Some(Status::Withdrawing));
    assert!(
        store
            .claim_withdrawal(account, "w", LEASE, None)
            .await
            .unwrap()
            .is_none()
    );
    let later = giftd_now_ms() + 3_600_000;
    let waiting = store
        .move_withdrawal(&WithdrawalMove::defer(
            &w,
            WaitReason::TooEarly,
            Some(later),
            "STARGIFT_TRANSFER_TOO_EARLY_3600",
        ))
        .await
        .unwrap();
    assert_eq!(
        (waiting.state, waiting.wait_reason, waiting.not_before_ms),
        (Waiting, Some(WaitReason::TooEarly), Some(later))
    );
    assert_eq!(
        item_status(&store, key).await,
        Some(Status::WithdrawRequested)
    );
    assert!(
        store
            .claim_withdrawal(account, "w", LEASE, None)
            .await
            .unwrap()
            .is_none()
    );
    // An operator's retry makes it claimable now; another worker's move is refused.
    store
        .move_withdrawal(&WithdrawalMove::retry(&waiting))
        .await
        .unwrap();
    let w = claim(&store, account, id).await;
    assert_eq!(w.attempt, 2);
    let mut intruder = w.clone();
    intruder.worker = Some("other".into());
    let err = store
        .move_withdrawal(&WithdrawalMove::begin_send(
            &intruder, 25, None, 60_000, None,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WithdrawalMoveRefused { .. }),
        "{err}"
    );

    // Intent, then an unknown outcome: the item stays withdrawing; not sent -> queue again.
    let sending = store
        .move_withdrawal(&WithdrawalMove::begin_send(&w, 25, Some(77), 60_000, None))
        .await
        .unwrap();
    assert_eq!(
        (sending.state, sending.fee_stars, sending.form_id),
        (Sending, Some(25), Some(77))
    );
    assert!(sending.sending_at_ms.is_some());
    // Replaying the same move changes nothing.
    store
        .move_withdrawal(&WithdrawalMove::begin_send(&w, 25, Some(77), 60_000, None))
        .await
        .unwrap();
    let err = store
        .move_withdrawal(&WithdrawalMove::cancel(&sending, Canceller::Operator))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WithdrawalMoveRefused { .. }),
        "{err}"
    );
    let unknown = store
        .move_withdrawal(&WithdrawalMove::unknown(&sending, "timeout"))
        .await
        .unwrap();
    assert_eq!(unknown.state, Unknown);
    assert_eq!(item_status(&store, key).await, Some(Status::Withdrawing));
    let again = store
        .move_withdrawal(&WithdrawalMove::not_sent(
            &unknown,
            3,
            "still in the account",
        ))
        .await
        .unwrap();
    assert_eq!((again.state, again.form_id), (Requested, None));

    // A definite refusal gives the item back; the owner may ask again.
    let w = claim(&store, account, id).await;
    let sending = store
        .move_withdrawal(&WithdrawalMove::begin_send(&w, 0, None, 60_000, None))
        .await
        .unwrap();
    let failed = store
        .move_withdrawal(&WithdrawalMove::failed(
            &sending,
            "USER_DISALLOWED_STARGIFTS",
        ))
        .await
        .unwrap();
    assert_eq!(
        (failed.state, failed.reason.as_deref()),
        (Failed, Some("USER_DISALLOWED_STARGIFTS"))
    );
    assert_eq!(item_status(&store, key).await, Some(Status::Held));

    // Cancelled by the player (only theirs), then asked again and sent.
    let second = store.create_withdrawal(alice, key).await.unwrap();
    assert_ne!(second, id);
    let w = store.withdrawal(second).await.unwrap().unwrap();
    let err = store
        .move_withdrawal(&WithdrawalMove::cancel(&w, Canceller::Player(mallory)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WithdrawalNotOwner { .. }),
        "{err}"
    );
    store
        .move_withdrawal(&WithdrawalMove::cancel(&w, Canceller::Player(alice)))
        .await
        .unwrap();
    assert_eq!(item_status(&store, key).await, Some(Status::Held));
    let third = store.create_withdrawal(alice, key).await.unwrap();
    let w = claim(&store, account, third).await;
    let sending = store
        .move_withdrawal(&WithdrawalMove::begin_send(&w, 25, Some(5), 60_000, None))
        .await
        .unwrap();
    let sent = store
        .move_withdrawal(&WithdrawalMove::sent(&sending, "transferred"))
        .await
        .unwrap();
    assert_eq!(sent.state, Sent);
    assert_eq!(
        item_status(&store, key).await,
        None,
        "withdrawn items are not loaded"
    );
    let err = store.create_withdrawal(alice, key).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotHeld {
                status: Status::Withdrawn,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        kinds(&store, key).await,
        vec![
            LedgerKind::Deposit,
            LedgerKind::WithdrawRequested,
            LedgerKind::WithdrawStarted,
            LedgerKind::WithdrawDeferred,
            LedgerKind::WithdrawApproved,
            LedgerKind::WithdrawStarted,
            LedgerKind::WithdrawSending,
            LedgerKind::WithdrawUnknown,
            LedgerKind::WithdrawDeferred,
            LedgerKind::WithdrawStarted,
            LedgerKind::WithdrawSending,
            LedgerKind::WithdrawFailed,
            LedgerKind::WithdrawRequested,
            LedgerKind::WithdrawCancelled,
            LedgerKind::WithdrawRequested,
            LedgerKind::WithdrawStarted,
            LedgerKind::WithdrawSending,
            LedgerKind::Withdrawn,
        ]
    );
    let history = store.item_history(key).await.unwrap();
    assert_eq!(
        history.last().map(|e| e.stars),
        Some(25),
        "the ledger shows what was paid"
    );

    // The item leaves the account before anyone claims the request: the request is dropped.
    let other = items[1].key;
    let id = store.create_withdrawal(alice, other).await.unwrap();
    let mut requested = items[1].clone();
    requested.status = Status::WithdrawRequested;
    store
        .apply_batch(&departures(&[requested], Status::Converted, T0 + 9))
        .await
        .unwrap();
    assert!(
        store
            .claim_withdrawal(account, "w", LEASE, None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.withdrawal(id).await.unwrap().unwrap().state,
        Cancelled
    );
    let err = store.create_withdrawal(alice, other).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotHeld {
                status: Status::Converted,
                ..
            }
        ),
        "{err}"
    );
    let open = store
        .list_withdrawals(&WithdrawalFilter {
            account_id: Some(account),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 4, "{open:?}");
    assert!(open.windows(2).all(|p| p[0].id > p[1].id), "newest first");
    let err = store
        .move_withdrawal(&WithdrawalMove::cancel(
            &Withdrawal {
                id: i64::MAX,
                ..open[0].clone()
            },
            Canceller::Operator,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WithdrawalNotFound(_)), "{err}");
}

/// A resent regular gift stays in the account, kept by the house: loaded at start (so no
/// reconciliation credits it again) but no longer the player's.
async fn a_resent_gift_is_kept_by_the_house(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let alice = unique_id();
    let item = regular(account, 1, Owner::User(alice));
    store
        .apply_batch(&deposit(vec![item.clone()]))
        .await
        .unwrap();
    let id = store.create_withdrawal(alice, item.key).await.unwrap();
    let w = claim(&store, account, id).await;
    assert_eq!(w.kind, WithdrawalKind::Resend);
    let sending = store
        .move_withdrawal(&WithdrawalMove::begin_send(&w, 15, Some(9), 60_000, None))
        .await
        .unwrap();
    store
        .move_withdrawal(&WithdrawalMove::sent(&sending, "bought for the player"))
        .await
        .unwrap();
    let loaded = store.load_items(account).await.unwrap();
    assert_eq!(
        loaded.iter().map(|i| (i.key, i.status)).collect::<Vec<_>>(),
        [(item.key, Status::Withdrawn)]
    );
    assert!(
        store
            .list_owner(Owner::User(alice))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Today's spending on an account's fees is capped inside the move that records the intent.
async fn the_daily_budget_is_checked_when_the_intent_is_written(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let alice = unique_id();
    let items: Vec<Item> = (1..=2)
        .map(|m| collectible(account, m, Owner::User(alice), unique_id()))
        .collect();
    store.apply_batch(&deposit(items.clone())).await.unwrap();
    let first = store.create_withdrawal(alice, items[0].key).await.unwrap();
    let w = claim(&store, account, first).await;
    let s = store
        .move_withdrawal(&WithdrawalMove::begin_send(
            &w,
            60,
            Some(1),
            60_000,
            Some(100),
        ))
        .await
        .unwrap();
    store
        .move_withdrawal(&WithdrawalMove::sent(&s, "paid transfer"))
        .await
        .unwrap();
    let second = store.create_withdrawal(alice, items[1].key).await.unwrap();
    let w = claim(&store, account, second).await;
    let err = store
        .move_withdrawal(&WithdrawalMove::begin_send(
            &w,
            50,
            Some(2),
            60_000,
            Some(100),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::OverDailyBudget {
                fee: 50,
                total: 110,
                budget: 100,
                ..
            }
        ),
        "{err}"
    );
    // Nothing was written: an operator can approve it.
    let w2 = store.withdrawal(second).await.unwrap().unwrap();
    assert_eq!(w2.state, RequestState::Claimed);
    let waiting = store
        .move_withdrawal(&WithdrawalMove::defer_quoted(
            &w2,
            WaitReason::DailyBudget,
            50,
            "budget",
        ))
        .await
        .unwrap();
    assert_eq!(waiting.state, RequestState::Approval);
    let approved = store
        .move_withdrawal(&WithdrawalMove::approve(&waiting, None))
        .await
        .unwrap();
    assert_eq!(
        (approved.state, approved.approved_stars),
        (RequestState::Requested, Some(50))
    );
}

/// A worker that stopped (crash, pause, lost database) loses its claims when its lease runs
/// out: a claim goes back to the queue, a send becomes unknown.
async fn expired_leases_are_rescued(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let alice = unique_id();
    let items: Vec<Item> = (1..=2)
        .map(|m| collectible(account, m, Owner::User(alice), unique_id()))
        .collect();
    store.apply_batch(&deposit(items.clone())).await.unwrap();
    let a = store.create_withdrawal(alice, items[0].key).await.unwrap();
    let b = store.create_withdrawal(alice, items[1].key).await.unwrap();
    let short = Duration::from_millis(1);
    let wa = store
        .claim_withdrawal(account, "gone", short, None)
        .await
        .unwrap()
        .unwrap();
    let wb = store
        .claim_withdrawal(account, "gone", LEASE, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((wa.id, wb.id), (a, b));
    store
        .move_withdrawal(&WithdrawalMove::begin_send(&wb, 0, None, 1, None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.rescue_withdrawals(account, None).await.unwrap(), 2);
    assert_eq!(store.rescue_withdrawals(account, None).await.unwrap(), 0);
    let (ra, rb) = (
        store.withdrawal(a).await.unwrap().unwrap(),
        store.withdrawal(b).await.unwrap().unwrap(),
    );
    assert_eq!((ra.state, ra.worker), (RequestState::Requested, None));
    assert_eq!(rb.state, RequestState::Unknown);
    assert_eq!(
        item_status(&store, items[1].key).await,
        Some(Status::Withdrawing)
    );
}

fn giftd_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn unattributed_items_wait_for_an_operator(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let (alice, bob) = (unique_id(), unique_id());
    let anonymous = regular(account, 7, Owner::Unattributed);
    store
        .apply_batch(&deposit(vec![anonymous.clone()]))
        .await
        .unwrap();
    let waiting = store.list_owner(Owner::Unattributed).await.unwrap();
    assert!(waiting.iter().any(|i| i.key == anonymous.key));
    let err = store
        .create_withdrawal(alice, anonymous.key)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotOwner { .. }), "{err}");

    assert!(store.assign_owner(anonymous.key, alice).await.unwrap());
    assert!(!store.assign_owner(anonymous.key, alice).await.unwrap());
    let err = store.assign_owner(anonymous.key, bob).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyOwned { owner, .. } if owner == alice),
        "{err}"
    );
    let err = store
        .assign_owner(ItemKey::new(account, 8), bob)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ItemNotFound(_)), "{err}");

    let owned = store.list_owner(Owner::User(alice)).await.unwrap();
    assert_eq!(keys(&owned), vec![anonymous.key]);
    assert!(
        !store
            .list_owner(Owner::Unattributed)
            .await
            .unwrap()
            .iter()
            .any(|i| i.key == anonymous.key)
    );
    let history = store.item_history(anonymous.key).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].owner, Owner::Unattributed);
    assert_eq!(
        (history[1].kind, history[1].owner),
        (LedgerKind::Assigned, Owner::User(alice))
    );
    store.create_withdrawal(alice, anonymous.key).await.unwrap();
}

pub(crate) fn attribution(item: &Item, owner: UserId, at: i64) -> ChangeBatch {
    ChangeBatch {
        attributions: vec![Attribution {
            key: item.key,
            owner,
            entry: item.attribution_entry(owner, at),
        }],
        ..ChangeBatch::default()
    }
}

async fn a_sender_named_later_is_credited_once_never_over_an_operator(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let (alice, bob) = (unique_id(), unique_id());
    let first = regular(account, 7, Owner::Unattributed);
    let second = regular(account, 8, Owner::Unattributed);
    store
        .apply_batch(&deposit(vec![first.clone(), second.clone()]))
        .await
        .unwrap();

    // Telegram names alice as the sender of the first: credited, with its ledger entry.
    let outcome = store
        .apply_batch(&attribution(&first, alice, T0 + 100))
        .await
        .unwrap();
    assert_eq!((outcome.attributed, outcome.attributions_skipped), (1, 0));
    // A replay, or another sender named later, changes nothing.
    for owner in [alice, bob] {
        let outcome = store
            .apply_batch(&attribution(&first, owner, T0 + 200))
            .await
            .unwrap();
        assert_eq!((outcome.attributed, outcome.attributions_skipped), (0, 1));
    }
    let owned = store.list_owner(Owner::User(alice)).await.unwrap();
    assert_eq!(keys(&owned), vec![first.key]);
    assert_eq!(
        kinds(&store, first.key).await,
        [LedgerKind::Deposit, LedgerKind::Attributed]
    );
    let history = store.item_history(first.key).await.unwrap();
    assert_eq!(history[1].owner, Owner::User(alice));

    // An operator assigned the second to bob: Telegram naming alice later does not undo it.
    assert!(store.assign_owner(second.key, bob).await.unwrap());
    let outcome = store
        .apply_batch(&attribution(&second, alice, T0 + 300))
        .await
        .unwrap();
    assert_eq!((outcome.attributed, outcome.attributions_skipped), (0, 1));
    let owned = store.list_owner(Owner::User(bob)).await.unwrap();
    assert_eq!(keys(&owned), vec![second.key]);
    assert_eq!(
        kinds(&store, second.key).await,
        [LedgerKind::Deposit, LedgerKind::Assigned]
    );

    // An attribution whose ledger entry is for another item or owner is refused whole.
    let mut bad = attribution(&first, alice, T0);
    bad.attributions[0].owner = bob;
    let err = store.apply_batch(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch(_)), "{err}");
}

async fn an_upgrade_points_both_ways_whichever_is_written_first(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let alice = unique_id();
    let upgraded = |regular: &Item, into: i32| {
        StatusChange::new(regular, Status::Upgraded { into }, T0 + 50).unwrap()
    };
    let find = async |store: &Arc<dyn Store>, key: ItemKey| {
        store
            .list_owner(Owner::User(alice))
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.key == key)
    };

    // The collectible is recorded first (the update path), the old gift ends later.
    let old = regular(account, 1, Owner::User(alice));
    let new = collectible(account, 2, Owner::User(alice), unique_id());
    store
        .apply_batch(&deposit(vec![old.clone()]))
        .await
        .unwrap();
    store
        .apply_batch(&deposit(vec![new.clone()]))
        .await
        .unwrap();
    let outcome = store
        .apply_batch(&ChangeBatch {
            changes: vec![upgraded(&old, 2)],
            ..ChangeBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.changes_applied, 1);
    let got = find(&store, new.key)
        .await
        .expect("the collectible is held");
    assert_eq!(got.upgraded_from, Some(1));

    // The old gift ends in the same batch that records the collectible.
    let old = regular(account, 3, Owner::User(alice));
    let new = collectible(account, 4, Owner::User(alice), unique_id());
    store
        .apply_batch(&deposit(vec![old.clone()]))
        .await
        .unwrap();
    let mut batch = deposit(vec![new.clone()]);
    batch.changes.push(upgraded(&old, 4));
    store.apply_batch(&batch).await.unwrap();
    let got = find(&store, new.key)
        .await
        .expect("the collectible is held");
    assert_eq!(got.upgraded_from, Some(3));
}

async fn stats_and_sync_logs(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(
        store.check_schema().await.unwrap(),
        giftd::store::SCHEMA_VERSION
    );
    store.check_write().await.unwrap();
    let account = unique_id();
    let owner = unique_id();
    let items: Vec<Item> = (1..=4)
        .map(|m| regular(account, m, Owner::User(owner)))
        .collect();
    store.apply_batch(&deposit(items.clone())).await.unwrap();
    store.create_withdrawal(owner, items[1].key).await.unwrap();
    store
        .apply_batch(&departures(&items[3..], Status::Gone, T0))
        .await
        .unwrap();
    let stats = store.owner_stats(owner).await.unwrap();
    assert_eq!(stats.held, 2);
    assert_eq!(stats.withdraw_pending, 1);
    assert_eq!(stats.held_stars, 45);
    assert_eq!(stats.deposited, 4);
    assert_eq!(
        store.owner_stats(unique_id()).await.unwrap(),
        Default::default()
    );

    store
        .append_sync_log(&SyncLog {
            pass_id: format!("{account}:first"),
            account_id: account,
            started_at: T0,
            finished_at: T0 + 3,
            items_seen: 4,
            items_new: 4,
            items_changed: 1,
            error: None,
        })
        .await
        .unwrap();
    store
        .append_sync_log(&SyncLog {
            pass_id: format!("{account}:second"),
            account_id: account,
            started_at: T0 + 60,
            finished_at: T0 + 61,
            items_seen: 0,
            items_new: 0,
            items_changed: 0,
            error: Some("FLOOD_WAIT_7".into()),
        })
        .await
        .unwrap();
}

async fn sync_logs_travel_in_batches_once_per_pass(backend: Backend) {
    let store = backend.open().await;
    let account = unique_id();
    let log = SyncLog {
        pass_id: format!("{account}:pass"),
        account_id: account,
        started_at: T0,
        finished_at: T0 + 2,
        items_seen: 1,
        items_new: 1,
        items_changed: 0,
        error: None,
    };
    let mut batch = deposit(vec![regular(account, 1, Owner::User(unique_id()))]);
    batch.sync_logs.push(log.clone());
    // Replayed (an answer lost after the commit), and written again on its own: one row.
    store.apply_batch(&batch).await.unwrap();
    store.apply_batch(&batch).await.unwrap();
    store.append_sync_log(&log).await.unwrap();
    assert_eq!(backend.count_sync_logs(account).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Failure: the database stops in the middle of a batch; the schema is too old.
// ---------------------------------------------------------------------------------------------

mod sqlite_chaos {
    use super::*;

    /// SQLite has no server to stop. What stops a batch is another connection holding the
    /// file's write lock (another process, a backup tool): here a raw connection holds
    /// `BEGIN IMMEDIATE` while giftd applies a 5,000-item batch. The batch must fail with a
    /// retryable error, leave nothing behind, and succeed once the lock is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chaos_database_stopped_mid_batch() {
        let backend = Backend::sqlite_impatient();
        let store = backend.open().await;
        let account = unique_id();
        let items: Vec<Item> = (0..5000)
            .map(|m| regular(account, m, Owner::User(7)))
            .collect();
        let batch = deposit(items.clone());

        let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
            .build()
            .await
            .unwrap();
        let other = db.connect().unwrap();
        other.execute("BEGIN IMMEDIATE", ()).await.unwrap();
        let err = store.apply_batch(&batch).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(matches!(err, StoreError::Busy(_)), "{err}");
        other.execute("ROLLBACK", ()).await.unwrap();

        assert!(store.load_items(account).await.unwrap().is_empty());
        assert!(store.item_history(items[0].key).await.unwrap().is_empty());
        let outcome = store.apply_batch(&batch).await.unwrap();
        assert_eq!(outcome.items_new, 5000);
    }

    /// A failure after half the rows were written (a trigger that aborts at item 2,500) rolls
    /// back the whole batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failure_half_way_through_a_batch_writes_nothing() {
        let backend = Backend::sqlite();
        let store = backend.open().await;
        let account = unique_id();
        let items: Vec<Item> = (0..5000)
            .map(|m| regular(account, m, Owner::User(7)))
            .collect();
        let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
            .build()
            .await
            .unwrap();
        let other = db.connect().unwrap();
        other
            .execute(
                "CREATE TRIGGER fail_half_way BEFORE INSERT ON inventory WHEN NEW.msg_id = 2500
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                (),
            )
            .await
            .unwrap();
        let err = store
            .apply_batch(&deposit(items.clone()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert!(store.load_items(account).await.unwrap().is_empty());
        assert!(store.item_history(items[0].key).await.unwrap().is_empty());
        other
            .execute("DROP TRIGGER fail_half_way", ())
            .await
            .unwrap();
        assert_eq!(
            store.apply_batch(&deposit(items)).await.unwrap().items_new,
            5000
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chaos_schema_version_too_old() {
        let backend = Backend::sqlite();
        let store = backend.open().await;
        let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
            .build()
            .await
            .unwrap();
        let other = db.connect().unwrap();
        other
            .execute("UPDATE schema_version SET version = 0", ())
            .await
            .unwrap();
        let err = store.check_schema().await.unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooOld { found: 0, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains(giftd::store::migrations()[0].0), "{text}");
        assert!(!err.is_retryable());
        // Opening the file again upgrades it.
        let reopened = backend.open().await;
        assert_eq!(
            reopened.check_schema().await.unwrap(),
            giftd::store::SCHEMA_VERSION
        );

        other
            .execute("UPDATE schema_version SET version = 1000", ())
            .await
            .unwrap();
        let err = store.check_schema().await.unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
        let err = giftd::store::sqlite::SqliteStore::open(&backend.sqlite_path().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    }
}

mod supabase_chaos {
    use super::*;
    use crate::support::{chaos_guard, psql, psql_session};

    fn pg_ctl(backend: &Backend, action: &str) {
        let Backend::Supabase {
            pg_ctl: Some(ctl), ..
        } = backend
        else {
            unreachable!("the chaos instance has a pg_ctl")
        };
        let status = std::process::Command::new(ctl)
            .arg(action)
            .status()
            .unwrap();
        assert!(status.success(), "{ctl} {action} failed");
    }

    fn pg_url(backend: &Backend) -> &str {
        match backend {
            Backend::Supabase { pg_url, .. } => pg_url,
            Backend::Sqlite { .. } => unreachable!(),
        }
    }

    /// The batch is stopped half way for sure: a psql session holds an exclusive lock on the
    /// ledger, so the batch's transaction has written users, gifts and 5,000 items and waits
    /// for the ledger when the database is killed (immediate shutdown, like a crash).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chaos_database_stopped_mid_batch() {
        let _serial = chaos_guard().await;
        let backend = Backend::supabase_chaos();
        let store = backend.open().await;
        let account = unique_id();
        let items: Vec<Item> = (0..5000)
            .map(|m| regular(account, m, Owner::User(unique_id())))
            .collect();
        let batch = deposit(items.clone());
        let url = pg_url(&backend).to_owned();

        let mut locker = psql_session(
            &url,
            "begin;\nlock table public.transactions in access exclusive mode;\n",
        );
        let applying = {
            let store = store.clone();
            let batch = batch.clone();
            tokio::spawn(async move { store.apply_batch(&batch).await })
        };
        let waiting = "select count(*) from pg_stat_activity \
                       where wait_event_type = 'Lock' and query like '%apply_batch%'";
        let mut tries = 0;
        while psql(&url, waiting) != "1" {
            tries += 1;
            assert!(tries < 300, "the batch never reached the locked ledger");
            assert!(
                !applying.is_finished(),
                "the batch finished despite the lock"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pg_ctl(&backend, "stop");
        let err = applying.await.unwrap().unwrap_err();
        eprintln!("the interrupted batch failed with: {err}");
        let _ = locker.kill();
        let _ = locker.wait();
        assert!(err.is_retryable(), "{err}");
        pg_ctl(&backend, "start");

        let store = backend.open().await;
        assert!(store.load_items(account).await.unwrap().is_empty());
        assert!(store.item_history(items[0].key).await.unwrap().is_empty());
        assert_eq!(
            psql(
                &url,
                &format!("select count(*) from inventory where account_id = {account}")
            ),
            "0"
        );
        let outcome = store.apply_batch(&batch).await.unwrap();
        assert_eq!(outcome.items_new, 5000);
    }

    /// A function giftd calls is missing (a migration not applied): the error names the
    /// migration.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chaos_missing_function_names_the_migration() {
        let _serial = chaos_guard().await;
        let backend = Backend::supabase_chaos();
        let store = backend.open().await;
        let url = pg_url(&backend).to_owned();
        let reload = "notify pgrst, 'reload schema'";
        psql(
            &url,
            "alter function public.giftd_owner_stats(bigint) rename to giftd_owner_stats_gone",
        );
        psql(&url, reload);
        // The server reloads its schema cache asynchronously; either way the call fails.
        let result = store.owner_stats(1).await;
        psql(
            &url,
            "alter function public.giftd_owner_stats_gone(bigint) rename to giftd_owner_stats",
        );
        psql(&url, reload);
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::SchemaMissing { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("giftd_owner_stats"), "{text}");
        // The newest migration "and those before it".
        let newest = giftd::store::migrations().last().unwrap().0;
        assert!(text.contains(newest), "{text}");
        assert!(!err.is_retryable());
        let mut tries = 0;
        while let Err(e) = store.owner_stats(1).await {
            tries += 1;
            assert!(tries < 100, "the function never came back: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chaos_schema_version_too_old() {
        let _serial = chaos_guard().await;
        let backend = Backend::supabase_chaos();
        let store = backend.open().await;
        let url = pg_url(&backend).to_owned();
        assert_eq!(
            store.check_schema().await.unwrap(),
            giftd::store::SCHEMA_VERSION
        );
        psql(&url, "update public.schema_version set version = 0");
        let result = store.check_schema().await;
        psql(
            &url,
            &format!(
                "update public.schema_version set version = {}",
                giftd::store::SCHEMA_VERSION
            ),
        );
        let err = result.unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooOld { found: 0, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains(giftd::store::migrations()[0].0), "{text}");
        assert!(text.contains("supabase db push"), "{text}");
        assert!(!err.is_retryable());
    }
}

// ---------------------------------------------------------------------------------------------
// Through PostgREST only: row level security and keys.
// ---------------------------------------------------------------------------------------------

mod supabase_access {
    use super::*;
    use crate::support::{env, mint_jwt, supabase_store};

    async fn get(path: &str, bearer: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/{path}", env("GIFTD_TEST_REST_URL")))
            .header("apikey", env("GIFTD_TEST_ANON_KEY"))
            .bearer_auth(bearer)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    async fn post(path: &str, bearer: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/{path}", env("GIFTD_TEST_REST_URL")))
            .header("apikey", env("GIFTD_TEST_ANON_KEY"))
            .bearer_auth(bearer)
            .json(&body)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Two moves that check the daily budget at once, for two requests of one deposit account,
    /// each fitting alone and not together: the sums are serialized (an advisory lock per
    /// account), so exactly one gets through. A trigger holds each update for a second after
    /// its sum, so without the lock both would sum before either commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_sends_at_once_cannot_both_fit_under_the_daily_budget() {
        let (a, b) = (
            Backend::supabase().open().await,
            Backend::supabase().open().await,
        );
        let account = unique_id();
        let alice = unique_id();
        let items: Vec<Item> = (1..=2)
            .map(|m| collectible(account, m, Owner::User(alice), unique_id()))
            .collect();
        a.apply_batch(&deposit(items.clone())).await.unwrap();
        let first = a.create_withdrawal(alice, items[0].key).await.unwrap();
        let second = a.create_withdrawal(alice, items[1].key).await.unwrap();
        let w1 = claim(&a, account, first).await;
        let w2 = claim(&a, account, second).await;
        let pg = env("GIFTD_TEST_PG_URL");
        crate::support::psql(
            &pg,
            &format!(
                "create schema if not exists giftd_test; \
                 create or replace function giftd_test.slow_send() returns trigger \
                   language plpgsql as $$ begin perform pg_sleep(1); return new; end $$; \
                 create trigger slow_send_{account} before update on public.withdrawals \
                   for each row when (new.account_id = {account} and new.status = 'sending') \
                   execute function giftd_test.slow_send();"
            ),
        );
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let send = |store: Arc<dyn Store>, w: Withdrawal| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .move_withdrawal(&WithdrawalMove::begin_send(
                        &w,
                        60,
                        Some(1),
                        60_000,
                        Some(100),
                    ))
                    .await
            })
        };
        let (r1, r2) = tokio::join!(send(a.clone(), w1), send(b.clone(), w2));
        crate::support::psql(
            &pg,
            &format!("drop trigger slow_send_{account} on public.withdrawals"),
        );
        let results = [r1.unwrap(), r2.unwrap()];
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::OverDailyBudget { total: 120, .. })))
            .count();
        let sending = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|w| w.state == RequestState::Sending))
            .count();
        assert_eq!((sending, refused), (1, 1), "{results:?}");
    }

    /// A player's JWT as the web app gets it from Supabase Auth once it set the verified
    /// Telegram id in the user's `app_metadata` (server-written).
    fn player(id: UserId) -> String {
        mint_jwt(serde_json::json!({
            "role": "authenticated", "app_metadata": { "telegram_id": id.to_string() }
        }))
    }

    /// `user_metadata` is the user's to write (`supabase.auth.updateUser`), and a top-level
    /// claim is whatever an access-token hook copies there: neither names a player, for
    /// reading or for asking a withdrawal.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_metadata_telegram_id_grants_nothing() {
        let store = Backend::supabase().open().await;
        let account = unique_id();
        let victim = unique_id();
        store
            .apply_batch(&deposit(vec![regular(account, 1, Owner::User(victim))]))
            .await
            .unwrap();
        let path = format!("inventory?account_id=eq.{account}");
        for forged in [
            serde_json::json!({
                "role": "authenticated", "sub": uuid::Uuid::from_u128(rand::random()).to_string(),
                "user_metadata": { "telegram_id": victim.to_string() }
            }),
            serde_json::json!({ "role": "authenticated", "telegram_id": victim.to_string() }),
            serde_json::json!({ "role": "authenticated", "telegram_id": victim }),
        ] {
            let jwt = mint_jwt(forged.clone());
            let (_, rows) = get(&path, &jwt).await;
            assert_eq!(rows.as_array().map(Vec::len), Some(0), "{forged}: {rows}");
            let (_, answer) = post(
                "rpc/request_withdrawal",
                &jwt,
                serde_json::json!({ "p_account_id": account, "p_msg_id": 1 }),
            )
            .await;
            assert_eq!(answer["error"], "not_signed_in", "{forged}: {answer}");
        }
        // The server-written claim does.
        let (_, rows) = get(&path, &player(victim)).await;
        assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    }

    /// PostgreSQL lets PUBLIC execute every new function: anon may execute no giftd function,
    /// and a player (authenticated) only `request_withdrawal`, `request_link_token` and the
    /// JWT helpers row level security calls.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn roles_execute_only_the_functions_meant_for_them() {
        let _store = Backend::supabase().open().await;
        let rows = crate::support::psql(
            &env("GIFTD_TEST_PG_URL"),
            "select n.nspname || '.' || p.proname || ':' \
               || has_function_privilege('anon', p.oid, 'execute') || ':' \
               || has_function_privilege('authenticated', p.oid, 'execute') \
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where n.nspname = 'giftd_private' \
               or (n.nspname = 'public' and (p.proname like 'giftd%' or p.proname like 'request%')) \
             order by 1",
        );
        let player_may = [
            "public.request_withdrawal",
            "public.request_link_token",
            "giftd_private.jwt_telegram_id",
            "giftd_private.jwt_web_user",
            "giftd_private.jwt_player_id",
        ];
        let mut seen = 0;
        for line in rows.lines() {
            let mut parts = line.rsplitn(3, ':');
            let (authenticated, anon, name) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            seen += 1;
            assert_eq!(anon, "false", "anon may execute {name}");
            assert_eq!(
                authenticated == "true",
                player_may.contains(&name),
                "authenticated on {name}: {authenticated}"
            );
        }
        assert!(seen > 20, "{rows}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn player_jwt_sees_only_their_own_rows() {
        let store = Backend::supabase().open().await;
        let account = unique_id();
        let (alice, bob) = (unique_id(), unique_id());
        let items = vec![
            regular(account, 1, Owner::User(alice)),
            regular(account, 2, Owner::User(alice)),
            regular(account, 3, Owner::User(bob)),
            regular(account, 4, Owner::Unattributed),
        ];
        store.apply_batch(&deposit(items)).await.unwrap();
        store
            .create_withdrawal(bob, ItemKey::new(account, 3))
            .await
            .unwrap();

        let path = format!("inventory?account_id=eq.{account}&order=msg_id");
        let (status, rows) = get(&path, &player(alice)).await;
        assert_eq!(status, 200, "{rows}");
        let msgs: Vec<i64> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["msg_id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            msgs,
            vec![1, 2],
            "alice sees her two items, not bob's nor the anonymous one"
        );
        let (_, rows) = get(&path, &player(bob)).await;
        assert_eq!(rows.as_array().unwrap().len(), 1);

        let (_, rows) = get(
            &format!("transactions?account_id=eq.{account}"),
            &player(alice),
        )
        .await;
        assert_eq!(rows.as_array().unwrap().len(), 2);
        let (_, rows) = get(
            &format!("withdrawals?account_id=eq.{account}"),
            &player(alice),
        )
        .await;
        assert_eq!(rows.as_array().unwrap().len(), 0);
        let (_, rows) = get(
            &format!("withdrawals?account_id=eq.{account}"),
            &player(bob),
        )
        .await;
        assert_eq!(rows.as_array().unwrap().len(), 1);
        let (_, rows) = get(&format!("users?id=in.({alice},{bob})"), &player(alice)).await;
        assert_eq!(rows.as_array().unwrap().len(), 1);

        // A token without the claim, or with a forged-looking one, reads nothing.
        let (_, rows) = get(
            &path,
            &mint_jwt(serde_json::json!({ "role": "authenticated" })),
        )
        .await;
        assert_eq!(rows.as_array().map(Vec::len), Some(0), "{rows}");
        let odd =
            mint_jwt(serde_json::json!({ "role": "authenticated", "telegram_id": "1 or 1=1" }));
        let (_, rows) = get(&path, &odd).await;
        assert_eq!(rows.as_array().map(Vec::len), Some(0), "{rows}");
        // Players never see tokens, sync logs or the schema table.
        for table in ["link_tokens", "sync_logs", "schema_version"] {
            let (status, rows) = get(table, &player(alice)).await;
            assert!(
                status >= 400 || rows.as_array().is_some_and(Vec::is_empty),
                "{table}: {status} {rows}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn anon_reads_nothing_private() {
        let store = Backend::supabase().open().await;
        let account = unique_id();
        store
            .apply_batch(&deposit(vec![regular(
                account,
                1,
                Owner::User(unique_id()),
            )]))
            .await
            .unwrap();
        let anon = env("GIFTD_TEST_ANON_KEY");
        for table in [
            "inventory",
            "transactions",
            "withdrawals",
            "users",
            "link_tokens",
            "sync_logs",
            "schema_version",
        ] {
            let (status, rows) = get(table, &anon).await;
            assert!(
                status >= 400 || rows.as_array().is_some_and(Vec::is_empty),
                "anon read {table}: {status} {rows}"
            );
        }
        // The catalogue is public.
        let (status, rows) = get("gifts?limit=1", &anon).await;
        assert_eq!(status, 200, "{rows}");
        assert_eq!(rows.as_array().map(Vec::len), Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn anon_key_gets_a_clear_permission_error() {
        let store = supabase_store(
            &env("GIFTD_TEST_REST_URL"),
            &env("GIFTD_TEST_ANON_KEY"),
            Duration::from_secs(20),
        );
        let err = store.check_schema().await.unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.contains("anon key"), "{text}");
        assert!(text.contains("service_role"), "{text}");
        assert!(text.contains("role claim is `anon`"), "{text}");
        assert!(
            !text.contains(&env("GIFTD_TEST_ANON_KEY")),
            "the key is never printed"
        );
        let err = store
            .apply_batch(&deposit(vec![regular(unique_id(), 1, Owner::User(1))]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");

        // A player's JWT is no better.
        let store = supabase_store(
            &env("GIFTD_TEST_REST_URL"),
            &mint_jwt(serde_json::json!({ "role": "authenticated", "telegram_id": "1" })),
            Duration::from_secs(20),
        );
        let err = store.check_write().await.unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_signed_with_another_secret_is_rejected() {
        let forged = {
            let real = env("GIFTD_TEST_SERVICE_KEY");
            let (unsigned, _) = real.rsplit_once('.').unwrap();
            format!("{unsigned}.c2lnbmF0dXJlLW9mLWFub3RoZXItcHJvamVjdA")
        };
        let store = supabase_store(
            &env("GIFTD_TEST_REST_URL"),
            &forged,
            Duration::from_secs(20),
        );
        let err = store.schema_version().await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidKey { .. } | StoreError::PermissionDenied { .. }
            ),
            "{err}"
        );
        assert!(!err.is_retryable());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_and_silent_servers_are_retryable() {
        // Nothing listens: connection refused.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let store = supabase_store(&format!("http://{closed}"), "key", Duration::from_secs(5));
        let err = store.schema_version().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(err.is_retryable());

        // Accepts and never answers: the request timeout fires.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let store = supabase_store(&format!("http://{addr}"), "key", Duration::from_millis(300));
        let err = store.load_items(1).await.unwrap_err();
        assert!(matches!(err, StoreError::Timeout(_)), "{err}");
        assert!(err.is_retryable());
        silent.abort();
    }

    /// Every table of the schema has row level security on, and the inventory is published
    /// to Realtime (on both instances: one had the publication before the migration, one not).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_table_has_rls_and_inventory_is_realtime() {
        for url in [env("GIFTD_TEST_PG_URL"), env("GIFTD_TEST_CHAOS_PG_URL")] {
            let without_rls = crate::support::psql(
                &url,
                "select string_agg(relname, ',') from pg_class \
                 where relnamespace = 'public'::regnamespace and relkind = 'r' \
                   and not relrowsecurity",
            );
            assert_eq!(without_rls, "", "tables without RLS");
            let tables = crate::support::psql(
                &url,
                "select count(*) from pg_class \
                 where relnamespace = 'public'::regnamespace and relkind = 'r'",
            );
            assert_eq!(
                tables, "14",
                "the 11 tables of schema 5, web_link_replacements, account_balances and players"
            );
            let published = crate::support::psql(
                &url,
                "select string_agg(tablename, ',') from pg_publication_tables \
                 where pubname = 'supabase_realtime'",
            );
            assert_eq!(published, "inventory");
            let identity = crate::support::psql(
                &url,
                "select relreplident from pg_class where oid = 'public.inventory'::regclass",
            );
            assert_eq!(identity, "f", "change events carry the old row");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ledger_is_append_only() {
        let store = Backend::supabase().open().await;
        let account = unique_id();
        store
            .apply_batch(&deposit(vec![regular(
                account,
                1,
                Owner::User(unique_id()),
            )]))
            .await
            .unwrap();
        let url = env("GIFTD_TEST_PG_URL");
        for sql in [
            format!("update public.transactions set stars = 0 where account_id = {account}"),
            format!("delete from public.transactions where account_id = {account}"),
        ] {
            let out = std::process::Command::new("psql")
                .args([
                    url.as_str(),
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    &sql,
                ])
                .output()
                .unwrap();
            assert!(!out.status.success(), "{sql} was allowed");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("append-only"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
