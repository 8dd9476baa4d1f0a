//! The update path alone: how many gifts per second giftd credits from
//! Telegram's pushed updates, with the machine idle and with both cores busy.
//!
//! ```text
//! cargo bench --bench update_path            # or: -- --gifts 3000 --rounds 3
//! ```
//!
//! giftd's real `Daemon` runs against tgsim (real MTProto, the real grammers client) with the
//! embedded store; polling and reconciliation are pushed out to an hour, so every credit comes
//! from an update. A burst of gifts is sent as fast as tgsim takes them, after the update stream
//! is open; the rate is the number of gifts credited through the stream over the time from the
//! first send to the last credit.
//!
//! "Busy" runs the same burst while two threads spin (both cores) and a third writes and
//! fsyncs 1 MiB at a time to a file beside the session, as a build does to the disk. A benchmark,
//! not a test: it prints figures and asserts nothing.

#[path = "parts/world.rs"]
mod world;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use giftd::app::{Notice, Path as IntakePath};
use giftd::config::Config;
use tokio::sync::broadcast::error::RecvError;

const COMMAND: &str = "cargo bench --bench update_path";

fn main() {
    let mut gifts = 2_000usize;
    let mut rounds = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--gifts" => gifts = value("--gifts"),
            "--rounds" => rounds = value("--rounds"),
            _ => {} // cargo bench passes `--bench`
        }
    }
    // RUST_LOG=... shows giftd's and grammers' logs on stderr (none by default).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let mut rows = Vec::new();
    runtime.block_on(async {
        for busy in [false, true] {
            for round in 0..rounds {
                let load = busy.then(Load::start);
                let r = burst(gifts).await;
                drop(load);
                eprintln!(
                    "{} round {}: {:.0} gifts/s through updates ({} of {} by update)",
                    if busy { "busy" } else { "idle" },
                    round + 1,
                    r.rate(),
                    r.by_update,
                    r.sent
                );
                rows.push((busy, r));
            }
        }
    });
    println!("\nupdate path alone, {gifts} gifts per burst, {rounds} bursts each ({COMMAND})\n");
    println!(
        "| machine | gifts/s (median of {rounds}) | min | max | by update | by poll | session file commits during burst |"
    );
    println!("|---|---|---|---|---|---|---|");
    for busy in [false, true] {
        let mut rates: Vec<f64> = rows
            .iter()
            .filter(|(b, _)| *b == busy)
            .map(|(_, r)| r.rate())
            .collect();
        rates.sort_by(f64::total_cmp);
        let of = |f: fn(&Burst) -> u64| -> u64 {
            rows.iter()
                .filter(|(b, _)| *b == busy)
                .map(|(_, r)| f(r))
                .sum()
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            if busy {
                "busy (2 spinning threads + fsync writer)"
            } else {
                "idle"
            },
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            of(|r| r.by_update),
            of(|r| r.by_poll),
            of(|r| r.session_writes),
        );
    }
}

struct Burst {
    sent: u64,
    by_update: u64,
    by_poll: u64,
    /// From the first send to the last gift credited through the stream.
    elapsed: Duration,
    /// Writes to the grammers session file (its SQLite WAL/journal) while the burst ran, as
    /// seen by the file's modification count; 0 when nothing touched it.
    session_writes: u64,
}

impl Burst {
    fn rate(&self) -> f64 {
        self.by_update as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Load on both cores and the disk until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Load {
    fn start() -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut threads = Vec::new();
        for _ in 0..2 {
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..10_000u64 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(i),
                        );
                    }
                }
            }));
        }
        let path = dir.path().join("load.bin");
        let stop_io = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let chunk = vec![7u8; 1 << 20];
            let mut f = std::fs::File::create(&path).expect("load file");
            let mut written = 0usize;
            while !stop_io.load(Ordering::Relaxed) {
                f.write_all(&chunk).expect("load write");
                f.sync_data().expect("load fsync");
                written += chunk.len();
                if written > 256 << 20 {
                    f = std::fs::File::create(&path).expect("load file");
                    written = 0;
                }
            }
        }));
        Load {
            stop,
            threads,
            _dir: dir,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

async fn burst(n: usize) -> Burst {
    let sim = world::start_sim().await;
    let user = |name: &str| world::user(&sim, name, 1_000_000_000);
    let deposit = user("deposit");
    let players: Vec<i64> = (0..8).map(|i| user(&format!("p{i}"))).collect();
    let dir = tempfile::tempdir().expect("temporary directory");
    let session = dir.path().join("deposit.session");
    world::write_session(&sim, deposit, &session).await;
    let text = format!(
        "[telegram]\napi_id = 1\napi_hash = \"bench-hash\"\nsession_file = \"{}\"\n\
         poll_interval = \"1h\"\nreconcile_interval = \"1h\"\n\
         [store]\nstate_dir = \"{}\"\n[health]\nlisten = \"127.0.0.1:0\"\n",
        session.display(),
        dir.path().display(),
    );
    let config = Config::parse_str(&text, "bench config", &|k| std::env::var(k).ok())
        .expect("the bench configuration is valid");

    let world::Running {
        daemon,
        shutdown,
        join,
        mut notices,
    } = world::launch(config).await;
    // The update stream is open, and the poll loop's first (immediate) pass is over, so the
    // next pass is an hour away and every credit of the burst is the update path's.
    let stream_open = || {
        sim.stats()
            .calls
            .get("updates.getState")
            .copied()
            .unwrap_or(0)
            > 0
    };
    while !stream_open() || daemon.health().metrics.polls.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let writes_before = session_writes(&session);
    let first_send = Instant::now();
    let sender = {
        let sim = sim.clone();
        tokio::task::spawn_blocking(move || sim.burst(n, &players, deposit).expect("burst"))
    };
    let (mut by_update, mut by_poll) = (0u64, 0u64);
    let mut last = first_send;
    while by_update + by_poll < n as u64 {
        match tokio::time::timeout(Duration::from_secs(120), notices.recv()).await {
            Ok(Ok(Notice::Credited { path, .. })) => {
                match path {
                    IntakePath::Update => by_update += 1,
                    _ => by_poll += 1,
                }
                last = Instant::now();
            }
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(k))) => panic!("the bench lagged {k} notices behind"),
            Ok(Err(RecvError::Closed)) | Err(_) => break,
        }
    }
    if by_update + by_poll < n as u64 {
        let m = &daemon.health().metrics;
        eprintln!(
            "incomplete burst: {} credited of {n}; updates received {}, dropped {}; \
             getDifference calls {:?}, inventory {}",
            by_update + by_poll,
            m.updates_received.load(Ordering::Relaxed),
            m.updates_dropped.load(Ordering::Relaxed),
            sim.stats().calls.get("updates.getDifference"),
            daemon.inventory().len(),
        );
    }
    let session_writes = session_writes(&session).saturating_sub(writes_before);
    sender.await.expect("burst thread");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), join).await;
    sim.shutdown().await;
    Burst {
        sent: n as u64,
        by_update,
        by_poll,
        elapsed: last - first_send,
        session_writes,
    }
}

/// A count that grows with every commit to the session database: the sum of the sizes of its
/// rollback journal and WAL ever seen is not kept by SQLite, so this reads the change counter
/// in the database header (bytes 24..28), which SQLite increments on every commit that changes
/// the file.
fn session_writes(session: &Path) -> u64 {
    let read = |p: PathBuf| std::fs::read(p).ok();
    match read(session.to_owned()) {
        Some(bytes) if bytes.len() >= 28 => u64::from(u32::from_be_bytes([
            bytes[24], bytes[25], bytes[26], bytes[27],
        ])),
        _ => 0,
    }
}
