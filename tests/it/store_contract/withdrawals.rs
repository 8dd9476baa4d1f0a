//! The contract of withdrawal requests: claims, the state machine's moves, the daily budget, the
//! house's kept originals and rescued leases.

use super::*;

pub(super) const LEASE: Duration = Duration::from_secs(120);

pub(super) async fn concurrent_claimers_never_share_a_request(backend: Backend) {
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

pub(super) async fn item_status(store: &Arc<dyn Store>, key: ItemKey) -> Option<Status> {
    store
        .load_items(key.account_id)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.key == key)
        .map(|i| i.status)
}

pub(super) async fn withdrawal_rules(backend: Backend) {
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
pub(super) async fn a_resent_gift_is_kept_by_the_house(backend: Backend) {
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
pub(super) async fn the_daily_budget_is_checked_when_the_intent_is_written(backend: Backend) {
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
pub(super) async fn expired_leases_are_rescued(backend: Backend) {
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

pub(super) fn giftd_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
