//! Leases in the embedded store: the named terms (`account:<id>`, the bot's) an instance
//! holds, with their epochs, and the fencing check every write for a deposit account runs in
//! its transaction. Times are this host's clock: one process uses the file, kept so by the OS
//! lock ([`super::SqliteStore::open_exclusive`]).
//!
//! Must never: give a live lease to a second holder, or let a write through whose term is over.

use libsql::{Connection, params};

use super::tx::{sql_err, write_tx};
use crate::gift::UserId;
use crate::store::{Epoch, Lease, LeaseAnswer, StoreError, account_lease, now_ms};

/// The lease `name` as the file holds it, read at `now`.
pub(super) async fn read_lease(
    conn: &Connection,
    name: &str,
    now: i64,
) -> Result<Option<Lease>, StoreError> {
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
pub(super) async fn check_fence(
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

/// [`Store::take_lease`](crate::store::Store::take_lease), on the store's connection.
pub(super) async fn take_lease(
    conn: &Connection,
    name: String,
    holder: String,
    ttl: i64,
) -> Result<LeaseAnswer, StoreError> {
    write_tx(conn, async |conn| {
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
}

/// [`Store::renew_lease`](crate::store::Store::renew_lease), on the store's connection.
pub(super) async fn renew_lease(
    conn: &Connection,
    name: String,
    holder: String,
    epoch: Epoch,
    ttl: i64,
) -> Result<LeaseAnswer, StoreError> {
    write_tx(conn, async |conn| {
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
}

/// [`Store::release_lease`](crate::store::Store::release_lease), on the store's connection.
pub(super) async fn release_lease(
    conn: &Connection,
    name: String,
    holder: String,
    epoch: Epoch,
) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE leases SET expires_at_ms = min(expires_at_ms, ?4)
             WHERE name = ?1 AND holder = ?2 AND epoch = ?3",
            params![name.as_str(), holder.as_str(), epoch, now_ms()],
        )
        .await
        .map_err(sql_err)?;
    Ok(changed > 0)
}
