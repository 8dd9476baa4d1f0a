//! A change batch in the embedded store: the users, gift kinds, items, status changes,
//! attributions and sync logs one reconciliation pass or update hands over, written in the
//! caller's transaction with the notices they cause.
//!
//! Must never: apply a status change [`Status::transition`] refuses (it is reported back as
//! refused), or tell a credit twice (only the batch that records an item writes its notice).

use libsql::{Connection, params};

use super::inventory::{ITEM_COLUMNS, item_status};
use super::ledger::insert_ledger;
use super::notify::{self, Notice};
use super::sync_log::insert_sync_log;
use super::tx::{now_s, sql_err};
use crate::gift::{ItemKey, MsgId, Owner, Status};
use crate::store::{
    BatchOutcome, ChangeBatch, NotificationKind, RefusedChange, StoreError, now_ms,
};

/// The writes of [`Store::apply_batch`](crate::store::Store::apply_batch), inside the caller's
/// transaction (the caller has validated the batch and checked its fences).
pub(super) async fn apply_batch(
    conn: &Connection,
    batch: ChangeBatch,
) -> Result<BatchOutcome, StoreError> {
    let now = now_s();
    let mut outcome = BatchOutcome::default();

    let mut users = batch.users;
    users.sort_by_key(|u| u.id);
    users.dedup_by_key(|u| u.id);
    let upsert_user = conn
        .prepare(
            "INSERT INTO users (id, username, first_name, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO UPDATE SET username = excluded.username,
               first_name = excluded.first_name, updated_at = excluded.updated_at
             WHERE username IS NOT excluded.username OR first_name IS NOT excluded.first_name",
        )
        .await
        .map_err(sql_err)?;
    for u in users {
        upsert_user
            .execute(params![u.id, u.username, u.first_name, now])
            .await
            .map_err(sql_err)?;
        upsert_user.reset();
    }

    let mut gifts = batch.gifts;
    gifts.sort_by_key(|g| g.gift_id);
    gifts.dedup_by_key(|g| g.gift_id);
    let upsert_gift = conn
        .prepare(
            "INSERT INTO gifts (gift_id, title, stars, is_unique, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (gift_id) DO UPDATE SET title = coalesce(excluded.title, title),
               stars = excluded.stars, is_unique = excluded.is_unique,
               updated_at = excluded.updated_at
             WHERE coalesce(excluded.title, title) IS NOT title OR stars IS NOT excluded.stars
               OR is_unique IS NOT excluded.is_unique",
        )
        .await
        .map_err(sql_err)?;
    for g in gifts {
        upsert_gift
            .execute(params![g.gift_id, g.title, g.stars, g.unique, now])
            .await
            .map_err(sql_err)?;
        upsert_gift.reset();
    }

    let mut items = batch.items;
    items.sort_by_key(|i| i.key);
    items.dedup_by_key(|i| i.key);
    // Owners and kinds the batch did not describe still get a row, so the foreign keys hold.
    let placeholder_user = conn
        .prepare(
            "INSERT INTO users (id, created_at, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (id) DO NOTHING",
        )
        .await
        .map_err(sql_err)?;
    let placeholder_gift = conn
        .prepare(
            "INSERT INTO gifts (gift_id, stars, is_unique, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (gift_id) DO NOTHING",
        )
        .await
        .map_err(sql_err)?;
    let notices = notify::Writer::new(conn, now_ms()).await?;
    let insert_item = conn
        .prepare(&format!(
            "INSERT INTO inventory ({ITEM_COLUMNS}, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
               ?18, ?19, ?20, ?21, ?21)
             ON CONFLICT (account_id, msg_id) DO NOTHING"
        ))
        .await
        .map_err(sql_err)?;
    for item in &items {
        if let Some(owner) = item.owner.user_id() {
            placeholder_user
                .execute(params![owner, now])
                .await
                .map_err(sql_err)?;
            placeholder_user.reset();
        }
        placeholder_gift
            .execute(params![
                item.gift_id,
                item.stars,
                item.unique.is_some(),
                now
            ])
            .await
            .map_err(sql_err)?;
        placeholder_gift.reset();
        let unique = item.unique.as_deref();
        let inserted = insert_item
            .execute(params![
                item.key.account_id,
                item.key.msg_id,
                item.owner.user_id(),
                item.gift_id,
                item.stars,
                unique.map(|u| u.collectible_id),
                unique.map(|u| u.slug.clone()),
                unique.map(|u| u.number),
                item.status.as_str(),
                item.status.upgraded_into(),
                item.upgraded_from,
                item.received_at,
                item.convert_stars,
                item.transfer_stars,
                item.can_transfer_at,
                unique.and_then(|u| u.value.fiat.as_ref()).map(|m| m.amount),
                unique
                    .and_then(|u| u.value.fiat.as_ref())
                    .map(|m| m.currency.clone()),
                unique.and_then(|u| u.value.usd_cents),
                unique.and_then(|u| u.value.paid).map(|p| p.amount()),
                unique.and_then(|u| u.value.paid).map(|p| p.currency()),
                now
            ])
            .await
            .map_err(sql_err)?;
        insert_item.reset();
        let entry = item.deposit_entry();
        if inserted > 0 {
            outcome.items_new += 1;
            // A credit, told once: only the batch that recorded the item writes its notice.
            if let (Owner::User(owner), Status::Held) = (item.owner, item.status) {
                notices
                    .add(&Notice {
                        dedupe_key: &entry.idempotency_key,
                        kind: NotificationKind::Deposit,
                        user_id: owner,
                        key: item.key,
                        withdrawal_id: None,
                        wait_reason: None,
                        until_ms: None,
                        reason: None,
                    })
                    .await?;
            }
        } else {
            outcome.items_known += 1;
        }
        insert_ledger(conn, &entry).await?;
    }

    let mut changes = batch.changes;
    changes.sort_by_key(|c| c.key);
    for change in changes {
        let current = item_status(conn, change.key).await?;
        match current {
            None => outcome.refused.push(RefusedChange {
                key: change.key,
                to: change.to,
                current: None,
            }),
            Some(from) if from == change.to => outcome.changes_unchanged += 1,
            Some(from) if from.transition(change.to).is_err() => {
                outcome.refused.push(RefusedChange {
                    key: change.key,
                    to: change.to,
                    current: Some(from),
                })
            }
            Some(_) => {
                conn.execute(
                    "UPDATE inventory SET status = ?3, upgraded_into = ?4, updated_at = ?5
                     WHERE account_id = ?1 AND msg_id = ?2",
                    params![
                        change.key.account_id,
                        change.key.msg_id,
                        change.to.as_str(),
                        change.to.upgraded_into(),
                        now
                    ],
                )
                .await
                .map_err(sql_err)?;
                insert_ledger(conn, &change.entry).await?;
                // A request nobody has claimed yet cannot be served any more.
                let mut cancelled = conn
                    .query(
                        "UPDATE withdrawals SET status = 'cancelled', completed_at = ?3,
                           reason = 'item left the account: ' || ?4
                         WHERE account_id = ?1 AND msg_id = ?2
                           AND status IN ('requested', 'approval', 'waiting')
                         RETURNING id, owner_id, reason",
                        params![
                            change.key.account_id,
                            change.key.msg_id,
                            now,
                            change.to.as_str()
                        ],
                    )
                    .await
                    .map_err(sql_err)?;
                let mut told = Vec::new();
                while let Some(row) = cancelled.next().await.map_err(sql_err)? {
                    let id: i64 = row.get(0).map_err(sql_err)?;
                    let owner: i64 = row.get(1).map_err(sql_err)?;
                    let reason: String = row.get(2).map_err(sql_err)?;
                    told.push((id, owner, reason));
                }
                drop(cancelled);
                for (id, owner, reason) in told {
                    let kind = NotificationKind::WithdrawalCancelled;
                    let dedupe = crate::store::notify::withdrawal_dedupe_key(id, kind, 0, None);
                    notices
                        .add(&Notice {
                            dedupe_key: &dedupe,
                            kind,
                            user_id: owner,
                            key: change.key,
                            withdrawal_id: Some(id),
                            wait_reason: None,
                            until_ms: None,
                            reason: Some(&reason),
                        })
                        .await?;
                }
                if let Status::Upgraded { into } = change.to {
                    link_upgrade(conn, change.key, into).await?;
                }
                outcome.changes_applied += 1;
            }
        }
    }

    let mut attributions = batch.attributions;
    attributions.sort_by_key(|a| a.key);
    attributions.dedup_by_key(|a| a.key);
    for a in attributions {
        conn.execute(
            "INSERT INTO users (id, created_at, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (id) DO NOTHING",
            params![a.owner, now],
        )
        .await
        .map_err(sql_err)?;
        // Only an item with no owner: never over an operator's assignment or a replay.
        let changed = conn
            .execute(
                "UPDATE inventory SET owner_id = ?3, updated_at = ?4
                 WHERE account_id = ?1 AND msg_id = ?2 AND owner_id IS NULL",
                params![a.key.account_id, a.key.msg_id, a.owner, now],
            )
            .await
            .map_err(sql_err)?;
        if changed > 0 {
            insert_ledger(conn, &a.entry).await?;
            notices
                .add(&Notice {
                    dedupe_key: &a.entry.idempotency_key,
                    kind: NotificationKind::Attributed,
                    user_id: a.owner,
                    key: a.key,
                    withdrawal_id: None,
                    wait_reason: None,
                    until_ms: None,
                    reason: None,
                })
                .await?;
            outcome.attributed += 1;
        } else {
            outcome.attributions_skipped += 1;
        }
    }

    for log in &batch.sync_logs {
        insert_sync_log(conn, log).await?;
    }

    // A collectible written after (or in the same batch as) the end of the gift it was upgraded
    // from points back to it.
    for item in items.iter().filter(|i| i.upgraded_from.is_none()) {
        conn.execute(
            "UPDATE inventory SET upgraded_from = (
               SELECT o.msg_id FROM inventory o
               WHERE o.account_id = ?1 AND o.upgraded_into = ?2 AND o.status = 'upgraded')
             WHERE account_id = ?1 AND msg_id = ?2 AND upgraded_from IS NULL
               AND EXISTS (SELECT 1 FROM inventory o
                 WHERE o.account_id = ?1 AND o.upgraded_into = ?2 AND o.status = 'upgraded')",
            params![item.key.account_id, item.key.msg_id],
        )
        .await
        .map_err(sql_err)?;
    }
    Ok(outcome)
}

/// Points the collectible `into` back at the regular gift `from` it was upgraded from, when the
/// collectible is already recorded and does not say yet.
async fn link_upgrade(conn: &Connection, from: ItemKey, into: MsgId) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE inventory SET upgraded_from = ?2
         WHERE account_id = ?1 AND msg_id = ?3 AND upgraded_from IS NULL",
        params![from.account_id, from.msg_id, into],
    )
    .await
    .map_err(sql_err)?;
    Ok(())
}
