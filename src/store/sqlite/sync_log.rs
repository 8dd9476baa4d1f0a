//! Sync logs in the embedded store: one row per reconciliation pass, named by its pass, so a
//! replayed batch writes it once.

use libsql::{Connection, params};

use super::tx::{now_s, sql_err};
use crate::store::{StoreError, SyncLog};

/// Writes a reconciliation pass's row, once per `pass_id`.
pub(super) async fn insert_sync_log(conn: &Connection, log: &SyncLog) -> Result<(), StoreError> {
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
