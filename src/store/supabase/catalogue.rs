//! The gift catalogue in the Supabase store: every kind of gift seen, read back at start.

use serde::Deserialize;

use super::SupabaseStore;
use crate::gift::GiftType;
use crate::store::StoreError;

/// [`Store::gift_types`](crate::store::Store::gift_types), through PostgREST.
pub(super) async fn gift_types(store: &SupabaseStore) -> Result<Vec<GiftType>, StoreError> {
    #[derive(Deserialize)]
    struct Row {
        gift_id: i64,
        title: Option<String>,
        stars: i64,
        is_unique: bool,
    }
    // The catalogue is Telegram's list of gift kinds: hundreds of rows, one request.
    let request = store
        .client
        .from("gifts")
        .select("gift_id,title,stars,is_unique")
        .order("gift_id.asc")
        .build();
    let body = store.send(request, "table gifts").await?;
    let rows: Vec<Row> = serde_json::from_slice(&body.0)
        .map_err(|e| StoreError::Protocol(format!("gifts: {e}: {}", body.preview())))?;
    Ok(rows
        .into_iter()
        .map(|r| GiftType {
            gift_id: r.gift_id,
            title: r.title,
            stars: r.stars,
            unique: r.is_unique,
        })
        .collect())
}
