//! Withdrawal figures: from a request to the gift in the player's account in
//! tgsim, at a steady 20 requests/s, and withdrawals per second sustained through one deposit
//! account.
//!
//! ```text
//! cargo bench --bench withdrawals            # or: -- --requests 200 --poll 1s
//! ```
//!
//! giftd's real `Daemon` runs against tgsim (real MTProto, the real grammers client) with the
//! embedded store; requests are created in the store as the bot, the web app or the CLI create
//! them, and the worker finds them at its queue poll (`withdraw.poll_interval`). Each request
//! is a free collectible transfer: a payment form read, the intent recorded, one
//! `payments.transferStarGift`, the outcome recorded. The latency ends when tgsim lists the
//! collectible in the player's saved gifts. A benchmark, not a test: it prints figures.

#[path = "parts/world.rs"]
mod world;

use std::collections::HashMap;
use std::time::{Duration, Instant};
use world::{ms, pct};

use giftd::config::Config;
use giftd::gift::ItemKey;

const COMMAND: &str = "cargo bench --bench withdrawals";

fn main() {
    let mut requests = 200usize;
    let mut poll = "1s".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--requests" => {
                requests = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--requests needs a number")
            }
            "--poll" => poll = args.next().expect("--poll needs a duration"),
            _ => {} // cargo bench passes `--bench`
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let (steady, burst) = runtime.block_on(async {
        let steady = run(requests, &poll, Some(20.0)).await;
        let burst = run(requests, &poll, None).await;
        (steady, burst)
    });
    println!(
        "\nwithdrawals, {requests} free collectible transfers per phase, withdraw.poll_interval = {poll} ({COMMAND})\n"
    );
    println!("| phase | p50 | p90 | p99 | max | withdrawals/s |");
    println!("|---|---|---|---|---|---|");
    for (name, r) in [("20 requests/s", &steady), ("all at once", &burst)] {
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} |",
            ms(pct(&r.latencies, 0.50)),
            ms(pct(&r.latencies, 0.90)),
            ms(pct(&r.latencies, 0.99)),
            ms(pct(&r.latencies, 1.0)),
            r.rate
        );
    }
}

struct Phase {
    latencies: Vec<Duration>,
    /// Transfers completed per second, from the first request to the last arrival.
    rate: f64,
}

async fn run(n: usize, poll: &str, rate: Option<f64>) -> Phase {
    let sim = world::start_sim().await;
    let user = |name: &str| world::user(&sim, name, 1_000_000_000);
    let deposit = user("deposit");
    let player = user("player");
    let items = world::collectibles(&sim, player, deposit, n);
    let dir = tempfile::tempdir().expect("temporary directory");
    let session = dir.path().join("deposit.session");
    world::write_session(&sim, deposit, &session).await;
    let text = format!(
        "[telegram]\napi_id = 1\napi_hash = \"bench-hash\"\nsession_file = \"{}\"\n\
         [store]\nstate_dir = \"{}\"\n[health]\nlisten = \"127.0.0.1:0\"\n\
         [withdraw]\npoll_interval = \"{poll}\"\n",
        session.display(),
        dir.path().display(),
    );
    let config = Config::parse_str(&text, "bench config", &|k| std::env::var(k).ok())
        .expect("the bench configuration is valid");
    let store = giftd::store::open(&config.store)
        .await
        .expect("store opens");
    let world::Running { shutdown, join, .. } = world::launch(config).await;

    // Watch the player's saved gifts for each collectible's arrival.
    let watcher = {
        let sim = sim.clone();
        let want: std::collections::HashSet<i64> = items.iter().map(|i| i.1).collect();
        tokio::spawn(async move {
            let mut arrived: HashMap<i64, Instant> = HashMap::new();
            while arrived.len() < want.len() {
                let now = Instant::now();
                for g in sim.saved_gifts(player).unwrap_or_default() {
                    if let Some(u) = g.unique
                        && want.contains(&u.id)
                    {
                        arrived.entry(u.id).or_insert(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            arrived
        })
    };
    let first = Instant::now();
    let mut requested = HashMap::new();
    for (i, (msg_id, collectible)) in items.iter().enumerate() {
        if let Some(r) = rate {
            let due = first + Duration::from_secs_f64(i as f64 / r);
            tokio::time::sleep_until(due.into()).await;
        }
        requested.insert(*collectible, Instant::now());
        store
            .create_withdrawal(player, ItemKey::new(deposit, *msg_id))
            .await
            .expect("request created");
    }
    let arrived = tokio::time::timeout(Duration::from_secs(300), watcher)
        .await
        .expect("every gift arrives within 5 minutes")
        .expect("watcher");
    let mut latencies: Vec<Duration> = arrived
        .iter()
        .map(|(c, at)| at.saturating_duration_since(requested[c]))
        .collect();
    latencies.sort();
    let last = arrived.values().max().copied().unwrap_or(first);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), join).await;
    sim.shutdown().await;
    Phase {
        rate: n as f64 / last.duration_since(first).as_secs_f64().max(1e-9),
        latencies,
    }
}
