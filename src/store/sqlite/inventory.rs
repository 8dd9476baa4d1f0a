//! The inventory in the embedded store: one row per gift a deposit account holds or held, read
//! by account or by owner, and the operator's assignment of an unattributed gift. The batches
//! that write it are in [`super::batch`].
//!
//! Must never: give an item that has an owner another one ([`assign_owner`] refuses it), or
//! change an item's status outside the caller's transaction.

use libsql::{Connection, params};

use super::ledger::insert_ledger;
use super::notify::{self, Notice};
use super::tx::{now_s, sql_err, write_tx};
use crate::gift::{Item, ItemKey, LedgerEntry, LedgerKind, Owner, Status, UserId};
use crate::store::{ItemRow, NotificationKind, OwnerStats, StoreError, now_ms};

const HELD: &str = "('held', 'withdraw_requested', 'withdrawing')";

pub(super) const ITEM_COLUMNS: &str = "account_id, msg_id, owner_id, gift_id, stars, collectible_id, slug, \
    number, status, upgraded_into, upgraded_from, received_at, convert_stars, transfer_stars, \
    can_transfer_at, value_amount, value_currency, value_usd_cents, paid_amount, paid_currency";

fn item_from_row(row: &libsql::Row) -> Result<Item, StoreError> {
    ItemRow {
        account_id: row.get(0).map_err(sql_err)?,
        msg_id: row.get(1).map_err(sql_err)?,
        owner_id: row.get(2).map_err(sql_err)?,
        gift_id: row.get(3).map_err(sql_err)?,
        stars: row.get(4).map_err(sql_err)?,
        collectible_id: row.get(5).map_err(sql_err)?,
        slug: row.get(6).map_err(sql_err)?,
        number: row.get(7).map_err(sql_err)?,
        status: row.get(8).map_err(sql_err)?,
        upgraded_into: row.get(9).map_err(sql_err)?,
        upgraded_from: row.get(10).map_err(sql_err)?,
        received_at: row.get(11).map_err(sql_err)?,
        convert_stars: row.get(12).map_err(sql_err)?,
        transfer_stars: row.get(13).map_err(sql_err)?,
        can_transfer_at: row.get(14).map_err(sql_err)?,
        value_amount: row.get(15).map_err(sql_err)?,
        value_currency: row.get(16).map_err(sql_err)?,
        value_usd_cents: row.get(17).map_err(sql_err)?,
        paid_amount: row.get(18).map_err(sql_err)?,
        paid_currency: row.get(19).map_err(sql_err)?,
    }
    .into_item()
}

async fn query_items(
    conn: &Connection,
    sql: &str,
    params: impl libsql::params::IntoParams,
) -> Result<Vec<Item>, StoreError> {
    let mut rows = conn.query(sql, params).await.map_err(sql_err)?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        items.push(item_from_row(&row)?);
    }
    Ok(items)
}

/// The item's status, or `None` when the store does not know it.
pub(super) async fn item_status(
    conn: &Connection,
    key: ItemKey,
) -> Result<Option<Status>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT status, upgraded_into FROM inventory WHERE account_id = ?1 AND msg_id = ?2",
            params![key.account_id, key.msg_id],
        )
        .await
        .map_err(sql_err)?;
    let Some(row) = rows.next().await.map_err(sql_err)? else {
        return Ok(None);
    };
    let name: String = row.get(0).map_err(sql_err)?;
    let into: Option<i32> = row.get(1).map_err(sql_err)?;
    Status::from_parts(&name, into)
        .map(Some)
        .ok_or_else(|| StoreError::Sqlite(format!("item {key}: unknown status {name:?}")))
}

pub(super) async fn item_stars_owner(
    conn: &Connection,
    key: ItemKey,
) -> Result<Option<(i64, Option<i64>, Status)>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT stars, owner_id, status, upgraded_into FROM inventory
             WHERE account_id = ?1 AND msg_id = ?2",
            params![key.account_id, key.msg_id],
        )
        .await
        .map_err(sql_err)?;
    let Some(row) = rows.next().await.map_err(sql_err)? else {
        return Ok(None);
    };
    let name: String = row.get(2).map_err(sql_err)?;
    let status = Status::from_parts(&name, row.get(3).map_err(sql_err)?)
        .ok_or_else(|| StoreError::Sqlite(format!("item {key}: unknown status {name:?}")))?;
    Ok(Some((
        row.get(0).map_err(sql_err)?,
        row.get(1).map_err(sql_err)?,
        status,
    )))
}

pub(super) async fn set_item_status(
    conn: &Connection,
    key: ItemKey,
    to: Status,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE inventory SET status = ?3, updated_at = ?4 WHERE account_id = ?1 AND msg_id = ?2",
        params![key.account_id, key.msg_id, to.as_str(), now_s()],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}

/// [`Store::load_items`](crate::store::Store::load_items), on the store's connection.
pub(super) async fn load_items(
    conn: &Connection,
    account_id: UserId,
) -> Result<Vec<Item>, StoreError> {
    query_items(
        conn,
        &format!(
            "SELECT {ITEM_COLUMNS} FROM inventory
             WHERE account_id = ?1 AND (status IN {HELD} OR (status = 'withdrawn' AND kept_by_house))
             ORDER BY msg_id"
        ),
        params![account_id],
    )
    .await
}

/// [`Store::list_owner`](crate::store::Store::list_owner), on the store's connection.
pub(super) async fn list_owner(conn: &Connection, owner: Owner) -> Result<Vec<Item>, StoreError> {
    let filter = match owner {
        Owner::User(_) => "owner_id = ?1",
        Owner::Unattributed => "owner_id IS NULL AND ?1 IS NULL",
    };
    query_items(
        conn,
        &format!(
            "SELECT {ITEM_COLUMNS} FROM inventory
             WHERE {filter} AND status IN {HELD} ORDER BY account_id, msg_id"
        ),
        params![owner.user_id()],
    )
    .await
}

/// [`Store::owner_stats`](crate::store::Store::owner_stats), on the store's connection.
pub(super) async fn owner_stats(
    conn: &Connection,
    user_id: UserId,
) -> Result<OwnerStats, StoreError> {
    let mut rows = conn
        .query(
            "SELECT
               count(*) FILTER (WHERE status = 'held'),
               coalesce(sum(stars) FILTER (WHERE status IN
                 ('held', 'withdraw_requested', 'withdrawing')), 0),
               count(*) FILTER (WHERE status IN ('withdraw_requested', 'withdrawing')),
               count(*) FILTER (WHERE status = 'withdrawn'),
               count(*)
             FROM inventory WHERE owner_id = ?1",
            params![user_id],
        )
        .await
        .map_err(sql_err)?;
    let row = rows
        .next()
        .await
        .map_err(sql_err)?
        .ok_or_else(|| StoreError::Sqlite("aggregate returned no row".into()))?;
    Ok(OwnerStats {
        held: row.get(0).map_err(sql_err)?,
        held_stars: row.get(1).map_err(sql_err)?,
        withdraw_pending: row.get(2).map_err(sql_err)?,
        withdrawn: row.get(3).map_err(sql_err)?,
        deposited: row.get(4).map_err(sql_err)?,
    })
}

/// [`Store::assign_owner`](crate::store::Store::assign_owner), on the store's connection.
pub(super) async fn assign_owner(
    conn: &Connection,
    key: ItemKey,
    user_id: UserId,
) -> Result<bool, StoreError> {
    write_tx(conn, async |conn| {
        let Some((stars, owner, _)) = item_stars_owner(conn, key).await? else {
            return Err(StoreError::ItemNotFound(key));
        };
        match owner {
            Some(o) if o == user_id => return Ok(false),
            Some(o) => return Err(StoreError::AlreadyOwned { key, owner: o }),
            None => {}
        }
        let now = now_s();
        conn.execute(
            "INSERT INTO users (id, created_at, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (id) DO NOTHING",
            params![user_id, now],
        )
        .await
        .map_err(sql_err)?;
        conn.execute(
            "UPDATE inventory SET owner_id = ?3, updated_at = ?4
             WHERE account_id = ?1 AND msg_id = ?2",
            params![key.account_id, key.msg_id, user_id, now],
        )
        .await
        .map_err(sql_err)?;
        let idempotency_key = format!("assigned:{key}");
        notify::add(
            conn,
            &Notice {
                dedupe_key: &idempotency_key,
                kind: NotificationKind::Assigned,
                user_id,
                key,
                withdrawal_id: None,
                wait_reason: None,
                until_ms: None,
                reason: None,
            },
            now_ms(),
        )
        .await?;
        insert_ledger(
            conn,
            &LedgerEntry {
                idempotency_key,
                key,
                owner: Owner::User(user_id),
                kind: LedgerKind::Assigned,
                stars,
                at: now,
            },
        )
        .await?;
        Ok(true)
    })
    .await
}
