//! A store backend as the tests see it: the embedded SQLite file or PostgreSQL behind the
//! PostgREST-compatible server, fresh store handles on it, and what can only be read or written
//! beside the store (SQL on the file or as the database superuser).

use std::sync::Arc;
use std::time::Duration;

use giftd::config::SupabaseConfig;
use giftd::secret::Secret;
use giftd::store::Store;
use giftd::store::sqlite::SqliteStore;
use giftd::store::supabase::SupabaseStore;

use super::env::{env, psql};

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

    /// A connection to the embedded store's file, beside the store.
    async fn sqlite_conn(&self) -> libsql::Connection {
        libsql::Builder::new_local(self.sqlite_path().unwrap())
            .build()
            .await
            .unwrap()
            .connect()
            .unwrap()
    }

    /// Rows of `sync_logs` for one deposit account, read beside the store (the store has no
    /// call that lists them).
    pub async fn count_sync_logs(&self, account: i64) -> i64 {
        match self {
            Backend::Sqlite { .. } => {
                let conn = self.sqlite_conn().await;
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
                let conn = self.sqlite_conn().await;
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
                self.sqlite_conn()
                    .await
                    .execute_batch(sqlite)
                    .await
                    .unwrap();
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
