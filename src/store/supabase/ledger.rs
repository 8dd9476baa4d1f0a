//! The ledger in the Supabase store (`transactions`): an entry as the functions read it, and an
//! item's history read from the table.

use serde::Deserialize;
use serde_json::{Value, json};

use super::SupabaseStore;
use crate::gift::{ItemKey, LedgerEntry, LedgerKind, Owner};
use crate::store::StoreError;

pub(super) fn ledger_json(e: &LedgerEntry) -> Value {
    json!({
        "idempotency_key": e.idempotency_key,
        "account_id": e.key.account_id,
        "msg_id": e.key.msg_id,
        "owner_id": e.owner.user_id(),
        "kind": e.kind.as_str(),
        "stars": e.stars,
        "at": e.at,
    })
}

/// [`Store::item_history`](crate::store::Store::item_history), through PostgREST.
pub(super) async fn item_history(
    store: &SupabaseStore,
    key: ItemKey,
) -> Result<Vec<LedgerEntry>, StoreError> {
    #[derive(Deserialize)]
    struct Row {
        idempotency_key: String,
        owner_id: Option<i64>,
        kind: String,
        stars: i64,
        at: i64,
    }
    let request = store
        .client
        .from("transactions")
        .select("idempotency_key,owner_id,kind,stars,at")
        .eq("account_id", key.account_id.to_string())
        .eq("msg_id", key.msg_id.to_string())
        .order("id.asc")
        .build();
    let body = store.send(request, "table transactions").await?;
    let rows: Vec<Row> = serde_json::from_slice(&body.0)
        .map_err(|e| StoreError::Protocol(format!("transactions: {e}: {}", body.preview())))?;
    rows.into_iter()
        .map(|r| {
            Ok(LedgerEntry {
                kind: LedgerKind::parse(&r.kind).ok_or_else(|| {
                    StoreError::Protocol(format!("unknown ledger kind {:?}", r.kind))
                })?,
                idempotency_key: r.idempotency_key,
                key,
                owner: Owner::from_user_id(r.owner_id),
                stars: r.stars,
                at: r.at,
            })
        })
        .collect()
}
