//! A change batch in the Supabase store: the batch as `giftd_fenced_apply_batch_values` reads it
//! (rows sorted by key, so concurrent batches lock in the same order) and its outcome.

use serde::Deserialize;
use serde_json::{Value, json};

use super::SupabaseStore;
use super::inventory::{item_json, status};
use super::ledger::ledger_json;
use super::rest::fenced;
use crate::gift::{Item, ItemKey, MsgId};
use crate::store::{BatchOutcome, ChangeBatch, RefusedChange, StoreError};

fn batch_json(batch: &ChangeBatch) -> Value {
    // Sorted by key, so concurrent batches lock rows in the same order.
    let mut items: Vec<&Item> = batch.items.iter().collect();
    items.sort_by_key(|i| i.key);
    let mut changes: Vec<_> = batch.changes.iter().collect();
    changes.sort_by_key(|c| c.key);
    let mut attributions: Vec<_> = batch.attributions.iter().collect();
    attributions.sort_by_key(|a| a.key);
    json!({
        "users": batch.users.iter().map(|u| json!({
            "id": u.id, "username": u.username, "first_name": u.first_name,
        })).collect::<Vec<_>>(),
        "gifts": batch.gifts.iter().map(|g| json!({
            "gift_id": g.gift_id, "title": g.title, "stars": g.stars, "unique": g.unique,
        })).collect::<Vec<_>>(),
        "items": items.iter().map(|i| item_json(i)).collect::<Vec<_>>(),
        "ledger": items.iter().map(|i| ledger_json(&i.deposit_entry())).collect::<Vec<_>>(),
        "changes": changes.iter().map(|c| json!({
            "account_id": c.key.account_id,
            "msg_id": c.key.msg_id,
            "status": c.to.as_str(),
            "upgraded_into": c.to.upgraded_into(),
            "entry": ledger_json(&c.entry),
        })).collect::<Vec<_>>(),
        "attributions": attributions.iter().map(|a| json!({
            "account_id": a.key.account_id,
            "msg_id": a.key.msg_id,
            "owner_id": a.owner,
            "entry": ledger_json(&a.entry),
        })).collect::<Vec<_>>(),
        "sync_logs": &batch.sync_logs,
    })
}

#[derive(Debug, Deserialize)]
struct OutcomeRow {
    items_new: u64,
    items_known: u64,
    changes_applied: u64,
    changes_unchanged: u64,
    refused: Vec<RefusedRow>,
    attributed: u64,
    attributions_skipped: u64,
}

#[derive(Debug, Deserialize)]
struct RefusedRow {
    account_id: i64,
    msg_id: MsgId,
    status: String,
    upgraded_into: Option<MsgId>,
    current: Option<String>,
    current_upgraded_into: Option<MsgId>,
}

/// [`Store::apply_batch`](crate::store::Store::apply_batch), through PostgREST.
pub(super) async fn apply_batch(
    store: &SupabaseStore,
    batch: &ChangeBatch,
) -> Result<BatchOutcome, StoreError> {
    batch.validate()?;
    if batch.is_empty() {
        return Ok(BatchOutcome::default());
    }
    let epochs: serde_json::Map<String, Value> = batch
        .epochs
        .iter()
        .map(|(account, epoch)| (account.to_string(), json!(epoch)))
        .collect();
    let answer: Value = store
        .rpc(
            "giftd_fenced_apply_batch_values",
            json!({ "p_batch": batch_json(batch), "p_epochs": epochs }),
        )
        .await?;
    fenced(&answer)?;
    let row: OutcomeRow = serde_json::from_value(answer)
        .map_err(|e| StoreError::Protocol(format!("giftd_fenced_apply_batch_values: {e}")))?;
    let refused = row
        .refused
        .into_iter()
        .map(|r| {
            Ok(RefusedChange {
                key: ItemKey::new(r.account_id, r.msg_id),
                to: status(&r.status, r.upgraded_into)?,
                current: r
                    .current
                    .map(|c| status(&c, r.current_upgraded_into))
                    .transpose()?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(BatchOutcome {
        items_new: row.items_new,
        items_known: row.items_known,
        changes_applied: row.changes_applied,
        changes_unchanged: row.changes_unchanged,
        refused,
        attributed: row.attributed,
        attributions_skipped: row.attributions_skipped,
    })
}
