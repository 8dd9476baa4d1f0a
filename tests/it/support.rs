//! What the integration tests share: the environment started by `scripts/test-env.sh`, ids that
//! never collide between tests running in parallel against one database, player JWTs, and the
//! store backends the contract suite runs against.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use giftd::config::SupabaseConfig;
use giftd::secret::Secret;
use giftd::store::Store;
use giftd::store::sqlite::SqliteStore;
use giftd::store::supabase::SupabaseStore;

/// A variable exported by `scripts/test-env.sh`. Panics with the way to get it: a test that
/// needs the real environment fails, it never passes by skipping.
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs the real PostgreSQL + PostgREST environment; run \
             it through scripts/test-env.sh, e.g. `scripts/test-env.sh -- cargo nextest run \
             --workspace` (or `scripts/test.sh` for everything)"
        ),
    }
}

/// A fresh id (deposit account, user, collectible) no other test uses, even in another process
/// against the same database.
pub fn unique_id() -> i64 {
    // 2^40 .. 2^41 + 2^40: far above the small ids tests write by hand, below i64 overflow.
    (1_i64 << 40) + (rand::random::<u64>() >> 24) as i64
}

/// An HS256 JWT signed with the environment's secret, e.g. a player's token
/// `{"role": "authenticated", "app_metadata": {"telegram_id": "42"}}`.
pub fn mint_jwt(claims: serde_json::Value) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut claims = claims;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    claims["exp"] = exp.into();
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(env("GIFTD_TEST_JWT_SECRET").as_bytes())
            .unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Runs one SQL command as the database superuser and returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A psql session kept open (its stdin is the script), e.g. to hold a lock.
pub fn psql_session(url: &str, script: &str) -> Child {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql runs");
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(script.as_bytes()).unwrap();
    stdin.flush().unwrap();
    child
}

/// Serialises the tests that stop the chaos database or rewrite its schema version within one
/// process (`cargo test`); nextest runs them in the `chaos-db` group, one at a time.
pub async fn chaos_guard() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A store backend as the contract suite sees it: a database, and fresh store handles on it
/// (two handles behave like two giftd processes).
pub enum Backend {
    Sqlite {
        dir: tempfile::TempDir,
        busy_timeout: Duration,
    },
    Supabase {
        rest_url: String,
        key: String,
        /// Superuser URL of the same database, for what only psql can do.
        pg_url: String,
        /// `stop` / `start` command of the database, when this is the chaos instance.
        pg_ctl: Option<String>,
    },
}

impl Backend {
    pub fn sqlite() -> Self {
        Backend::Sqlite {
            dir: tempfile::tempdir().unwrap(),
            busy_timeout: Duration::from_secs(30),
        }
    }

    /// An embedded store whose writes give up quickly on a locked file.
    pub fn sqlite_impatient() -> Self {
        Backend::Sqlite {
            dir: tempfile::tempdir().unwrap(),
            busy_timeout: Duration::from_millis(300),
        }
    }

    /// The shared instance: every test uses its own account and user ids.
    pub fn supabase() -> Self {
        Backend::Supabase {
            rest_url: env("GIFTD_TEST_REST_URL"),
            key: env("GIFTD_TEST_SERVICE_KEY"),
            pg_url: env("GIFTD_TEST_PG_URL"),
            pg_ctl: None,
        }
    }

    /// The instance tests may stop or damage (hold [`chaos_guard`]).
    pub fn supabase_chaos() -> Self {
        Backend::Supabase {
            rest_url: env("GIFTD_TEST_CHAOS_REST_URL"),
            key: env("GIFTD_TEST_SERVICE_KEY"),
            pg_url: env("GIFTD_TEST_CHAOS_PG_URL"),
            pg_ctl: Some(env("GIFTD_TEST_CHAOS_PG_CTL")),
        }
    }

    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Backend::Sqlite { dir, .. } => Some(dir.path().join("state").join("giftd.sqlite3")),
            Backend::Supabase { .. } => None,
        }
    }

    /// Rows of `sync_logs` for one deposit account, read beside the store (the store has no
    /// call that lists them).
    pub async fn count_sync_logs(&self, account: i64) -> i64 {
        match self {
            Backend::Sqlite { .. } => {
                let db = libsql::Builder::new_local(self.sqlite_path().unwrap())
                    .build()
                    .await
                    .unwrap();
                let conn = db.connect().unwrap();
                let mut rows = conn
                    .query(
                        "SELECT count(*) FROM sync_logs WHERE account_id = ?1",
                        libsql::params![account],
                    )
                    .await
                    .unwrap();
                let row = rows.next().await.unwrap().expect("one row");
                row.get::<i64>(0).unwrap()
            }
            Backend::Supabase { pg_url, .. } => psql(
                pg_url,
                &format!("select count(*) from public.sync_logs where account_id = {account}"),
            )
            .parse()
            .expect("a count"),
        }
    }

    /// The `notifications` rows written for one Telegram user, oldest first, read beside the
    /// store (which only hands rows out through claims).
    pub async fn notifications_of(&self, user: i64) -> Vec<NoteRow> {
        let json = match self {
            Backend::Sqlite { .. } => {
                let db = libsql::Builder::new_local(self.sqlite_path().unwrap())
                    .build()
                    .await
                    .unwrap();
                let conn = db.connect().unwrap();
                let mut rows = conn
                    .query(
                        "SELECT coalesce(json_group_array(json_object('kind', kind,
                           'dedupe_key', dedupe_key, 'state', state, 'title', title,
                           'stars', stars, 'withdrawal_id', withdrawal_id,
                           'wait_reason', wait_reason, 'until_ms', until_ms, 'reason', reason,
                           'msg_id', msg_id)), '[]')
                         FROM (SELECT * FROM notifications WHERE user_id = ?1 ORDER BY id)",
                        libsql::params![user],
                    )
                    .await
                    .unwrap();
                let row = rows.next().await.unwrap().expect("one row");
                row.get::<String>(0).unwrap()
            }
            Backend::Supabase { pg_url, .. } => psql(
                pg_url,
                &format!(
                    "select coalesce(json_agg(json_build_object('kind', kind,
                       'dedupe_key', dedupe_key, 'state', state, 'title', title,
                       'stars', stars, 'withdrawal_id', withdrawal_id,
                       'wait_reason', wait_reason, 'until_ms', until_ms, 'reason', reason,
                       'msg_id', msg_id) order by id), '[]')
                     from public.notifications where user_id = {user}"
                ),
            ),
        };
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    /// Runs SQL beside the store: `sqlite` on the embedded file, `pg` on the database behind
    /// PostgREST (as its superuser).
    pub async fn execute(&self, sqlite: &str, pg: &str) {
        match self {
            Backend::Sqlite { .. } => {
                let db = libsql::Builder::new_local(self.sqlite_path().unwrap())
                    .build()
                    .await
                    .unwrap();
                db.connect().unwrap().execute_batch(sqlite).await.unwrap();
            }
            Backend::Supabase { pg_url, .. } => {
                psql(pg_url, pg);
            }
        }
    }

    /// A new store handle on this backend's database.
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite { busy_timeout, .. } => {
                let path = self.sqlite_path().unwrap();
                Arc::new(
                    SqliteStore::open_with_busy_timeout(&path, *busy_timeout)
                        .await
                        .unwrap(),
                )
            }
            Backend::Supabase { rest_url, key, .. } => {
                Arc::new(supabase_store(rest_url, key, Duration::from_secs(20)))
            }
        }
    }
}

pub fn supabase_store(rest_url: &str, key: &str, timeout: Duration) -> SupabaseStore {
    SupabaseStore::new(&SupabaseConfig {
        rest_url: rest_url.to_owned(),
        service_role_key: Secret::new(key),
        request_timeout: timeout,
        listen_url: None,
    })
    .unwrap()
}

/// Installs giftd's tracing layers for this test process once: the clock-storm counter (which
/// the daemon relies on to notice a host clock far ahead) and log output filtered by RUST_LOG.
pub fn init_tracing() {
    use tracing_subscriber::prelude::*;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
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
                    .with_test_writer()
                    .with_filter(filter),
            )
            .try_init();
    });
}

/// A TCP proxy on loopback in front of `target`, which a test can cut (every open connection
/// dropped, new ones closed at once, like a network partition) and restore. It puts one
/// process's database connection through a partition the others do not see.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    state: Arc<std::sync::Mutex<ProxyState>>,
    stop: tokio_util::sync::CancellationToken,
}

struct ProxyState {
    cut: bool,
    /// Cancelled on each cut: the connections opened before it.
    open: tokio_util::sync::CancellationToken,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(std::sync::Mutex::new(ProxyState {
            cut: false,
            open: tokio_util::sync::CancellationToken::new(),
        }));
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn({
            let state = state.clone();
            let stop = stop.clone();
            async move {
                loop {
                    let (mut inbound, _) = tokio::select! {
                        () = stop.cancelled() => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let (cut, open) = {
                        let s = state.lock().unwrap();
                        (s.cut, s.open.clone())
                    };
                    if cut {
                        drop(inbound);
                        continue;
                    }
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            () = open.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        }
                    });
                }
            }
        });
        Proxy { addr, state, stop }
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut = true;
        s.open.cancel();
        s.open = tokio_util::sync::CancellationToken::new();
    }

    pub fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

/// A `notifications` row as the tests inspect it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct NoteRow {
    pub kind: String,
    pub dedupe_key: String,
    pub state: String,
    pub title: Option<String>,
    pub stars: i64,
    pub withdrawal_id: Option<i64>,
    pub wait_reason: Option<String>,
    pub until_ms: Option<i64>,
    pub reason: Option<String>,
    pub msg_id: i32,
}

/// Runs each named `async fn name(backend: Backend)` of the calling module once per store, as
/// the tests `sqlite::name` and `supabase::name` (the caller imports `Backend`).
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::sqlite()).await
                }
            )*
        }
        mod supabase {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::supabase()).await
                }
            )*
        }
    };
}
