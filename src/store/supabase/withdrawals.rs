//! Withdrawal requests in the Supabase store: a request as the functions return it, a move as
//! `giftd_fenced_move_withdrawal` reads it, and the calls that create, claim, move, rescue and
//! list requests (each one function, one transaction, fenced by the account's lease term).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::SupabaseStore;
use super::inventory::status;
use super::rest::{FnAnswer, fenced};
use crate::gift::{ItemKey, MsgId, UserId};
use crate::store::{
    Epoch, RequestState, StoreError, WaitReason, Withdrawal, WithdrawalFilter, WithdrawalId,
    WithdrawalKind, WithdrawalMove,
};

/// A `withdrawals` row as the giftd_* functions return it.
#[derive(Debug, Deserialize)]
struct WithdrawalRow {
    id: i64,
    account_id: i64,
    msg_id: MsgId,
    owner_id: i64,
    status: String,
    kind: String,
    attempt: i32,
    worker_id: Option<String>,
    lease_until_ms: Option<i64>,
    not_before_ms: Option<i64>,
    wait_reason: Option<String>,
    fee_stars: Option<i64>,
    approved_stars: Option<i64>,
    form_id: Option<i64>,
    reason: Option<String>,
    requested_at: i64,
    sending_at_ms: Option<i64>,
}

impl WithdrawalRow {
    fn into_withdrawal(self) -> Result<Withdrawal, StoreError> {
        Ok(Withdrawal {
            id: self.id,
            key: ItemKey::new(self.account_id, self.msg_id),
            owner: self.owner_id,
            state: request_state(&self.status)?,
            kind: WithdrawalKind::parse(&self.kind).ok_or_else(|| {
                StoreError::Protocol(format!("unknown withdrawal kind {:?}", self.kind))
            })?,
            attempt: self.attempt,
            worker: self.worker_id,
            not_before_ms: self.not_before_ms,
            lease_until_ms: self.lease_until_ms,
            wait_reason: self.wait_reason.as_deref().and_then(WaitReason::parse),
            fee_stars: self.fee_stars,
            approved_stars: self.approved_stars,
            form_id: self.form_id,
            reason: self.reason,
            requested_at: self.requested_at,
            sending_at_ms: self.sending_at_ms,
        })
    }
}

fn request_state(name: &str) -> Result<RequestState, StoreError> {
    RequestState::parse(name)
        .ok_or_else(|| StoreError::Protocol(format!("unknown withdrawal state {name:?}")))
}

/// A move as `giftd_move_withdrawal` reads it: optional columns are present only when the move
/// sets them (possibly to null).
fn move_json(mv: &WithdrawalMove) -> Value {
    let mut m = json!({
        "id": mv.id,
        "from": mv.from.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "to": mv.to.as_str(),
        "item_to": mv.to.item_status().as_str(),
        "ledger_kind": mv.ledger.as_str(),
        "mark_sending": mv.mark_sending,
        "reset_attempts": mv.reset_attempts,
        "kept_by_house": mv.kept_by_house,
    });
    let o = m.as_object_mut().expect("a JSON object literal");
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_owned(), v);
    };
    if let Some(w) = &mv.worker {
        put("worker", json!(w));
    }
    if let Some(a) = mv.attempt {
        put("attempt", json!(a));
    }
    if let Some(x) = mv.owner {
        put("owner", json!(x));
    }
    if let Some(v) = &mv.set_worker {
        put("set_worker", json!(v));
    }
    if let Some(v) = mv.lease_ms {
        put("lease_ms", json!(v));
    }
    if let Some(v) = mv.not_before_ms {
        put("not_before_ms", json!(v));
    }
    if let Some(v) = mv.wait_reason {
        put("wait_reason", json!(v.map(WaitReason::as_str)));
    }
    if let Some(v) = mv.fee_stars {
        put("fee_stars", json!(v));
    }
    if let Some(v) = mv.approved_stars {
        put("approved_stars", json!(v));
    }
    if let Some(v) = mv.form_id {
        put("form_id", json!(v));
    }
    if let Some(v) = &mv.reason {
        put("reason", json!(v));
    }
    if let Some(v) = mv.daily_budget {
        put("daily_budget", json!(v));
    }
    if let Some(v) = mv.epoch {
        put("epoch", json!(v));
    }
    m
}

/// [`Store::create_withdrawal`](crate::store::Store::create_withdrawal), through PostgREST.
pub(super) async fn create_withdrawal(
    store: &SupabaseStore,
    owner: UserId,
    key: ItemKey,
) -> Result<WithdrawalId, StoreError> {
    let a: FnAnswer = store
        .rpc(
            "giftd_create_withdrawal",
            json!({
                "p_account_id": key.account_id, "p_msg_id": key.msg_id, "p_owner_id": owner,
            }),
        )
        .await?;
    match (a.error.as_deref(), a.id) {
        (None, Some(id)) => Ok(id),
        (Some("not_found"), _) => Err(StoreError::ItemNotFound(key)),
        (Some("not_owner"), _) => Err(StoreError::NotOwner {
            key,
            user_id: owner,
        }),
        (Some("not_held"), _) => Err(StoreError::NotHeld {
            key,
            status: status(a.status.as_deref().unwrap_or(""), a.upgraded_into)?,
        }),
        (other, _) => Err(StoreError::Protocol(format!(
            "giftd_create_withdrawal: {other:?}"
        ))),
    }
}

/// [`Store::claim_withdrawal`](crate::store::Store::claim_withdrawal), through PostgREST.
pub(super) async fn claim_withdrawal(
    store: &SupabaseStore,
    account_id: UserId,
    worker_id: &str,
    lease: Duration,
    epoch: Option<Epoch>,
) -> Result<Option<Withdrawal>, StoreError> {
    let answer: Value = store
        .rpc(
            "giftd_fenced_claim_withdrawal",
            json!({
                "p_account_id": account_id,
                "p_worker_id": worker_id,
                "p_lease_ms": i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                "p_epoch": epoch.unwrap_or(0),
            }),
        )
        .await?;
    fenced(&answer)?;
    let row: Option<WithdrawalRow> =
        serde_json::from_value(answer.get("row").cloned().unwrap_or(Value::Null))
            .map_err(|e| StoreError::Protocol(format!("giftd_fenced_claim_withdrawal: {e}")))?;
    row.map(WithdrawalRow::into_withdrawal).transpose()
}

/// [`Store::move_withdrawal`](crate::store::Store::move_withdrawal), through PostgREST.
pub(super) async fn move_withdrawal(
    store: &SupabaseStore,
    mv: &WithdrawalMove,
) -> Result<Withdrawal, StoreError> {
    #[derive(Deserialize)]
    struct Answer {
        row: Option<WithdrawalRow>,
        error: Option<String>,
        status: Option<String>,
        worker_id: Option<String>,
        attempt: Option<i32>,
        fee: Option<i64>,
        total: Option<i64>,
        budget: Option<i64>,
    }
    let answer: Value = store
        .rpc(
            "giftd_fenced_move_withdrawal",
            json!({ "p_move": move_json(mv) }),
        )
        .await?;
    fenced(&answer)?;
    let a: Answer = serde_json::from_value(answer)
        .map_err(|e| StoreError::Protocol(format!("giftd_fenced_move_withdrawal: {e}")))?;
    match (a.error.as_deref(), a.row) {
        (None, Some(row)) => row.into_withdrawal(),
        (Some("not_found"), _) => Err(StoreError::WithdrawalNotFound(mv.id)),
        (Some("not_owner"), _) => Err(StoreError::WithdrawalNotOwner { id: mv.id }),
        (Some("wrong_state"), _) => Err(StoreError::WithdrawalMoveRefused {
            id: mv.id,
            state: request_state(a.status.as_deref().unwrap_or(""))?,
            to: mv.to,
            holder: a.worker_id.map(|w| (w, a.attempt.unwrap_or(0))),
        }),
        (Some("over_budget"), _) => Err(StoreError::OverDailyBudget {
            id: mv.id,
            fee: a.fee.unwrap_or(0),
            total: a.total.unwrap_or(0),
            budget: a.budget.unwrap_or(0),
        }),
        (other, _) => Err(StoreError::Protocol(format!(
            "giftd_move_withdrawal: {other:?}"
        ))),
    }
}

/// [`Store::rescue_withdrawals`](crate::store::Store::rescue_withdrawals), through PostgREST.
pub(super) async fn rescue_withdrawals(
    store: &SupabaseStore,
    account_id: UserId,
    epoch: Option<Epoch>,
) -> Result<u64, StoreError> {
    let answer: Value = store
        .rpc(
            "giftd_fenced_rescue_withdrawals",
            json!({ "p_account_id": account_id, "p_epoch": epoch.unwrap_or(0) }),
        )
        .await?;
    fenced(&answer)?;
    let n = answer["rescued"].as_i64().ok_or_else(|| {
        StoreError::Protocol(format!("giftd_fenced_rescue_withdrawals: {answer}"))
    })?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// [`Store::withdrawal`](crate::store::Store::withdrawal), through PostgREST.
pub(super) async fn withdrawal(
    store: &SupabaseStore,
    id: WithdrawalId,
) -> Result<Option<Withdrawal>, StoreError> {
    let row: Option<WithdrawalRow> = store
        .rpc("giftd_get_withdrawal", json!({ "p_id": id }))
        .await?;
    row.map(WithdrawalRow::into_withdrawal).transpose()
}

/// [`Store::list_withdrawals`](crate::store::Store::list_withdrawals), through PostgREST.
pub(super) async fn list_withdrawals(
    store: &SupabaseStore,
    filter: &WithdrawalFilter,
) -> Result<Vec<Withdrawal>, StoreError> {
    // RPC arguments are never null (postrust 3.1 reads a JSON null as ""): i64::MIN and an
    // empty list mean "any".
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let rows: Vec<WithdrawalRow> = store
        .rpc(
            "giftd_list_withdrawals",
            json!({
                "p_account_id": filter.account_id.unwrap_or(i64::MIN),
                "p_owner_id": filter.owner.unwrap_or(i64::MIN),
                "p_states": states.join(","),
                "p_limit": i64::try_from(filter.limit).unwrap_or(i64::MAX),
            }),
        )
        .await?;
    rows.into_iter()
        .map(WithdrawalRow::into_withdrawal)
        .collect()
}
