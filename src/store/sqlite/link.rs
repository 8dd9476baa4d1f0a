//! Link tokens and web links in the embedded store (schema versions 4 and 6): the SQL behind
//! [`Store::create_link_token`](crate::store::Store::create_link_token),
//! [`Store::peek_link_token`](crate::store::Store::peek_link_token) and
//! [`Store::consume_link_token`](crate::store::Store::consume_link_token), each called inside
//! the store's one connection. Semantics in [`crate::store::link`].
//!
//! Must never: store a token in clear (only [`link_token_hash`] of it), or write anything for
//! a token that is unknown, used or expired.

use libsql::{Connection, params};

use super::{sql_err, write_tx};
use crate::gift::UserId;
use crate::store::{
    LinkLabel, LinkOutcome, Replaced, ReplacedLink, StoreError, WebUserId, link_token_hash,
};

/// The version-4 tables. `link_tokens` itself is rebuilt by [`upgrade_link_tokens`].
pub(super) const SCHEMA_V4_LINKS: &str = "
CREATE INDEX IF NOT EXISTS link_tokens_web_user ON link_tokens (web_user_id);
CREATE TABLE IF NOT EXISTS web_links (
  web_user_id TEXT PRIMARY KEY,
  telegram_user_id INTEGER NOT NULL UNIQUE,
  linked_at_ms INTEGER NOT NULL
);
";

/// Version 6: labels (columns added by the step) and the record of replaced links.
pub(super) const SCHEMA_V6_CONSENT: &str = "
CREATE TABLE IF NOT EXISTS web_link_replacements (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  web_user_id TEXT NOT NULL,
  telegram_user_id INTEGER NOT NULL,
  replaced_by TEXT NOT NULL,
  replaced_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS web_link_replacements_web_user
  ON web_link_replacements (web_user_id, id);
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
    label: &LinkLabel,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO link_tokens (token_hash, web_user_id, label, created_at_ms, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            hash,
            web_user.to_string(),
            label.as_str(),
            now_ms,
            expires_at_ms
        ],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}

/// A token as stored.
struct TokenRow {
    web_user: WebUserId,
    label: String,
    expires_at_ms: i64,
    used_at_ms: Option<i64>,
    used_by: Option<i64>,
}

async fn token(conn: &Connection, hash: &str) -> Result<Option<TokenRow>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT web_user_id, label, expires_at_ms, used_at_ms, used_by FROM link_tokens
             WHERE token_hash = ?1",
            params![hash],
        )
        .await
        .map_err(sql_err)?;
    let Some(row) = rows.next().await.map_err(sql_err)? else {
        return Ok(None);
    };
    let web: String = row.get(0).map_err(sql_err)?;
    Ok(Some(TokenRow {
        web_user: web
            .parse()
            .map_err(|e| StoreError::Sqlite(format!("link_tokens: {e}")))?,
        label: row.get(1).map_err(sql_err)?,
        expires_at_ms: row.get(2).map_err(sql_err)?,
        used_at_ms: row.get(3).map_err(sql_err)?,
        used_by: row.get(4).map_err(sql_err)?,
    }))
}

/// The web account `telegram_user` is linked to, when it is not `except`.
async fn other_link(
    conn: &Connection,
    telegram_user: UserId,
    except: WebUserId,
) -> Result<Option<Replaced>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT web_user_id, label FROM web_links
             WHERE telegram_user_id = ?1 AND web_user_id <> ?2",
            params![telegram_user, except.to_string()],
        )
        .await
        .map_err(sql_err)?;
    let Some(row) = rows.next().await.map_err(sql_err)? else {
        return Ok(None);
    };
    let web: String = row.get(0).map_err(sql_err)?;
    Ok(Some(Replaced {
        web_user: web
            .parse()
            .map_err(|e| StoreError::Sqlite(format!("web_links: {e}")))?,
        label: row.get(1).map_err(sql_err)?,
    }))
}

/// What the token is to `telegram_user` before anything is written: `Ok(t)` when it can be
/// spent, else the outcome to answer.
async fn check(
    conn: &Connection,
    hash: &str,
    telegram_user: UserId,
    now_ms: i64,
) -> Result<Result<TokenRow, LinkOutcome>, StoreError> {
    let Some(t) = token(conn, hash).await? else {
        return Ok(Err(LinkOutcome::Unknown));
    };
    if t.used_at_ms.is_some() {
        // The same player opening the same link again, still linked: the same answer.
        if t.used_by == Some(telegram_user)
            && linked(conn, t.web_user).await? == Some(telegram_user)
        {
            return Ok(Err(LinkOutcome::Linked {
                web_user: t.web_user,
                label: t.label,
            }));
        }
        return Ok(Err(LinkOutcome::Used));
    }
    if t.expires_at_ms <= now_ms {
        return Ok(Err(LinkOutcome::Expired));
    }
    Ok(Ok(t))
}

pub(super) async fn peek(
    conn: &Connection,
    token: &str,
    telegram_user: UserId,
    now_ms: i64,
) -> Result<LinkOutcome, StoreError> {
    let hash = link_token_hash(token);
    let t = match check(conn, &hash, telegram_user, now_ms).await? {
        Ok(t) => t,
        Err(outcome) => return Ok(outcome),
    };
    Ok(LinkOutcome::Ask {
        web_user: t.web_user,
        replaces: other_link(conn, telegram_user, t.web_user).await?,
        label: t.label,
    })
}

pub(super) async fn consume(
    conn: &Connection,
    token: &str,
    telegram_user: UserId,
    replace: bool,
    now_ms: i64,
) -> Result<LinkOutcome, StoreError> {
    let hash = link_token_hash(token);
    write_tx(conn, async |conn| {
        let t = match check(conn, &hash, telegram_user, now_ms).await? {
            Ok(t) => t,
            Err(outcome) => return Ok(outcome),
        };
        let web_user = t.web_user;
        if let Some(old) = other_link(conn, telegram_user, web_user).await? {
            if !replace {
                return Ok(LinkOutcome::NeedsReplace {
                    web_user,
                    label: t.label,
                    replaces: old,
                });
            }
            conn.execute(
                "INSERT INTO web_link_replacements
                   (web_user_id, telegram_user_id, replaced_by, replaced_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    old.web_user.to_string(),
                    telegram_user,
                    web_user.to_string(),
                    now_ms
                ],
            )
            .await
            .map_err(sql_err)?;
        }
        conn.execute(
            "UPDATE link_tokens SET used_at_ms = ?2, used_by = ?3 WHERE token_hash = ?1",
            params![hash.as_str(), now_ms, telegram_user],
        )
        .await
        .map_err(sql_err)?;
        conn.execute(
            "DELETE FROM web_links WHERE web_user_id = ?1 OR telegram_user_id = ?2",
            params![web_user.to_string(), telegram_user],
        )
        .await
        .map_err(sql_err)?;
        conn.execute(
            "INSERT INTO web_links (web_user_id, telegram_user_id, linked_at_ms, label)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                web_user.to_string(),
                telegram_user,
                now_ms,
                t.label.as_str()
            ],
        )
        .await
        .map_err(sql_err)?;
        Ok(LinkOutcome::Linked {
            web_user,
            label: t.label,
        })
    })
    .await
}

pub(super) async fn replaced(
    conn: &Connection,
    web_user: WebUserId,
) -> Result<Vec<ReplacedLink>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT telegram_user_id, replaced_by, replaced_at_ms FROM web_link_replacements
             WHERE web_user_id = ?1 ORDER BY id DESC",
            params![web_user.to_string()],
        )
        .await
        .map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        let by: String = row.get(1).map_err(sql_err)?;
        out.push(ReplacedLink {
            telegram_user: row.get(0).map_err(sql_err)?,
            replaced_by: by
                .parse()
                .map_err(|e| StoreError::Sqlite(format!("web_link_replacements: {e}")))?,
            replaced_at_ms: row.get(2).map_err(sql_err)?,
        });
    }
    Ok(out)
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
