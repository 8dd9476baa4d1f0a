//! The schema of the Supabase store as giftd asks about it: the version the migrations reached
//! (`giftd_schema_version`) and whether the key may write (`giftd_check_write`). The
//! migrations themselves are `supabase/migrations/*.sql`, listed in [`crate::store`].

use serde_json::json;

use super::SupabaseStore;
use crate::store::StoreError;

/// [`Store::schema_version`](crate::store::Store::schema_version), through PostgREST.
pub(super) async fn schema_version(store: &SupabaseStore) -> Result<u32, StoreError> {
    let v: i64 = store.rpc("giftd_schema_version", json!({})).await?;
    u32::try_from(v).map_err(|_| StoreError::Protocol(format!("schema version {v}")))
}

/// [`Store::check_write`](crate::store::Store::check_write), through PostgREST.
pub(super) async fn check_write(store: &SupabaseStore) -> Result<(), StoreError> {
    let _: Option<i64> = store.rpc("giftd_check_write", json!({})).await?;
    Ok(())
}
