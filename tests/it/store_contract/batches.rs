//! The contract of `apply_batch`: deposits, departures, replays, concurrent writers,
//! unattributed items and their attribution, upgrades, stats and sync logs.

use super::*;

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

pub(super) async fn replaying_a_batch_changes_nothing(backend: Backend) {
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

pub(super) async fn departures_are_checked_against_the_state_machine(backend: Backend) {
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

pub(super) async fn batch_of_5000_items_in_one_call(backend: Backend) {
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

pub(super) async fn concurrent_writers_of_overlapping_batches(backend: Backend) {
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

pub(super) async fn redeposit_of_unique_gift_after_withdrawal(backend: Backend) {
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

pub(super) async fn unattributed_items_wait_for_an_operator(backend: Backend) {
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

pub(super) async fn a_sender_named_later_is_credited_once_never_over_an_operator(backend: Backend) {
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

pub(super) async fn an_upgrade_points_both_ways_whichever_is_written_first(backend: Backend) {
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

pub(super) async fn stats_and_sync_logs(backend: Backend) {
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

pub(super) async fn sync_logs_travel_in_batches_once_per_pass(backend: Backend) {
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
