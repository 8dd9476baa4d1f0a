//! The operator's desk in the embedded store (schema version 7): every deposit account the file
//! knows, with its items, lease, last Stars balance and queue; and the balances the worker
//! records. Semantics in [`crate::store::desk`].
//!
//! Must never: write anything but `account_balances`.

use libsql::{Connection, params};

use super::sql_err;
use crate::gift::UserId;
use crate::store::StoreError;
use crate::store::desk::{AccountDesk, DeskRow};

pub(super) const SCHEMA_V7_BALANCES: &str = "
CREATE TABLE IF NOT EXISTS account_balances (
  account_id INTEGER PRIMARY KEY,
  stars INTEGER NOT NULL,
  read_at_ms INTEGER NOT NULL
);
";

const OPEN: &str = "('requested', 'approval', 'waiting', 'claimed', 'sending', 'unknown')";
const IN_ACCOUNT: &str = "('held', 'withdraw_requested', 'withdrawing')";

pub(super) async fn desk(conn: &Connection, now_ms: i64) -> Result<Vec<AccountDesk>, StoreError> {
    let sql = format!(
        "WITH accounts AS (
           SELECT account_id FROM inventory WHERE status IN {IN_ACCOUNT}
           UNION SELECT CAST(substr(name, 9) AS INTEGER) FROM leases WHERE name LIKE 'account:%'
           UNION SELECT account_id FROM withdrawals WHERE status IN {OPEN}
           UNION SELECT account_id FROM account_balances
         ), items AS (
           SELECT account_id, count(*) AS n, sum(stars) AS stars FROM inventory
           WHERE status IN {IN_ACCOUNT} GROUP BY account_id
         )
         SELECT a.account_id, coalesce(i.n, 0), coalesce(i.stars, 0), l.holder, l.epoch,
           l.expires_at_ms, b.stars, b.read_at_ms
         FROM accounts a
         LEFT JOIN items i ON i.account_id = a.account_id
         LEFT JOIN leases l ON l.name = 'account:' || a.account_id
         LEFT JOIN account_balances b ON b.account_id = a.account_id
         ORDER BY a.account_id"
    );
    let mut rows = conn.query(&sql, ()).await.map_err(sql_err)?;
    let mut desk = Vec::new();
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        desk.push(DeskRow {
            account_id: row.get(0).map_err(sql_err)?,
            items: row.get(1).map_err(sql_err)?,
            stars: row.get(2).map_err(sql_err)?,
            holder: row.get(3).map_err(sql_err)?,
            epoch: row.get(4).map_err(sql_err)?,
            lease_expires_at_ms: row.get(5).map_err(sql_err)?,
            db_now_ms: now_ms,
            balance: row.get(6).map_err(sql_err)?,
            balance_at_ms: row.get(7).map_err(sql_err)?,
            queue: Default::default(),
        });
    }
    drop(rows);
    let mut rows = conn
        .query(
            &format!(
                "SELECT account_id, status, count(*) FROM withdrawals WHERE status IN {OPEN}
                 GROUP BY account_id, status"
            ),
            (),
        )
        .await
        .map_err(sql_err)?;
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        let account: UserId = row.get(0).map_err(sql_err)?;
        let status: String = row.get(1).map_err(sql_err)?;
        let n: i64 = row.get(2).map_err(sql_err)?;
        if let Some(d) = desk.iter_mut().find(|d| d.account_id == account) {
            d.queue.insert(status, n);
        }
    }
    Ok(desk.into_iter().map(DeskRow::into_desk).collect())
}

pub(super) async fn record_balance(
    conn: &Connection,
    account: UserId,
    stars: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO account_balances (account_id, stars, read_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id) DO UPDATE SET stars = excluded.stars,
           read_at_ms = excluded.read_at_ms",
        params![account, stars, now_ms],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}
