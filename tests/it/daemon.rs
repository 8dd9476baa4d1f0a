//! The daemon end to end: tgsim (real MTProto, the real grammers client inside giftd), the real
//! stores (SQLite file; PostgreSQL behind the PostgREST-compatible server), and giftd's own
//! `Daemon` or its binary. After every scenario the store must hold every gift credited to its
//! sender exactly once and nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::app::{Daemon, Notice, Path};
use giftd::gift::{ItemKey, LedgerKind, Owner, Status};
use tgsim::{Fault, SendGift};
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, World};

async fn odd_cases(backend: Backend) {
    let mut w = World::new(backend, 3).await;
    // Before giftd starts: gifts that arrive while it is down are credited at start.
    let early = w.send(w.player(0), false);
    let hidden_early = w.send(w.player(1), true);
    let nameless_early = w.send_nameless();
    let running = w.start().await;

    // A regular gift, one with "hide my name", a collectible, one Telegram names no sender of.
    w.send(w.player(0), false);
    let hidden = w.send(w.player(2), true);
    let unique = w.send_unique(w.player(1));
    let nameless = w.send_nameless();
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let mut waiting: Vec<i32> = running
        .daemon
        .inventory()
        .unattributed()
        .iter()
        .map(|i| i.key.msg_id)
        .collect();
    waiting.sort_unstable();
    assert_eq!(
        waiting,
        [nameless_early, nameless],
        "only the gifts whose sender Telegram does not name wait unattributed (hidden names: \
         {hidden_early}, {hidden})"
    );

    // Upgrading a regular gift carries its owner to the collectible.
    let upgraded = w.sim.upgrade_gift(w.deposit.id, early).expect("upgrade");
    w.expected.remove(&early);
    w.expected.insert(upgraded.msg_id, Some(w.player(0)));
    // Converted and refunded gifts end with the right ledger entry.
    let to_convert = w.send(w.player(2), false);
    let to_refund = w.send(w.player(2), false);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    w.sim
        .convert_gift(w.deposit.id, to_convert)
        .expect("convert");
    w.sim.refund_gift(w.deposit.id, to_refund).expect("refund");
    w.expected.remove(&to_convert);
    w.expected.remove(&to_refund);

    // A collectible that leaves and is deposited again by someone else is a new item.
    let out = w
        .sim
        .transfer_gift(w.deposit.id, unique.msg_id, w.player(2))
        .expect("transfer out");
    w.expected.remove(&unique.msg_id);
    let back = w
        .sim
        .transfer_gift(w.player(2), out.msg_id, w.deposit.id)
        .expect("transfer back");
    w.expected.insert(back.msg_id, Some(w.player(2)));

    // A gift the deposit account sends itself is not a deposit.
    w.sim
        .send_gift(SendGift {
            from: w.deposit.id,
            to: w.deposit.id,
            gift_id: w.regular_gift(),
            hide_name: false,
            message: None,
        })
        .expect("self gift");

    // A reconciliation reads the fates of what left (the collectible triggers one).
    let store = w.store().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let fate = |key| {
        let store = Arc::clone(&store);
        async move {
            store
                .item_history(key)
                .await
                .unwrap()
                .iter()
                .map(|e| e.kind)
                .collect::<Vec<_>>()
        }
    };
    let key = |m| ItemKey::new(w.deposit.id, m);
    loop {
        let conv = fate(key(to_convert)).await;
        let refd = fate(key(to_refund)).await;
        let upg = fate(key(early)).await;
        let gone = fate(key(unique.msg_id)).await;
        if conv.contains(&LedgerKind::Converted)
            && refd.contains(&LedgerKind::Refunded)
            && upg.contains(&LedgerKind::Upgraded)
            && gone.contains(&LedgerKind::Gone)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fates not recorded: converted {conv:?}, refunded {refd:?}, upgraded {upg:?}, \
             transferred out {gone:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.assert_exactly_once(Duration::from_secs(15)).await;
    w.assert_one_deposit_entry_each().await;
    let inv = running.daemon.inventory();
    assert_eq!(
        inv.get(key(upgraded.msg_id)).map(|i| i.owner),
        Some(Owner::User(w.player(0)))
    );
    assert!(
        inv.get(key(to_convert))
            .is_none_or(|i| i.status == Status::Converted),
        "a converted gift no longer counts"
    );
    running.stop().await;
}

on_both_stores!(odd_cases => odd_cases_embedded, odd_cases_supabase);

/// Telegram puts no `from_id` on incoming private messages: the update path names the sender
/// from the peer of the private chat, and a "hide my name" gift is still credited to its sender.
/// Each gift, plain and hidden, is credited to its sender whichever path sees it first.
async fn senders_credited_on_both_paths(backend: Backend) {
    let mut w = World::new(backend, 2).await;
    let running = w.start().await;
    let mut notices = running.daemon.subscribe();
    let seen = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let collector = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                match notices.recv().await {
                    Ok(Notice::Credited {
                        key, owner, path, ..
                    }) => {
                        seen.lock().unwrap().insert(key.msg_id, (owner, path));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        panic!("the test lagged {n} notices behind")
                    }
                    Err(_) => return,
                }
            }
        })
    };
    let (alice, bob) = (w.player(0), w.player(1));

    // Only the update path can see them: every getSavedStarGifts fails meanwhile, so the poll
    // (every second here) cannot get there first however the machine schedules it.
    w.sim.inject(Fault::RpcError {
        method: "payments.getSavedStarGifts".into(),
        code: 500,
        message: "INTERNAL".into(),
        count: u32::MAX,
    });
    let by_update = [w.send(alice, false), w.send(bob, true)];
    w.assert_exactly_once(Duration::from_secs(15)).await;
    w.sim.clear_faults();
    // Only the poll can see them: Telegram withholds the updates and getDifference says nothing.
    w.sim.inject(Fault::WithholdUpdates {
        honest_difference: false,
    });
    let by_poll = [w.send(alice, true), w.send(bob, false)];
    w.assert_exactly_once(Duration::from_secs(15)).await;
    w.assert_one_deposit_entry_each().await;

    let seen = seen.lock().unwrap().clone();
    let expect = |msg: i32, owner: i64, path: Path| {
        assert_eq!(
            seen.get(&msg).copied(),
            Some((Owner::User(owner), path)),
            "msg {msg}: {seen:?}"
        );
    };
    expect(by_update[0], alice, Path::Update);
    expect(by_update[1], bob, Path::Update);
    expect(by_poll[0], alice, Path::Poll);
    expect(by_poll[1], bob, Path::Poll);
    assert!(running.daemon.inventory().unattributed().is_empty());
    collector.abort();
    running.stop().await;
}

on_both_stores!(
    senders_credited_on_both_paths =>
        senders_credited_on_both_paths_embedded,
        senders_credited_on_both_paths_supabase
);

/// Defence in depth: an item recorded with no sender (as a giftd that read only `from_id` did
/// with every gift its update path saw first) is credited to the sender the reconciliation at
/// start reads, once, with an `attributed` ledger entry; a collectible whose sender Telegram
/// does not name stays unattributed.
async fn unattributed_records_are_credited_when_telegram_names_the_sender(backend: Backend) {
    let mut w = World::new(backend, 1).await;
    let alice = w.player(0);
    let plain = w.send(alice, false);
    let hidden = w.send(alice, true);
    let nameless = w.send_nameless();
    // What an older giftd left in the store: every one of them credited to nobody.
    let store = w.store().await;
    let listed = w.sim.saved_gifts(w.deposit.id).expect("saved gifts");
    let items: Vec<giftd::gift::Item> = listed
        .iter()
        .map(|g| giftd::gift::Item {
            key: ItemKey::new(w.deposit.id, g.msg_id),
            owner: Owner::Unattributed,
            gift_id: g.gift_id,
            stars: 0,
            unique: g.unique.as_ref().map(|u| {
                Box::new(giftd::gift::UniqueInfo {
                    collectible_id: u.id,
                    slug: u.slug.clone(),
                    number: u.num,
                    value: Default::default(),
                })
            }),
            status: Status::Held,
            received_at: i64::from(g.date),
            convert_stars: None,
            transfer_stars: None,
            can_transfer_at: None,
            upgraded_from: None,
        })
        .collect();
    assert_eq!(items.len(), 3);
    store
        .apply_batch(&giftd::store::ChangeBatch {
            items,
            ..Default::default()
        })
        .await
        .expect("older records written");

    let running = w.start().await;
    w.assert_exactly_once(Duration::from_secs(15)).await;
    for msg in [plain, hidden] {
        let kinds: Vec<LedgerKind> = store
            .item_history(ItemKey::new(w.deposit.id, msg))
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [LedgerKind::Deposit, LedgerKind::Attributed],
            "msg {msg}"
        );
    }
    let waiting: Vec<i32> = running
        .daemon
        .inventory()
        .unattributed()
        .iter()
        .map(|i| i.key.msg_id)
        .collect();
    assert_eq!(waiting, [nameless]);
    let m = &running.daemon.health().metrics;
    assert_eq!(m.attributions.load(std::sync::atomic::Ordering::Relaxed), 2);
    running.stop().await;

    // A restart finds nothing more to attribute.
    let running = w.start().await;
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let m = &running.daemon.health().metrics;
    assert_eq!(m.attributions.load(std::sync::atomic::Ordering::Relaxed), 0);
    running.stop().await;
}

on_both_stores!(
    unattributed_records_are_credited_when_telegram_names_the_sender =>
        unattributed_records_are_credited_when_telegram_names_the_sender_embedded,
        unattributed_records_are_credited_when_telegram_names_the_sender_supabase
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_1000_with_updates() {
    let mut w = World::new(Backend::supabase(), 8).await;
    let running = w.start().await;
    w.burst(1000);
    w.assert_exactly_once(Duration::from_secs(60)).await;
    let m = &running.daemon.health().metrics;
    let by_update = m.deposits_update.load(std::sync::atomic::Ordering::Relaxed);
    assert!(by_update > 0, "updates delivered gifts (got {by_update})");
    running.stop().await;
    w.assert_one_deposit_entry_each().await;
}

/// grammers-mtsender 0.11 drops updates when its channel is full and says so at most once per
/// cooldown. giftd's own buffer counts every drop; a flood far larger than the buffer still ends
/// with every gift credited once (getDifference and polling are the net).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_flood_larger_than_the_buffer_is_counted_and_loses_nothing() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut w = World::new(Backend::sqlite(), 8).await;
    w.extra_config = "update_buffer = 16\n".into();
    let running = w.start().await;
    w.burst(1500);
    w.assert_exactly_once(Duration::from_secs(60)).await;
    w.assert_one_deposit_entry_each().await;
    let health = running.daemon.health();
    let m = &health.metrics;
    let (received, dropped) = (
        m.updates_received.load(Relaxed),
        m.updates_dropped.load(Relaxed),
    );
    assert!(
        dropped > 0,
        "a 1,500-gift flood into a 16-update buffer drops some (received {received})"
    );
    assert!(
        received >= dropped,
        "received {received}, dropped {dropped}"
    );
    eprintln!("updates received {received}, dropped {dropped}");
    let text = health.render_metrics();
    let exposed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("giftd_updates_dropped_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no giftd_updates_dropped_total in /metrics:\n{text}"));
    assert!(
        exposed >= dropped,
        "/metrics shows {exposed}, counted {dropped}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_1000_polling_only() {
    let mut w = World::new(Backend::sqlite(), 8).await;
    let running = w.start().await;
    w.sim.inject(Fault::WithholdUpdates {
        honest_difference: false,
    });
    w.burst(1000);
    w.assert_exactly_once(Duration::from_secs(60)).await;
    let m = &running.daemon.health().metrics;
    assert_eq!(
        m.deposits_update.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no update reached giftd: polling found every gift"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_wait_during_polling() {
    let mut w = World::new(Backend::sqlite(), 4).await;
    let running = w.start().await;
    w.sim.inject(Fault::WithholdUpdates {
        honest_difference: false,
    });
    w.sim.inject(Fault::FloodWait {
        method: "payments.getSavedStarGifts".into(),
        seconds: 2,
        count: 2,
    });
    w.burst(100);
    w.assert_exactly_once(Duration::from_secs(30)).await;
    let stats = running
        .daemon
        .health()
        .metrics
        .polls
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(stats > 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_mid_burst() {
    let mut w = World::new(Backend::sqlite(), 4).await;
    let running = w.start().await;
    for round in 0..10 {
        w.burst(50);
        if round == 4 {
            w.sim.drop_connections();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    w.assert_exactly_once(Duration::from_secs(40)).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_store_unavailable_mid_burst() {
    let _guard = crate::support::chaos_guard();
    let backend = Backend::supabase_chaos();
    let Backend::Supabase { pg_ctl, .. } = &backend else {
        unreachable!()
    };
    let pg_ctl = pg_ctl.clone().expect("chaos instance has a pg_ctl");
    let ctl = |arg: &str| {
        let status = std::process::Command::new(&pg_ctl)
            .arg(arg)
            .status()
            .unwrap();
        assert!(status.success(), "{pg_ctl} {arg} failed");
    };
    let mut w = World::new(backend, 4).await;
    let running = w.start().await;
    w.burst(200);
    ctl("stop");
    w.burst(300);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let backlog = running
        .daemon
        .health()
        .metrics
        .mirror_backlog
        .load(std::sync::atomic::Ordering::Relaxed);
    ctl("start");
    w.burst(200);
    w.assert_exactly_once(Duration::from_secs(60)).await;
    assert!(
        backlog > 0,
        "changes waited in the queue while the store was down"
    );
    assert!(
        running
            .daemon
            .health()
            .metrics
            .mirror_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the store outage was noticed"
    );
    running.stop().await;
    w.assert_one_deposit_entry_each().await;
}

/// The binary, killed with SIGKILL in the middle of a burst, then started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_burst_and_restarted() {
    let mut w = World::new(Backend::supabase(), 4).await;
    w.provision_session().await;
    let config = w.write_config();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_giftd"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("giftd binary starts")
    };
    let mut child = spawn();
    // Wait until it has credited part of a first burst, then kill it mid-way.
    w.burst(300);
    let store = w.store().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = store.load_items(w.deposit.id).await.unwrap().len();
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "giftd credited nothing in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.burst(300);
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    // Gifts that arrive while it is down are credited at the next start.
    w.burst(200);
    let mut child = spawn();
    w.assert_exactly_once(Duration::from_secs(60)).await;
    w.assert_one_deposit_entry_each().await;
    // SIGTERM: a clean exit.
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "giftd exits 0 on SIGTERM, got {exit}");
}

/// grammers 0.11 resends forever when the host clock is far ahead of Telegram's; giftd must
/// notice, say so, and stop instead of spinning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_clock_ahead_is_reported_not_spun_on() {
    crate::support::init_tracing();
    let w = World::new(Backend::sqlite(), 1).await;
    w.provision_session().await;
    // The simulator's clock 10 minutes behind: the client's is 10 minutes ahead.
    w.sim.set_clock_skew(-600);
    let daemon = Daemon::new();
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        daemon.run(&w.config(), CancellationToken::new()),
    )
    .await
    .expect("giftd gives up on a clock storm instead of spinning for ever");
    let err = result.expect_err("a clock far ahead is an error");
    let text = err.to_string();
    assert!(text.contains("clock"), "says the clock is off: {text}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        w.sim.stats().bad_msg_17 > 0,
        "the simulator did reject msg ids as too high"
    );
    // What was already in flight when giftd gave up is still read by the simulator (slowly on
    // a loaded machine); once giftd's connections are closed nothing more can come, unless it
    // reconnects and goes on.
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.sim.stats().connections_open > 0 {
        assert!(
            Instant::now() < deadline,
            "giftd's connections are still open 10 s after it gave up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rejected = w.sim.stats().bad_msg_17;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = w.sim.stats();
    assert_eq!(
        (after.bad_msg_17, after.connections_open),
        (rejected, 0),
        "after giving up giftd sends nothing more and does not reconnect: no spinning"
    );
}

/// A FLOOD_WAIT longer than `flood_wait_max` is not slept through, and the method is not
/// called again before Telegram allows it: polling waits instead of hammering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_flood_wait_is_never_hammered() {
    let mut w = World::new(Backend::sqlite(), 2).await;
    w.extra_config = "flood_wait_max = \"1s\"\n".into();
    let running = w.start().await;
    w.sim.inject(Fault::WithholdUpdates {
        honest_difference: false,
    });
    let calls = |w: &World| w.calls("payments.getSavedStarGifts");
    let before = calls(&w);
    // Every call in the next 100 would be told to wait 4 s: a poller that ignored it would
    // call about once a second.
    w.sim.inject(Fault::FloodWait {
        method: "payments.getSavedStarGifts".into(),
        seconds: 4,
        count: 100,
    });
    let injected = Instant::now();
    w.burst(20);
    // Read /metrics as soon as the method is closed (the closure is a gauge of what is closed
    // now: read late on a loaded machine, it has already reopened).
    let text = loop {
        let text = running.daemon.health().render_metrics();
        if text.contains("giftd_telegram_flood_closures_total 1\n") {
            break text;
        }
        assert!(
            injected.elapsed() < Duration::from_secs(5),
            "no FLOOD_WAIT closure counted within 5 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for line in [
        "giftd_telegram_methods_closed 1\n",
        "giftd_telegram_method_closed_until_timestamp_seconds{method=\"payments.getSavedStarGifts\"} ",
    ] {
        assert!(text.contains(line), "/metrics lacks {line:?}:\n{text}");
    }
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(injected.elapsed())).await;
    let during = calls(&w) - before;
    assert!(
        during <= 2,
        "{during} calls while Telegram asked to wait 4 s (one poll may have been under way)"
    );
    w.sim.clear_faults();
    w.assert_exactly_once(Duration::from_secs(15)).await;
    running.stop().await;
}

/// The alerting rules (ops/prometheus/giftd-rules.yml) name only metrics a running daemon
/// exposes on its health port, and its latency histograms carry the deposit account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_name_only_metrics_the_daemon_exposes() {
    let mut w = World::new(Backend::sqlite(), 2).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w.health_listen = format!("127.0.0.1:{port}");
    let running = w.start().await;
    let p0 = w.player(0);
    w.send(p0, false);
    w.assert_exactly_once(Duration::from_secs(15)).await;
    let get = async || {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("the health port answers");
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    // The row is readable in the store a moment before the mirror records the commit, and the
    // withdrawal worker reads the Stars balance once it starts: scrape until both show (a
    // loaded machine takes longer), at most 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let commit_line = format!(
        "giftd_mirror_commit_seconds_count{{account=\"{}\"}} 1",
        w.deposit.id
    );
    let scrape = loop {
        let scrape = get().await;
        let settled = scrape.contains(&commit_line) && scrape.contains("giftd_stars_balance{");
        if settled || Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    running.stop().await;
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    use std::collections::BTreeSet;
    // Names with samples, and names declared (`# TYPE`), which a family without series is.
    let sampled: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("giftd_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let declared: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    let rules_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/ops/prometheus/giftd-rules.yml"
    );
    let rules = std::fs::read_to_string(rules_path).expect("the rules file exists");
    fn names(line: &str) -> impl Iterator<Item = &str> {
        line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("giftd_") && t.len() > "giftd_".len())
    }
    // An expression needs series to alert on; an annotation only needs the name to exist.
    let (mut in_exprs, mut in_text) = (BTreeSet::new(), BTreeSet::new());
    for line in rules.lines().map(str::trim_start) {
        if line.starts_with('#') {
            continue;
        }
        let target = if line.starts_with("expr:") {
            &mut in_exprs
        } else {
            &mut in_text
        };
        target.extend(names(line));
    }
    assert!(
        in_exprs.len() >= 9,
        "the rules use giftd's metrics: {in_exprs:?}"
    );
    let no_series: Vec<_> = in_exprs.difference(&sampled).collect();
    assert!(
        no_series.is_empty(),
        "{rules_path}: expressions use metrics /metrics has no series of: {no_series:?}\n{scrape}"
    );
    let unknown: Vec<_> = in_text
        .iter()
        .filter(|n| !sampled.contains(*n) && !declared.contains(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "{rules_path}: annotations name metrics /metrics does not declare: {unknown:?}\n{scrape}"
    );
    // One gift: one detection (on whichever path credited it) and one committed deposit.
    let account = w.deposit.id;
    let count = |prefix: String| -> u64 {
        scrape
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let detected = count(format!(
        "giftd_detection_seconds_count{{account=\"{account}\","
    ));
    let committed = count(format!(
        "giftd_mirror_commit_seconds_count{{account=\"{account}\"}}"
    ));
    assert_eq!((detected, committed), (1, 1), "{scrape}");
}

/// `giftd demo`, the README's first command: the real daemon against an in-process tgsim.
#[test]
fn demo_runs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_giftd"))
        .args(["demo", "--burst", "60", "--state-dir"])
        .arg(dir.path())
        .output()
        .expect("giftd demo starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stdout}\n{stderr}");
    for expected in [
        "credited gift msg 1 to @alice",
        "credited collectible msg 2 to @bob",
        "credited gift msg 3 to @carol",
        "to unattributed (Telegram names no sender)",
        "all 60 credited",
        "final inventory",
        "the companion bot: @bob types /inventory",
        "| Your gifts: 21 worth",
        "@bob presses [Withdraw 1]",
        "@bob presses [✅ Confirm]",
        "queued: ",
        "has been sent to you.",
        "@bob's own Telegram account now holds 1 gift(s); giftd holds 20 for @bob",
        "giftd stopped cleanly",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    // The burst is round-robin: 20 each; alice also sent a gift, bob a collectible, carol a
    // gift with "hide my name" (credited to her all the same); Telegram delivered a collectible
    // with no sender (it waits unattributed).
    let gifts_of = |who: &str| -> u32 {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(who))
            .unwrap_or_else(|| panic!("no line for {who} in:\n{stdout}"));
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    assert_eq!(gifts_of("@alice"), 21);
    assert_eq!(gifts_of("@bob"), 21);
    assert_eq!(gifts_of("@carol"), 21);
    assert_eq!(gifts_of("unattributed"), 1);
}
