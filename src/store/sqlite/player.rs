//! Players' languages in the embedded store (schema version 6). Semantics in
//! [`crate::store::player`].

use libsql::{Connection, params};

use super::{sql_err, write_tx};
use crate::gift::UserId;
use crate::store::{PlayerLanguage, StoreError};

/// Version 6 (Supabase: `20261204160000_giftd_players.sql`): the language the bot speaks to
/// each player, and an index to find a player's undelivered notifications.
pub(super) const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS players (
  user_id INTEGER PRIMARY KEY,
  lang TEXT NOT NULL,
  lang_chosen INTEGER NOT NULL DEFAULT 0,
  updated_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_undeliverable ON notifications (user_id, created_at_ms)
  WHERE state = 'undeliverable';
";

pub(super) async fn note(
    conn: &Connection,
    user: UserId,
    code: &str,
    chosen: bool,
    now_ms: i64,
) -> Result<PlayerLanguage, StoreError> {
    write_tx(conn, async |conn| {
        conn.execute(
            "INSERT INTO players (user_id, lang, lang_chosen, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET lang = excluded.lang,
               lang_chosen = excluded.lang_chosen, updated_at_ms = excluded.updated_at_ms
             WHERE excluded.lang_chosen = 1 OR players.lang_chosen = 0",
            params![user, code, i64::from(chosen), now_ms],
        )
        .await
        .map_err(sql_err)?;
        get(conn, user)
            .await?
            .ok_or_else(|| StoreError::Sqlite(format!("the language of {user} was not kept")))
    })
    .await
}

pub(super) async fn get(
    conn: &Connection,
    user: UserId,
) -> Result<Option<PlayerLanguage>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT lang, lang_chosen FROM players WHERE user_id = ?1",
            params![user],
        )
        .await
        .map_err(sql_err)?;
    match rows.next().await.map_err(sql_err)? {
        Some(r) => Ok(Some(PlayerLanguage {
            code: r.get(0).map_err(sql_err)?,
            chosen: r.get::<i64>(1).map_err(sql_err)? != 0,
        })),
        None => Ok(None),
    }
}
