//! The ledger in the embedded store (`transactions`): one row per movement of an item, keyed
//! by its idempotency key, so a replayed write adds nothing.
//!
//! Must never: update or delete an entry.

use libsql::{Connection, params};

use super::tx::{now_s, sql_err};
use crate::gift::{ItemKey, LedgerEntry, LedgerKind, Owner};
use crate::store::StoreError;

pub(super) async fn insert_ledger(conn: &Connection, e: &LedgerEntry) -> Result<(), StoreError> {
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

/// [`Store::item_history`](crate::store::Store::item_history), on the store's connection.
pub(super) async fn item_history(
    conn: &Connection,
    key: ItemKey,
) -> Result<Vec<LedgerEntry>, StoreError> {
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
            kind: LedgerKind::parse(&kind)
                .ok_or_else(|| StoreError::Sqlite(format!("unknown ledger kind {kind:?}")))?,
            stars: row.get(3).map_err(sql_err)?,
            at: row.get(4).map_err(sql_err)?,
        });
    }
    Ok(entries)
}
