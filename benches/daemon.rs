//! The daemon's figures: giftd's real `Daemon` against tgsim (real MTProto,
//! the real grammers client) and the real store (PostgreSQL behind the PostgREST-compatible
//! server), all in this process except the database and its REST server.
//!
//! Run it inside the test environment:
//!
//! ```text
//! scripts/test-env.sh -- cargo bench --bench daemon
//! ```
//!
//! It is a benchmark, not a test: it asserts nothing, it prints figures and the targets next to
//! them. Figures:
//!
//! - a. latency from a gift being sent in tgsim (the instant right before `send_gift`) to the
//!   store acknowledging the batch holding its row ([`giftd::mirror::Committed`]), at a fixed
//!   200 gifts/s for 12 s, with updates on;
//! - b. the same with updates withheld (getDifference lies: only polling finds the gifts), at
//!   20 gifts/s for 15 s, with the default 5 s poll interval;
//! - c. the highest sustained gifts/s into PostgreSQL: 20,000 gifts sent as fast as tgsim takes
//!   them, from the first send to the last commit, with updates on; and polling only, where the
//!   burst is sent right after a poll and the rate counts from the next poll (the 5 s wait for
//!   that tick is the design, not throughput); with the CPU use of the machine and of this
//!   process over the phase;
//! - d. the start of a daemon on an account already holding 100,000 gifts: from `run()` to
//!   `Ready` (everything listed, credited and committed), and the commit rate of that phase,
//!   which is the mirror's own rate into PostgreSQL without Telegram in the way;
//! - e. resident memory per live inventory item at 1,000,000 items, measured by
//!   `benches/inventory_memory.rs` in a fresh child process (so nothing else in this process
//!   pollutes the reading);
//! - f. the same burst of 5,000 gifts written into the same PostgREST by one upsert request per
//!   gift (what a supabase-js seed system does) and by giftd's mirror, side by side
//!   (`benches/parts/side_by_side.rs`); only when named (`-- f`).
//!
//! Every daemon runs with the default configuration (poll interval 5 s, mirror batch 500,
//! group commit) except for its health port and state directory. `-- --durable` runs against
//! the test environment's PostgreSQL with fsync and synchronous_commit on. Each scenario has its own
//! simulator with a random id range, so runs never collide in the shared database.

#[path = "parts/side_by_side.rs"]
mod side_by_side;

#[path = "parts/daemon_table.rs"]
mod table;

#[path = "inventory_memory.rs"]
#[allow(dead_code)]
mod inventory_memory;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use giftd::app::{Daemon, Notice};
use giftd::config::Config;
use tgsim::{CreateUser, Fault, SendGift, Sim, SimConfig};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use table::{ms, print_table};

const COMMAND: &str = "scripts/test-env.sh -- cargo bench --bench daemon";
const CHILD_FLAG: &str = "--inventory-memory-child";

const POLL_INTERVAL: Duration = Duration::from_secs(5);

fn main() {
    if std::env::args().any(|a| a == CHILD_FLAG) {
        let per_item = inventory_memory::measure(1_000_000, 10_000);
        println!("BYTES_PER_ITEM {per_item}");
        return;
    }
    let env = |name: &str| match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => {
            eprintln!(
                "error: {name} is not set. This benchmark needs the real PostgreSQL + PostgREST \
                 environment; run it as `{COMMAND}`"
            );
            std::process::exit(2);
        }
    };
    // `-- --durable`: the test environment's second PostgreSQL ("chaos"), which runs with
    // fsync and synchronous_commit on, as a real server does; the main one has them off.
    let durable = std::env::args().any(|a| a == "--durable");
    let store = StoreEnv {
        rest_url: env(if durable {
            "GIFTD_TEST_CHAOS_REST_URL"
        } else {
            "GIFTD_TEST_REST_URL"
        }),
        key: env("GIFTD_TEST_SERVICE_KEY"),
        durable,
    };
    init_tracing();
    let started = Instant::now();

    // `cargo bench --bench daemon -- a d` runs only the named scenarios (for working on one).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |s: &str| only.is_empty() || only.iter().any(|o| o == s);

    let mut bytes_per_item = None;
    if want("e") {
        eprintln!("e. inventory memory at 1,000,000 items (child process)...");
        bytes_per_item = Some(inventory_memory_child());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let figures = runtime.block_on(async {
        let mut a = None;
        let mut b = None;
        let mut c_updates = None;
        let mut c_polling = None;
        let mut d = None;
        let mut f = None;
        if want("a") {
            eprintln!("a. latency with updates, 200 gifts/s for 12 s...");
            a = Some(latency(&store, true, 200, Duration::from_secs(12)).await);
        }
        if want("b") {
            eprintln!("b. latency polling only, 20 gifts/s for 15 s...");
            b = Some(latency(&store, false, 20, Duration::from_secs(15)).await);
        }
        if want("c") {
            eprintln!("c. throughput, 20,000 gifts, updates on...");
            c_updates = Some(throughput(&store, true, 20_000).await);
            eprintln!("c. throughput, 20,000 gifts, polling only...");
            c_polling = Some(throughput(&store, false, 20_000).await);
        }
        if want("d") {
            eprintln!("d. start on an account holding 100,000 gifts...");
            d = Some(reconcile_at_start(&store, 100_000).await);
        }
        if only.iter().any(|o| o == "f") {
            eprintln!("f. side by side, 5,000 gifts: one upsert per gift vs giftd's mirror...");
            f = Some(side_by_side::run(&store, 5_000).await);
        }
        (
            Figures {
                a,
                b,
                c_updates,
                c_polling,
                d,
                durable: store.durable,
            },
            f,
        )
    });
    let (figures, f) = figures;
    print_table(&figures, bytes_per_item, started.elapsed());
    if let Some(f) = &f {
        side_by_side::print(f);
    }
}

struct StoreEnv {
    rest_url: String,
    key: String,
    /// PostgreSQL with fsync and synchronous_commit on.
    durable: bool,
}

struct Figures {
    a: Option<Latency>,
    b: Option<Latency>,
    c_updates: Option<Throughput>,
    c_polling: Option<Throughput>,
    d: Option<Reconcile>,
    durable: bool,
}

// ----- the world ------------------------------------------------------------------------------

/// A simulator with a deposit account and players, and giftd's configuration for it.
struct World {
    sim: Sim,
    deposit: i64,
    players: Vec<i64>,
    gift_id: i64,
    dir: tempfile::TempDir,
    config_text: String,
}

impl World {
    async fn new(store: &StoreEnv, players: usize) -> World {
        let sim = Sim::start(SimConfig {
            // Telegram user ids stay below 2^40 (grammers checks); a random range per world.
            first_id: 1_000_000_000 + (rand::random::<u64>() % 900_000_000_000) as i64,
            ..SimConfig::default()
        })
        .await
        .expect("tgsim starts");
        let tag = rand::random::<u32>();
        let user = |name: String| {
            sim.create_user(CreateUser {
                username: name,
                first_name: "Player".into(),
                stars: 1_000_000_000,
                ..Default::default()
            })
            .expect("tgsim creates a user")
            .id
        };
        let deposit = user(format!("deposit{tag}"));
        let players = (0..players).map(|i| user(format!("p{i}x{tag}"))).collect();
        let gift_id = sim.gift_catalogue()[0].id;
        let dir = tempfile::tempdir().expect("temporary directory");
        let session = dir.path().join("deposit.session");
        // Defaults everywhere (poll 5 s, mirror batch 500 / 50 ms) but the ports and paths.
        let config_text = format!(
            "[telegram]\napi_id = 1\napi_hash = \"bench-hash\"\nsession_file = \"{}\"\n\
             [store]\nstate_dir = \"{}\"\n\
             [supabase]\nrest_url = \"{}\"\nservice_role_key = \"{}\"\n\
             [health]\nlisten = \"127.0.0.1:0\"\n",
            session.display(),
            dir.path().display(),
            store.rest_url,
            store.key,
        );
        World {
            sim,
            deposit,
            players,
            gift_id,
            dir,
            config_text,
        }
    }

    fn session_file(&self) -> PathBuf {
        self.dir.path().join("deposit.session")
    }

    fn send(&self, i: usize) -> i32 {
        self.sim
            .send_gift(SendGift {
                from: self.players[i % self.players.len()],
                to: self.deposit,
                gift_id: self.gift_id,
                hide_name: false,
                message: None,
            })
            .expect("tgsim takes the gift")
            .msg_id
    }

    /// Sends `n` gifts as fast as tgsim takes them, on a blocking thread (each send takes the
    /// simulator's world lock), in chunks of 1,000. Returns the message ids and the time it took.
    async fn burst(&self, n: usize) -> (Vec<i32>, Duration) {
        let sim = self.sim.clone();
        let players = self.players.clone();
        let deposit = self.deposit;
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let mut ids = Vec::with_capacity(n);
            let mut left = n;
            while left > 0 {
                let chunk = left.min(1_000);
                let sent = sim
                    .burst(chunk, &players, deposit)
                    .expect("tgsim takes the burst");
                ids.extend(sent.iter().map(|s| s.msg_id));
                left -= chunk;
            }
            (ids, t.elapsed())
        })
        .await
        .expect("burst thread did not panic")
    }

    /// Starts the daemon and waits for `Ready` (within `ready_within`) and for its update stream.
    /// With `await_updates`, also waits for grammers' first `updates.getState`: gifts pushed
    /// before it are for polling to find, so push measurements start after it.
    async fn start(&self, ready_within: Duration, await_updates: bool) -> Running {
        let path = self.session_file();
        let _ = std::fs::remove_file(&path);
        self.sim
            .write_session(self.deposit, &path)
            .await
            .expect("tgsim writes the session");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("session file chmod 600");
        // GIFTD_* variables override the defaults, as for `giftd run` (to try other settings).
        let config = Config::parse_str(&self.config_text, "bench config", &|k| {
            std::env::var(k).ok()
        })
        .expect("the bench configuration is valid");

        let daemon = Daemon::new();
        let mut notices = daemon.subscribe();
        let commits = Commits::collect(&daemon, self.deposit);
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let join = {
            let daemon = daemon.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { daemon.run(&config, shutdown).await })
        };
        let ready = tokio::time::timeout(ready_within, async {
            loop {
                match notices.recv().await {
                    Ok(Notice::Ready { items }) => return items,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => panic!("daemon notices closed before Ready"),
                }
            }
        })
        .await;
        let Ok(ready_items) = ready else {
            shutdown.cancel();
            panic!("giftd not ready within {ready_within:?}: {:?}", join.await);
        };
        let ready_after = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(20);
        while await_updates
            && self
                .sim
                .stats()
                .calls
                .get("updates.getState")
                .copied()
                .unwrap_or(0)
                == 0
        {
            assert!(
                Instant::now() < deadline,
                "giftd never opened its update stream"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Running {
            daemon,
            shutdown,
            join,
            commits,
            started,
            ready_after,
            ready_items,
        }
    }

    async fn shutdown(self) {
        self.sim.shutdown().await;
    }
}

struct Running {
    daemon: Daemon,
    shutdown: CancellationToken,
    join: tokio::task::JoinHandle<Result<(), giftd::app::AppError>>,
    commits: Commits,
    started: Instant,
    ready_after: Duration,
    ready_items: usize,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.join).await {
            Ok(Ok(Ok(()))) => {}
            other => eprintln!("warning: giftd did not stop cleanly: {other:?}"),
        }
    }

    fn metric(&self, f: impl Fn(&giftd::health::Metrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.daemon.health().metrics).load(Ordering::Relaxed)
    }
}

/// When each of the deposit account's items was committed, from the mirror's broadcast.
#[derive(Clone)]
struct Commits {
    inner: Arc<Mutex<CommitLog>>,
}

#[derive(Default)]
struct CommitLog {
    at: HashMap<i32, Instant>,
    /// When the bench received each item's `Notice::Credited` (detection done, queued for the
    /// mirror): splits the latency into detection and mirror.
    credited: HashMap<i32, Instant>,
    first: Option<Instant>,
    last: Option<Instant>,
    batches: u64,
    lagged: u64,
}

impl Commits {
    fn collect(daemon: &Daemon, account: i64) -> Commits {
        let mut rx = daemon.subscribe_commits();
        let commits = Commits {
            inner: Arc::new(Mutex::new(CommitLog::default())),
        };
        let mut notices = daemon.subscribe();
        let log = Arc::clone(&commits.inner);
        tokio::spawn(async move {
            loop {
                match notices.recv().await {
                    Ok(Notice::Credited { key, .. }) if key.account_id == account => {
                        let now = Instant::now();
                        let mut log = log.lock().expect("commit log lock");
                        log.credited.entry(key.msg_id).or_insert(now);
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        let log = Arc::clone(&commits.inner);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(c) => {
                        let mut log = log.lock().expect("commit log lock");
                        let mut any = false;
                        for key in c.deposits.iter().filter(|k| k.account_id == account) {
                            log.at.entry(key.msg_id).or_insert(c.at);
                            any = true;
                        }
                        if any {
                            log.batches += 1;
                            log.first.get_or_insert(c.at);
                            log.last = Some(c.at);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        log.lock().expect("commit log lock").lagged += n;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        commits
    }

    fn get(&self, msg_id: i32) -> Option<Instant> {
        self.inner
            .lock()
            .expect("commit log lock")
            .at
            .get(&msg_id)
            .copied()
    }

    /// Waits until every one of `ids` is committed, or `within` passes. Returns how many are.
    async fn wait_for(&self, ids: &[i32], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let done = {
                let log = self.inner.lock().expect("commit log lock");
                ids.iter().filter(|m| log.at.contains_key(m)).count()
            };
            if done == ids.len() || Instant::now() >= deadline {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

// ----- a and b: latency -------------------------------------------------------------------------

struct Latency {
    rate: u32,
    sent: usize,
    committed: usize,
    /// Sorted sent-to-committed latencies.
    samples: Vec<Duration>,
    /// Sorted sent-to-credited (detection) and credited-to-committed (mirror) latencies.
    detect: Vec<Duration>,
    mirror: Vec<Duration>,
    by_update: u64,
    by_poll: u64,
    lagged: u64,
}

async fn latency(store: &StoreEnv, updates: bool, rate: u32, duration: Duration) -> Latency {
    let world = World::new(store, 8).await;
    let running = world.start(Duration::from_secs(60), true).await;
    if !updates {
        world.sim.inject(Fault::WithholdUpdates {
            honest_difference: false,
        });
    }
    let n = (u128::from(rate) * duration.as_millis() / 1000) as usize;
    let period = Duration::from_secs(1) / rate;
    let mut sent_at: Vec<(i32, Instant)> = Vec::with_capacity(n);
    let t0 = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(t0 + period * i as u32).await;
        let at = Instant::now();
        let msg_id = world.send(i);
        sent_at.push((msg_id, at));
    }
    let ids: Vec<i32> = sent_at.iter().map(|(m, _)| *m).collect();
    let committed = running
        .commits
        .wait_for(&ids, POLL_INTERVAL * 2 + Duration::from_secs(10))
        .await;
    let mut samples: Vec<Duration> = sent_at
        .iter()
        .filter_map(|&(m, at)| {
            running
                .commits
                .get(m)
                .map(|c| c.saturating_duration_since(at))
        })
        .collect();
    samples.sort_unstable();
    let (mut detect, mut mirror) = (Vec::new(), Vec::new());
    {
        let log = running.commits.inner.lock().expect("commit log lock");
        for &(m, at) in &sent_at {
            if let (Some(&cr), Some(&co)) = (log.credited.get(&m), log.at.get(&m)) {
                detect.push(cr.saturating_duration_since(at));
                mirror.push(co.saturating_duration_since(cr));
            }
        }
    }
    detect.sort_unstable();
    mirror.sort_unstable();
    let by_update = running.metric(|m| &m.deposits_update);
    let by_poll = running.metric(|m| &m.deposits_poll);
    let lagged = running
        .commits
        .inner
        .lock()
        .expect("commit log lock")
        .lagged;
    running.stop().await;
    world.shutdown().await;
    Latency {
        rate,
        sent: n,
        committed,
        samples,
        detect,
        mirror,
        by_update,
        by_poll,
        lagged,
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ----- c: throughput --------------------------------------------------------------------------

struct Throughput {
    sent: usize,
    committed: usize,
    /// How long tgsim took to take every gift.
    send_time: Duration,
    /// First send to last commit.
    total: Duration,
    by_update: u64,
    by_poll: u64,
    batches: u64,
    polls: u64,
    /// First commit to last commit.
    commit_phase: Duration,
    /// Polling only: from the first poll after the burst to the last commit.
    poll_phase: Option<Duration>,
    cpu: Cpu,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.committed as f64 / self.total.as_secs_f64().max(1e-9)
    }
}

/// CPU use over an interval: the machine's busy share, and this process's share (tgsim, giftd
/// and the bench; the rest is PostgreSQL, postrust and anything else running).
#[derive(Clone, Copy)]
struct Cpu {
    machine_busy: f64,
    this_process: f64,
}

/// (busy jiffies, total jiffies) of the whole machine, and jiffies of this process.
fn cpu_sample() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = me.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let mine = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    (total - idle, total, mine)
}

fn cpu_since(before: (u64, u64, u64)) -> Cpu {
    let after = cpu_sample();
    let total = after.1.saturating_sub(before.1).max(1) as f64;
    Cpu {
        machine_busy: after.0.saturating_sub(before.0) as f64 / total,
        this_process: after.2.saturating_sub(before.2) as f64 / total,
    }
}

async fn throughput(store: &StoreEnv, updates: bool, n: usize) -> Throughput {
    let world = World::new(store, 8).await;
    let running = world.start(Duration::from_secs(60), true).await;
    if !updates {
        world.sim.inject(Fault::WithholdUpdates {
            honest_difference: false,
        });
    }
    let polls_before = running.metric(|m| &m.polls);
    let batches_before = running
        .commits
        .inner
        .lock()
        .expect("commit log lock")
        .batches;
    let polls = || {
        world
            .sim
            .stats()
            .calls
            .get("payments.getSavedStarGifts")
            .copied()
            .unwrap_or(0)
    };
    if !updates {
        // Send right after a poll, so the burst is complete when the next one starts.
        let seen = polls();
        while polls() == seen {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu_before = cpu_sample();
    let first_send = Instant::now();
    let (ids, send_time) = world.burst(n).await;
    let mut next_poll = None;
    if !updates {
        let seen = polls();
        while polls() == seen {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        next_poll = Some(Instant::now());
    }
    let committed = running
        .commits
        .wait_for(&ids, Duration::from_secs(120))
        .await;
    let cpu = cpu_since(cpu_before);
    let times: Vec<Instant> = ids.iter().filter_map(|&m| running.commits.get(m)).collect();
    let last = times.iter().max().copied().unwrap_or(first_send);
    let first = times.iter().min().copied().unwrap_or(first_send);
    let out = Throughput {
        sent: n,
        committed,
        send_time,
        total: last.saturating_duration_since(first_send),
        by_update: running.metric(|m| &m.deposits_update),
        by_poll: running.metric(|m| &m.deposits_poll),
        batches: running
            .commits
            .inner
            .lock()
            .expect("commit log lock")
            .batches
            - batches_before,
        polls: running.metric(|m| &m.polls) - polls_before,
        commit_phase: last.saturating_duration_since(first),
        poll_phase: next_poll.map(|p| last.saturating_duration_since(p)),
        cpu,
    };
    running.stop().await;
    world.shutdown().await;
    out
}

// ----- d: reconciliation at start ---------------------------------------------------------------

struct Reconcile {
    gifts: usize,
    /// How long tgsim took to take the gifts (before the daemon started).
    send_time: Duration,
    ready_after: Duration,
    ready_items: usize,
    committed: usize,
    /// From `run()` to the first committed batch: connect, load, list every page.
    first_commit_after: Duration,
    /// From the first to the last committed batch.
    commit_phase: Duration,
    batches: u64,
}

async fn reconcile_at_start(store: &StoreEnv, n: usize) -> Reconcile {
    let world = World::new(store, 8).await;
    let (_, send_time) = world.burst(n).await;
    let running = world.start(Duration::from_secs(240), false).await;
    let (committed, first, last, batches) = {
        let log = running.commits.inner.lock().expect("commit log lock");
        (log.at.len(), log.first, log.last, log.batches)
    };
    let first_commit_after = first.map_or(Duration::ZERO, |f| {
        f.saturating_duration_since(running.started)
    });
    let commit_phase = match (first, last) {
        (Some(f), Some(l)) => l.saturating_duration_since(f),
        _ => Duration::ZERO,
    };
    let out = Reconcile {
        gifts: n,
        send_time,
        ready_after: running.ready_after,
        ready_items: running.ready_items,
        committed,
        first_commit_after,
        commit_phase,
        batches,
    };
    running.stop().await;
    world.shutdown().await;
    out
}

// ----- e: inventory memory --------------------------------------------------------------------

/// Runs `inventory_memory::measure` in a fresh copy of this executable and reads its figure.
fn inventory_memory_child() -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .arg(CHILD_FLAG)
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        eprintln!("  {line}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("BYTES_PER_ITEM "))
        .and_then(|v| v.trim().parse().ok())
}

/// giftd's tracing layers, as `giftd run` installs them: the clock-storm counter and warnings
/// (or `RUST_LOG`) on stderr.
fn init_tracing() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(
            giftd::telegram::clock::layer().with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("grammers_mtsender", tracing::Level::INFO),
            ),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .try_init();
}
