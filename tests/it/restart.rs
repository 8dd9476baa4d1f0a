//! `giftd run` restarted at once after `kill -9` (what systemd's `Restart=` does): the new
//! process is the same instance (its identity is kept in the state directory), takes over its
//! own leases at once with a new epoch, and reports ready only once every gift sent while it
//! was down is in the store. A second live process claiming the same identity is refused, and
//! a standby instance is not ready while the holder of its account stops renewing.

use std::time::{Duration, Instant};

use giftd::store::account_lease;

use crate::support::{Backend, World, http_get_lenient};

/// Leases that would keep a dead process's accounts for a minute: a restart that waited for
/// them to run out could not be ready within the 30 s these tests allow.
const LONG_LEASE: &str = "[lease]\nttl = \"60s\"\nrenew_every = \"500ms\"\n";

async fn kill_9_then_restart_is_ready_only_with_every_gift_stored(backend: Backend) {
    let mut w = World::new(backend, 3).await;
    let supabase = matches!(w.backend, Backend::Supabase { .. });
    w.extra_sections = LONG_LEASE.to_owned();
    w.provision_session().await;
    let mut first = w.spawn(0);
    first.first_ready(Duration::from_secs(60)).await;
    let p0 = w.player(0);
    w.send(p0, false);
    w.assert_exactly_once(Duration::from_secs(20)).await;
    let store = w.store().await;
    let term = |store: &std::sync::Arc<dyn giftd::store::Store>, id| {
        let store = std::sync::Arc::clone(store);
        async move {
            store
                .lease(&account_lease(id))
                .await
                .expect("lease readable")
        }
    };
    let before = term(&store, w.deposit.id).await;
    assert_eq!(
        before.is_some(),
        supabase,
        "leases only on the shared store"
    );

    first.kill9();
    for i in 0..30 {
        let from = w.player(i % 3);
        w.send(from, i % 2 == 0);
    }
    let second = w.spawn(1);
    let body = second.first_ready(Duration::from_secs(30)).await;
    // The first moment it says ready, every gift sent while it was down is in the store.
    w.assert_exactly_once(Duration::ZERO).await;
    assert!(body.contains(": serving"), "{body}");
    if let Some(before) = before {
        let after = term(&store, w.deposit.id)
            .await
            .expect("the lease is still there");
        assert_eq!(
            after.epoch,
            before.epoch + 1,
            "a new term, so the dead process's writes are fenced: {before:?} -> {after:?}"
        );
        let identity = |h: &str| h.split('/').next().unwrap().to_owned();
        assert_eq!(identity(&after.holder), identity(&before.holder));
        assert_ne!(
            after.holder, before.holder,
            "each process its own holder name"
        );
        assert!(
            second
                .log_text()
                .contains("ended the term of this instance's dead predecessor"),
            "{}",
            second.log_text()
        );
    }
    let status = second.terminate().await;
    assert!(status.success(), "{status}");
    w.assert_one_deposit_entry_each().await;
}

/// A second process with the same state directory (so the same instance identity) while the
/// first is alive and renewing: refused with a clear error; the first keeps serving, in the
/// same term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_twin_is_refused_and_the_first_keeps_serving() {
    let mut w = World::new(Backend::supabase(), 1).await;
    w.extra_sections = LONG_LEASE.to_owned();
    w.provision_session().await;
    let first = w.spawn(0);
    first.first_ready(Duration::from_secs(60)).await;
    let store = w.store().await;
    let lease = account_lease(w.deposit.id);
    let held = store.lease(&lease).await.unwrap().expect("taken");

    let mut twin = w.spawn(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = twin.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the twin still runs: {}",
            twin.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "refused: {status}");
    let log = twin.log_text();
    assert!(
        log.contains("another live giftd process claims instance identity"),
        "{log}"
    );
    let now = store.lease(&lease).await.unwrap().expect("taken");
    assert_eq!(
        (&now.holder, now.epoch),
        (&held.holder, held.epoch),
        "the first process's term goes on"
    );
    let (code, body) = http_get_lenient(first.port, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(": serving"), "{body}");
    let p0 = w.player(0);
    w.send(p0, false);
    w.assert_exactly_once(Duration::from_secs(20)).await;
    let status = first.terminate().await;
    assert!(status.success(), "{status}");
}

/// A standby instance is ready while the holder renews the account's lease, and not ready
/// (naming the holder and since when) once the holder is silent past its renewal period, until
/// it takes the account over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_is_not_ready_while_the_holder_is_silent() {
    let mut w = World::new(Backend::supabase(), 1).await;
    w.extra_sections = "[lease]\nttl = \"8s\"\nrenew_every = \"500ms\"\n".to_owned();
    w.provision_session().await;
    let holder = w.spawn_as(0, Some("holder-a"));
    holder.first_ready(Duration::from_secs(60)).await;
    let standby = w.spawn_as(1, Some("standby-b"));
    let body = standby.first_ready(Duration::from_secs(60)).await;
    assert!(
        body.contains("standby (another instance serves it; healthy)"),
        "{body}"
    );

    holder.signal("-STOP");
    let (_, silent) = standby
        .readyz_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            "still ready with a stopped holder",
            |code, _| code == 503,
        )
        .await;
    assert!(
        silent.contains("standby, but its holder holder-a/")
            && silent.contains("has not renewed the lease since unix"),
        "{silent}"
    );
    // Once the lease runs out the standby takes the account over and is ready again.
    standby
        .readyz_until(
            Duration::from_secs(30),
            Duration::from_millis(50),
            "no take-over",
            |code, body| code == 200 && body.contains(": serving"),
        )
        .await;
    let p0 = w.player(0);
    w.send(p0, false);
    w.assert_exactly_once(Duration::from_secs(20)).await;
    holder.signal("-CONT");
    drop(holder);
    let status = standby.terminate().await;
    assert!(status.success(), "{status}");
}

/// The store side of telling a dead predecessor from a live twin, on both stores: a holder of
/// the same identity on another host is watched for one renewal period; silent, its term is
/// ended (the next take starts a new epoch); renewing, the start is refused.
async fn a_predecessor_elsewhere_is_watched_for_one_renewal_period(backend: Backend) {
    use giftd::lease::{LeaseTimes, take_over_predecessor};
    let store = backend.open().await;
    let times = LeaseTimes::new(Duration::from_secs(6), Duration::from_millis(300)).unwrap();
    let name = format!("restart-test:{}", crate::support::unique_id());
    let me = giftd::lease::holder_for("edge-7");
    let dead = "edge-7/another-host:4242:0000beef";
    let first = store.take_lease(&name, dead, times.ttl).await.unwrap();
    let epoch = first.held().expect("taken").epoch;
    // Another identity's term is left alone.
    assert_eq!(
        take_over_predecessor(store.as_ref(), &name, "edge-8", "edge-8/h:1:1", times).await,
        Ok(None)
    );
    // Silent for a renewal period: its term ends, and this process takes a new one.
    let ended = take_over_predecessor(store.as_ref(), &name, "edge-7", &me, times).await;
    assert_eq!(ended, Ok(Some(dead.to_owned())));
    let taken = store.take_lease(&name, &me, times.ttl).await.unwrap();
    assert_eq!(taken.held().expect("taken at once").epoch, epoch + 1);

    // A twin elsewhere that renews is not displaced: this start is refused.
    let twin = "edge-7/third-host:77:0000cafe";
    store.release_lease(&name, &me, epoch + 1).await.unwrap();
    let held = store.take_lease(&name, twin, times.ttl).await.unwrap();
    let twin_epoch = held.held().expect("taken").epoch;
    let renewer = {
        let store = std::sync::Arc::clone(&store);
        let name = name.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(times.renew_every).await;
                let _ = store.renew_lease(&name, twin, twin_epoch, times.ttl).await;
            }
        })
    };
    let refused = take_over_predecessor(store.as_ref(), &name, "edge-7", &me, times).await;
    renewer.abort();
    let err = refused.expect_err("a live twin");
    assert_eq!(
        (err.identity.as_str(), err.holder.as_str()),
        ("edge-7", twin)
    );
    assert!(
        err.to_string()
            .contains("another live giftd process claims instance identity")
    );
    let now = store.lease(&name).await.unwrap().unwrap();
    assert_eq!((now.holder.as_str(), now.epoch), (twin, twin_epoch));
}

contract!(
    kill_9_then_restart_is_ready_only_with_every_gift_stored,
    a_predecessor_elsewhere_is_watched_for_one_renewal_period
);
