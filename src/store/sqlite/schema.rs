//! The schema of the embedded store: its steps and versions (each the twin of a Supabase
//! migration), the table rebuilds SQLite needs where Postgres alters in place, and the
//! `schema_version` row that says which step a file has reached.
//!
//! Must never: run a step twice in a way that changes data (every step is idempotent, because
//! a file whose version was lowered by hand runs its steps again), or open a file whose version
//! is newer than this giftd's.

use libsql::{Connection, params};

use super::tx::{now_s, sql_err, write_tx};
use super::{desk, link, notify, player};
use crate::store::{SCHEMA_VERSION, StoreError};

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

pub(super) async fn migrate(conn: &Connection) -> Result<(), StoreError> {
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

pub(super) async fn read_version(conn: &Connection) -> Result<Option<u32>, StoreError> {
    let mut rows = conn
        .query("SELECT version FROM schema_version WHERE id = 1", ())
        .await
        .map_err(sql_err)?;
    match rows.next().await.map_err(sql_err)? {
        Some(row) => Ok(Some(row.get::<u32>(0).map_err(sql_err)?)),
        None => Ok(None),
    }
}
/// Stamps the schema row inside a write transaction: fails when the file cannot be written.
pub(super) async fn check_write(conn: &Connection) -> Result<(), StoreError> {
    write_tx(conn, async |conn| {
        conn.execute(
            "UPDATE schema_version SET checked_at = ?1 WHERE id = 1",
            params![now_s()],
        )
        .await
        .map_err(sql_err)?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::SqliteStore;
    use super::*;
    use crate::gift::{Item, ItemKey, LedgerKind, Owner, Status};
    use crate::store::{ChangeBatch, StatusChange, Store};

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
}
