//! The embedded backend: one SQLite file in the state directory, the default when no Supabase
//! is configured. Same semantics as the Supabase backend (the contract suite runs against
//! both): each call is one transaction, replays change nothing, departures are checked against
//! [`Status::transition`].
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
//! operation here runs on tokio's blocking pool ([`SqliteStore::run`]), never on a runtime
//! worker.
//!
//! Must never: hold the connection across calls from two tasks at once (one `Mutex`), or leave
//! a transaction open after an error (every write goes through [`write_tx`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libsql::{Connection, params};

use super::lease::{check_lease_args, millis};
use super::{
    BatchOutcome, ChangeBatch, Epoch, ItemRow, Lease, LeaseAnswer, LinkLabel, LinkOutcome,
    LinkToken, Notification, NotificationId, NotificationKind, NotificationOutcome, OwnerStats,
    PlayerLanguage, RefusedChange, ReplacedLink, RequestState, SCHEMA_VERSION, Store, StoreError,
    SyncLog, WaitReason, WebUserId, Withdrawal, WithdrawalFilter, WithdrawalId, WithdrawalKind,
    WithdrawalMove, account_lease, link_token_hash, link_token_ttl, new_link_token, now_ms,
};
use crate::gift::{GiftType, Item, ItemKey, LedgerEntry, LedgerKind, MsgId, Owner, Status, UserId};
use crate::secret::Secret;

mod catalogue;
mod desk;
mod link;
mod notify;
mod player;

use self::notify::Notice;

/// How long a write waits for another connection (another giftd process, `giftd inventory`)
/// to release the file before failing with a retryable [`StoreError::Busy`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `(table, column, declaration)` of a column a schema step adds.
type AddColumn = (&'static str, &'static str, &'static str);

/// Schema steps of the embedded database: `(version it sets, columns it adds, SQL)`. Versions
/// match the Supabase schema's. Each step is run again when a file's version was lowered by
/// hand, so every statement is idempotent; the columns a step adds are listed apart, because
/// SQLite has no `ADD COLUMN IF NOT EXISTS`, and are added before the step's SQL runs.
const SCHEMA_STEPS: &[(u32, &[AddColumn], &str)] = &[
    (1, &[], SCHEMA_V1),
    (2, &[("sync_logs", "pass_id", "TEXT")], SCHEMA_V2),
    (
        3,
        &[("inventory", "kept_by_house", "INTEGER NOT NULL DEFAULT 0")],
        SCHEMA_V3,
    ),
    // Version 4 (Supabase: `20261202000000_giftd_bot.sql`): link tokens for web accounts, web
    // links and the notifications outbox; its SQL lives with its code (`link`, `notify`) and
    // runs in `migrate`.
    (4, &[], ""),
    (5, &[("withdrawals", "epoch", "INTEGER")], SCHEMA_V5),
    // Version 6 (Supabase: `20261204120000_giftd_consent.sql`): link labels and replaced links.
    (
        6,
        &[
            ("link_tokens", "label", "TEXT NOT NULL DEFAULT ''"),
            ("web_links", "label", "TEXT NOT NULL DEFAULT ''"),
        ],
        link::SCHEMA_V6_CONSENT,
    ),
    // Version 7 (Supabase: `20261204130000_giftd_desk.sql`): the balances the desk shows
    // (`desk`). Requests are announced through the daemon's wake-up socket (`store::wake`)
    // instead of a channel.
    (7, &[], desk::SCHEMA_V7_BALANCES),
    // Version 8 (Supabase: `20261204140000_giftd_players.sql`): players' languages.
    (8, &[], player::SCHEMA_V8),
    // Version 9 (Supabase: `20261204160000_giftd_values.sql`): a collectible's worth in the
    // unit Telegram gives it.
    (
        9,
        &[
            ("inventory", "value_amount", "INTEGER"),
            ("inventory", "value_currency", "TEXT"),
            ("inventory", "value_usd_cents", "INTEGER"),
            ("inventory", "paid_amount", "INTEGER"),
            ("inventory", "paid_currency", "TEXT"),
        ],
        "",
    ),
    // Version 10 (Supabase: `20261204170000_giftd_fates.sql`): the `sold` and `burned` statuses;
    // the inventory table is rebuilt by [`upgrade_inventory_fates`] (the ledger has no kind
    // constraint here).
    (10, &[], ""),
];

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY,
  username TEXT,
  first_name TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gifts (
  gift_id INTEGER PRIMARY KEY,
  title TEXT,
  stars INTEGER NOT NULL,
  is_unique INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inventory (
  account_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  owner_id INTEGER REFERENCES users (id),
  gift_id INTEGER NOT NULL REFERENCES gifts (gift_id),
  stars INTEGER NOT NULL,
  collectible_id INTEGER,
  slug TEXT,
  number INTEGER,
  status TEXT NOT NULL CHECK (status IN ('held', 'withdraw_requested', 'withdrawing',
    'withdrawn', 'converted', 'refunded', 'upgraded', 'sold', 'burned', 'gone')),
  upgraded_into INTEGER,
  upgraded_from INTEGER,
  received_at INTEGER NOT NULL,
  convert_stars INTEGER,
  transfer_stars INTEGER,
  can_transfer_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account_id, msg_id),
  CHECK ((status = 'upgraded') = (upgraded_into IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS inventory_held_by_account ON inventory (account_id, msg_id)
  WHERE status IN ('held', 'withdraw_requested', 'withdrawing');
CREATE INDEX IF NOT EXISTS inventory_held_by_owner ON inventory (owner_id, account_id, msg_id)
  WHERE status IN ('held', 'withdraw_requested', 'withdrawing');
CREATE INDEX IF NOT EXISTS inventory_owner_status ON inventory (owner_id, status);
CREATE INDEX IF NOT EXISTS inventory_collectible ON inventory (collectible_id)
  WHERE collectible_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS transactions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  idempotency_key TEXT NOT NULL UNIQUE,
  account_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  owner_id INTEGER,
  kind TEXT NOT NULL,
  stars INTEGER NOT NULL,
  at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_owner ON transactions (owner_id, id);
CREATE INDEX IF NOT EXISTS transactions_item ON transactions (account_id, msg_id);
CREATE TRIGGER IF NOT EXISTS transactions_no_update BEFORE UPDATE ON transactions
BEGIN SELECT RAISE(ABORT, 'transactions is an append-only ledger: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS transactions_no_delete BEFORE DELETE ON transactions
BEGIN SELECT RAISE(ABORT, 'transactions is an append-only ledger: DELETE refused'); END;

CREATE TABLE IF NOT EXISTS withdrawals (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  owner_id INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'requested'
    CHECK (status IN ('requested', 'claimed', 'transferred', 'failed', 'cancelled')),
  worker_id TEXT,
  reason TEXT,
  requested_at INTEGER NOT NULL,
  claimed_at INTEGER,
  completed_at INTEGER,
  FOREIGN KEY (account_id, msg_id) REFERENCES inventory (account_id, msg_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS withdrawals_open_per_item ON withdrawals (account_id, msg_id)
  WHERE status IN ('requested', 'claimed');
CREATE INDEX IF NOT EXISTS withdrawals_queue ON withdrawals (account_id, id)
  WHERE status = 'requested';
CREATE INDEX IF NOT EXISTS withdrawals_owner ON withdrawals (owner_id, id);

CREATE TABLE IF NOT EXISTS link_tokens (
  token_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  used_at_ms INTEGER
);
-- (No index on user_id: version 4 replaces this table, and running this step again on a
-- version-4 file must not name the column it dropped.)

CREATE TABLE IF NOT EXISTS sync_logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  items_seen INTEGER NOT NULL,
  items_new INTEGER NOT NULL,
  items_changed INTEGER NOT NULL,
  error TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_logs_account ON sync_logs (account_id, id);
";

/// Version 2 (Supabase: `20261201190000_giftd_attribution.sql`): the `attributed` ledger kind
/// needs nothing here (the embedded ledger has no kind constraint); collectibles made by an
/// upgrade that were recorded without `upgraded_from` get it; a sync log row is named by its
/// pass, so a replayed batch writes it once.
const SCHEMA_V2: &str = "
CREATE INDEX IF NOT EXISTS inventory_upgraded_into ON inventory (account_id, upgraded_into)
  WHERE upgraded_into IS NOT NULL;
UPDATE inventory SET upgraded_from = (
  SELECT o.msg_id FROM inventory o
  WHERE o.account_id = inventory.account_id AND o.upgraded_into = inventory.msg_id)
WHERE upgraded_from IS NULL AND EXISTS (
  SELECT 1 FROM inventory o
  WHERE o.account_id = inventory.account_id AND o.upgraded_into = inventory.msg_id);
CREATE UNIQUE INDEX IF NOT EXISTS sync_logs_pass ON sync_logs (pass_id);
";

/// Version 3 (Supabase: `20261201200000_giftd_withdrawals.sql`): the withdrawal state machine.
/// The request table is rebuilt with its new states and columns by [`upgrade_withdrawals`]
/// (SQLite cannot change a CHECK constraint in place); this part is idempotent.
const SCHEMA_V3: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS withdrawals_open_per_item ON withdrawals (account_id, msg_id)
  WHERE status IN ('requested', 'approval', 'waiting', 'claimed', 'sending', 'unknown');
CREATE INDEX IF NOT EXISTS withdrawals_queue ON withdrawals (account_id, id)
  WHERE status IN ('requested', 'waiting');
CREATE INDEX IF NOT EXISTS withdrawals_owner ON withdrawals (owner_id, id);
CREATE INDEX IF NOT EXISTS withdrawals_open ON withdrawals (account_id, status)
  WHERE status IN ('approval', 'claimed', 'sending', 'unknown');
";

/// Version 5 (Supabase: `20261202010000_giftd_leases.sql`): leases and their epochs. Times
/// are this host's clock (the embedded database has one process, kept so by the OS lock);
/// `withdrawals.epoch` (added by the step) is the term a request was claimed in.
const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  taken_at_ms INTEGER NOT NULL,
  renewed_at_ms INTEGER NOT NULL
);
";

/// The version-3 request table.
const WITHDRAWALS_V3: &str = "
CREATE TABLE withdrawals_v3 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  owner_id INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'approval', 'waiting',
    'claimed', 'sending', 'unknown', 'sent', 'failed', 'cancelled')),
  kind TEXT NOT NULL DEFAULT 'transfer' CHECK (kind IN ('transfer', 'resend')),
  attempt INTEGER NOT NULL DEFAULT 0,
  worker_id TEXT,
  lease_until_ms INTEGER,
  not_before_ms INTEGER,
  wait_reason TEXT,
  fee_stars INTEGER,
  approved_stars INTEGER,
  form_id INTEGER,
  reason TEXT,
  requested_at INTEGER NOT NULL,
  claimed_at INTEGER,
  sending_at_ms INTEGER,
  completed_at INTEGER,
  FOREIGN KEY (account_id, msg_id) REFERENCES inventory (account_id, msg_id)
);
INSERT INTO withdrawals_v3 (id, account_id, msg_id, owner_id, status, kind, worker_id, reason,
  requested_at, claimed_at, completed_at)
SELECT w.id, w.account_id, w.msg_id, w.owner_id,
  CASE w.status WHEN 'transferred' THEN 'sent' ELSE w.status END,
  CASE WHEN i.collectible_id IS NULL THEN 'resend' ELSE 'transfer' END,
  w.worker_id, w.reason, w.requested_at, w.claimed_at, w.completed_at
FROM withdrawals w LEFT JOIN inventory i ON i.account_id = w.account_id AND i.msg_id = w.msg_id;
DROP TABLE withdrawals;
ALTER TABLE withdrawals_v3 RENAME TO withdrawals;
";

/// Rebuilds the request table of a version-2 file (once: a file that has the version-3 table
/// keeps it, whatever its recorded version).
async fn upgrade_withdrawals(conn: &Connection) -> Result<(), StoreError> {
    let mut rows = conn
        .query(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'withdrawals'",
            (),
        )
        .await
        .map_err(sql_err)?;
    let sql: String = match rows.next().await.map_err(sql_err)? {
        Some(row) => row.get(0).map_err(sql_err)?,
        None => String::new(),
    };
    drop(rows);
    if !sql.contains("'sending'") {
        conn.execute_batch(WITHDRAWALS_V3).await.map_err(sql_err)?;
    }
    Ok(())
}

/// Rebuilds the inventory table of a file made before version 7 with the `sold` and `burned`
/// statuses (SQLite cannot change a CHECK constraint in place), keeping every row, column and
/// index. Once: a table that admits `sold` is left alone. The ledger and the requests refer to
/// the table by name, so their foreign keys are checked at commit, against the new table.
async fn upgrade_inventory_fates(conn: &Connection) -> Result<(), StoreError> {
    let mut rows = conn
        .query(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'inventory' AND sql IS NOT NULL
             ORDER BY type = 'table' DESC",
            (),
        )
        .await
        .map_err(sql_err)?;
    let mut table = None;
    let mut indexes = Vec::new();
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        let kind: String = row.get(0).map_err(sql_err)?;
        let sql: String = row.get(1).map_err(sql_err)?;
        if kind == "table" {
            table = Some(sql);
        } else if kind == "index" {
            indexes.push(sql);
        }
    }
    drop(rows);
    let Some(table) = table else {
        return Ok(());
    };
    if table.contains("'sold'") {
        return Ok(());
    }
    // The name as SQLite keeps it may be quoted (`"inventory"` after a rename): everything
    // before the column list is replaced.
    const OLD: &str = "'upgraded', 'gone')";
    let columns = table.find('(').map(|at| &table[at..]);
    let Some(columns) = columns.filter(|c| c.contains(OLD)) else {
        return Err(StoreError::Sqlite(
            "the inventory table has a shape this giftd does not know: restore a backup made by giftd or ask for help".into(),
        ));
    };
    let rebuilt = columns.replacen(OLD, "'upgraded', 'sold', 'burned', 'gone')", 1);
    conn.execute_batch(&format!(
        "PRAGMA defer_foreign_keys = ON;
         CREATE TABLE inventory_v7 {rebuilt};
         INSERT INTO inventory_v7 SELECT * FROM inventory;
         DROP TABLE inventory;
         ALTER TABLE inventory_v7 RENAME TO inventory;"
    ))
    .await
    .map_err(sql_err)?;
    for index in indexes {
        conn.execute_batch(&index).await.map_err(sql_err)?;
    }
    Ok(())
}

/// The columns [`withdrawal_row`] reads, in its order.
const WITHDRAWAL_COLUMNS: &str = "id, account_id, msg_id, owner_id, status, kind, attempt, \
    worker_id, lease_until_ms, not_before_ms, wait_reason, fee_stars, approved_stars, form_id, \
    reason, requested_at, sending_at_ms";

fn withdrawal_row(row: &libsql::Row) -> Result<Withdrawal, StoreError> {
    let status: String = row.get(4).map_err(sql_err)?;
    let kind: String = row.get(5).map_err(sql_err)?;
    let wait: Option<String> = row.get(10).map_err(sql_err)?;
    Ok(Withdrawal {
        id: row.get(0).map_err(sql_err)?,
        key: ItemKey::new(row.get(1).map_err(sql_err)?, row.get(2).map_err(sql_err)?),
        owner: row.get(3).map_err(sql_err)?,
        state: RequestState::parse(&status)
            .ok_or_else(|| StoreError::Sqlite(format!("unknown withdrawal state {status:?}")))?,
        kind: WithdrawalKind::parse(&kind)
            .ok_or_else(|| StoreError::Sqlite(format!("unknown withdrawal kind {kind:?}")))?,
        attempt: row.get(6).map_err(sql_err)?,
        worker: row.get(7).map_err(sql_err)?,
        lease_until_ms: row.get(8).map_err(sql_err)?,
        not_before_ms: row.get(9).map_err(sql_err)?,
        wait_reason: wait.as_deref().and_then(WaitReason::parse),
        fee_stars: row.get(11).map_err(sql_err)?,
        approved_stars: row.get(12).map_err(sql_err)?,
        form_id: row.get(13).map_err(sql_err)?,
        reason: row.get(14).map_err(sql_err)?,
        requested_at: row.get(15).map_err(sql_err)?,
        sending_at_ms: row.get(16).map_err(sql_err)?,
    })
}

async fn load_withdrawal(
    conn: &Connection,
    id: WithdrawalId,
) -> Result<Option<Withdrawal>, StoreError> {
    let mut rows = conn
        .query(
            &format!("SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = ?1"),
            params![id],
        )
        .await
        .map_err(sql_err)?;
    match rows.next().await.map_err(sql_err)? {
        Some(row) => Ok(Some(withdrawal_row(&row)?)),
        None => Ok(None),
    }
}

/// Applies one state-machine move inside the caller's transaction.
async fn apply_withdrawal_move(
    conn: &Connection,
    mv: &WithdrawalMove,
) -> Result<Withdrawal, StoreError> {
    let w = load_withdrawal(conn, mv.id)
        .await?
        .ok_or(StoreError::WithdrawalNotFound(mv.id))?;
    if mv.epoch.is_some() {
        check_fence(conn, w.key.account_id, mv.epoch).await?;
    }
    if let Some(owner) = mv.owner
        && owner != w.owner
    {
        return Err(StoreError::WithdrawalNotOwner { id: w.id });
    }
    let same_claim = mv
        .worker
        .as_ref()
        .is_none_or(|x| w.worker.as_ref() == Some(x))
        && mv.attempt.is_none_or(|a| a == w.attempt);
    if w.state == mv.to && same_claim {
        return Ok(w); // a replay: already done
    }
    if !mv.from.contains(&w.state) || !same_claim {
        return Err(StoreError::WithdrawalMoveRefused {
            id: w.id,
            state: w.state,
            to: mv.to,
            holder: w.worker.clone().map(|x| (x, w.attempt)),
        });
    }
    let now = now_ms();
    let fee = mv.fee_stars.or(w.fee_stars).unwrap_or(0);
    if let Some(budget) = mv.daily_budget {
        let day_start = now - now.rem_euclid(86_400_000);
        let mut rows = conn
            .query(
                "SELECT coalesce(sum(fee_stars), 0) FROM withdrawals
                 WHERE account_id = ?1 AND kind = ?2 AND id <> ?3
                   AND status IN ('sending', 'unknown', 'sent') AND sending_at_ms >= ?4",
                params![w.key.account_id, w.kind.as_str(), w.id, day_start],
            )
            .await
            .map_err(sql_err)?;
        let spent: i64 = match rows.next().await.map_err(sql_err)? {
            Some(row) => row.get(0).map_err(sql_err)?,
            None => 0,
        };
        drop(rows);
        if spent + fee > budget {
            return Err(StoreError::OverDailyBudget {
                id: w.id,
                fee,
                total: spent + fee,
                budget,
            });
        }
    }
    let opt = |o: &Option<Option<i64>>, cur: Option<i64>| o.map_or(cur, |v| v);
    let worker = mv.set_worker.clone().map_or(w.worker.clone(), |v| v);
    let lease = mv.lease_ms.map(|l| now + l).or(w.lease_until_ms);
    let not_before = opt(&mv.not_before_ms, w.not_before_ms);
    let wait = mv
        .wait_reason
        .map_or(w.wait_reason, |v| v)
        .map(WaitReason::as_str);
    let form_id = opt(&mv.form_id, w.form_id);
    let reason = mv.reason.clone().map_or(w.reason.clone(), |v| v);
    let attempt = if mv.reset_attempts { 0 } else { w.attempt };
    let sending_at = if mv.mark_sending {
        Some(now)
    } else {
        w.sending_at_ms
    };
    let approved = mv.approved_stars.or(w.approved_stars);
    let completed = mv.to.is_final().then_some(now / 1000);
    conn.execute(
        "UPDATE withdrawals SET status = ?2, worker_id = ?3, lease_until_ms = ?4,
           not_before_ms = ?5, wait_reason = ?6, fee_stars = ?7, approved_stars = ?8,
           form_id = ?9, reason = ?10, attempt = ?11, sending_at_ms = ?12,
           completed_at = coalesce(?13, completed_at)
         WHERE id = ?1",
        params![
            w.id,
            mv.to.as_str(),
            worker,
            lease,
            not_before,
            wait,
            mv.fee_stars.or(w.fee_stars),
            approved,
            form_id,
            reason,
            attempt,
            sending_at,
            completed
        ],
    )
    .await
    .map_err(sql_err)?;
    // The item follows the request (unless it already left the account: Telegram is the
    // truth, and reconciliation recorded why).
    let item_to = mv.to.item_status();
    let item = item_stars_owner(conn, w.key).await?;
    if let Some((_, _, status)) = item
        && status != item_to
        && status.is_held()
    {
        conn.execute(
            "UPDATE inventory SET status = ?3, kept_by_house = ?4, updated_at = ?5
             WHERE account_id = ?1 AND msg_id = ?2",
            params![
                w.key.account_id,
                w.key.msg_id,
                item_to.as_str(),
                mv.kept_by_house,
                now / 1000
            ],
        )
        .await
        .map_err(sql_err)?;
    }
    // What was paid for the send; the item's value for the other steps.
    let stars = match mv.ledger {
        LedgerKind::Withdrawn | LedgerKind::WithdrawSending => fee,
        _ => item.map_or(0, |i| i.0),
    };
    insert_ledger(
        conn,
        &crate::withdrawal::ledger_entry(&w, mv.ledger, w.attempt, stars, now / 1000),
    )
    .await?;
    if let Some(step) = crate::store::notify::withdrawal_notice(&w, mv) {
        let dedupe = crate::store::notify::withdrawal_dedupe_key(
            w.id,
            step.kind,
            w.attempt,
            step.wait_reason,
        );
        let notice = Notice {
            dedupe_key: &dedupe,
            kind: step.kind,
            user_id: w.owner,
            key: w.key,
            withdrawal_id: Some(w.id),
            wait_reason: step.wait_reason,
            until_ms: step.until_ms,
            reason: step.reason.as_deref(),
        };
        notify::add(conn, &notice, now).await?;
    }
    load_withdrawal(conn, w.id)
        .await?
        .ok_or(StoreError::WithdrawalNotFound(w.id))
}

/// The lease `name` as the file holds it, read at `now`.
async fn read_lease(conn: &Connection, name: &str, now: i64) -> Result<Option<Lease>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT holder, epoch, expires_at_ms FROM leases WHERE name = ?1",
            params![name],
        )
        .await
        .map_err(sql_err)?;
    match rows.next().await.map_err(sql_err)? {
        Some(row) => Ok(Some(Lease {
            name: name.to_owned(),
            holder: row.get(0).map_err(sql_err)?,
            epoch: row.get(1).map_err(sql_err)?,
            expires_at_ms: row.get(2).map_err(sql_err)?,
            db_now_ms: now,
        })),
        None => Ok(None),
    }
}

/// Refuses, inside the caller's write transaction, a write for `account` that carries a term of
/// its lease that is over (`Some`), or that carries none while another instance holds a live
/// lease on it (`None`).
async fn check_fence(
    conn: &Connection,
    account: UserId,
    epoch: Option<Epoch>,
) -> Result<(), StoreError> {
    let name = account_lease(account);
    let lease = read_lease(conn, &name, now_ms()).await?;
    let fenced = match (&lease, epoch) {
        (Some(l), Some(e)) => l.epoch != e,
        (None, Some(_)) => true,
        (Some(l), None) => l.is_live(),
        (None, None) => false,
    };
    if fenced {
        return Err(StoreError::Fenced {
            lease: name,
            epoch,
            current: lease.map(|l| l.epoch),
        });
    }
    Ok(())
}

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

const HELD: &str = "('held', 'withdraw_requested', 'withdrawing')";

const ITEM_COLUMNS: &str = "account_id, msg_id, owner_id, gift_id, stars, collectible_id, slug, \
    number, status, upgraded_into, upgraded_from, received_at, convert_stars, transfer_stars, \
    can_transfer_at, value_amount, value_currency, value_usd_cents, paid_amount, paid_currency";

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

fn sql_err(e: libsql::Error) -> StoreError {
    match &e {
        libsql::Error::SqliteFailure(code, message) => match code & 0xff {
            // SQLITE_BUSY, SQLITE_LOCKED: another connection holds the file.
            5 | 6 => StoreError::Busy(message.clone()),
            // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN: the disk, which may come back.
            10 | 13 | 14 => StoreError::Unavailable(message.clone()),
            _ => StoreError::Sqlite(message.clone()),
        },
        _ => StoreError::Sqlite(e.to_string()),
    }
}

fn now_s() -> i64 {
    now_ms() / 1000
}

/// Runs `body` in a write transaction (`BEGIN IMMEDIATE`: the write lock is taken up front, so
/// a busy file fails before anything is done), committing on success and rolling back on any
/// error.
async fn write_tx<T>(
    conn: &Connection,
    body: impl AsyncFnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute("BEGIN IMMEDIATE", ()).await.map_err(sql_err)?;
    let result = match body(conn).await {
        Ok(value) => conn
            .execute("COMMIT", ())
            .await
            .map(|_| value)
            .map_err(sql_err),
        Err(e) => Err(e),
    };
    if result.is_err() && !conn.is_autocommit() {
        // The error being reported matters more than one from the rollback.
        let _ = conn.execute("ROLLBACK", ()).await;
    }
    result
}

async fn migrate(conn: &Connection) -> Result<(), StoreError> {
    write_tx(conn, async |conn| {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
               id INTEGER PRIMARY KEY CHECK (id = 1),
               version INTEGER NOT NULL,
               applied_at INTEGER NOT NULL,
               checked_at INTEGER)",
            (),
        )
        .await
        .map_err(sql_err)?;
        let current = read_version(conn).await?.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                required: SCHEMA_VERSION,
            });
        }
        for &(version, columns, sql) in SCHEMA_STEPS.iter().filter(|s| s.0 > current) {
            for &(table, column, decl) in columns {
                ensure_column(conn, table, column, decl).await?;
            }
            if version == 3 {
                upgrade_withdrawals(conn).await?;
            }
            if version == 10 {
                upgrade_inventory_fates(conn).await?;
            }
            if version == 4 {
                link::upgrade_link_tokens(conn).await?;
                conn.execute_batch(link::SCHEMA_V4_LINKS)
                    .await
                    .map_err(sql_err)?;
                conn.execute_batch(notify::SCHEMA_V4_NOTIFICATIONS)
                    .await
                    .map_err(sql_err)?;
            }
            conn.execute_batch(sql).await.map_err(sql_err)?;
            conn.execute(
                "INSERT INTO schema_version (id, version, applied_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version,
                   applied_at = excluded.applied_at",
                params![version, now_s()],
            )
            .await
            .map_err(sql_err)?;
            tracing::info!(version, "embedded database schema upgraded");
        }
        Ok(())
    })
    .await
}

/// Adds `column` to `table` unless it is there already.
async fn ensure_column(
    conn: &Connection,
    table: &str,
    column: &str,
    decl: &str,
) -> Result<(), StoreError> {
    let mut rows = conn
        .query(
            "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
        )
        .await
        .map_err(sql_err)?;
    if rows.next().await.map_err(sql_err)?.is_none() {
        // Names and declarations come from `SCHEMA_STEPS`, never from input.
        conn.execute(
            &format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"),
            (),
        )
        .await
        .map_err(sql_err)?;
    }
    Ok(())
}

async fn read_version(conn: &Connection) -> Result<Option<u32>, StoreError> {
    let mut rows = conn
        .query("SELECT version FROM schema_version WHERE id = 1", ())
        .await
        .map_err(sql_err)?;
    match rows.next().await.map_err(sql_err)? {
        Some(row) => Ok(Some(row.get::<u32>(0).map_err(sql_err)?)),
        None => Ok(None),
    }
}

fn item_from_row(row: &libsql::Row) -> Result<Item, StoreError> {
    ItemRow {
        account_id: row.get(0).map_err(sql_err)?,
        msg_id: row.get(1).map_err(sql_err)?,
        owner_id: row.get(2).map_err(sql_err)?,
        gift_id: row.get(3).map_err(sql_err)?,
        stars: row.get(4).map_err(sql_err)?,
        collectible_id: row.get(5).map_err(sql_err)?,
        slug: row.get(6).map_err(sql_err)?,
        number: row.get(7).map_err(sql_err)?,
        status: row.get(8).map_err(sql_err)?,
        upgraded_into: row.get(9).map_err(sql_err)?,
        upgraded_from: row.get(10).map_err(sql_err)?,
        received_at: row.get(11).map_err(sql_err)?,
        convert_stars: row.get(12).map_err(sql_err)?,
        transfer_stars: row.get(13).map_err(sql_err)?,
        can_transfer_at: row.get(14).map_err(sql_err)?,
        value_amount: row.get(15).map_err(sql_err)?,
        value_currency: row.get(16).map_err(sql_err)?,
        value_usd_cents: row.get(17).map_err(sql_err)?,
        paid_amount: row.get(18).map_err(sql_err)?,
        paid_currency: row.get(19).map_err(sql_err)?,
    }
    .into_item()
}

async fn query_items(
    conn: &Connection,
    sql: &str,
    params: impl libsql::params::IntoParams,
) -> Result<Vec<Item>, StoreError> {
    let mut rows = conn.query(sql, params).await.map_err(sql_err)?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        items.push(item_from_row(&row)?);
    }
    Ok(items)
}

/// The item's status, or `None` when the store does not know it.
async fn item_status(conn: &Connection, key: ItemKey) -> Result<Option<Status>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT status, upgraded_into FROM inventory WHERE account_id = ?1 AND msg_id = ?2",
            params![key.account_id, key.msg_id],
        )
        .await
        .map_err(sql_err)?;
    let Some(row) = rows.next().await.map_err(sql_err)? else {
        return Ok(None);
    };
    let name: String = row.get(0).map_err(sql_err)?;
    let into: Option<i32> = row.get(1).map_err(sql_err)?;
    Status::from_parts(&name, into)
        .map(Some)
        .ok_or_else(|| StoreError::Sqlite(format!("item {key}: unknown status {name:?}")))
}

async fn insert_ledger(conn: &Connection, e: &LedgerEntry) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO transactions (idempotency_key, account_id, msg_id, owner_id, kind, stars, at,
           created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (idempotency_key) DO NOTHING",
        params![
            e.idempotency_key.as_str(),
            e.key.account_id,
            e.key.msg_id,
            e.owner.user_id(),
            e.kind.as_str(),
            e.stars,
            e.at,
            now_s()
        ],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn apply_batch(conn: &Connection, batch: ChangeBatch) -> Result<BatchOutcome, StoreError> {
    let now = now_s();
    let mut outcome = BatchOutcome::default();

    let mut users = batch.users;
    users.sort_by_key(|u| u.id);
    users.dedup_by_key(|u| u.id);
    let upsert_user = conn
        .prepare(
            "INSERT INTO users (id, username, first_name, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO UPDATE SET username = excluded.username,
               first_name = excluded.first_name, updated_at = excluded.updated_at
             WHERE username IS NOT excluded.username OR first_name IS NOT excluded.first_name",
        )
        .await
        .map_err(sql_err)?;
    for u in users {
        upsert_user
            .execute(params![u.id, u.username, u.first_name, now])
            .await
            .map_err(sql_err)?;
        upsert_user.reset();
    }

    let mut gifts = batch.gifts;
    gifts.sort_by_key(|g| g.gift_id);
    gifts.dedup_by_key(|g| g.gift_id);
    let upsert_gift = conn
        .prepare(
            "INSERT INTO gifts (gift_id, title, stars, is_unique, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (gift_id) DO UPDATE SET title = coalesce(excluded.title, title),
               stars = excluded.stars, is_unique = excluded.is_unique,
               updated_at = excluded.updated_at
             WHERE coalesce(excluded.title, title) IS NOT title OR stars IS NOT excluded.stars
               OR is_unique IS NOT excluded.is_unique",
        )
        .await
        .map_err(sql_err)?;
    for g in gifts {
        upsert_gift
            .execute(params![g.gift_id, g.title, g.stars, g.unique, now])
            .await
            .map_err(sql_err)?;
        upsert_gift.reset();
    }

    let mut items = batch.items;
    items.sort_by_key(|i| i.key);
    items.dedup_by_key(|i| i.key);
    // Owners and kinds the batch did not describe still get a row, so the foreign keys hold.
    let placeholder_user = conn
        .prepare(
            "INSERT INTO users (id, created_at, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (id) DO NOTHING",
        )
        .await
        .map_err(sql_err)?;
    let placeholder_gift = conn
        .prepare(
            "INSERT INTO gifts (gift_id, stars, is_unique, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (gift_id) DO NOTHING",
        )
        .await
        .map_err(sql_err)?;
    let notices = notify::Writer::new(conn, now_ms()).await?;
    let insert_item = conn
        .prepare(&format!(
            "INSERT INTO inventory ({ITEM_COLUMNS}, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
               ?18, ?19, ?20, ?21, ?21)
             ON CONFLICT (account_id, msg_id) DO NOTHING"
        ))
        .await
        .map_err(sql_err)?;
    for item in &items {
        if let Some(owner) = item.owner.user_id() {
            placeholder_user
                .execute(params![owner, now])
                .await
                .map_err(sql_err)?;
            placeholder_user.reset();
        }
        placeholder_gift
            .execute(params![
                item.gift_id,
                item.stars,
                item.unique.is_some(),
                now
            ])
            .await
            .map_err(sql_err)?;
        placeholder_gift.reset();
        let unique = item.unique.as_deref();
        let inserted = insert_item
            .execute(params![
                item.key.account_id,
                item.key.msg_id,
                item.owner.user_id(),
                item.gift_id,
                item.stars,
                unique.map(|u| u.collectible_id),
                unique.map(|u| u.slug.clone()),
                unique.map(|u| u.number),
                item.status.as_str(),
                item.status.upgraded_into(),
                item.upgraded_from,
                item.received_at,
                item.convert_stars,
                item.transfer_stars,
                item.can_transfer_at,
                unique.and_then(|u| u.value.fiat.as_ref()).map(|m| m.amount),
                unique
                    .and_then(|u| u.value.fiat.as_ref())
                    .map(|m| m.currency.clone()),
                unique.and_then(|u| u.value.usd_cents),
                unique.and_then(|u| u.value.paid).map(|p| p.amount()),
                unique.and_then(|u| u.value.paid).map(|p| p.currency()),
                now
            ])
            .await
            .map_err(sql_err)?;
        insert_item.reset();
        let entry = item.deposit_entry();
        if inserted > 0 {
            outcome.items_new += 1;
            // A credit, told once: only the batch that recorded the item writes its notice.
            if let (Owner::User(owner), Status::Held) = (item.owner, item.status) {
                notices
                    .add(&Notice {
                        dedupe_key: &entry.idempotency_key,
                        kind: NotificationKind::Deposit,
                        user_id: owner,
                        key: item.key,
                        withdrawal_id: None,
                        wait_reason: None,
                        until_ms: None,
                        reason: None,
                    })
                    .await?;
            }
        } else {
            outcome.items_known += 1;
        }
        insert_ledger(conn, &entry).await?;
    }

    let mut changes = batch.changes;
    changes.sort_by_key(|c| c.key);
    for change in changes {
        let current = item_status(conn, change.key).await?;
        match current {
            None => outcome.refused.push(RefusedChange {
                key: change.key,
                to: change.to,
                current: None,
            }),
            Some(from) if from == change.to => outcome.changes_unchanged += 1,
            Some(from) if from.transition(change.to).is_err() => {
                outcome.refused.push(RefusedChange {
                    key: change.key,
                    to: change.to,
                    current: Some(from),
                })
            }
            Some(_) => {
                conn.execute(
                    "UPDATE inventory SET status = ?3, upgraded_into = ?4, updated_at = ?5
                     WHERE account_id = ?1 AND msg_id = ?2",
                    params![
                        change.key.account_id,
                        change.key.msg_id,
                        change.to.as_str(),
                        change.to.upgraded_into(),
                        now
                    ],
                )
                .await
                .map_err(sql_err)?;
                insert_ledger(conn, &change.entry).await?;
                // A request nobody has claimed yet cannot be served any more.
                let mut cancelled = conn
                    .query(
                        "UPDATE withdrawals SET status = 'cancelled', completed_at = ?3,
                           reason = 'item left the account: ' || ?4
                         WHERE account_id = ?1 AND msg_id = ?2
                           AND status IN ('requested', 'approval', 'waiting')
                         RETURNING id, owner_id, reason",
                        params![
                            change.key.account_id,
                            change.key.msg_id,
                            now,
                            change.to.as_str()
                        ],
                    )
                    .await
                    .map_err(sql_err)?;
                let mut told = Vec::new();
                while let Some(row) = cancelled.next().await.map_err(sql_err)? {
                    let id: i64 = row.get(0).map_err(sql_err)?;
                    let owner: i64 = row.get(1).map_err(sql_err)?;
                    let reason: String = row.get(2).map_err(sql_err)?;
                    told.push((id, owner, reason));
                }
                drop(cancelled);
                for (id, owner, reason) in told {
                    let kind = NotificationKind::WithdrawalCancelled;
                    let dedupe = crate::store::notify::withdrawal_dedupe_key(id, kind, 0, None);
                    notices
                        .add(&Notice {
                            dedupe_key: &dedupe,
                            kind,
                            user_id: owner,
                            key: change.key,
                            withdrawal_id: Some(id),
                            wait_reason: None,
                            until_ms: None,
                            reason: Some(&reason),
                        })
                        .await?;
                }
                if let Status::Upgraded { into } = change.to {
                    link_upgrade(conn, change.key, into).await?;
                }
                outcome.changes_applied += 1;
            }
        }
    }

    let mut attributions = batch.attributions;
    attributions.sort_by_key(|a| a.key);
    attributions.dedup_by_key(|a| a.key);
    for a in attributions {
        conn.execute(
            "INSERT INTO users (id, created_at, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (id) DO NOTHING",
            params![a.owner, now],
        )
        .await
        .map_err(sql_err)?;
        // Only an item with no owner: never over an operator's assignment or a replay.
        let changed = conn
            .execute(
                "UPDATE inventory SET owner_id = ?3, updated_at = ?4
                 WHERE account_id = ?1 AND msg_id = ?2 AND owner_id IS NULL",
                params![a.key.account_id, a.key.msg_id, a.owner, now],
            )
            .await
            .map_err(sql_err)?;
        if changed > 0 {
            insert_ledger(conn, &a.entry).await?;
            notices
                .add(&Notice {
                    dedupe_key: &a.entry.idempotency_key,
                    kind: NotificationKind::Attributed,
                    user_id: a.owner,
                    key: a.key,
                    withdrawal_id: None,
                    wait_reason: None,
                    until_ms: None,
                    reason: None,
                })
                .await?;
            outcome.attributed += 1;
        } else {
            outcome.attributions_skipped += 1;
        }
    }

    for log in &batch.sync_logs {
        insert_sync_log(conn, log).await?;
    }

    // A collectible written after (or in the same batch as) the end of the gift it was upgraded
    // from points back to it.
    for item in items.iter().filter(|i| i.upgraded_from.is_none()) {
        conn.execute(
            "UPDATE inventory SET upgraded_from = (
               SELECT o.msg_id FROM inventory o
               WHERE o.account_id = ?1 AND o.upgraded_into = ?2 AND o.status = 'upgraded')
             WHERE account_id = ?1 AND msg_id = ?2 AND upgraded_from IS NULL
               AND EXISTS (SELECT 1 FROM inventory o
                 WHERE o.account_id = ?1 AND o.upgraded_into = ?2 AND o.status = 'upgraded')",
            params![item.key.account_id, item.key.msg_id],
        )
        .await
        .map_err(sql_err)?;
    }
    Ok(outcome)
}

/// Points the collectible `into` back at the regular gift `from` it was upgraded from, when the
/// collectible is already recorded and does not say yet.
async fn link_upgrade(conn: &Connection, from: ItemKey, into: MsgId) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE inventory SET upgraded_from = ?2
         WHERE account_id = ?1 AND msg_id = ?3 AND upgraded_from IS NULL",
        params![from.account_id, from.msg_id, into],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}

/// A ledger entry for a withdrawal move written by the store itself.
fn withdrawal_entry(
    key: ItemKey,
    owner: UserId,
    kind: LedgerKind,
    stars: i64,
    id: WithdrawalId,
) -> LedgerEntry {
    // Terminal moves happen once per item; the others once per request.
    let idempotency_key = match kind {
        LedgerKind::Withdrawn => format!("{}:{key}", kind.as_str()),
        _ => format!("{}:{key}:{id}", kind.as_str()),
    };
    LedgerEntry {
        idempotency_key,
        key,
        owner: Owner::User(owner),
        kind,
        stars,
        at: now_s(),
    }
}

async fn item_stars_owner(
    conn: &Connection,
    key: ItemKey,
) -> Result<Option<(i64, Option<i64>, Status)>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT stars, owner_id, status, upgraded_into FROM inventory
             WHERE account_id = ?1 AND msg_id = ?2",
            params![key.account_id, key.msg_id],
        )
        .await
        .map_err(sql_err)?;
    let Some(row) = rows.next().await.map_err(sql_err)? else {
        return Ok(None);
    };
    let name: String = row.get(2).map_err(sql_err)?;
    let status = Status::from_parts(&name, row.get(3).map_err(sql_err)?)
        .ok_or_else(|| StoreError::Sqlite(format!("item {key}: unknown status {name:?}")))?;
    Ok(Some((
        row.get(0).map_err(sql_err)?,
        row.get(1).map_err(sql_err)?,
        status,
    )))
}

async fn set_item_status(conn: &Connection, key: ItemKey, to: Status) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE inventory SET status = ?3, updated_at = ?4 WHERE account_id = ?1 AND msg_id = ?2",
        params![key.account_id, key.msg_id, to.as_str(), now_s()],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
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
        self.run(|conn| async move {
            write_tx(&conn, async |conn| {
                conn.execute(
                    "UPDATE schema_version SET checked_at = ?1 WHERE id = 1",
                    params![now_s()],
                )
                .await
                .map_err(sql_err)?;
                Ok(())
            })
            .await
        })
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
                apply_batch(conn, batch).await
            })
            .await
        })
        .await
    }

    async fn load_items(&self, account_id: UserId) -> Result<Vec<Item>, StoreError> {
        self.run(move |conn| async move {
            query_items(
                &conn,
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM inventory
                     WHERE account_id = ?1 AND (status IN {HELD} OR (status = 'withdrawn' AND kept_by_house))
                     ORDER BY msg_id"
                ),
                params![account_id],
            )
            .await
        })
        .await
    }

    async fn list_owner(&self, owner: Owner) -> Result<Vec<Item>, StoreError> {
        self.run(move |conn| async move {
            let filter = match owner {
                Owner::User(_) => "owner_id = ?1",
                Owner::Unattributed => "owner_id IS NULL AND ?1 IS NULL",
            };
            query_items(
                &conn,
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM inventory
                     WHERE {filter} AND status IN {HELD} ORDER BY account_id, msg_id"
                ),
                params![owner.user_id()],
            )
            .await
        })
        .await
    }

    async fn owner_stats(&self, user_id: UserId) -> Result<OwnerStats, StoreError> {
        self.run(move |conn| async move {
            let mut rows = conn
                .query(
                    "SELECT
                       count(*) FILTER (WHERE status = 'held'),
                       coalesce(sum(stars) FILTER (WHERE status IN
                         ('held', 'withdraw_requested', 'withdrawing')), 0),
                       count(*) FILTER (WHERE status IN ('withdraw_requested', 'withdrawing')),
                       count(*) FILTER (WHERE status = 'withdrawn'),
                       count(*)
                     FROM inventory WHERE owner_id = ?1",
                    params![user_id],
                )
                .await
                .map_err(sql_err)?;
            let row = rows
                .next()
                .await
                .map_err(sql_err)?
                .ok_or_else(|| StoreError::Sqlite("aggregate returned no row".into()))?;
            Ok(OwnerStats {
                held: row.get(0).map_err(sql_err)?,
                held_stars: row.get(1).map_err(sql_err)?,
                withdraw_pending: row.get(2).map_err(sql_err)?,
                withdrawn: row.get(3).map_err(sql_err)?,
                deposited: row.get(4).map_err(sql_err)?,
            })
        })
        .await
    }

    async fn item_history(&self, key: ItemKey) -> Result<Vec<LedgerEntry>, StoreError> {
        self.run(move |conn| async move {
            let mut rows = conn
                .query(
                    "SELECT idempotency_key, owner_id, kind, stars, at FROM transactions
                     WHERE account_id = ?1 AND msg_id = ?2 ORDER BY id",
                    params![key.account_id, key.msg_id],
                )
                .await
                .map_err(sql_err)?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next().await.map_err(sql_err)? {
                let kind: String = row.get(2).map_err(sql_err)?;
                entries.push(LedgerEntry {
                    idempotency_key: row.get(0).map_err(sql_err)?,
                    key,
                    owner: Owner::from_user_id(row.get(1).map_err(sql_err)?),
                    kind: LedgerKind::parse(&kind).ok_or_else(|| {
                        StoreError::Sqlite(format!("unknown ledger kind {kind:?}"))
                    })?,
                    stars: row.get(3).map_err(sql_err)?,
                    at: row.get(4).map_err(sql_err)?,
                });
            }
            Ok(entries)
        })
        .await
    }

    async fn assign_owner(&self, key: ItemKey, user_id: UserId) -> Result<bool, StoreError> {
        self.run(move |conn| async move {
            write_tx(&conn, async |conn| {
                let Some((stars, owner, _)) = item_stars_owner(conn, key).await? else {
                    return Err(StoreError::ItemNotFound(key));
                };
                match owner {
                    Some(o) if o == user_id => return Ok(false),
                    Some(o) => return Err(StoreError::AlreadyOwned { key, owner: o }),
                    None => {}
                }
                let now = now_s();
                conn.execute(
                    "INSERT INTO users (id, created_at, updated_at) VALUES (?1, ?2, ?2)
                     ON CONFLICT (id) DO NOTHING",
                    params![user_id, now],
                )
                .await
                .map_err(sql_err)?;
                conn.execute(
                    "UPDATE inventory SET owner_id = ?3, updated_at = ?4
                     WHERE account_id = ?1 AND msg_id = ?2",
                    params![key.account_id, key.msg_id, user_id, now],
                )
                .await
                .map_err(sql_err)?;
                let idempotency_key = format!("assigned:{key}");
                notify::add(
                    conn,
                    &Notice {
                        dedupe_key: &idempotency_key,
                        kind: NotificationKind::Assigned,
                        user_id,
                        key,
                        withdrawal_id: None,
                        wait_reason: None,
                        until_ms: None,
                        reason: None,
                    },
                    now_ms(),
                )
                .await?;
                insert_ledger(
                    conn,
                    &LedgerEntry {
                        idempotency_key,
                        key,
                        owner: Owner::User(user_id),
                        kind: LedgerKind::Assigned,
                        stars,
                        at: now,
                    },
                )
                .await?;
                Ok(true)
            })
            .await
        })
        .await
    }

    async fn create_withdrawal(
        &self,
        owner: UserId,
        key: ItemKey,
    ) -> Result<WithdrawalId, StoreError> {
        let id = self
            .run(move |conn| async move {
                write_tx(&conn, async |conn| {
                    let Some((stars, item_owner, status)) = item_stars_owner(conn, key).await?
                    else {
                        return Err(StoreError::ItemNotFound(key));
                    };
                    if item_owner != Some(owner) {
                        return Err(StoreError::NotOwner {
                            key,
                            user_id: owner,
                        });
                    }
                    if status == Status::WithdrawRequested || status == Status::Withdrawing {
                        let mut rows = conn
                            .query(
                                "SELECT id FROM withdrawals
                             WHERE account_id = ?1 AND msg_id = ?2
                               AND status IN ('requested', 'approval', 'waiting', 'claimed',
                                 'sending', 'unknown')",
                                params![key.account_id, key.msg_id],
                            )
                            .await
                            .map_err(sql_err)?;
                        if let Some(row) = rows.next().await.map_err(sql_err)? {
                            return row.get::<i64>(0).map_err(sql_err);
                        }
                    }
                    if status != Status::Held {
                        return Err(StoreError::NotHeld { key, status });
                    }
                    let mut rows = conn
                    .query(
                        "INSERT INTO withdrawals (account_id, msg_id, owner_id, requested_at, kind)
                         VALUES (?1, ?2, ?3, ?4, (SELECT CASE WHEN collectible_id IS NULL
                           THEN 'resend' ELSE 'transfer' END FROM inventory
                           WHERE account_id = ?1 AND msg_id = ?2))
                         RETURNING id",
                        params![key.account_id, key.msg_id, owner, now_s()],
                    )
                    .await
                    .map_err(sql_err)?;
                    let id: i64 = rows
                        .next()
                        .await
                        .map_err(sql_err)?
                        .ok_or_else(|| StoreError::Sqlite("INSERT RETURNING gave no row".into()))?
                        .get(0)
                        .map_err(sql_err)?;
                    drop(rows);
                    set_item_status(conn, key, Status::WithdrawRequested).await?;
                    insert_ledger(
                        conn,
                        &withdrawal_entry(key, owner, LedgerKind::WithdrawRequested, stars, id),
                    )
                    .await?;
                    let kind = NotificationKind::WithdrawalQueued;
                    let dedupe = crate::store::notify::withdrawal_dedupe_key(id, kind, 0, None);
                    notify::add(
                        conn,
                        &Notice {
                            dedupe_key: &dedupe,
                            kind,
                            user_id: owner,
                            key,
                            withdrawal_id: Some(id),
                            wait_reason: None,
                            until_ms: None,
                            reason: None,
                        },
                        now_ms(),
                    )
                    .await?;
                    Ok(id)
                })
                .await
            })
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
            write_tx(&conn, async |conn| {
                check_fence(conn, account_id, epoch).await?;
                let now = now_ms();
                let mut rows = conn
                    .query(
                        "SELECT id FROM withdrawals
                         WHERE account_id = ?1 AND status IN ('requested', 'waiting')
                           AND coalesce(not_before_ms, 0) <= ?2
                         ORDER BY id LIMIT 1",
                        params![account_id, now],
                    )
                    .await
                    .map_err(sql_err)?;
                let Some(row) = rows.next().await.map_err(sql_err)? else {
                    return Ok(None);
                };
                let id: i64 = row.get(0).map_err(sql_err)?;
                drop(rows);
                conn.execute(
                    "UPDATE withdrawals SET status = 'claimed', worker_id = ?2, claimed_at = ?3,
                       lease_until_ms = ?4, attempt = attempt + 1, epoch = ?5
                     WHERE id = ?1",
                    params![
                        id,
                        worker_id,
                        now / 1000,
                        now.saturating_add(lease_ms),
                        epoch
                    ],
                )
                .await
                .map_err(sql_err)?;
                let w = load_withdrawal(conn, id)
                    .await?
                    .ok_or(StoreError::WithdrawalNotFound(id))?;
                if let Some((stars, _, Status::WithdrawRequested)) =
                    item_stars_owner(conn, w.key).await?
                {
                    set_item_status(conn, w.key, Status::Withdrawing).await?;
                    insert_ledger(
                        conn,
                        &crate::withdrawal::ledger_entry(
                            &w,
                            LedgerKind::WithdrawStarted,
                            w.attempt,
                            stars,
                            now / 1000,
                        ),
                    )
                    .await?;
                }
                Ok(Some(w))
            })
            .await
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
            write_tx(&conn, async |conn| {
                check_fence(conn, account_id, epoch).await?;
                let now = now_ms();
                let mut rows = conn
                    .query(
                        &format!(
                            "SELECT {WITHDRAWAL_COLUMNS}, coalesce(lease_until_ms, 0) < ?2
                             FROM withdrawals
                             WHERE account_id = ?1 AND status IN ('claimed', 'sending')
                               AND (coalesce(lease_until_ms, 0) < ?2
                                 OR (?3 IS NOT NULL AND epoch IS NOT NULL AND epoch < ?3))
                             ORDER BY id"
                        ),
                        params![account_id, now, epoch],
                    )
                    .await
                    .map_err(sql_err)?;
                let mut expired = Vec::new();
                while let Some(row) = rows.next().await.map_err(sql_err)? {
                    let lease_ran_out: bool = row.get(17).map_err(sql_err)?;
                    expired.push((withdrawal_row(&row)?, lease_ran_out));
                }
                drop(rows);
                for (w, lease_ran_out) in &expired {
                    let mut mv = WithdrawalMove::rescue(w);
                    if !lease_ran_out {
                        mv.reason = Some(Some(rescue_reason(w.state).to_owned()));
                    }
                    apply_withdrawal_move(conn, &mv).await?;
                }
                Ok(expired.len() as u64)
            })
            .await
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
        self.run(move |conn| async move {
            let states: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            // State names come from `RequestState::as_str`, never from input.
            let state_clause = if states.is_empty() {
                String::new()
            } else {
                format!(" AND status IN ({})", states.join(", "))
            };
            let limit = if filter.limit == 0 {
                -1
            } else {
                filter.limit as i64
            };
            let mut rows = conn
                .query(
                    &format!(
                        "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals
                         WHERE (?1 IS NULL OR account_id = ?1) AND (?2 IS NULL OR owner_id = ?2)
                         {state_clause} ORDER BY id DESC LIMIT ?3"
                    ),
                    params![filter.account_id, filter.owner, limit],
                )
                .await
                .map_err(sql_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().await.map_err(sql_err)? {
                out.push(withdrawal_row(&row)?);
            }
            Ok(out)
        })
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
        self.run(move |conn| async move {
            write_tx(&conn, async |conn| {
                let now = now_ms();
                let expires = now.saturating_add(ttl);
                let epoch = match read_lease(conn, &name, now).await? {
                    Some(l) if l.is_live() && l.holder != holder => {
                        return Ok(LeaseAnswer::Refused(Some(l)));
                    }
                    Some(l) if l.is_live() => l.epoch,
                    Some(l) => l.epoch + 1,
                    None => 1,
                };
                conn.execute(
                    "INSERT INTO leases (name, holder, epoch, expires_at_ms, taken_at_ms,
                       renewed_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                       epoch = excluded.epoch, expires_at_ms = excluded.expires_at_ms,
                       taken_at_ms = CASE WHEN leases.epoch = excluded.epoch
                         THEN leases.taken_at_ms ELSE excluded.taken_at_ms END,
                       renewed_at_ms = excluded.renewed_at_ms",
                    params![name.as_str(), holder.as_str(), epoch, expires, now],
                )
                .await
                .map_err(sql_err)?;
                Ok(LeaseAnswer::Held(Lease {
                    name: name.clone(),
                    holder: holder.clone(),
                    epoch,
                    expires_at_ms: expires,
                    db_now_ms: now,
                }))
            })
            .await
        })
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
        self.run(move |conn| async move {
            write_tx(&conn, async |conn| {
                let now = now_ms();
                match read_lease(conn, &name, now).await? {
                    Some(l) if l.holder == holder && l.epoch == epoch => {
                        let expires = now.saturating_add(ttl);
                        conn.execute(
                            "UPDATE leases SET expires_at_ms = ?2, renewed_at_ms = ?3
                             WHERE name = ?1",
                            params![name.as_str(), expires, now],
                        )
                        .await
                        .map_err(sql_err)?;
                        Ok(LeaseAnswer::Held(Lease {
                            expires_at_ms: expires,
                            ..l
                        }))
                    }
                    other => Ok(LeaseAnswer::Refused(other)),
                }
            })
            .await
        })
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
        self.run(move |conn| async move {
            let changed = conn
                .execute(
                    "UPDATE leases SET expires_at_ms = min(expires_at_ms, ?4)
                     WHERE name = ?1 AND holder = ?2 AND epoch = ?3",
                    params![name.as_str(), holder.as_str(), epoch, now_ms()],
                )
                .await
                .map_err(sql_err)?;
            Ok(changed > 0)
        })
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

/// Why a request claimed under an older term of the account's lease is taken back.
fn rescue_reason(state: RequestState) -> &'static str {
    if state == RequestState::Sending {
        "the instance that was sending it lost the deposit account's lease"
    } else {
        "the instance that claimed it lost the deposit account's lease before it sent anything"
    }
}

/// Writes a reconciliation pass's row, once per `pass_id`.
async fn insert_sync_log(conn: &Connection, log: &SyncLog) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sync_logs (pass_id, account_id, started_at, finished_at, items_seen,
           items_new, items_changed, error, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (pass_id) DO NOTHING",
        params![
            log.pass_id.clone(),
            log.account_id,
            log.started_at,
            log.finished_at,
            log.items_seen,
            log.items_new,
            log.items_changed,
            log.error.clone(),
            now_s()
        ],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gift::{LedgerKind, Owner};
    use crate::store::{ChangeBatch, StatusChange};

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

    /// A file of the version before the `sold` and `burned` statuses is upgraded when opened:
    /// its inventory table is rebuilt with every row, and a sale can then be recorded.
    #[tokio::test]
    async fn a_version_6_file_keeps_its_items_and_learns_sold_and_burned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("giftd.sqlite3");
        let store = SqliteStore::open(&path).await.unwrap();
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
        store.apply_batch(&batch).await.unwrap();
        store
            .run(|conn| async move {
                let mut rows = conn
                    .query(
                        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'inventory'",
                        (),
                    )
                    .await
                    .map_err(sql_err)?;
                let mut sql = String::new();
                while let Some(row) = rows.next().await.map_err(sql_err)? {
                    sql = row.get(0).map_err(sql_err)?;
                }
                drop(rows);
                let old = sql
                    .replacen("CREATE TABLE inventory", "CREATE TABLE inventory_v6", 1)
                    .replacen("'sold', 'burned', ", "", 1);
                conn.execute_batch(&format!(
                    "BEGIN; PRAGMA defer_foreign_keys = ON; {old};
                     INSERT INTO inventory_v6 SELECT * FROM inventory; DROP TABLE inventory;
                     ALTER TABLE inventory_v6 RENAME TO inventory;
                     UPDATE schema_version SET version = 6; COMMIT;"
                ))
                .await
                .map_err(sql_err)
            })
            .await
            .unwrap();
        drop(store);
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.check_schema().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(store.load_items(1).await.unwrap(), vec![item.clone()]);
        let sold = StatusChange::new(&item, Status::Sold, 7).unwrap();
        let batch = ChangeBatch {
            changes: vec![sold],
            ..ChangeBatch::default()
        };
        store.apply_batch(&batch).await.unwrap();
        let history = store.item_history(item.key).await.unwrap();
        assert_eq!(
            history.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [LedgerKind::Deposit, LedgerKind::Sold]
        );
    }

    /// A file of the version before leases is upgraded when opened: the leases table and the
    /// requests' epoch column arrive, and nothing assumes the versions in between exist.
    #[tokio::test]
    async fn a_version_3_file_is_upgraded_to_leases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("giftd.sqlite3");
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .run(|conn| async move {
                conn.execute_batch(
                    "DROP TABLE leases; UPDATE schema_version SET version = 3;
                     ALTER TABLE withdrawals DROP COLUMN epoch;",
                )
                .await
                .map_err(sql_err)
            })
            .await
            .unwrap();
        assert_eq!(store.schema_version().await.unwrap(), 3);
        drop(store);
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.check_schema().await.unwrap(), SCHEMA_VERSION);
        let taken = store
            .take_lease("account:1", "me", Duration::from_secs(15))
            .await
            .unwrap();
        assert_eq!(taken.held().map(|l| l.epoch), Some(1));
        assert_eq!(
            store
                .claim_withdrawal(1, "w", Duration::from_secs(60), Some(1))
                .await
                .unwrap(),
            None
        );
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

    #[test]
    fn busy_and_disk_errors_are_retryable() {
        let busy = sql_err(libsql::Error::SqliteFailure(5, "database is locked".into()));
        assert!(matches!(busy, StoreError::Busy(_)) && busy.is_retryable());
        // SQLITE_BUSY_SNAPSHOT (517) is an extended code of SQLITE_BUSY.
        assert!(sql_err(libsql::Error::SqliteFailure(517, "snapshot".into())).is_retryable());
        assert!(sql_err(libsql::Error::SqliteFailure(13, "disk full".into())).is_retryable());
        let corrupt = sql_err(libsql::Error::SqliteFailure(11, "malformed".into()));
        assert!(!corrupt.is_retryable());
        let readonly = sql_err(libsql::Error::SqliteFailure(8, "readonly".into()));
        assert!(!readonly.is_retryable());
    }
}
