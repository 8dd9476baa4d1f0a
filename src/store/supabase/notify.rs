//! The notifications outbox in the Supabase store: a row as `giftd_claim_notifications`
//! returns it, and the calls that claim, finish and requeue rows. Semantics in
//! [`crate::store::notify`].

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::SupabaseStore;
use crate::gift::{ItemKey, MsgId, UserId};
use crate::store::{
    Notification, NotificationId, NotificationKind, NotificationOutcome, StoreError, WaitReason,
};

/// A `notifications` row as `giftd_claim_notifications` returns it.
#[derive(Debug, Deserialize)]
struct NotificationRow {
    id: i64,
    kind: String,
    user_id: i64,
    account_id: i64,
    msg_id: MsgId,
    gift_id: i64,
    title: Option<String>,
    stars: i64,
    slug: Option<String>,
    number: Option<i32>,
    withdrawal_id: Option<i64>,
    wait_reason: Option<String>,
    until_ms: Option<i64>,
    reason: Option<String>,
    created_at_ms: i64,
}

impl NotificationRow {
    fn into_notification(self) -> Result<Notification, StoreError> {
        Ok(Notification {
            id: self.id,
            kind: NotificationKind::parse(&self.kind).ok_or_else(|| {
                StoreError::Protocol(format!("unknown notification kind {:?}", self.kind))
            })?,
            user_id: self.user_id,
            key: ItemKey::new(self.account_id, self.msg_id),
            gift_id: self.gift_id,
            title: self.title,
            stars: self.stars,
            slug: self.slug,
            number: self.number,
            withdrawal_id: self.withdrawal_id,
            wait_reason: self.wait_reason.as_deref().and_then(WaitReason::parse),
            until_ms: self.until_ms,
            reason: self.reason,
            created_at_ms: self.created_at_ms,
        })
    }
}

/// [`Store::claim_notifications`](crate::store::Store::claim_notifications), through PostgREST.
pub(super) async fn claim_notifications(
    store: &SupabaseStore,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Notification>, StoreError> {
    let rows: Vec<NotificationRow> = store
        .rpc(
            "giftd_claim_notifications",
            json!({
                "p_limit": i32::try_from(limit).unwrap_or(i32::MAX),
                "p_lease_ms": i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
            }),
        )
        .await?;
    rows.into_iter()
        .map(NotificationRow::into_notification)
        .collect()
}

/// [`Store::finish_notifications`](crate::store::Store::finish_notifications), through PostgREST.
pub(super) async fn finish_notifications(
    store: &SupabaseStore,
    ids: &[NotificationId],
    outcome: &NotificationOutcome,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    // RPC arguments are never null (postrust 3.1 reads a JSON null as ""): "" is no error.
    let (state, error) = match outcome {
        NotificationOutcome::Sent => ("sent", ""),
        NotificationOutcome::Undeliverable { reason } => ("undeliverable", reason.as_str()),
        NotificationOutcome::Released => ("pending", ""),
    };
    let n: i64 = store
        .rpc(
            "giftd_finish_notifications",
            json!({ "p_ids": ids, "p_state": state, "p_error": error }),
        )
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// [`Store::requeue_undelivered`](crate::store::Store::requeue_undelivered), through PostgREST.
pub(super) async fn requeue_undelivered(
    store: &SupabaseStore,
    user: UserId,
    max_age: Duration,
) -> Result<u64, StoreError> {
    let n: i64 = store
        .rpc(
            "giftd_requeue_notifications",
            json!({
                "p_user_id": user,
                "p_max_age_ms": i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX),
            }),
        )
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
