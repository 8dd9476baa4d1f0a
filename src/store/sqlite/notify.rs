//! The notifications outbox in the embedded store (schema version 4): rows written inside the
//! transactions of credits and withdrawal moves, claimed at most once. Semantics in
//! [`crate::store::notify`].
//!
//! Must never: hand out a row that is not `pending`, or put a row that was claimed and not
//! reported back to `pending` on its own (it may have been sent).

use libsql::{Connection, Statement, params};

use super::{sql_err, write_tx};
use crate::gift::{ItemKey, UserId};
use crate::store::notify::{RETENTION, RETENTION_BATCH, STALE_AFTER};
use crate::store::{
    Notification, NotificationId, NotificationKind, NotificationOutcome, StoreError, WaitReason,
    WithdrawalId,
};

pub(super) const SCHEMA_V4_NOTIFICATIONS: &str = "
CREATE TABLE IF NOT EXISTS notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dedupe_key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  user_id INTEGER NOT NULL,
  account_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  gift_id INTEGER NOT NULL,
  title TEXT,
  stars INTEGER NOT NULL,
  slug TEXT,
  number INTEGER,
  withdrawal_id INTEGER,
  wait_reason TEXT,
  until_ms INTEGER,
  reason TEXT,
  state TEXT NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'claimed', 'sent', 'undeliverable', 'unknown')),
  created_at_ms INTEGER NOT NULL,
  claimed_at_ms INTEGER,
  lease_until_ms INTEGER,
  finished_at_ms INTEGER,
  error TEXT
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notifications_pending_age ON notifications (created_at_ms)
  WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notifications_claimed ON notifications (lease_until_ms)
  WHERE state = 'claimed';
CREATE INDEX IF NOT EXISTS notifications_finished ON notifications (finished_at_ms)
  WHERE state IN ('sent', 'undeliverable', 'unknown');
";

/// One notification to write; the item's gift, title, value and collectible are read from the
/// store in the same statement.
#[derive(Debug, Clone)]
pub(super) struct Notice<'a> {
    pub dedupe_key: &'a str,
    pub kind: NotificationKind,
    pub user_id: UserId,
    pub key: ItemKey,
    pub withdrawal_id: Option<WithdrawalId>,
    pub wait_reason: Option<WaitReason>,
    pub until_ms: Option<i64>,
    pub reason: Option<&'a str>,
}

/// A prepared insert, for the many notices of one batch.
pub(super) struct Writer {
    stmt: Statement,
    now_ms: i64,
}

impl Writer {
    pub async fn new(conn: &Connection, now_ms: i64) -> Result<Self, StoreError> {
        let stmt = conn
            .prepare(
                "INSERT INTO notifications (dedupe_key, kind, user_id, account_id, msg_id,
                   gift_id, title, stars, slug, number, withdrawal_id, wait_reason, until_ms,
                   reason, created_at_ms)
                 SELECT ?1, ?2, ?3, i.account_id, i.msg_id, i.gift_id, g.title, i.stars, i.slug,
                   i.number, ?6, ?7, ?8, ?9, ?10
                 FROM inventory i LEFT JOIN gifts g ON g.gift_id = i.gift_id
                 WHERE i.account_id = ?4 AND i.msg_id = ?5
                 ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .await
            .map_err(sql_err)?;
        Ok(Writer { stmt, now_ms })
    }

    /// Writes the notice unless one with its dedupe key exists.
    pub async fn add(&self, n: &Notice<'_>) -> Result<(), StoreError> {
        self.stmt
            .execute(params![
                n.dedupe_key,
                n.kind.as_str(),
                n.user_id,
                n.key.account_id,
                n.key.msg_id,
                n.withdrawal_id,
                n.wait_reason.map(WaitReason::as_str),
                n.until_ms,
                n.reason,
                self.now_ms
            ])
            .await
            .map_err(sql_err)?;
        self.stmt.reset();
        Ok(())
    }
}

/// Writes one notice inside the caller's transaction.
pub(super) async fn add(conn: &Connection, n: &Notice<'_>, now_ms: i64) -> Result<(), StoreError> {
    Writer::new(conn, now_ms).await?.add(n).await
}

const COLUMNS: &str = "id, kind, user_id, account_id, msg_id, gift_id, title, stars, slug, \
    number, withdrawal_id, wait_reason, until_ms, reason, created_at_ms";

fn row(r: &libsql::Row) -> Result<Notification, StoreError> {
    let kind: String = r.get(1).map_err(sql_err)?;
    let wait: Option<String> = r.get(11).map_err(sql_err)?;
    Ok(Notification {
        id: r.get(0).map_err(sql_err)?,
        kind: NotificationKind::parse(&kind)
            .ok_or_else(|| StoreError::Sqlite(format!("unknown notification kind {kind:?}")))?,
        user_id: r.get(2).map_err(sql_err)?,
        key: ItemKey::new(r.get(3).map_err(sql_err)?, r.get(4).map_err(sql_err)?),
        gift_id: r.get(5).map_err(sql_err)?,
        title: r.get(6).map_err(sql_err)?,
        stars: r.get(7).map_err(sql_err)?,
        slug: r.get(8).map_err(sql_err)?,
        number: r.get(9).map_err(sql_err)?,
        withdrawal_id: r.get(10).map_err(sql_err)?,
        wait_reason: wait.as_deref().and_then(WaitReason::parse),
        until_ms: r.get(12).map_err(sql_err)?,
        reason: r.get(13).map_err(sql_err)?,
        created_at_ms: r.get(14).map_err(sql_err)?,
    })
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) async fn claim(
    conn: &Connection,
    limit: usize,
    lease_ms: i64,
    now_ms: i64,
) -> Result<Vec<Notification>, StoreError> {
    write_tx(conn, async |conn| {
        conn.execute(
            "UPDATE notifications SET state = 'unknown', finished_at_ms = ?1,
               error = 'claimed and not reported before its lease ran out: perhaps sent, \
               never sent again'
             WHERE state = 'claimed' AND lease_until_ms < ?1",
            params![now_ms],
        )
        .await
        .map_err(sql_err)?;
        conn.execute(
            "DELETE FROM notifications WHERE id IN (
               SELECT id FROM notifications
               WHERE state IN ('sent', 'undeliverable', 'unknown') AND finished_at_ms < ?1
               LIMIT ?2)",
            params![now_ms.saturating_sub(ms(RETENTION)), RETENTION_BATCH],
        )
        .await
        .map_err(sql_err)?;
        conn.execute(
            "UPDATE notifications SET state = 'undeliverable', finished_at_ms = ?1,
               error = 'stale: not sent within a week of the change'
             WHERE id IN (SELECT id FROM notifications
               WHERE state = 'pending' AND created_at_ms < ?2 ORDER BY created_at_ms LIMIT ?3)",
            params![
                now_ms,
                now_ms.saturating_sub(ms(STALE_AFTER)),
                RETENTION_BATCH
            ],
        )
        .await
        .map_err(sql_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = conn
            .query(
                &format!(
                    "UPDATE notifications SET state = 'claimed', claimed_at_ms = ?1,
                       lease_until_ms = ?2
                     WHERE id IN (SELECT id FROM notifications WHERE state = 'pending'
                       ORDER BY id LIMIT ?3)
                     RETURNING {COLUMNS}"
                ),
                params![now_ms, now_ms.saturating_add(lease_ms), limit],
            )
            .await
            .map_err(sql_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().await.map_err(sql_err)? {
            out.push(row(&r)?);
        }
        // RETURNING gives no order.
        out.sort_by_key(|n| n.id);
        Ok(out)
    })
    .await
}

pub(super) async fn finish(
    conn: &Connection,
    ids: &[NotificationId],
    outcome: &NotificationOutcome,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let (state, error, finished) = match outcome {
        NotificationOutcome::Sent => ("sent", None, Some(now_ms)),
        NotificationOutcome::Undeliverable { reason } => {
            ("undeliverable", Some(reason.clone()), Some(now_ms))
        }
        NotificationOutcome::Released => ("pending", None, None),
    };
    let ids = ids.to_vec();
    write_tx(conn, async |conn| {
        let stmt = conn
            .prepare(
                "UPDATE notifications SET state = ?2, error = ?3, finished_at_ms = ?4,
                   lease_until_ms = CASE WHEN ?2 = 'pending' THEN NULL ELSE lease_until_ms END
                 WHERE id = ?1 AND state IN ('claimed', 'unknown')",
            )
            .await
            .map_err(sql_err)?;
        let mut changed = 0;
        for id in ids {
            changed += stmt
                .execute(params![id, state, error.clone(), finished])
                .await
                .map_err(sql_err)?;
            stmt.reset();
        }
        Ok(changed as u64)
    })
    .await
}

/// Puts `user`'s notifications that could not reach them, created since `since_ms`, back to
/// pending.
pub(super) async fn requeue(
    conn: &Connection,
    user: UserId,
    since_ms: i64,
) -> Result<u64, StoreError> {
    write_tx(conn, async |conn| {
        let n = conn
            .execute(
                "UPDATE notifications SET state = 'pending', error = NULL, finished_at_ms = NULL,
                   claimed_at_ms = NULL, lease_until_ms = NULL
                 WHERE user_id = ?1 AND state = 'undeliverable' AND error = ?2
                   AND created_at_ms >= ?3",
                params![user, crate::store::notify::UNREACHABLE, since_ms],
            )
            .await
            .map_err(sql_err)?;
        Ok(n)
    })
    .await
}
