//! Side by side: the same burst of gifts written into the same PostgREST two
//! ways, in one run.
//!
//! - one HTTP request per gift, as a supabase-js seed system writes them:
//!   `POST /inventory?on_conflict=account_id,msg_id` with `Prefer: resolution=merge-duplicates`,
//!   one row per request; once one after the other (a `for` loop with `await`, what such code
//!   usually does), once with 8 requests in flight;
//! - giftd's mirror (`giftd::mirror`, the code `giftd run` runs: group commit, batches of up to
//!   500, one `giftd_apply_batch` call per batch, which also writes each deposit's ledger row).
//!
//! Every way writes the same rows (held, owner set, the same gift kind, stars and dates) into its
//! own deposit account (random ids, so runs never collide); the users and the gift kind the
//! foreign keys need are inserted first, outside the timings. The whole burst is queued at once:
//! a gift's latency runs from that instant (when it was handed over) to the response that
//! committed its row.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use giftd::gift::{GiftType, Item, ItemKey, Owner, Status};
use giftd::mirror::{Change, Committed};
use serde_json::json;
use tokio::sync::broadcast;

/// Requests in flight for the concurrent one-request-per-gift way.
pub const CONCURRENCY: usize = 8;
const PLAYERS: usize = 50;

pub struct Way {
    pub name: String,
    pub gifts: usize,
    pub committed: usize,
    pub elapsed: Duration,
    /// Sorted queued-to-committed latencies.
    pub samples: Vec<Duration>,
    pub requests: u64,
}

impl Way {
    pub fn rate(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64()
    }
    pub fn p(&self, q: f64) -> Duration {
        super::percentile(&self.samples, q)
    }
}

pub struct SideBySide {
    pub ways: Vec<Way>,
}

struct Rest {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Rest {
    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<(), String> {
        let resp = self
            .http
            .post(format!("{}/{path}", self.url.trim_end_matches('/')))
            .header("apikey", &self.key)
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Content-Type", "application/json")
            .header("Prefer", "resolution=merge-duplicates,return=minimal")
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            Err(format!(
                "{status}: {}",
                resp.text().await.unwrap_or_default()
            ))
        }
    }
}

fn row(account: i64, msg_id: i32, owner: i64, gift_id: i64, at: i64) -> serde_json::Value {
    json!({
        "account_id": account,
        "msg_id": msg_id,
        "owner_id": owner,
        "gift_id": gift_id,
        "stars": 15,
        "status": "held",
        "received_at": at,
    })
}

pub async fn run(store: &super::StoreEnv, n: usize) -> SideBySide {
    let rest = Arc::new(Rest {
        http: reqwest::Client::new(),
        url: store.rest_url.clone(),
        key: store.key.clone(),
    });
    // Random ids: Telegram user ids stay below 2^40.
    let base = 1_000_000_000 + (rand::random::<u64>() % 900_000_000_000) as i64;
    let players: Vec<i64> = (0..PLAYERS as i64).map(|i| base + 10 + i).collect();
    let gift_id = 7_000_000_000_000 + (rand::random::<u32>() as i64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    // The rows the foreign keys need, before any timing.
    let users: Vec<_> = players.iter().map(|id| json!({ "id": id })).collect();
    rest.post("users?on_conflict=id", &json!(users))
        .await
        .expect("PostgREST takes the users");
    rest.post(
        "gifts?on_conflict=gift_id",
        &json!([{ "gift_id": gift_id, "title": "bench f", "stars": 15, "is_unique": false }]),
    )
    .await
    .expect("PostgREST takes the gift kind");

    let mut ways = Vec::new();
    ways.push(per_request(&rest, base, &players, gift_id, now, n, 1).await);
    ways.push(per_request(&rest, base + 1, &players, gift_id, now, n, CONCURRENCY).await);
    ways.push(mirror(store, base + 2, &players, gift_id, now, n).await);
    SideBySide { ways }
}

async fn per_request(
    rest: &Arc<Rest>,
    account: i64,
    players: &[i64],
    gift_id: i64,
    now: i64,
    n: usize,
    concurrency: usize,
) -> Way {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let queued = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let rest = Arc::clone(rest);
        let next = Arc::clone(&next);
        let failures = Arc::clone(&failures);
        let players = players.to_vec();
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return done;
                }
                let body = row(
                    account,
                    i as i32 + 1,
                    players[i % players.len()],
                    gift_id,
                    now,
                );
                match rest
                    .post("inventory?on_conflict=account_id,msg_id", &body)
                    .await
                {
                    Ok(()) => done.push(queued.elapsed()),
                    Err(e) => {
                        if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("f: a per-gift upsert failed: {e}");
                        }
                    }
                }
            }
        }));
    }
    let mut samples = Vec::with_capacity(n);
    for w in workers {
        samples.extend(w.await.expect("worker did not panic"));
    }
    let elapsed = queued.elapsed();
    samples.sort();
    Way {
        name: if concurrency == 1 {
            "one upsert per gift, sequential".into()
        } else {
            format!("one upsert per gift, {concurrency} in flight")
        },
        gifts: n,
        committed: samples.len(),
        elapsed,
        samples,
        requests: n as u64,
    }
}

async fn mirror(
    store: &super::StoreEnv,
    account: i64,
    players: &[i64],
    gift_id: i64,
    now: i64,
    n: usize,
) -> Way {
    let config = giftd::config::Config::parse_str(
        &format!(
            "[telegram]\napi_id = 1\napi_hash = \"bench-hash\"\n\
             [supabase]\nrest_url = \"{}\"\nservice_role_key = \"{}\"\n",
            store.rest_url, store.key
        ),
        "bench f config",
        &|k| std::env::var(k).ok(),
    )
    .expect("the bench configuration is valid");
    let db = giftd::store::open(&config.store)
        .await
        .expect("the store opens");
    let health = Arc::new(giftd::health::Health::new());
    let (commits_tx, mut commits_rx) = broadcast::channel::<Committed>(4096);
    let (handle, task) =
        giftd::mirror::channel(db, config.mirror.clone(), Arc::clone(&health), commits_tx);
    let task = tokio::spawn(task.run());
    let gift_type = GiftType {
        gift_id,
        title: Some("bench f".into()),
        stars: 15,
        unique: false,
    };
    let collector = tokio::spawn(async move {
        let mut at = Vec::with_capacity(n);
        let mut batches = 0u64;
        while at.len() < n {
            match commits_rx.recv().await {
                Ok(c) => {
                    batches += 1;
                    at.extend(c.deposits.iter().map(|k: &ItemKey| (k.msg_id, c.at)));
                }
                Err(broadcast::error::RecvError::Lagged(l)) => {
                    eprintln!("f: commit log lagged by {l} batches");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        (at, batches)
    });
    let start = Instant::now();
    let mut queued = vec![start; n + 1];
    for i in 0..n {
        let item = Item {
            key: ItemKey::new(account, i as i32 + 1),
            owner: Owner::User(players[i % players.len()]),
            gift_id,
            stars: 15,
            unique: None,
            status: Status::Held,
            received_at: now,
            convert_stars: None,
            transfer_stars: None,
            can_transfer_at: None,
            upgraded_from: None,
        };
        queued[i + 1] = Instant::now();
        handle
            .send(Change::Deposit {
                item,
                gift_type: gift_type.clone(),
            })
            .await
            .expect("the mirror runs");
    }
    let (at, batches) = tokio::time::timeout(Duration::from_secs(300), collector)
        .await
        .expect("the mirror commits the burst within 5 minutes")
        .expect("collector did not panic");
    let last = at.iter().map(|(_, t)| *t).max().unwrap_or(start);
    let mut samples: Vec<Duration> = at
        .iter()
        .map(|(m, t)| t.duration_since(queued[*m as usize]))
        .collect();
    samples.sort();
    drop(handle);
    let _ = task.await;
    Way {
        name: "giftd's mirror (group commit, batches <= 500)".into(),
        gifts: n,
        committed: samples.len(),
        elapsed: last.duration_since(start),
        samples,
        requests: batches,
    }
}

pub fn print(f: &SideBySide) {
    println!();
    println!(
        "f. side by side: the same {} gifts into the same PostgREST, queued at once",
        f.ways.first().map_or(0, |w| w.gifts)
    );
    println!(
        "{:<50} {:>9} {:>10} {:>9} {:>10} {:>10} {:>10}",
        "way", "committed", "requests", "gifts/s", "p50", "p99", "max"
    );
    for w in &f.ways {
        println!(
            "{:<50} {:>9} {:>10} {:>9.0} {:>10} {:>10} {:>10}",
            w.name,
            w.committed,
            w.requests,
            w.rate(),
            super::ms(w.p(0.50)),
            super::ms(w.p(0.99)),
            super::ms(w.p(1.0)),
        );
    }
    if let Some(m) = f.ways.last() {
        for w in &f.ways[..f.ways.len() - 1] {
            println!(
                "giftd vs {:<41} throughput x{:.1}, p99 {:.1}x lower",
                w.name,
                m.rate() / w.rate(),
                w.p(0.99).as_secs_f64() / m.p(0.99).as_secs_f64(),
            );
        }
    }
}
