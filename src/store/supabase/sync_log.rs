//! Sync logs in the Supabase store: one row per reconciliation pass, written once per pass.

use serde_json::json;

use super::SupabaseStore;
use crate::store::{StoreError, SyncLog};

/// [`Store::append_sync_log`](crate::store::Store::append_sync_log), through PostgREST.
pub(super) async fn append_sync_log(
    store: &SupabaseStore,
    log: &SyncLog,
) -> Result<(), StoreError> {
    // The row's id, or null when this pass was already written.
    let _: Option<i64> = store
        .rpc("giftd_append_sync_log", json!({ "p_log": log }))
        .await?;
    Ok(())
}
