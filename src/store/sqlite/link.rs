//! Link tokens and web links in the embedded store (schema version 4): the SQL behind
//! [`Store::create_link_token`](crate::store::Store::create_link_token) and
//! [`Store::consume_link_token`](crate::store::Store::consume_link_token), each called inside
//! the store's one connection. Semantics in [`crate::store::link`].
//!
//! Must never: store a token in clear (only [`link_token_hash`] of it), or write anything for
//! a token that is unknown, used or expired.

use libsql::{Connection, params};

use super::{sql_err, write_tx};
use crate::gift::UserId;
use crate::store::{LinkOutcome, StoreError, WebUserId, link_token_hash};

/// The version-4 tables. `link_tokens` itself is rebuilt by [`upgrade_link_tokens`].
pub(super) const SCHEMA_V4_LINKS: &str = "
CREATE INDEX IF NOT EXISTS link_tokens_web_user ON link_tokens (web_user_id);
CREATE TABLE IF NOT EXISTS web_links (
  web_user_id TEXT PRIMARY KEY,
  telegram_user_id INTEGER NOT NULL UNIQUE,
  linked_at_ms INTEGER NOT NULL
);
";

/// Version 3's tokens named a Telegram user (a bigint) and nothing ever minted them for a web
/// account: the table is replaced (once: a file that has the version-4 table keeps it, whatever
/// its recorded version). Old tokens cannot be converted; they were short-lived anyway.
pub(super) async fn upgrade_link_tokens(conn: &Connection) -> Result<(), StoreError> {
    let mut rows = conn
        .query(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'link_tokens'",
            (),
        )
        .await
        .map_err(sql_err)?;
    let sql: String = match rows.next().await.map_err(sql_err)? {
        Some(row) => row.get(0).map_err(sql_err)?,
        None => String::new(),
    };
    drop(rows);
    if !sql.contains("web_user_id") {
        conn.execute_batch(
            "DROP TABLE IF EXISTS link_tokens;
             CREATE TABLE link_tokens (
               token_hash TEXT PRIMARY KEY,
               web_user_id TEXT NOT NULL,
               created_at_ms INTEGER NOT NULL,
               expires_at_ms INTEGER NOT NULL,
               used_at_ms INTEGER,
               used_by INTEGER
             );",
        )
        .await
        .map_err(sql_err)?;
    }
    Ok(())
}

pub(super) async fn create(
    conn: &Connection,
    hash: &str,
    web_user: WebUserId,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO link_tokens (token_hash, web_user_id, created_at_ms, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
        params![hash, web_user.to_string(), now_ms, expires_at_ms],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}

pub(super) async fn consume(
    conn: &Connection,
    token: &str,
    telegram_user: UserId,
    now_ms: i64,
) -> Result<LinkOutcome, StoreError> {
    let hash = link_token_hash(token);
    write_tx(conn, async |conn| {
        let mut rows = conn
            .query(
                "SELECT web_user_id, expires_at_ms, used_at_ms, used_by FROM link_tokens
                 WHERE token_hash = ?1",
                params![hash.as_str()],
            )
            .await
            .map_err(sql_err)?;
        let Some(row) = rows.next().await.map_err(sql_err)? else {
            return Ok(LinkOutcome::Unknown);
        };
        let web: String = row.get(0).map_err(sql_err)?;
        let expires_at_ms: i64 = row.get(1).map_err(sql_err)?;
        let used_at_ms: Option<i64> = row.get(2).map_err(sql_err)?;
        let used_by: Option<i64> = row.get(3).map_err(sql_err)?;
        drop(rows);
        let web_user: WebUserId = web
            .parse()
            .map_err(|e| StoreError::Sqlite(format!("link_tokens: {e}")))?;
        if used_at_ms.is_some() {
            // The same player opening the same link again, still linked: the same answer.
            if used_by == Some(telegram_user)
                && linked(conn, web_user).await? == Some(telegram_user)
            {
                return Ok(LinkOutcome::Linked { web_user });
            }
            return Ok(LinkOutcome::Used);
        }
        if expires_at_ms <= now_ms {
            return Ok(LinkOutcome::Expired);
        }
        conn.execute(
            "UPDATE link_tokens SET used_at_ms = ?2, used_by = ?3 WHERE token_hash = ?1",
            params![hash.as_str(), now_ms, telegram_user],
        )
        .await
        .map_err(sql_err)?;
        // One to one, the newest link wins on both sides.
        conn.execute(
            "DELETE FROM web_links WHERE web_user_id = ?1 OR telegram_user_id = ?2",
            params![web_user.to_string(), telegram_user],
        )
        .await
        .map_err(sql_err)?;
        conn.execute(
            "INSERT INTO web_links (web_user_id, telegram_user_id, linked_at_ms)
             VALUES (?1, ?2, ?3)",
            params![web_user.to_string(), telegram_user, now_ms],
        )
        .await
        .map_err(sql_err)?;
        Ok(LinkOutcome::Linked { web_user })
    })
    .await
}

pub(super) async fn linked(
    conn: &Connection,
    web_user: WebUserId,
) -> Result<Option<UserId>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT telegram_user_id FROM web_links WHERE web_user_id = ?1",
            params![web_user.to_string()],
        )
        .await
        .map_err(sql_err)?;
    match rows.next().await.map_err(sql_err)? {
        Some(row) => Ok(Some(row.get(0).map_err(sql_err)?)),
        None => Ok(None),
    }
}
