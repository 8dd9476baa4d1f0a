//! The embedded backend: one SQLite file in the state directory, the default when no Supabase
//! is configured. Same semantics as the Supabase backend (the contract suite runs against
//! both): each call is one transaction, replays change nothing, departures are checked against
//! [`Status::transition`](crate::gift::Status::transition).
//!
//! # Files
//!
//! This file holds [`SqliteStore`] (opening, the OS lock, `run`) and its [`Store`] impl, which
//! hands each call to the file of its table family, a function that takes the connection: `schema`
//! (the steps and versions, [`Store::check_write`]), `inventory`, `batch` ([`Store::apply_batch`]),
//! `ledger`, `withdrawals`, `lease` (and the fence), `link`, `notify`, `player`, `catalogue`,
//! `desk`, `sync_log`. `tx` holds what they share: the write transaction, the mapping of SQLite's
//! errors, the clock rows are stamped with.
//!
//! # Connection and transactions
//!
//! One connection per store, one operation at a time on it (a `Mutex`); other processes (a
//! command beside the daemon) are kept out by SQLite's own locks. The file is in WAL mode
//! (readers such as `giftd inventory` never block the daemon's writes), `synchronous = FULL`
//! (a committed batch survives a power cut: the ledger is money) and enforces foreign keys.
//! Every write runs in `write_tx`: `BEGIN IMMEDIATE` takes the write lock up front, so a busy
//! file fails before anything is done (after [`DEFAULT_BUSY_TIMEOUT`], with a retryable
//! [`StoreError::Busy`]); any error rolls back. Two claimers of notifications or requests never
//! share a row because each claim holds the write lock.
//!
//! # Schema steps
//!
//! The file migrates itself when opened, in one transaction: each step sets a version and is
//! the twin of a Supabase migration. A step is run again when a file's version was lowered by
//! hand, so every statement is idempotent; the columns a step adds are listed apart (SQLite has
//! no `ADD COLUMN IF NOT EXISTS`). Where Postgres changes a CHECK constraint in place, SQLite
//! rebuilds the table once, keeping every row, column and index: the requests table for the
//! withdrawal states (version 3), the inventory table for the `sold` and `burned` statuses
//! (version 10); the ledger has no kind constraint here. A file newer than this giftd is
//! refused ([`StoreError::SchemaTooNew`]).
//!
//! # Leases and the fence
//!
//! Lease times are this host's clock: one process uses the file, kept so by the OS lock. The
//! daemon opens the file with [`SqliteStore::open_exclusive`]: an exclusive `flock` on
//! `<file>.lock` (a separate file, because SQLite's POSIX locks on the database must not be
//! mixed with another kind), taken without waiting and holding the holder's pid, released by
//! the OS when the process dies (a crash never leaves it stale). A fenced write checks the
//! account's lease inside its own write transaction (`lease::check_fence`), so nothing of a
//! stale term is written.
//!
//! # Why libsql and not rusqlite
//!
//! grammers-session already links SQLite into giftd through `libsql` 0.10 (`libsql-ffi`, built
//! from libsql's SQLite fork). That archive exports the standard C names (`sqlite3_open_v2`,
//! `sqlite3_step`, ... 280 global `sqlite3_*` symbols, checked with `nm` on
//! `liblibsql.a`) but does not declare `links = "sqlite3"`, so cargo would not stop a bundled
//! `rusqlite` (`libsqlite3-sys`, `links = "sqlite3"`) from compiling a second `sqlite3.c` into
//! the same binary: two definitions of every `sqlite3_*` symbol, which is a link error at best
//! and two SQLite versions silently mixed (each with its own global state, e.g. POSIX lock
//! bookkeeping for the same file) at worst. A non-bundled rusqlite would instead bind to
//! whichever `sqlite3_*` the linker picks, likely libsql's. Using `libsql` directly gives one
//! SQLite in the binary, no new C build, and an API we already compile. Its cost: the local
//! `libsql` API is async in name only (each call runs SQLite on the calling thread), so every
//! operation here runs on tokio's blocking pool (`SqliteStore::run`), never on a runtime
//! worker.
//!
//! Must never: hold the connection across calls from two tasks at once (one `Mutex`), or leave
//! a transaction open after an error (every write goes through `tx::write_tx`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libsql::Connection;

use super::lease::{check_lease_args, millis};
use super::{
    BatchOutcome, ChangeBatch, Epoch, Lease, LeaseAnswer, LinkLabel, LinkOutcome, LinkToken,
    Notification, NotificationId, NotificationOutcome, OwnerStats, PlayerLanguage, ReplacedLink,
    RequestState, Store, StoreError, SyncLog, WebUserId, Withdrawal, WithdrawalFilter,
    WithdrawalId, WithdrawalMove, link_token_hash, link_token_ttl, new_link_token, now_ms,
};
use crate::gift::{GiftType, Item, ItemKey, LedgerEntry, Owner, UserId};
use crate::secret::Secret;

mod batch;
mod catalogue;
mod desk;
mod inventory;
mod lease;
mod ledger;
mod link;
mod notify;
mod player;
mod schema;
mod sync_log;
mod tx;
mod withdrawals;

use self::lease::{check_fence, read_lease};
use self::schema::{migrate, read_version};
use self::sync_log::insert_sync_log;
use self::tx::{sql_err, write_tx};
use self::withdrawals::{apply_withdrawal_move, load_withdrawal};

/// How long a write waits for another connection (another giftd process, `giftd inventory`)
/// to release the file before failing with a retryable [`StoreError::Busy`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The OS lock that keeps a second daemon off an embedded database: an exclusive `flock` on
/// `<file>.lock`, taken without waiting, released by the OS when the file is closed or the
/// process dies (a crash never leaves it stale). A separate file, because SQLite's own POSIX
/// locks on the database file must not be mixed with another kind on the same file.
fn lock_database(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Sqlite(format!("cannot open the lock file {}: {e}", lock.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|e| fail(&e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StoreError::InUse {
                path: path.to_owned(),
                lock,
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail(&e)),
    }
    // For the operator who finds the file: which process holds it.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

pub struct SqliteStore {
    /// Owns the open file; the connection below is only valid while it lives.
    _db: Arc<libsql::Database>,
    /// The one connection of this store (cheap to clone: a handle).
    conn: Connection,
    /// One operation at a time on `conn`. Other processes are kept out by SQLite's own locks.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// For messages.
    path: PathBuf,
    /// The daemon's OS lock on the file ([`SqliteStore::open_exclusive`]), held while the store
    /// lives; `None` for the commands that open it beside a daemon.
    _lock: Option<Arc<std::fs::File>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory when missing) and migrates the database file,
    /// without the daemon's lock: for the commands that read or steer the store beside a
    /// running daemon, and for tests.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT).await
    }

    /// Opens the file for the daemon: first takes the OS lock on `<file>.lock` without waiting
    /// ([`StoreError::InUse`] when another process holds it), then opens as [`Self::open`]. The
    /// lock is held while the store lives and released by the OS when the process dies.
    pub async fn open_exclusive(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Sqlite(format!(
                    "cannot create the directory of {}: {e}",
                    path.display()
                ))
            })?;
        }
        let lock = lock_database(path)?;
        let mut store = Self::open(path).await?;
        store._lock = Some(Arc::new(lock));
        Ok(store)
    }

    pub async fn open_with_busy_timeout(path: &Path, busy: Duration) -> Result<Self, StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Sqlite(format!("{what} {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the directory of", &e))?;
        }
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .map_err(|e| fail("cannot open", &e))?;
        let conn = db.connect().map_err(|e| fail("cannot open", &e))?;
        conn.busy_timeout(busy).map_err(sql_err)?;
        let store = SqliteStore {
            _db: Arc::new(db),
            conn,
            lock: Arc::new(tokio::sync::Mutex::new(())),
            path: path.to_owned(),
            _lock: None,
        };
        store
            .run(|conn| async move {
                // WAL: readers (`giftd inventory`) never block the daemon's writes.
                let mut rows = conn
                    .query("PRAGMA journal_mode = WAL", ())
                    .await
                    .map_err(sql_err)?;
                while rows.next().await.map_err(sql_err)?.is_some() {}
                drop(rows);
                // FULL: a committed batch survives a power cut (the ledger is money).
                conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
                    .await
                    .map_err(sql_err)?;
                migrate(&conn).await
            })
            .await?;
        Ok(store)
    }

    /// Runs `f` on the blocking pool with the connection to itself.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>>,
        T: Send + 'static,
    {
        let guard = self.lock.clone().lock_owned().await;
        let conn = self.conn.clone();
        let handle = tokio::runtime::Handle::current();
        // The job finishes (commits or rolls back) even if the caller stops waiting.
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            handle.block_on(f(conn))
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("store task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        self.run(|conn| async move { Ok(read_version(&conn).await?.unwrap_or(0)) })
            .await
    }

    async fn check_write(&self) -> Result<(), StoreError> {
        self.run(move |conn| async move { schema::check_write(&conn).await })
            .await
    }

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<BatchOutcome, StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let batch = batch.clone();
        self.run(|conn| async move {
            write_tx(&conn, async |conn| {
                for account in batch.accounts() {
                    check_fence(conn, account, batch.epochs.get(&account).copied()).await?;
                }
                batch::apply_batch(conn, batch).await
            })
            .await
        })
        .await
    }

    async fn load_items(&self, account_id: UserId) -> Result<Vec<Item>, StoreError> {
        self.run(move |conn| async move { inventory::load_items(&conn, account_id).await })
            .await
    }

    async fn list_owner(&self, owner: Owner) -> Result<Vec<Item>, StoreError> {
        self.run(move |conn| async move { inventory::list_owner(&conn, owner).await })
            .await
    }

    async fn owner_stats(&self, user_id: UserId) -> Result<OwnerStats, StoreError> {
        self.run(move |conn| async move { inventory::owner_stats(&conn, user_id).await })
            .await
    }

    async fn item_history(&self, key: ItemKey) -> Result<Vec<LedgerEntry>, StoreError> {
        self.run(move |conn| async move { ledger::item_history(&conn, key).await })
            .await
    }

    async fn assign_owner(&self, key: ItemKey, user_id: UserId) -> Result<bool, StoreError> {
        self.run(move |conn| async move { inventory::assign_owner(&conn, key, user_id).await })
            .await
    }

    async fn create_withdrawal(
        &self,
        owner: UserId,
        key: ItemKey,
    ) -> Result<WithdrawalId, StoreError> {
        let id = self
            .run(move |conn| async move { withdrawals::create_withdrawal(&conn, owner, key).await })
            .await?;
        // A request made beside the daemon (a command) wakes its worker (`store::wake`).
        super::wake::announce(&self.path);
        Ok(id)
    }

    async fn claim_withdrawal(
        &self,
        account_id: UserId,
        worker_id: &str,
        lease: Duration,
        epoch: Option<Epoch>,
    ) -> Result<Option<Withdrawal>, StoreError> {
        let worker_id = worker_id.to_owned();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.run(move |conn| async move {
            withdrawals::claim_withdrawal(&conn, account_id, worker_id, lease_ms, epoch).await
        })
        .await
    }

    async fn move_withdrawal(&self, mv: &WithdrawalMove) -> Result<Withdrawal, StoreError> {
        let mv = mv.clone();
        let moved = self
            .run(move |conn| async move {
                write_tx(&conn, async |conn| apply_withdrawal_move(conn, &mv).await).await
            })
            .await?;
        if moved.state == RequestState::Requested {
            // Approved or retried (by an operator's command, maybe): back in the queue now.
            super::wake::announce(&self.path);
        }
        Ok(moved)
    }

    async fn rescue_withdrawals(
        &self,
        account_id: UserId,
        epoch: Option<Epoch>,
    ) -> Result<u64, StoreError> {
        self.run(move |conn| async move {
            withdrawals::rescue_withdrawals(&conn, account_id, epoch).await
        })
        .await
    }

    async fn withdrawal(&self, id: WithdrawalId) -> Result<Option<Withdrawal>, StoreError> {
        self.run(move |conn| async move { load_withdrawal(&conn, id).await })
            .await
    }

    async fn list_withdrawals(
        &self,
        filter: &WithdrawalFilter,
    ) -> Result<Vec<Withdrawal>, StoreError> {
        let filter = filter.clone();
        self.run(move |conn| async move { withdrawals::list_withdrawals(&conn, filter).await })
            .await
    }

    async fn create_link_token(
        &self,
        web_user: WebUserId,
        label: &LinkLabel,
        ttl: Duration,
    ) -> Result<LinkToken, StoreError> {
        let ttl_ms = link_token_ttl(ttl)?;
        let token = new_link_token();
        let hash = link_token_hash(&token);
        let now = now_ms();
        let expires_at_ms = now.saturating_add(ttl_ms);
        let stored = label.clone();
        self.run(move |conn| async move {
            link::create(&conn, &hash, web_user, &stored, now, expires_at_ms).await
        })
        .await?;
        Ok(LinkToken {
            token: Secret::new(token),
            web_user,
            label: label.clone(),
            expires_at_ms,
        })
    }

    async fn peek_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
    ) -> Result<LinkOutcome, StoreError> {
        let token = token.to_owned();
        self.run(
            move |conn| async move { link::peek(&conn, &token, telegram_user, now_ms()).await },
        )
        .await
    }

    async fn consume_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
        replace: bool,
    ) -> Result<LinkOutcome, StoreError> {
        let token = token.to_owned();
        self.run(move |conn| async move {
            link::consume(&conn, &token, telegram_user, replace, now_ms()).await
        })
        .await
    }

    async fn replaced_links(&self, web_user: WebUserId) -> Result<Vec<ReplacedLink>, StoreError> {
        self.run(move |conn| async move { link::replaced(&conn, web_user).await })
            .await
    }

    async fn linked_telegram_user(
        &self,
        web_user: WebUserId,
    ) -> Result<Option<UserId>, StoreError> {
        self.run(move |conn| async move { link::linked(&conn, web_user).await })
            .await
    }

    async fn claim_notifications(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Notification>, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.run(move |conn| async move { notify::claim(&conn, limit, lease_ms, now_ms()).await })
            .await
    }

    async fn finish_notifications(
        &self,
        ids: &[NotificationId],
        outcome: &NotificationOutcome,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        let outcome = outcome.clone();
        self.run(move |conn| async move { notify::finish(&conn, &ids, &outcome, now_ms()).await })
            .await
    }

    async fn requeue_undelivered(
        &self,
        user: UserId,
        max_age: Duration,
    ) -> Result<u64, StoreError> {
        let since = now_ms().saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
        self.run(move |conn| async move { notify::requeue(&conn, user, since).await })
            .await
    }

    async fn note_language(
        &self,
        user: UserId,
        code: &str,
        chosen: bool,
    ) -> Result<PlayerLanguage, StoreError> {
        super::player::check_language_code(code)?;
        let code = code.to_owned();
        self.run(
            move |conn| async move { player::note(&conn, user, &code, chosen, now_ms()).await },
        )
        .await
    }

    async fn language(&self, user: UserId) -> Result<Option<PlayerLanguage>, StoreError> {
        self.run(move |conn| async move { player::get(&conn, user).await })
            .await
    }

    async fn append_sync_log(&self, log: &SyncLog) -> Result<(), StoreError> {
        let log = log.clone();
        self.run(move |conn| async move { insert_sync_log(&conn, &log).await })
            .await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError> {
        check_lease_args(name, holder, Some(ttl))?;
        let (name, holder, ttl) = (name.to_owned(), holder.to_owned(), millis(ttl));
        self.run(move |conn| async move { lease::take_lease(&conn, name, holder, ttl).await })
            .await
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError> {
        check_lease_args(name, holder, Some(ttl))?;
        let (name, holder, ttl) = (name.to_owned(), holder.to_owned(), millis(ttl));
        self.run(
            move |conn| async move { lease::renew_lease(&conn, name, holder, epoch, ttl).await },
        )
        .await
    }

    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
    ) -> Result<bool, StoreError> {
        check_lease_args(name, holder, None)?;
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.run(move |conn| async move { lease::release_lease(&conn, name, holder, epoch).await })
            .await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let name = name.to_owned();
        self.run(move |conn| async move { read_lease(&conn, &name, now_ms()).await })
            .await
    }

    async fn gift_types(&self) -> Result<Vec<GiftType>, StoreError> {
        self.run(|conn| async move { catalogue::gift_types(&conn).await })
            .await
    }

    async fn desk(&self) -> Result<Vec<crate::store::desk::AccountDesk>, StoreError> {
        self.run(|conn| async move { desk::desk(&conn, now_ms()).await })
            .await
    }

    async fn record_balance(&self, account: UserId, stars: i64) -> Result<(), StoreError> {
        self.run(
            move |conn| async move { desk::record_balance(&conn, account, stars, now_ms()).await },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gift::{Owner, Status};
    use crate::store::{ChangeBatch, SCHEMA_VERSION};

    /// The contract suite runs on multi-threaded runtimes; `#[tokio::test]` elsewhere in giftd
    /// uses the current-thread one, which must work too (the blocking pool drives SQLite).
    #[tokio::test]
    async fn works_on_a_current_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("giftd.sqlite3");
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.check_schema().await.unwrap(), SCHEMA_VERSION);
        let item = Item {
            key: ItemKey::new(1, 2),
            owner: Owner::User(3),
            gift_id: 4,
            stars: 5,
            unique: None,
            status: Status::Held,
            received_at: 6,
            convert_stars: None,
            transfer_stars: None,
            can_transfer_at: None,
            upgraded_from: None,
        };
        let batch = ChangeBatch {
            items: vec![item.clone()],
            ..ChangeBatch::default()
        };
        assert_eq!(store.apply_batch(&batch).await.unwrap().items_new, 1);
        drop(store);
        let reopened = SqliteStore::open(&path).await.unwrap();
        assert_eq!(reopened.load_items(1).await.unwrap(), vec![item]);
    }

    /// The daemon's lock: a second exclusive open of the file is refused (flock locks differ
    /// between open files even in one process), a shared open is not, and dropping the store
    /// lets the next daemon in.
    #[tokio::test]
    async fn one_exclusive_open_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("giftd.sqlite3");
        let daemon = SqliteStore::open_exclusive(&path).await.unwrap();
        let err = SqliteStore::open_exclusive(&path).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::InUse { pid: Some(p), .. } if *p == std::process::id()),
            "{err}"
        );
        let beside = SqliteStore::open(&path).await.unwrap();
        assert_eq!(beside.check_schema().await.unwrap(), SCHEMA_VERSION);
        drop(daemon);
        let next = SqliteStore::open_exclusive(&path).await.unwrap();
        drop(next);
    }
}
