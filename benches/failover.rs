//! Scale-out figures: `giftd run` processes sharing one PostgreSQL store
//! (behind the PostgREST-compatible server) and one tgsim with two deposit accounts.
//!
//! ```text
//! scripts/test-env.sh -- cargo bench --bench failover            # -- --kills 20 --gifts 2000
//! scripts/test-env.sh -- cargo bench --bench failover -- --ttl 15s --renew 5s --kills 5
//! ```
//!
//! - failover: two instances (one holds the account, one stands by), lease TTL 1.5 s renewed
//!   every 0.5 s unless `--ttl`/`--renew` say otherwise; the holder is killed with SIGKILL, a
//!   gift is sent to its account at the same instant, and the time to that gift's credit
//!   committed in the store by the new holder is taken; the killed process is started again as
//!   the standby and waited for before the next kill. p50 and max over `--kills` (20) kills.
//! - throughput: `--gifts` (2,000) gifts to each of the two accounts, sent as fast as tgsim takes
//!   them, from the first send to the last row in the store: one instance serving both
//!   accounts, then two instances each configured with one account.
//!
//! A benchmark, not a test: it prints figures.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::config::SupabaseConfig;
use giftd::secret::Secret;
use giftd::store::Store;
use giftd::store::supabase::SupabaseStore;
use tgsim::{Account, CreateUser, SendGift, Sim, SimConfig};

const COMMAND: &str = "scripts/test-env.sh -- cargo bench --bench failover";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} is not set: run this benchmark inside the test environment: {COMMAND}");
        std::process::exit(2)
    })
}

struct Args {
    kills: usize,
    gifts: usize,
    ttl: String,
    renew: String,
}

fn main() {
    let mut a = Args {
        kills: 20,
        gifts: 2_000,
        ttl: "1500ms".into(),
        renew: "500ms".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--kills" => a.kills = value().parse().expect("--kills N"),
            "--gifts" => a.gifts = value().parse().expect("--gifts N"),
            "--ttl" => a.ttl = value(),
            "--renew" => a.renew = value(),
            _ => {} // cargo bench passes `--bench`
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    runtime.block_on(run(a));
}

/// One `giftd run` process and its health port.
struct Instance {
    child: Child,
    port: u16,
}

impl Instance {
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Setup {
    sim: Sim,
    dir: tempfile::TempDir,
    alpha: Account,
    beta: Account,
    players: Vec<i64>,
    store: Arc<dyn Store>,
    rest_url: String,
    key: String,
    ttl: String,
    renew: String,
    next_instance: usize,
}

impl Setup {
    async fn new(a: &Args) -> Setup {
        let sim = Sim::start(SimConfig {
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
                stars: 1_000_000,
                ..Default::default()
            })
            .expect("user created")
        };
        let alpha = user(format!("alpha{tag}"));
        let beta = user(format!("beta{tag}"));
        let players = (0..8).map(|i| user(format!("p{i}x{tag}")).id).collect();
        let rest_url = env("GIFTD_TEST_REST_URL");
        let key = env("GIFTD_TEST_SERVICE_KEY");
        let store: Arc<dyn Store> = Arc::new(
            SupabaseStore::new(&SupabaseConfig {
                rest_url: rest_url.clone(),
                service_role_key: Secret::new(key.clone()),
                request_timeout: Duration::from_secs(20),
                listen_url: None,
            })
            .expect("store"),
        );
        Setup {
            sim,
            dir: tempfile::tempdir().unwrap(),
            alpha,
            beta,
            players,
            store,
            rest_url,
            key,
            ttl: a.ttl.clone(),
            renew: a.renew.clone(),
            next_instance: 0,
        }
    }

    async fn session(&self, account: i64, path: &Path) {
        let _ = std::fs::remove_file(path);
        self.sim.write_session(account, path).await.unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Starts `giftd run` serving `accounts` (name, id).
    async fn start(&mut self, accounts: &[(&str, i64)]) -> Instance {
        let n = self.next_instance;
        self.next_instance += 1;
        let dir = self.dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "[telegram]\napi_id = 1\napi_hash = \"bench\"\n\
             [store]\nstate_dir = \"{}\"\n\
             [supabase]\nrest_url = \"{}\"\nservice_role_key = \"{}\"\n\
             [lease]\nttl = \"{}\"\nrenew_every = \"{}\"\n\
             [health]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n",
            dir.display(),
            self.rest_url,
            self.key,
            self.ttl,
            self.renew,
        );
        for (name, id) in accounts {
            let session = dir.join(format!("{name}-{n}.session"));
            self.session(*id, &session).await;
            config.push_str(&format!(
                "[account.{name}]\nsession_file = \"{}\"\n",
                session.display()
            ));
        }
        let path = dir.join(format!("instance-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join(format!("instance-{n}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_giftd"))
            .arg("--config")
            .arg(&path)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("giftd starts");
        Instance { child, port }
    }

    fn send(&self, to: i64, i: usize) -> i32 {
        self.sim
            .send_gift(SendGift {
                from: self.players[i % self.players.len()],
                to,
                gift_id: self.sim.gift_catalogue()[0].id,
                hide_name: false,
                message: None,
            })
            .expect("gift sent")
            .msg_id
    }

    async fn stored(&self, account: i64) -> usize {
        self.store
            .load_items(account)
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }
}

/// The `/readyz` body of the instance on `port` ("" when it does not answer).
async fn readyz(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    if s.write_all(b"GET /readyz HTTP/1.1\r\n\r\n").await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn run(a: Args) {
    let mut s = Setup::new(&a).await;

    // Failover.
    let alpha = ("alpha", s.alpha.id);
    let mut instances = [s.start(&[alpha]).await, s.start(&[alpha]).await];
    let mut samples = Vec::new();
    for _ in 0..a.kills {
        // Both up; find the holder.
        let mut holder = None;
        wait_until(
            "a holder and a standby",
            Duration::from_secs(60),
            async || {
                let mut serving = None;
                let mut standby = false;
                for (i, inst) in instances.iter().enumerate() {
                    let body = readyz(inst.port).await;
                    if body.contains(": serving") {
                        serving = Some(i);
                    }
                    standby |= body.contains(": standby");
                }
                holder = serving;
                serving.is_some() && standby
            },
        )
        .await;
        let h = holder.expect("a holder");
        let before = s.stored(s.alpha.id).await;
        let t0 = Instant::now();
        instances[h].kill9();
        s.send(s.alpha.id, samples.len());
        wait_until(
            "the new holder credits the gift",
            Duration::from_secs(120),
            async || s.stored(s.alpha.id).await > before,
        )
        .await;
        samples.push(t0.elapsed());
        instances[h] = s.start(&[alpha]).await;
    }
    drop(instances);
    samples.sort();

    // Throughput: one instance with both accounts, then two with one each.
    let both = [("alpha", s.alpha.id), ("beta", s.beta.id)];
    let one = {
        let inst = s.start(&both).await;
        let r = burst(&s, a.gifts, &[&inst]).await;
        drop(inst);
        r
    };
    let two = {
        let i1 = s.start(&both[..1]).await;
        let i2 = s.start(&both[1..]).await;
        let r = burst(&s, a.gifts, &[&i1, &i2]).await;
        drop((i1, i2));
        r
    };

    println!(
        "\nfailover: kill -9 of the holder -> the new holder's first credit committed, {} kills, \
         lease ttl {} renewed every {} ({COMMAND})\n",
        samples.len(),
        a.ttl,
        a.renew
    );
    println!("| p50 | p90 | max | min |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} |",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(samples[samples.len() - 1]),
        ms(samples[0])
    );
    println!(
        "\nthroughput: {} gifts to each of two deposit accounts, first send to last row in the store\n",
        a.gifts
    );
    println!("| instances | gifts | seconds | gifts/s |");
    println!("|---|---|---|---|");
    for (name, (n, secs)) in [
        ("one, serving both accounts", one),
        ("two, one account each", two),
    ] {
        println!("| {name} | {n} | {secs:.2} | {:.0} |", n as f64 / secs);
    }
}

/// Sends `gifts` to each account once every instance serves its accounts; seconds from the
/// first send until the store holds them all.
async fn burst(s: &Setup, gifts: usize, instances: &[&Instance]) -> (usize, f64) {
    wait_until(
        "every account served",
        Duration::from_secs(60),
        async || {
            let mut serving = 0;
            for inst in instances {
                serving += readyz(inst.port).await.matches(": serving").count();
            }
            serving == 2
        },
    )
    .await;
    let base = (s.stored(s.alpha.id).await, s.stored(s.beta.id).await);
    let t0 = Instant::now();
    let batch = 100;
    let mut sent = 0;
    while sent < gifts {
        let n = batch.min(gifts - sent);
        s.sim.burst(n, &s.players, s.alpha.id).expect("burst");
        s.sim.burst(n, &s.players, s.beta.id).expect("burst");
        sent += n;
    }
    wait_until(
        "every gift in the store",
        Duration::from_secs(600),
        async || {
            s.stored(s.alpha.id).await >= base.0 + gifts
                && s.stored(s.beta.id).await >= base.1 + gifts
        },
    )
    .await;
    (2 * gifts, t0.elapsed().as_secs_f64())
}
