//! Withdrawal latency when another process makes the request: from the request (the web app's
//! `request_withdrawal` through PostgREST, or the CLI's `create_withdrawal`) to the gift in the
//! player's account in tgsim, at default settings (`withdraw.poll_interval` = 1 s), one free
//! collectible transfer at a time at 10 requests/s.
//!
//! ```text
//! cargo bench --bench wake                           # embedded store (the CLI's way)
//! scripts/test-env.sh -- cargo bench --bench wake    # and Supabase: web RPC and CLI, with
//!                                                    # and without supabase.listen_url
//! cargo bench --bench wake -- --requests 100         # fewer per phase
//! ```
//!
//! The real `Daemon` runs against tgsim (real MTProto, the real grammers client). The request
//! comes from a second store handle, as from another process: on the embedded store it wakes
//! the daemon through its wake-up socket; on Supabase the `withdrawals_announce` trigger
//! notifies the daemon's LISTEN connection when `listen_url` is set, and the poll finds it
//! otherwise (the phase "poll only" is the figure before the wake-up path). The latency ends
//! when tgsim lists the collectible in the player's saved gifts (read every 2 ms). A benchmark,
//! not a test: it prints figures.

#[path = "parts/world.rs"]
mod world;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use world::{ms, pct};

use giftd::config::Config;
use giftd::gift::ItemKey;
use giftd::store::Store;

const COMMAND: &str = "scripts/test-env.sh -- cargo bench --bench wake";
const RATE: f64 = 10.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Embedded,
    Supabase { listen: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `giftd withdrawals request`: `Store::create_withdrawal` on a handle of its own.
    Cli,
    /// The web app: `POST /rpc/request_withdrawal` with the player's JWT.
    Web,
}

fn main() {
    let mut requests = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--requests" {
            requests = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--requests needs a number");
        }
    }
    let supabase = std::env::var("GIFTD_TEST_REST_URL").is_ok_and(|v| !v.is_empty());
    let mut phases = vec![("embedded, CLI", Backend::Embedded, Via::Cli)];
    if supabase {
        phases.extend([
            (
                "supabase + listen_url, web RPC",
                Backend::Supabase { listen: true },
                Via::Web,
            ),
            (
                "supabase + listen_url, CLI",
                Backend::Supabase { listen: true },
                Via::Cli,
            ),
            (
                "supabase, poll only (no listen_url), web RPC",
                Backend::Supabase { listen: false },
                Via::Web,
            ),
        ]);
    } else {
        eprintln!("GIFTD_TEST_REST_URL not set: Supabase phases skipped (run through {COMMAND})");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let mut results = Vec::new();
    for (name, backend, via) in phases {
        let lat = runtime.block_on(run(requests, backend, via));
        results.push((name, lat));
    }
    println!(
        "\nrequest -> gift at the player, {requests} free collectible transfers per phase at \
         {RATE} requests/s, withdraw.poll_interval = 1s (default) ({COMMAND})\n"
    );
    println!("| phase | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (name, l) in &results {
        println!(
            "| {name} | {} | {} | {} | {} |",
            ms(pct(l, 0.50)),
            ms(pct(l, 0.90)),
            ms(pct(l, 0.99)),
            ms(pct(l, 1.0)),
        );
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: run through {COMMAND}"))
}

/// An HS256 JWT for `player`, signed with the test environment's secret (what the web app's
/// Supabase session carries).
fn player_jwt(player: i64) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 3600;
    let claims = serde_json::json!({
        "role": "authenticated", "telegram_id": player.to_string(), "exp": exp,
    });
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(env("GIFTD_TEST_JWT_SECRET").as_bytes())
            .expect("any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

async fn run(n: usize, backend: Backend, via: Via) -> Vec<Duration> {
    let sim = world::start_sim().await;
    let user = |name: &str| world::user(&sim, name, 1_000_000_000);
    let deposit = user("deposit");
    let player = user("player");
    let items = world::collectibles(&sim, player, deposit, n);
    let dir = tempfile::tempdir().expect("temporary directory");
    let session = dir.path().join("deposit.session");
    world::write_session(&sim, deposit, &session).await;
    let store_section = match backend {
        Backend::Embedded => String::new(),
        Backend::Supabase { listen } => format!(
            "[supabase]\nrest_url = \"{}\"\nservice_role_key = \"{}\"\n{}",
            env("GIFTD_TEST_REST_URL"),
            env("GIFTD_TEST_SERVICE_KEY"),
            if listen {
                format!("listen_url = \"{}\"\n", env("GIFTD_TEST_PG_URL"))
            } else {
                String::new()
            }
        ),
    };
    let text = format!(
        "[telegram]\napi_id = 1\napi_hash = \"bench-hash\"\nsession_file = \"{}\"\n\
         [store]\nstate_dir = \"{}\"\n{store_section}[health]\nlisten = \"127.0.0.1:0\"\n",
        session.display(),
        dir.path().display(),
    );
    let config = Config::parse_str(&text, "bench config", &|_| None)
        .expect("the bench configuration is valid");
    let world::Running { shutdown, join, .. } = world::launch(config.clone()).await;
    // The other process's handle on the same store.
    let store: Arc<dyn Store> = giftd::store::open_shared(&config.store)
        .await
        .expect("store opens");
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.load_items(deposit).await.map_or(0, |i| i.len()) < n {
        assert!(
            Instant::now() < deadline,
            "the deposits never reached the store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

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
    let http = reqwest::Client::new();
    let jwt = matches!(backend, Backend::Supabase { .. }).then(|| player_jwt(player));
    let first = Instant::now();
    let mut requested = HashMap::new();
    for (i, (msg_id, collectible)) in items.iter().enumerate() {
        let due = first + Duration::from_secs_f64(i as f64 / RATE);
        tokio::time::sleep_until(due.into()).await;
        requested.insert(*collectible, Instant::now());
        match via {
            Via::Cli => {
                store
                    .create_withdrawal(player, ItemKey::new(deposit, *msg_id))
                    .await
                    .expect("request created");
            }
            Via::Web => {
                let status = http
                    .post(format!(
                        "{}/rpc/request_withdrawal",
                        env("GIFTD_TEST_REST_URL")
                    ))
                    .header("apikey", env("GIFTD_TEST_ANON_KEY"))
                    .bearer_auth(jwt.as_deref().expect("a supabase phase"))
                    .json(&serde_json::json!({ "p_account_id": deposit, "p_msg_id": msg_id }))
                    .send()
                    .await
                    .expect("postgrest answers")
                    .status();
                assert!(status.is_success(), "request_withdrawal: {status}");
            }
        }
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
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), join).await;
    sim.shutdown().await;
    latencies
}
