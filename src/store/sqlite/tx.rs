//! The shared transaction helpers of the embedded store: the write transaction every write
//! runs in ([`write_tx`]), the mapping of SQLite's errors onto [`StoreError`] ([`sql_err`]:
//! busy and disk errors are retryable, the rest are not) and the clock the rows are stamped
//! with.
//!
//! Must never: leave a transaction open after an error, or report a busy file as a permanent
//! failure.

use libsql::Connection;

use crate::store::{StoreError, now_ms};

pub(super) fn sql_err(e: libsql::Error) -> StoreError {
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

pub(super) fn now_s() -> i64 {
    now_ms() / 1000
}

/// Runs `body` in a write transaction (`BEGIN IMMEDIATE`: the write lock is taken up front, so
/// a busy file fails before anything is done), committing on success and rolling back on any
/// error.
pub(super) async fn write_tx<T>(
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

#[cfg(test)]
mod tests {
    use super::*;

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
