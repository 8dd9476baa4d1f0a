//! The store contract for leases and fencing, on the embedded SQLite store and on Supabase
//! (real PostgreSQL 15 behind postrust, started by `scripts/test-env.sh`): taking, renewing
//! and releasing, a new epoch for each new term, and every write of an old term refused with
//! nothing written. Each test uses its own lease names and account ids, so the Supabase tests
//! share one database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::gift::{GiftType, Item, ItemKey, LedgerKind, Owner, Status, UniqueInfo, UserId};
use giftd::store::{
    ChangeBatch, Epoch, LeaseAnswer, RequestState, StatusChange, Store, StoreError, WithdrawalMove,
    account_lease,
};

use crate::support::{Backend, psql_session, unique_id};

contract!(
    leases_are_taken_renewed_and_released,
    an_expired_lease_goes_to_the_next_taker_with_a_new_epoch,
    a_stale_epoch_writes_no_batch,
    a_stale_epoch_moves_no_withdrawal,
    a_new_term_takes_back_the_old_terms_claims,
    concurrent_takers_only_one_wins,
);

const TTL: Duration = Duration::from_secs(30);
const LEASE: Duration = Duration::from_secs(300);

fn fresh_name() -> String {
    format!("test:{}", unique_id())
}

fn collectible(account: UserId, msg_id: i32, owner: UserId) -> Item {
    let collectible_id = unique_id();
    Item {
        key: ItemKey::new(account, msg_id),
        owner: Owner::User(owner),
        gift_id: 6_028_601_630_662_853_006,
        stars: 350,
        unique: Some(Box::new(UniqueInfo {
            collectible_id,
            slug: format!("PlushPepe-{collectible_id}"),
            number: 7,
            value: Default::default(),
        })),
        status: Status::Held,
        received_at: 1_760_000_000 + i64::from(msg_id),
        convert_stars: None,
        transfer_stars: Some(25),
        can_transfer_at: None,
        upgraded_from: None,
    }
}

fn deposit(items: &[Item], epochs: &[(UserId, Epoch)]) -> ChangeBatch {
    ChangeBatch {
        gifts: vec![GiftType {
            gift_id: items[0].gift_id,
            title: Some("Plush Pepe".into()),
            stars: items[0].stars,
            unique: true,
        }],
        items: items.to_vec(),
        epochs: epochs.iter().copied().collect(),
        ..ChangeBatch::default()
    }
}

fn held(answer: LeaseAnswer) -> giftd::store::Lease {
    match answer {
        LeaseAnswer::Held(l) => l,
        LeaseAnswer::Refused(l) => panic!("refused: {l:?}"),
    }
}

fn refused(answer: LeaseAnswer) -> giftd::store::Lease {
    match answer {
        LeaseAnswer::Refused(Some(l)) => l,
        other => panic!("expected a refusal naming the lease, got {other:?}"),
    }
}

/// Takes `account`'s lease for `holder`, releasing whoever holds it first (as a clean
/// hand-over does), and returns the new epoch.
async fn hand_over(store: &Arc<dyn Store>, account: UserId, holder: &str) -> Epoch {
    let name = account_lease(account);
    if let Some(l) = store.lease(&name).await.unwrap() {
        store
            .release_lease(&name, &l.holder, l.epoch)
            .await
            .unwrap();
    }
    held(store.take_lease(&name, holder, TTL).await.unwrap()).epoch
}

fn assert_fenced(err: StoreError, account: UserId, epoch: Option<Epoch>, current: Option<Epoch>) {
    match &err {
        StoreError::Fenced {
            lease,
            epoch: e,
            current: c,
        } => {
            assert_eq!(
                (lease.as_str(), *e, *c),
                (account_lease(account).as_str(), epoch, current),
                "{err}"
            );
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("lost the lease"), "{err}");
        }
        other => panic!("expected Fenced, got {other}"),
    }
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

async fn leases_are_taken_renewed_and_released(backend: Backend) {
    let store = backend.open().await;
    let name = fresh_name();
    assert_eq!(store.lease(&name).await.unwrap(), None);

    let a = held(store.take_lease(&name, "a", TTL).await.unwrap());
    assert_eq!((a.holder.as_str(), a.epoch), ("a", 1));
    assert!(a.is_live() && a.remaining() > TTL - Duration::from_secs(5));
    // Taking again what one holds (a lost answer, retried) keeps the term.
    assert_eq!(
        held(store.take_lease(&name, "a", TTL).await.unwrap()).epoch,
        1
    );
    let b = refused(store.take_lease(&name, "b", TTL).await.unwrap());
    assert_eq!(
        (b.holder.as_str(), b.epoch),
        ("a", 1),
        "b sees who holds it"
    );

    let renewed = held(store.renew_lease(&name, "a", 1, TTL).await.unwrap());
    assert_eq!((renewed.holder.as_str(), renewed.epoch), ("a", 1));
    refused(store.renew_lease(&name, "b", 1, TTL).await.unwrap());
    refused(store.renew_lease(&name, "a", 2, TTL).await.unwrap());
    assert_eq!(
        store.renew_lease(&fresh_name(), "a", 1, TTL).await.unwrap(),
        LeaseAnswer::Refused(None),
        "no such lease"
    );

    // Only the holder's own term can be released; then the next taker gets it at once.
    assert!(!store.release_lease(&name, "b", 1).await.unwrap());
    assert!(!store.release_lease(&name, "a", 2).await.unwrap());
    assert!(store.release_lease(&name, "a", 1).await.unwrap());
    assert!(!store.lease(&name).await.unwrap().unwrap().is_live());
    let b = held(store.take_lease(&name, "b", TTL).await.unwrap());
    assert_eq!((b.holder.as_str(), b.epoch), ("b", 2), "a new term");
    let old = refused(store.renew_lease(&name, "a", 1, TTL).await.unwrap());
    assert_eq!((old.holder.as_str(), old.epoch), ("b", 2));
    let read = store.lease(&name).await.unwrap().unwrap();
    assert_eq!((read.holder.as_str(), read.epoch), ("b", 2));
    assert!(read.is_live());

    let err = store.take_lease("", "a", TTL).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidLease(_)), "{err}");
}

async fn an_expired_lease_goes_to_the_next_taker_with_a_new_epoch(backend: Backend) {
    let store = backend.open().await;
    let name = fresh_name();
    let short = Duration::from_millis(400);
    assert_eq!(
        held(store.take_lease(&name, "a", short).await.unwrap()).epoch,
        1
    );
    // Expired and not taken: still a's term, which a may renew.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.lease(&name).await.unwrap().unwrap().is_live() {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        held(store.renew_lease(&name, "a", 1, short).await.unwrap()).epoch,
        1
    );
    // b waits until it expires, then takes it in a new term.
    let deadline = Instant::now() + Duration::from_secs(10);
    let b = loop {
        match store.take_lease(&name, "b", TTL).await.unwrap() {
            LeaseAnswer::Held(l) => break l,
            LeaseAnswer::Refused(l) => {
                assert_eq!(l.map(|l| l.holder).as_deref(), Some("a"));
                assert!(Instant::now() < deadline, "b never took the expired lease");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!((b.holder.as_str(), b.epoch), ("b", 2));
    refused(store.renew_lease(&name, "a", 1, TTL).await.unwrap());
    assert!(!store.release_lease(&name, "a", 1).await.unwrap());
    // a taking it back after b's term is another term again.
    assert!(store.release_lease(&name, "b", 2).await.unwrap());
    assert_eq!(
        held(store.take_lease(&name, "a", TTL).await.unwrap()).epoch,
        3
    );
}

async fn a_stale_epoch_writes_no_batch(backend: Backend) {
    let store = backend.open().await;
    let (account, other) = (unique_id(), unique_id());
    let alice = unique_id();
    let e1 = hand_over(&store, account, "a").await;
    let first = vec![collectible(account, 1, alice)];
    store
        .apply_batch(&deposit(&first, &[(account, e1)]))
        .await
        .unwrap();

    // b takes over: a's batches are refused whole, nothing of them written.
    let e2 = hand_over(&store, account, "b").await;
    assert_eq!(e2, e1 + 1);
    let late = vec![collectible(account, 2, alice)];
    let mut batch = deposit(&late, &[(account, e1)]);
    batch
        .changes
        .push(StatusChange::new(&first[0], Status::Gone, 1_760_000_100).unwrap());
    let err = store.apply_batch(&batch).await.unwrap_err();
    assert_fenced(err, account, Some(e1), Some(e2));
    let held_items = store.load_items(account).await.unwrap();
    assert_eq!(
        held_items, first,
        "neither the new item nor the departure was written"
    );
    assert_eq!(kinds(&store, first[0].key).await, vec![LedgerKind::Deposit]);

    // A batch spanning two accounts, one of them stale: all or nothing.
    let e_other = hand_over(&store, other, "a").await;
    let mixed = {
        let mut b = deposit(&[collectible(other, 1, alice)], &[(other, e_other)]);
        b.items.push(late[0].clone());
        b.epochs.insert(account, e1);
        b
    };
    assert_fenced(
        store.apply_batch(&mixed).await.unwrap_err(),
        account,
        Some(e1),
        Some(e2),
    );
    assert!(store.load_items(other).await.unwrap().is_empty());

    // Unfenced while b holds a live lease: refused. No lease at all (a single instance): fine.
    let err = store.apply_batch(&deposit(&late, &[])).await.unwrap_err();
    assert_fenced(err, account, None, Some(e2));
    let free = unique_id();
    store
        .apply_batch(&deposit(&[collectible(free, 1, alice)], &[]))
        .await
        .unwrap();
    // An epoch for an account that has no lease is refused too.
    let err = store
        .apply_batch(&deposit(&[collectible(free, 2, alice)], &[(free, 1)]))
        .await
        .unwrap_err();
    assert_fenced(err, free, Some(1), None);

    // The holder's epoch writes.
    let outcome = store
        .apply_batch(&deposit(&late, &[(account, e2)]))
        .await
        .unwrap();
    assert_eq!(outcome.items_new, 1);
}

async fn a_stale_epoch_moves_no_withdrawal(backend: Backend) {
    use RequestState::*;
    let store = backend.open().await;
    let account = unique_id();
    let alice = unique_id();
    let items: Vec<Item> = (1..=3).map(|m| collectible(account, m, alice)).collect();
    let e1 = hand_over(&store, account, "a").await;
    store
        .apply_batch(&deposit(&items, &[(account, e1)]))
        .await
        .unwrap();
    // A player's request is no account holder's write: unfenced, accepted.
    let ids = [
        store.create_withdrawal(alice, items[0].key).await.unwrap(),
        store.create_withdrawal(alice, items[1].key).await.unwrap(),
        store.create_withdrawal(alice, items[2].key).await.unwrap(),
    ];
    let claimed = store
        .claim_withdrawal(account, "a-worker", LEASE, Some(e1))
        .await
        .unwrap()
        .expect("a request to claim");
    assert_eq!(claimed.id, ids[0]);

    let e2 = hand_over(&store, account, "b").await;
    // a, paused while b took over, wakes up and wants to send: refused, nothing moves.
    let send = WithdrawalMove::begin_send(&claimed, 0, None, 60_000, None).with_epoch(Some(e1));
    assert_fenced(
        store.move_withdrawal(&send).await.unwrap_err(),
        account,
        Some(e1),
        Some(e2),
    );
    let now = store.withdrawal(claimed.id).await.unwrap().unwrap();
    assert_eq!((now.state, now.sending_at_ms), (Claimed, None));
    assert!(
        !kinds(&store, items[0].key)
            .await
            .contains(&LedgerKind::WithdrawSending),
        "no ledger entry for the refused move"
    );
    // Nor may it claim or rescue with its old epoch.
    assert_fenced(
        store
            .claim_withdrawal(account, "a-worker", LEASE, Some(e1))
            .await
            .unwrap_err(),
        account,
        Some(e1),
        Some(e2),
    );
    assert_eq!(
        store.withdrawal(ids[1]).await.unwrap().unwrap().state,
        Requested
    );
    assert_fenced(
        store
            .rescue_withdrawals(account, Some(e1))
            .await
            .unwrap_err(),
        account,
        Some(e1),
        Some(e2),
    );
    // An operator's move carries no epoch and is checked against the request's state only.
    let w2 = store.withdrawal(ids[1]).await.unwrap().unwrap();
    let cancelled = store
        .move_withdrawal(&WithdrawalMove::cancel(
            &w2,
            giftd::store::Canceller::Operator,
        ))
        .await
        .unwrap();
    assert_eq!(cancelled.state, Cancelled);
    // The holder's epoch moves.
    let w3 = store
        .claim_withdrawal(account, "b-worker", LEASE, Some(e2))
        .await
        .unwrap()
        .expect("the third request");
    assert_eq!(w3.id, ids[2]);
    let sending = store
        .move_withdrawal(
            &WithdrawalMove::begin_send(&w3, 0, None, 60_000, None).with_epoch(Some(e2)),
        )
        .await
        .unwrap();
    assert_eq!(sending.state, Sending);
}

async fn a_new_term_takes_back_the_old_terms_claims(backend: Backend) {
    use RequestState::*;
    let store = backend.open().await;
    let account = unique_id();
    let alice = unique_id();
    let items: Vec<Item> = (1..=3).map(|m| collectible(account, m, alice)).collect();
    let e1 = hand_over(&store, account, "a").await;
    store
        .apply_batch(&deposit(&items, &[(account, e1)]))
        .await
        .unwrap();
    for item in &items {
        store.create_withdrawal(alice, item.key).await.unwrap();
    }
    // a claims two (long claims), sends one; then loses the account to b.
    let w1 = store
        .claim_withdrawal(account, "a-worker", LEASE, Some(e1))
        .await
        .unwrap()
        .unwrap();
    let w2 = store
        .claim_withdrawal(account, "a-worker", LEASE, Some(e1))
        .await
        .unwrap()
        .unwrap();
    store
        .move_withdrawal(
            &WithdrawalMove::begin_send(&w2, 0, None, LEASE.as_millis() as i64, None)
                .with_epoch(Some(e1)),
        )
        .await
        .unwrap();
    // Without a new term, nothing is due: the claims' own leases run for minutes.
    assert_eq!(
        store.rescue_withdrawals(account, Some(e1)).await.unwrap(),
        0
    );
    let e2 = hand_over(&store, account, "b").await;
    assert_eq!(
        store.rescue_withdrawals(account, Some(e2)).await.unwrap(),
        2
    );
    assert_eq!(
        store.rescue_withdrawals(account, Some(e2)).await.unwrap(),
        0
    );
    let (r1, r2) = (
        store.withdrawal(w1.id).await.unwrap().unwrap(),
        store.withdrawal(w2.id).await.unwrap().unwrap(),
    );
    assert_eq!((r1.state, r1.worker), (Requested, None), "nothing was sent");
    assert_eq!(
        r2.state, Unknown,
        "the send is resolved by looking at Telegram"
    );
    assert!(
        r1.reason
            .as_deref()
            .unwrap_or("")
            .contains("lost the deposit account's lease"),
        "{:?}",
        r1.reason
    );
    // b claims the request that went back to the queue first (the oldest).
    let next = store
        .claim_withdrawal(account, "b-worker", LEASE, Some(e2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((next.id, next.state), (w1.id, Claimed));
}

async fn concurrent_takers_only_one_wins(backend: Backend) {
    let name = fresh_name();
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(backend.open().await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(stores.len()));
    let mut tasks = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        let (name, barrier) = (name.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let holder = format!("taker-{i}");
            (
                holder.clone(),
                store.take_lease(&name, &holder, TTL).await.unwrap(),
            )
        }));
    }
    let mut winners = Vec::new();
    let mut seen_holders = Vec::new();
    for t in tasks {
        let (holder, answer) = t.await.unwrap();
        match answer {
            LeaseAnswer::Held(l) => {
                assert_eq!((l.holder.as_str(), l.epoch), (holder.as_str(), 1));
                winners.push(holder);
            }
            LeaseAnswer::Refused(Some(l)) => seen_holders.push((l.holder, l.epoch)),
            LeaseAnswer::Refused(None) => panic!("a take is never refused without a lease"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one taker wins: {winners:?}");
    for (holder, epoch) in seen_holders {
        assert_eq!((holder.as_str(), epoch), (winners[0].as_str(), 1));
    }
}

/// Leases are giftd's alone: neither anon nor a player may read the table or call the lease
/// functions (PostgreSQL only: the embedded store has no API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_players_and_anon_cannot_touch_leases() {
    use crate::support::{env, mint_jwt};
    let store = Backend::supabase().open().await;
    let name = fresh_name();
    let lease = held(store.take_lease(&name, "giftd", TTL).await.unwrap());
    let player = mint_jwt(serde_json::json!({
        "role": "authenticated", "app_metadata": { "telegram_id": "42" }
    }));
    let anon = env("GIFTD_TEST_ANON_KEY");
    let client = reqwest::Client::new();
    let base = env("GIFTD_TEST_REST_URL");
    for bearer in [&anon, &player] {
        let read = client
            .get(format!("{base}/leases"))
            .header("apikey", &anon)
            .bearer_auth(bearer)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = read.status().as_u16();
        let rows: serde_json::Value = read.json().await.unwrap_or(serde_json::Value::Null);
        assert!(
            status >= 400 || rows.as_array().is_some_and(Vec::is_empty),
            "read leases: {status} {rows}"
        );
        for (function, args) in [
            (
                "giftd_take_lease",
                serde_json::json!({ "p_name": name, "p_holder": "thief", "p_ttl_ms": 60_000 }),
            ),
            (
                "giftd_release_lease",
                serde_json::json!({ "p_name": name, "p_holder": "giftd", "p_epoch": lease.epoch }),
            ),
        ] {
            let call = client
                .post(format!("{base}/rpc/{function}"))
                .header("apikey", &anon)
                .bearer_auth(bearer)
                .json(&args)
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .unwrap();
            assert!(
                call.status().as_u16() >= 400,
                "{function}: {}",
                call.status()
            );
        }
    }
    let after = store.lease(&name).await.unwrap().unwrap();
    assert_eq!((after.holder.as_str(), after.epoch), ("giftd", lease.epoch));
    assert!(after.is_live(), "nobody released it");
}

/// On PostgreSQL a fenced write locks the lease row `FOR SHARE` until it commits: a take that
/// starts while an old term's batch is in flight waits for it, so no write of the old term can
/// commit once the new term has begun. (Chaos instance: it locks the ledger table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_take_waits_for_the_old_terms_write_in_flight() {
    use crate::support::{chaos_guard, psql};
    let _serial = chaos_guard().await;
    let backend = Backend::supabase_chaos();
    let Backend::Supabase { pg_url, .. } = &backend else {
        unreachable!()
    };
    let store = backend.open().await;
    let account = unique_id();
    let name = account_lease(account);
    let e1 = held(
        store
            .take_lease(&name, "a", Duration::from_millis(500))
            .await
            .unwrap(),
    )
    .epoch;
    let items = vec![collectible(account, 1, unique_id())];

    let mut locker = psql_session(
        pg_url,
        "begin;\nlock table public.transactions in access exclusive mode;\n",
    );
    let waiting_on_lock = |function: &str| {
        psql(
            pg_url,
            &format!(
                "select count(*) from pg_stat_activity \
                 where wait_event_type = 'Lock' and query like '%{function}%'"
            ),
        ) == "1"
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while psql(
        pg_url,
        "select count(*) from pg_locks l join pg_class c on c.oid = l.relation \
         where c.relname = 'transactions' and l.mode = 'AccessExclusiveLock' and l.granted",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the ledger was never locked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let applying = {
        let store = Arc::clone(&store);
        let batch = deposit(&items, &[(account, e1)]);
        tokio::spawn(async move { store.apply_batch(&batch).await })
    };
    while !waiting_on_lock("giftd_fenced_apply_batch") {
        assert!(
            !applying.is_finished(),
            "the batch finished despite the lock"
        );
        assert!(
            Instant::now() < deadline,
            "the batch never reached the locked ledger"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // a's term expires while its batch is stuck; b comes to take the lease.
    while psql(
        pg_url,
        &format!("select expires_at > now() from public.leases where name = '{name}'"),
    ) == "t"
    {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taking = {
        let store = Arc::clone(&store);
        let name = name.clone();
        tokio::spawn(async move { store.take_lease(&name, "b", TTL).await })
    };
    while !waiting_on_lock("giftd_take_lease") {
        assert!(
            !taking.is_finished(),
            "the take did not wait for the batch in flight"
        );
        assert!(Instant::now() < deadline, "the take never waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The ledger frees up: the old term's batch commits first, then the new term begins.
    let _ = locker.kill();
    let _ = locker.wait();
    assert_eq!(applying.await.unwrap().unwrap().items_new, 1);
    let b = held(taking.await.unwrap().unwrap());
    assert_eq!((b.holder.as_str(), b.epoch), ("b", e1 + 1));
    assert_eq!(store.load_items(account).await.unwrap(), items);
    // From now on the old term writes nothing.
    let late = deposit(&[collectible(account, 2, unique_id())], &[(account, e1)]);
    assert_fenced(
        store.apply_batch(&late).await.unwrap_err(),
        account,
        Some(e1),
        Some(e1 + 1),
    );
}
