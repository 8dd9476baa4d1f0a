//! The lease keeper against the real stores (SQLite, and PostgreSQL behind postrust): it takes
//! and renews, hands over at once when released, and steps down by its own clock when the
//! store stops answering, before the database could give the lease to anyone else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::lease::{Epochs, Fence, Keeper, LeaseHandle, LeaseState, LeaseTimes};
use giftd::store::{Store, account_lease};
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, psql_session, unique_id};

contract!(
    a_keeper_holds_renews_and_hands_over_on_release,
    a_keeper_the_store_stops_answering_steps_down_by_its_own_clock,
);

/// Short enough for a test, long enough for a loaded machine: held 2.5 s after each renewal's
/// start, renewed every second.
fn times() -> LeaseTimes {
    LeaseTimes {
        ttl: Duration::from_secs(4),
        renew_every: Duration::from_secs(1),
        take_every: Duration::from_millis(200),
        margin: Duration::from_millis(1500),
    }
    .validated()
    .unwrap()
}

async fn wait_for(
    handle: &LeaseHandle,
    what: &str,
    within: Duration,
    want: impl Fn(LeaseState) -> bool,
) -> LeaseState {
    let mut watch = handle.watch();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let state = *watch.borrow_and_update();
        if want(state) {
            return state;
        }
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            panic!("{what}: still {state:?} after {within:?}");
        }
    }
}

fn keeper(store: Arc<dyn Store>, account: i64, holder: &str, epochs: &Epochs) -> LeaseHandle {
    Keeper::for_account(store, account, holder, times(), epochs).spawn(CancellationToken::new())
}

async fn a_keeper_holds_renews_and_hands_over_on_release(backend: Backend) {
    let account = unique_id();
    let (epochs_a, epochs_b) = (Epochs::leased(), Epochs::leased());
    let a = keeper(backend.open().await, account, "a", &epochs_a);
    let LeaseState::Held { epoch } = wait_for(&a, "a takes", Duration::from_secs(10), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(epochs_a.fence(account), Fence::Epoch(epoch));
    let b = keeper(backend.open().await, account, "b", &epochs_b);

    // Past the TTL several times over, a keeps its term by renewing it; b waits.
    let reader = backend.open().await;
    let first = reader
        .lease(&account_lease(account))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(times().ttl * 2).await;
    let later = reader
        .lease(&account_lease(account))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((later.holder.as_str(), later.epoch), ("a", epoch));
    assert!(later.expires_at_ms > first.expires_at_ms, "renewed");
    assert!(later.is_live());
    assert_eq!(a.state(), LeaseState::Held { epoch });
    assert_eq!(b.state(), LeaseState::Standby);
    assert_eq!(epochs_b.fence(account), Fence::NotHeld);

    // Released: a stops at once, b takes a new term without waiting for the TTL.
    let released_at = Instant::now();
    assert!(a.release().await.unwrap());
    assert_eq!(epochs_a.fence(account), Fence::NotHeld);
    let state = wait_for(&b, "b takes over", Duration::from_secs(10), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await;
    assert_eq!(state, LeaseState::Held { epoch: epoch + 1 });
    assert!(
        released_at.elapsed() < times().ttl,
        "hand-over took {:?}, not the TTL",
        released_at.elapsed()
    );
    assert_eq!(epochs_b.fence(account), Fence::Epoch(epoch + 1));
    assert!(b.release().await.unwrap());
}

/// Holds the store's lock on one lease so calls on it wait, as a database that stopped
/// answering does.
enum Blocker {
    Sqlite(libsql::Connection, libsql::Database),
    Postgres(std::process::Child),
}

async fn block(backend: &Backend, account: i64) -> Blocker {
    match backend {
        Backend::Sqlite { .. } => {
            let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
                .build()
                .await
                .unwrap();
            let conn = db.connect().unwrap();
            conn.execute("BEGIN IMMEDIATE", ()).await.unwrap();
            Blocker::Sqlite(conn, db)
        }
        Backend::Supabase { pg_url, .. } => {
            let session = psql_session(
                pg_url,
                &format!(
                    "begin;\nselect 1 from public.leases where name = '{}' for update;\n",
                    account_lease(account)
                ),
            );
            let waiting = format!(
                "select count(*) from pg_stat_activity where state = 'idle in transaction' \
                 and query like '%{}%for update%'",
                account_lease(account)
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while crate::support::psql(pg_url, &waiting) == "0" {
                assert!(
                    Instant::now() < deadline,
                    "the blocker never locked the lease"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Blocker::Postgres(session)
        }
    }
}

async fn unblock(blocker: Blocker) {
    match blocker {
        Blocker::Sqlite(conn, _db) => {
            conn.execute("ROLLBACK", ()).await.unwrap();
        }
        Blocker::Postgres(mut session) => {
            let _ = session.kill();
            let _ = session.wait();
        }
    }
}

async fn a_keeper_the_store_stops_answering_steps_down_by_its_own_clock(backend: Backend) {
    let account = unique_id();
    let epochs = Epochs::leased();
    let a = keeper(backend.open().await, account, "a", &epochs);
    let LeaseState::Held { epoch } = wait_for(&a, "a takes", Duration::from_secs(10), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await
    else {
        unreachable!()
    };
    // Open the reader first: opening the embedded file needs a write of its own.
    let reader = backend.open().await;
    let blocker = block(&backend, account).await;
    let lost = wait_for(&a, "a steps down", Duration::from_secs(15), |s| {
        !matches!(s, LeaseState::Held { .. })
    })
    .await;
    assert_eq!(lost, LeaseState::Lost { epoch });
    assert_eq!(
        epochs.fence(account),
        Fence::NotHeld,
        "writers stop at once"
    );
    // It stepped down while the database still counts the term as a's: nobody else could have
    // taken the lease yet.
    let lease = reader
        .lease(&account_lease(account))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lease.holder.as_str(), lease.epoch), ("a", epoch));
    assert!(
        lease.is_live(),
        "stepped down {:?} before the database's expiry",
        Duration::from_millis(lease.expires_at_ms.saturating_sub(lease.db_now_ms).max(0) as u64)
    );

    // The store answers again: a takes the lease back (the same term if nobody took it).
    unblock(blocker).await;
    let back = wait_for(&a, "a takes it back", Duration::from_secs(20), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await;
    let again = back.epoch().unwrap();
    assert!(again == epoch || again == epoch + 1, "{back:?}");
    assert_eq!(epochs.fence(account), Fence::Epoch(again));
    assert!(a.release().await.unwrap());
}
