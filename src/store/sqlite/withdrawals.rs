//! Withdrawal requests in the embedded store: created by a player, claimed by the account's
//! worker under its lease's term, moved through the state machine of [`crate::withdrawal`]
//! with the item, the ledger and the notices in the same transaction, and rescued when the
//! worker that claimed them is gone.
//!
//! Must never: move a request the state machine does not allow, let a worker whose term is
//! over write (every claim, rescue and fenced move checks [`check_fence`] first), or spend over
//! the daily budget.

use libsql::{Connection, params};

use super::inventory::{item_stars_owner, set_item_status};
use super::lease::check_fence;
use super::ledger::insert_ledger;
use super::notify::{self, Notice};
use super::tx::{now_s, sql_err, write_tx};
use crate::gift::{ItemKey, LedgerEntry, LedgerKind, Owner, Status, UserId};
use crate::store::{
    Epoch, NotificationKind, RequestState, StoreError, WaitReason, Withdrawal, WithdrawalFilter,
    WithdrawalId, WithdrawalKind, WithdrawalMove, now_ms,
};

/// The columns [`withdrawal_row`] reads, in its order.
const WITHDRAWAL_COLUMNS: &str = "id, account_id, msg_id, owner_id, status, kind, attempt, \
    worker_id, lease_until_ms, not_before_ms, wait_reason, fee_stars, approved_stars, form_id, \
    reason, requested_at, sending_at_ms";

fn withdrawal_row(row: &libsql::Row) -> Result<Withdrawal, StoreError> {
    let status: String = row.get(4).map_err(sql_err)?;
    let kind: String = row.get(5).map_err(sql_err)?;
    let wait: Option<String> = row.get(10).map_err(sql_err)?;
    Ok(Withdrawal {
        id: row.get(0).map_err(sql_err)?,
        key: ItemKey::new(row.get(1).map_err(sql_err)?, row.get(2).map_err(sql_err)?),
        owner: row.get(3).map_err(sql_err)?,
        state: RequestState::parse(&status)
            .ok_or_else(|| StoreError::Sqlite(format!("unknown withdrawal state {status:?}")))?,
        kind: WithdrawalKind::parse(&kind)
            .ok_or_else(|| StoreError::Sqlite(format!("unknown withdrawal kind {kind:?}")))?,
        attempt: row.get(6).map_err(sql_err)?,
        worker: row.get(7).map_err(sql_err)?,
        lease_until_ms: row.get(8).map_err(sql_err)?,
        not_before_ms: row.get(9).map_err(sql_err)?,
        wait_reason: wait.as_deref().and_then(WaitReason::parse),
        fee_stars: row.get(11).map_err(sql_err)?,
        approved_stars: row.get(12).map_err(sql_err)?,
        form_id: row.get(13).map_err(sql_err)?,
        reason: row.get(14).map_err(sql_err)?,
        requested_at: row.get(15).map_err(sql_err)?,
        sending_at_ms: row.get(16).map_err(sql_err)?,
    })
}

pub(super) async fn load_withdrawal(
    conn: &Connection,
    id: WithdrawalId,
) -> Result<Option<Withdrawal>, StoreError> {
    let mut rows = conn
        .query(
            &format!("SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = ?1"),
            params![id],
        )
        .await
        .map_err(sql_err)?;
    match rows.next().await.map_err(sql_err)? {
        Some(row) => Ok(Some(withdrawal_row(&row)?)),
        None => Ok(None),
    }
}

/// Applies one state-machine move inside the caller's transaction.
pub(super) async fn apply_withdrawal_move(
    conn: &Connection,
    mv: &WithdrawalMove,
) -> Result<Withdrawal, StoreError> {
    let w = load_withdrawal(conn, mv.id)
        .await?
        .ok_or(StoreError::WithdrawalNotFound(mv.id))?;
    if mv.epoch.is_some() {
        check_fence(conn, w.key.account_id, mv.epoch).await?;
    }
    if let Some(owner) = mv.owner
        && owner != w.owner
    {
        return Err(StoreError::WithdrawalNotOwner { id: w.id });
    }
    let same_claim = mv
        .worker
        .as_ref()
        .is_none_or(|x| w.worker.as_ref() == Some(x))
        && mv.attempt.is_none_or(|a| a == w.attempt);
    if w.state == mv.to && same_claim {
        return Ok(w); // a replay: already done
    }
    if !mv.from.contains(&w.state) || !same_claim {
        return Err(StoreError::WithdrawalMoveRefused {
            id: w.id,
            state: w.state,
            to: mv.to,
            holder: w.worker.clone().map(|x| (x, w.attempt)),
        });
    }
    let now = now_ms();
    let fee = mv.fee_stars.or(w.fee_stars).unwrap_or(0);
    if let Some(budget) = mv.daily_budget {
        let day_start = now - now.rem_euclid(86_400_000);
        let mut rows = conn
            .query(
                "SELECT coalesce(sum(fee_stars), 0) FROM withdrawals
                 WHERE account_id = ?1 AND kind = ?2 AND id <> ?3
                   AND status IN ('sending', 'unknown', 'sent') AND sending_at_ms >= ?4",
                params![w.key.account_id, w.kind.as_str(), w.id, day_start],
            )
            .await
            .map_err(sql_err)?;
        let spent: i64 = match rows.next().await.map_err(sql_err)? {
            Some(row) => row.get(0).map_err(sql_err)?,
            None => 0,
        };
        drop(rows);
        if spent + fee > budget {
            return Err(StoreError::OverDailyBudget {
                id: w.id,
                fee,
                total: spent + fee,
                budget,
            });
        }
    }
    let opt = |o: &Option<Option<i64>>, cur: Option<i64>| o.map_or(cur, |v| v);
    let worker = mv.set_worker.clone().map_or(w.worker.clone(), |v| v);
    let lease = mv.lease_ms.map(|l| now + l).or(w.lease_until_ms);
    let not_before = opt(&mv.not_before_ms, w.not_before_ms);
    let wait = mv
        .wait_reason
        .map_or(w.wait_reason, |v| v)
        .map(WaitReason::as_str);
    let form_id = opt(&mv.form_id, w.form_id);
    let reason = mv.reason.clone().map_or(w.reason.clone(), |v| v);
    let attempt = if mv.reset_attempts { 0 } else { w.attempt };
    let sending_at = if mv.mark_sending {
        Some(now)
    } else {
        w.sending_at_ms
    };
    let approved = mv.approved_stars.or(w.approved_stars);
    let completed = mv.to.is_final().then_some(now / 1000);
    conn.execute(
        "UPDATE withdrawals SET status = ?2, worker_id = ?3, lease_until_ms = ?4,
           not_before_ms = ?5, wait_reason = ?6, fee_stars = ?7, approved_stars = ?8,
           form_id = ?9, reason = ?10, attempt = ?11, sending_at_ms = ?12,
           completed_at = coalesce(?13, completed_at)
         WHERE id = ?1",
        params![
            w.id,
            mv.to.as_str(),
            worker,
            lease,
            not_before,
            wait,
            mv.fee_stars.or(w.fee_stars),
            approved,
            form_id,
            reason,
            attempt,
            sending_at,
            completed
        ],
    )
    .await
    .map_err(sql_err)?;
    // The item follows the request (unless it already left the account: Telegram is the
    // truth, and reconciliation recorded why).
    let item_to = mv.to.item_status();
    let item = item_stars_owner(conn, w.key).await?;
    if let Some((_, _, status)) = item
        && status != item_to
        && status.is_held()
    {
        conn.execute(
            "UPDATE inventory SET status = ?3, kept_by_house = ?4, updated_at = ?5
             WHERE account_id = ?1 AND msg_id = ?2",
            params![
                w.key.account_id,
                w.key.msg_id,
                item_to.as_str(),
                mv.kept_by_house,
                now / 1000
            ],
        )
        .await
        .map_err(sql_err)?;
    }
    // What was paid for the send; the item's value for the other steps.
    let stars = match mv.ledger {
        LedgerKind::Withdrawn | LedgerKind::WithdrawSending => fee,
        _ => item.map_or(0, |i| i.0),
    };
    insert_ledger(
        conn,
        &crate::withdrawal::ledger_entry(&w, mv.ledger, w.attempt, stars, now / 1000),
    )
    .await?;
    if let Some(step) = crate::store::notify::withdrawal_notice(&w, mv) {
        let dedupe = crate::store::notify::withdrawal_dedupe_key(
            w.id,
            step.kind,
            w.attempt,
            step.wait_reason,
        );
        let notice = Notice {
            dedupe_key: &dedupe,
            kind: step.kind,
            user_id: w.owner,
            key: w.key,
            withdrawal_id: Some(w.id),
            wait_reason: step.wait_reason,
            until_ms: step.until_ms,
            reason: step.reason.as_deref(),
        };
        notify::add(conn, &notice, now).await?;
    }
    load_withdrawal(conn, w.id)
        .await?
        .ok_or(StoreError::WithdrawalNotFound(w.id))
}

/// A ledger entry for a withdrawal move written by the store itself.
fn withdrawal_entry(
    key: ItemKey,
    owner: UserId,
    kind: LedgerKind,
    stars: i64,
    id: WithdrawalId,
) -> LedgerEntry {
    // Terminal moves happen once per item; the others once per request.
    let idempotency_key = match kind {
        LedgerKind::Withdrawn => format!("{}:{key}", kind.as_str()),
        _ => format!("{}:{key}:{id}", kind.as_str()),
    };
    LedgerEntry {
        idempotency_key,
        key,
        owner: Owner::User(owner),
        kind,
        stars,
        at: now_s(),
    }
}

/// [`Store::create_withdrawal`](crate::store::Store::create_withdrawal), on the store's connection.
pub(super) async fn create_withdrawal(
    conn: &Connection,
    owner: UserId,
    key: ItemKey,
) -> Result<WithdrawalId, StoreError> {
    write_tx(conn, async |conn| {
        let Some((stars, item_owner, status)) = item_stars_owner(conn, key).await? else {
            return Err(StoreError::ItemNotFound(key));
        };
        if item_owner != Some(owner) {
            return Err(StoreError::NotOwner {
                key,
                user_id: owner,
            });
        }
        if status == Status::WithdrawRequested || status == Status::Withdrawing {
            let mut rows = conn
                .query(
                    "SELECT id FROM withdrawals
                 WHERE account_id = ?1 AND msg_id = ?2
                   AND status IN ('requested', 'approval', 'waiting', 'claimed',
                     'sending', 'unknown')",
                    params![key.account_id, key.msg_id],
                )
                .await
                .map_err(sql_err)?;
            if let Some(row) = rows.next().await.map_err(sql_err)? {
                return row.get::<i64>(0).map_err(sql_err);
            }
        }
        if status != Status::Held {
            return Err(StoreError::NotHeld { key, status });
        }
        let mut rows = conn
            .query(
                "INSERT INTO withdrawals (account_id, msg_id, owner_id, requested_at, kind)
             VALUES (?1, ?2, ?3, ?4, (SELECT CASE WHEN collectible_id IS NULL
               THEN 'resend' ELSE 'transfer' END FROM inventory
               WHERE account_id = ?1 AND msg_id = ?2))
             RETURNING id",
                params![key.account_id, key.msg_id, owner, now_s()],
            )
            .await
            .map_err(sql_err)?;
        let id: i64 = rows
            .next()
            .await
            .map_err(sql_err)?
            .ok_or_else(|| StoreError::Sqlite("INSERT RETURNING gave no row".into()))?
            .get(0)
            .map_err(sql_err)?;
        drop(rows);
        set_item_status(conn, key, Status::WithdrawRequested).await?;
        insert_ledger(
            conn,
            &withdrawal_entry(key, owner, LedgerKind::WithdrawRequested, stars, id),
        )
        .await?;
        let kind = NotificationKind::WithdrawalQueued;
        let dedupe = crate::store::notify::withdrawal_dedupe_key(id, kind, 0, None);
        notify::add(
            conn,
            &Notice {
                dedupe_key: &dedupe,
                kind,
                user_id: owner,
                key,
                withdrawal_id: Some(id),
                wait_reason: None,
                until_ms: None,
                reason: None,
            },
            now_ms(),
        )
        .await?;
        Ok(id)
    })
    .await
}

/// [`Store::claim_withdrawal`](crate::store::Store::claim_withdrawal), on the store's connection.
pub(super) async fn claim_withdrawal(
    conn: &Connection,
    account_id: UserId,
    worker_id: String,
    lease_ms: i64,
    epoch: Option<Epoch>,
) -> Result<Option<Withdrawal>, StoreError> {
    write_tx(conn, async |conn| {
        check_fence(conn, account_id, epoch).await?;
        let now = now_ms();
        let mut rows = conn
            .query(
                "SELECT id FROM withdrawals
                 WHERE account_id = ?1 AND status IN ('requested', 'waiting')
                   AND coalesce(not_before_ms, 0) <= ?2
                 ORDER BY id LIMIT 1",
                params![account_id, now],
            )
            .await
            .map_err(sql_err)?;
        let Some(row) = rows.next().await.map_err(sql_err)? else {
            return Ok(None);
        };
        let id: i64 = row.get(0).map_err(sql_err)?;
        drop(rows);
        conn.execute(
            "UPDATE withdrawals SET status = 'claimed', worker_id = ?2, claimed_at = ?3,
               lease_until_ms = ?4, attempt = attempt + 1, epoch = ?5
             WHERE id = ?1",
            params![
                id,
                worker_id,
                now / 1000,
                now.saturating_add(lease_ms),
                epoch
            ],
        )
        .await
        .map_err(sql_err)?;
        let w = load_withdrawal(conn, id)
            .await?
            .ok_or(StoreError::WithdrawalNotFound(id))?;
        if let Some((stars, _, Status::WithdrawRequested)) = item_stars_owner(conn, w.key).await? {
            set_item_status(conn, w.key, Status::Withdrawing).await?;
            insert_ledger(
                conn,
                &crate::withdrawal::ledger_entry(
                    &w,
                    LedgerKind::WithdrawStarted,
                    w.attempt,
                    stars,
                    now / 1000,
                ),
            )
            .await?;
        }
        Ok(Some(w))
    })
    .await
}

/// [`Store::rescue_withdrawals`](crate::store::Store::rescue_withdrawals), on the store's connection.
pub(super) async fn rescue_withdrawals(
    conn: &Connection,
    account_id: UserId,
    epoch: Option<Epoch>,
) -> Result<u64, StoreError> {
    write_tx(conn, async |conn| {
        check_fence(conn, account_id, epoch).await?;
        let now = now_ms();
        let mut rows = conn
            .query(
                &format!(
                    "SELECT {WITHDRAWAL_COLUMNS}, coalesce(lease_until_ms, 0) < ?2
                     FROM withdrawals
                     WHERE account_id = ?1 AND status IN ('claimed', 'sending')
                       AND (coalesce(lease_until_ms, 0) < ?2
                         OR (?3 IS NOT NULL AND epoch IS NOT NULL AND epoch < ?3))
                     ORDER BY id"
                ),
                params![account_id, now, epoch],
            )
            .await
            .map_err(sql_err)?;
        let mut expired = Vec::new();
        while let Some(row) = rows.next().await.map_err(sql_err)? {
            let lease_ran_out: bool = row.get(17).map_err(sql_err)?;
            expired.push((withdrawal_row(&row)?, lease_ran_out));
        }
        drop(rows);
        for (w, lease_ran_out) in &expired {
            let mut mv = WithdrawalMove::rescue(w);
            if !lease_ran_out {
                mv.reason = Some(Some(rescue_reason(w.state).to_owned()));
            }
            apply_withdrawal_move(conn, &mv).await?;
        }
        Ok(expired.len() as u64)
    })
    .await
}

/// [`Store::list_withdrawals`](crate::store::Store::list_withdrawals), on the store's connection.
pub(super) async fn list_withdrawals(
    conn: &Connection,
    filter: WithdrawalFilter,
) -> Result<Vec<Withdrawal>, StoreError> {
    let states: Vec<String> = filter
        .states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    // State names come from `RequestState::as_str`, never from input.
    let state_clause = if states.is_empty() {
        String::new()
    } else {
        format!(" AND status IN ({})", states.join(", "))
    };
    let limit = if filter.limit == 0 {
        -1
    } else {
        filter.limit as i64
    };
    let mut rows = conn
        .query(
            &format!(
                "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals
                 WHERE (?1 IS NULL OR account_id = ?1) AND (?2 IS NULL OR owner_id = ?2)
                 {state_clause} ORDER BY id DESC LIMIT ?3"
            ),
            params![filter.account_id, filter.owner, limit],
        )
        .await
        .map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        out.push(withdrawal_row(&row)?);
    }
    Ok(out)
}

/// Why a request claimed under an older term of the account's lease is taken back.
fn rescue_reason(state: RequestState) -> &'static str {
    if state == RequestState::Sending {
        "the instance that was sending it lost the deposit account's lease"
    } else {
        "the instance that claimed it lost the deposit account's lease before it sent anything"
    }
}
