//! Soak: giftd's real `Daemon` against tgsim (real MTProto, the real grammers
//! client) and the embedded SQLite store, for a long time, with a steady trickle of gifts and a
//! store outage every few minutes. It prints, at intervals, what would show a leak: resident
//! memory, open file descriptors, tokio tasks alive; and the gifts sent, credited and committed
//! and the mirror's backlog. At the end: first, last and max of each, and whether every gift
//! sent was credited and committed.
//!
//! ```text
//! cargo bench --bench soak                      # 30 minutes
//! cargo bench --bench soak -- --minutes 5       # shorter
//! ```
//!
//! Flags: `--minutes M` (30), `--rate G` gifts per second (50), `--outage-every S` seconds
//! between outages (120), `--outage-secs S` length of each (15), `--report-every S` (30),
//! `--no-daemon` (tgsim and the trickle alone: tgsim runs in this process and keeps every
//! message it delivers, so its growth is in the RSS too; this run measures it, to subtract).
//!
//! An outage: a second connection to giftd's SQLite file holds `BEGIN IMMEDIATE` (the write
//! lock, as a backup tool or another process would) for `--outage-secs`; giftd's writes wait
//! out their busy timeout (5 s), fail as retryable, and the mirror keeps the batch and retries.
//! It is benchmark code: it asserts nothing, it prints.

#[path = "parts/world.rs"]
mod world;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use giftd::app::{Daemon, Notice};
use giftd::config::Config;
use tgsim::SendGift;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

struct Args {
    minutes: f64,
    rate: u32,
    outage_every: u64,
    outage_secs: u64,
    report_every: u64,
    /// Only tgsim and the trickle, no daemon: the simulator's own growth, to subtract.
    no_daemon: bool,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 30.0,
        rate: 50,
        outage_every: 120,
        outage_secs: 15,
        report_every: 30,
        no_daemon: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || {
            argv.get(i + 1)
                .unwrap_or_else(|| panic!("{} needs a value", argv[i]))
                .clone()
        };
        match argv[i].as_str() {
            "--minutes" => a.minutes = value().parse().expect("--minutes: a number"),
            "--rate" => a.rate = value().parse().expect("--rate: gifts per second"),
            "--outage-every" => a.outage_every = value().parse().expect("--outage-every: seconds"),
            "--outage-secs" => a.outage_secs = value().parse().expect("--outage-secs: seconds"),
            "--report-every" => a.report_every = value().parse().expect("--report-every: seconds"),
            "--no-daemon" => {
                a.no_daemon = true;
                i += 1;
                continue;
            }
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

#[derive(Clone, Copy, Default)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    tasks: u64,
    sent: u64,
    credited: u64,
    committed: u64,
    backlog: u64,
    failures: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn main() {
    let args = args();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    runtime.block_on(soak(args));
}

async fn soak(args: Args) {
    let sim = world::start_sim().await;
    let user = |name: &str| world::user(&sim, name, 1_000_000_000_000);
    let deposit = user("deposit");
    let players: Vec<i64> = (0..20).map(|i| user(&format!("p{i}"))).collect();
    let gift_id = sim.gift_catalogue()[0].id;
    let dir = tempfile::tempdir().expect("temporary directory");
    let session = dir.path().join("deposit.session");
    world::write_session(&sim, deposit, &session).await;
    // Defaults (poll 5 s, reconciliation every 10 min, mirror batch 500) but ports and paths.
    let text = format!(
        "[telegram]\napi_id = 1\napi_hash = \"bench-hash\"\nsession_file = \"{}\"\n\
         [store]\nstate_dir = \"{}\"\n[health]\nlisten = \"127.0.0.1:0\"\n",
        session.display(),
        dir.path().display(),
    );
    let db_path = dir.path().join("giftd.sqlite3");
    let config = Config::parse_str(&text, "soak config", &|k| std::env::var(k).ok())
        .expect("the soak configuration is valid");

    let daemon = Daemon::new();
    let mut notices = daemon.subscribe();
    let mut commits = daemon.subscribe_commits();
    let shutdown = CancellationToken::new();
    let join = (!args.no_daemon).then(|| {
        let daemon = daemon.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { daemon.run(&config, shutdown).await })
    });
    while join.is_some() {
        match tokio::time::timeout(Duration::from_secs(60), notices.recv()).await {
            Ok(Ok(Notice::Ready { .. })) => break,
            Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) | Err(_) => panic!("giftd not ready within 60 s"),
        }
    }

    // What was credited and committed, by msg id (a set: a replayed credit counts once).
    let credited = Arc::new(Mutex::new(HashSet::<i32>::new()));
    let committed = Arc::new(Mutex::new(HashSet::<i32>::new()));
    let lagged = Arc::new(AtomicU64::new(0));
    {
        let credited = Arc::clone(&credited);
        let lagged = Arc::clone(&lagged);
        tokio::spawn(async move {
            loop {
                match notices.recv().await {
                    Ok(Notice::Credited { key, .. }) if key.account_id == deposit => {
                        credited.lock().expect("lock").insert(key.msg_id);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
    {
        let committed = Arc::clone(&committed);
        let lagged = Arc::clone(&lagged);
        tokio::spawn(async move {
            loop {
                match commits.recv().await {
                    Ok(c) => {
                        let mut set = committed.lock().expect("lock");
                        for k in c.deposits.iter().filter(|k| k.account_id == deposit) {
                            set.insert(k.msg_id);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    // The trickle: `rate` gifts a second on a blocking thread (each send takes tgsim's lock).
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let sim = sim.clone();
        let stop = Arc::clone(&stop);
        let sent = Arc::clone(&sent);
        let players = players.clone();
        let rate = args.rate.max(1);
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                sim.send_gift(SendGift {
                    from: players[i as usize % players.len()],
                    to: deposit,
                    gift_id,
                    hide_name: false,
                    message: None,
                })
                .expect("tgsim takes the gift");
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };

    // Outages: a second connection holds SQLite's write lock.
    let outages = Arc::new(AtomicU64::new(0));
    let outage_task = {
        let outages = Arc::clone(&outages);
        let stop = Arc::clone(&stop);
        let every = Duration::from_secs(args.outage_every.max(1));
        let length = Duration::from_secs(args.outage_secs);
        let no_daemon = args.no_daemon;
        tokio::spawn(async move {
            let db = libsql::Builder::new_local(&db_path)
                .build()
                .await
                .expect("second SQLite handle");
            loop {
                tokio::time::sleep(every).await;
                if stop.load(Ordering::Relaxed) || no_daemon {
                    return;
                }
                let other = db.connect().expect("second connection");
                other.execute("PRAGMA busy_timeout = 10000", ()).await.ok();
                if let Err(e) = other.execute("BEGIN IMMEDIATE", ()).await {
                    eprintln!("outage: could not take the write lock: {e}");
                    continue;
                }
                outages.fetch_add(1, Ordering::Relaxed);
                eprintln!("outage: write lock held for {length:?}");
                tokio::time::sleep(length).await;
                other.execute("ROLLBACK", ()).await.expect("rollback");
            }
        })
    };

    let metrics = Arc::clone(&daemon.health().metrics);
    let handle = tokio::runtime::Handle::current();
    let start = Instant::now();
    let sample = || Sample {
        at: start.elapsed(),
        rss_kib: rss_kib(),
        fds: open_fds(),
        tasks: handle.metrics().num_alive_tasks() as u64,
        sent: sent.load(Ordering::Relaxed),
        credited: credited.lock().expect("lock").len() as u64,
        committed: committed.lock().expect("lock").len() as u64,
        backlog: metrics.mirror_backlog.load(Ordering::Relaxed),
        failures: metrics.mirror_failures.load(Ordering::Relaxed),
    };
    println!(
        "soak: {} min, {} gifts/s, SQLite write lock held {} s every {} s, embedded store, tgsim in-process",
        args.minutes, args.rate, args.outage_secs, args.outage_every
    );
    println!(
        "{:>7} {:>9} {:>5} {:>6} {:>8} {:>9} {:>9} {:>8} {:>9}",
        "t (s)", "RSS MiB", "fds", "tasks", "sent", "credited", "committed", "backlog", "failures"
    );
    let print = |s: &Sample| {
        println!(
            "{:>7.0} {:>9.1} {:>5} {:>6} {:>8} {:>9} {:>9} {:>8} {:>9}",
            s.at.as_secs_f64(),
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.tasks,
            s.sent,
            s.credited,
            s.committed,
            s.backlog,
            s.failures
        );
    };
    let mut samples = vec![sample()];
    print(&samples[0]);
    let end = start + Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs(args.report_every.max(1));
    // The backlog rises and falls within an outage: it is read every second for its max.
    let mut max_backlog = 0u64;
    while Instant::now() < end {
        let next = (Instant::now() + every).min(end);
        while Instant::now() < next {
            let tick = (Instant::now() + Duration::from_secs(1)).min(next);
            tokio::time::sleep_until(tick.into()).await;
            max_backlog = max_backlog.max(metrics.mirror_backlog.load(Ordering::Relaxed));
        }
        let s = sample();
        print(&s);
        samples.push(s);
    }

    // Stop sending; give giftd a minute (outage and retry back-off included) to catch up.
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender thread");
    outage_task.abort();
    let total = sent.load(Ordering::Relaxed);
    let drain = Instant::now();
    while !args.no_daemon && drain.elapsed() < Duration::from_secs(60) {
        let s = sample();
        if s.credited >= total && s.committed >= total && s.backlog == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = drain.elapsed();
    let last = sample();
    print(&last);
    samples.push(last);

    println!();
    println!("{:<22} {:>10} {:>10} {:>10}", "", "first", "last", "max");
    let line = |name: &str, f: &dyn Fn(&Sample) -> f64, unit: &str| {
        let max = samples.iter().map(f).fold(f64::MIN, f64::max);
        println!(
            "{:<22} {:>10.1} {:>10.1} {:>10.1} {unit}",
            name,
            f(&samples[0]),
            f(samples.last().expect("samples")),
            max
        );
    };
    line("RSS", &|s| s.rss_kib as f64 / 1024.0, "MiB");
    line("open fds", &|s| s.fds as f64, "");
    line("tokio tasks alive", &|s| s.tasks as f64, "");
    line("mirror backlog", &|s| s.backlog as f64, "changes");
    println!("mirror backlog, max read every second: {max_backlog} changes");
    let last = samples.last().expect("samples");
    println!(
        "sent {total}, credited {}, committed {}, store write failures (retried) {}, outages {}, \
         notices lagged {}; drained {:.1} s after the last send",
        last.credited,
        last.committed,
        last.failures,
        outages.load(Ordering::Relaxed),
        lagged.load(Ordering::Relaxed),
        drained.as_secs_f64(),
    );
    println!(
        "everything sent was credited and committed: {}",
        if args.no_daemon {
            "(no daemon: only tgsim and the trickle ran)"
        } else if last.credited == total && last.committed == total {
            "yes"
        } else {
            "NO"
        }
    );

    shutdown.cancel();
    if let Some(join) = join {
        match tokio::time::timeout(Duration::from_secs(30), join).await {
            Ok(Ok(Ok(()))) => {}
            other => eprintln!("warning: giftd did not stop cleanly: {other:?}"),
        }
    }
    sim.shutdown().await;
}
