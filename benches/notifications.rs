//! Notifications outbox figures: what one claim of a batch and its report cost when the
//! table is big: a million finished rows (30 days of retention at a busy desk) and a backlog of
//! pending ones (the bot was down).
//!
//! ```text
//! cargo bench --bench notifications                          # the embedded store
//! scripts/test-env.sh -- cargo bench --bench notifications   # and Supabase (PostgreSQL + postrust)
//! (docs/performance.md quotes a run with `--profile dev`)
//! cargo bench --bench notifications -- --finished 1000000 --backlog 100000 --rounds 200 --batch 100
//! ```
//!
//! The rows are written beside the store (SQL), then each round is one
//! `Store::claim_notifications(batch)` followed by one `Store::finish_notifications(ids, Sent)`,
//! through the real stores (Supabase: HTTP to postrust, one RPC each). A benchmark, not a test:
//! it prints figures.

use std::time::{Duration, Instant};

use giftd::store::{NotificationOutcome, Store};

const COMMAND: &str = "cargo bench --bench notifications";

struct Args {
    finished: u64,
    backlog: u64,
    rounds: usize,
    batch: usize,
}

fn main() {
    let mut args = Args {
        finished: 1_000_000,
        backlog: 100_000,
        rounds: 200,
        batch: 100,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(a) = argv.next() {
        let mut number = |what: &str| -> u64 {
            argv.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--finished" => args.finished = number("--finished"),
            "--backlog" => args.backlog = number("--backlog"),
            "--rounds" => args.rounds = number("--rounds") as usize,
            "--batch" => args.batch = number("--batch") as usize,
            _ => {} // cargo bench passes `--bench`
        }
    }
    assert!(
        (args.rounds * args.batch) as u64 <= args.backlog,
        "the backlog must hold rounds x batch rows"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let mut results = Vec::new();
    runtime.block_on(async {
        results.push(("sqlite", sqlite(&args).await));
        match (
            std::env::var("GIFTD_TEST_REST_URL"),
            std::env::var("GIFTD_TEST_PG_URL"),
            std::env::var("GIFTD_TEST_SERVICE_KEY"),
        ) {
            (Ok(rest), Ok(pg), Ok(key)) => {
                results.push(("supabase", supabase(&args, &rest, &pg, &key).await))
            }
            _ => eprintln!(
                "GIFTD_TEST_REST_URL is not set: Supabase skipped (run `scripts/test-env.sh -- \
                 {COMMAND}` for it)"
            ),
        }
    });
    println!(
        "\nnotifications: {} finished rows, {} pending, {} rounds of claim {} + finish ({COMMAND})\n",
        args.finished, args.backlog, args.rounds, args.batch
    );
    println!("| store | claim p50 | p90 | p99 | max | finish p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, (claims, finishes)) in &mut results {
        claims.sort_unstable();
        finishes.sort_unstable();
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            ms(pct(claims, 0.50)),
            ms(pct(claims, 0.90)),
            ms(pct(claims, 0.99)),
            ms(pct(claims, 1.0)),
            ms(pct(finishes, 0.50)),
            ms(pct(finishes, 0.90)),
            ms(pct(finishes, 0.99)),
            ms(pct(finishes, 1.0)),
        );
    }
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `rounds` of claim + finish; every claim must hand out a full batch.
async fn rounds(store: &dyn Store, args: &Args) -> (Vec<Duration>, Vec<Duration>) {
    let (mut claims, mut finishes) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let started = Instant::now();
        let got = store
            .claim_notifications(args.batch, Duration::from_secs(60))
            .await
            .expect("claim");
        claims.push(started.elapsed());
        assert_eq!(got.len(), args.batch, "a full batch from the backlog");
        let ids: Vec<i64> = got.iter().map(|n| n.id).collect();
        let started = Instant::now();
        let n = store
            .finish_notifications(&ids, &NotificationOutcome::Sent)
            .await
            .expect("finish");
        finishes.push(started.elapsed());
        assert_eq!(n as usize, ids.len());
    }
    (claims, finishes)
}

async fn sqlite(args: &Args) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("giftd.sqlite3");
    let store = giftd::store::sqlite::SqliteStore::open(&path)
        .await
        .expect("store opens");
    let db = libsql::Builder::new_local(&path)
        .build()
        .await
        .expect("file opens");
    let conn = db.connect().expect("connection");
    let now = now_ms();
    let started = Instant::now();
    for (state, n, offset) in [
        ("sent", args.finished, 0),
        ("pending", args.backlog, args.finished),
    ] {
        conn.execute(
            "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < ?1)
             INSERT INTO notifications (dedupe_key, kind, user_id, account_id, msg_id, gift_id,
               stars, state, created_at_ms, finished_at_ms)
             SELECT 'bench:' || (n + ?2), 'deposit', 1000 + n % 5000, 1, n, 42, 15, ?3, ?4,
               CASE WHEN ?3 = 'sent' THEN ?4 END
             FROM x",
            libsql::params![n as i64, offset as i64, state, now],
        )
        .await
        .expect("rows written");
    }
    eprintln!("sqlite: rows written in {:?}", started.elapsed());
    rounds(&store, args).await
}

async fn supabase(args: &Args, rest: &str, pg: &str, key: &str) -> (Vec<Duration>, Vec<Duration>) {
    let store = giftd::store::supabase::SupabaseStore::new(&giftd::config::SupabaseConfig {
        rest_url: rest.to_owned(),
        service_role_key: giftd::secret::Secret::new(key),
        request_timeout: Duration::from_secs(60),
        listen_url: None,
    })
    .expect("store");
    let started = Instant::now();
    let run = rand::random::<u32>();
    psql(
        pg,
        &format!(
            "insert into public.notifications (dedupe_key, kind, user_id, account_id, msg_id,
               gift_id, stars, state, finished_at)
             select 'bench:{run}:' || n, 'deposit', 1000 + n % 5000, 1, n, 42, 15, 'sent', now()
             from generate_series(1, {}) n;
             insert into public.notifications (dedupe_key, kind, user_id, account_id, msg_id,
               gift_id, stars)
             select 'bench:{run}:p' || n, 'deposit', 1000 + n % 5000, 1, n, 42, 15
             from generate_series(1, {}) n;
             analyze public.notifications;",
            args.finished, args.backlog
        ),
    );
    eprintln!("supabase: rows written in {:?}", started.elapsed());
    let figures = rounds(&store, args).await;
    psql(
        pg,
        &format!("delete from public.notifications where dedupe_key like 'bench:{run}:%'"),
    );
    figures
}

fn psql(url: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
