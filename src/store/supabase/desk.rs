//! The desk in the Supabase store: the deposit accounts' figures and their recorded balances.
//! Semantics in [`crate::store::desk`].

use serde_json::json;

use super::SupabaseStore;
use crate::gift::UserId;
use crate::store::StoreError;

/// [`Store::desk`](crate::store::Store::desk), through PostgREST.
pub(super) async fn desk(
    store: &SupabaseStore,
) -> Result<Vec<crate::store::desk::AccountDesk>, StoreError> {
    let rows: Vec<crate::store::desk::DeskRow> = store.rpc("giftd_desk", json!({})).await?;
    Ok(rows
        .into_iter()
        .map(crate::store::desk::DeskRow::into_desk)
        .collect())
}

/// [`Store::record_balance`](crate::store::Store::record_balance), through PostgREST.
pub(super) async fn record_balance(
    store: &SupabaseStore,
    account: UserId,
    stars: i64,
) -> Result<(), StoreError> {
    let request = store
        .client
        .rpc(
            "giftd_record_balance",
            json!({ "p_account_id": account, "p_stars": stars }).to_string(),
        )
        .build();
    store.send(request, "function giftd_record_balance").await?;
    Ok(())
}
