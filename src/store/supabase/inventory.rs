//! The inventory in the Supabase store: items read by account or owner a page at a time (keyset,
//! so a server's `max-rows` cap never truncates a read), an item as the functions read it, and
//! the operator's assignment of an unattributed gift.

use serde_json::{Value, json};

use super::rest::FnAnswer;
use super::{PAGE, SupabaseStore};
use crate::gift::{Item, ItemKey, MsgId, Owner, Status, UserId};
use crate::store::{ItemRow, OwnerStats, StoreError};

impl SupabaseStore {
    async fn page_items(
        &self,
        function: &'static str,
        mut params: impl FnMut(Option<ItemKey>) -> Value,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut after = None;
        loop {
            let rows: Vec<ItemRow> = self.rpc(function, params(after)).await?;
            if rows.is_empty() {
                return Ok(items);
            }
            for row in rows {
                let item = row.into_item()?;
                after = Some(item.key);
                items.push(item);
            }
        }
    }
}

pub(super) fn item_json(item: &Item) -> Value {
    let unique = item.unique.as_deref();
    json!({
        "account_id": item.key.account_id,
        "msg_id": item.key.msg_id,
        "owner_id": item.owner.user_id(),
        "gift_id": item.gift_id,
        "stars": item.stars,
        "collectible_id": unique.map(|u| u.collectible_id),
        "slug": unique.map(|u| u.slug.as_str()),
        "number": unique.map(|u| u.number),
        "status": item.status.as_str(),
        "upgraded_into": item.status.upgraded_into(),
        "upgraded_from": item.upgraded_from,
        "received_at": item.received_at,
        "convert_stars": item.convert_stars,
        "transfer_stars": item.transfer_stars,
        "can_transfer_at": item.can_transfer_at,
        "value_amount": unique.and_then(|u| u.value.fiat.as_ref()).map(|m| m.amount),
        "value_currency": unique.and_then(|u| u.value.fiat.as_ref()).map(|m| m.currency.as_str()),
        "value_usd_cents": unique.and_then(|u| u.value.usd_cents),
        "paid_amount": unique.and_then(|u| u.value.paid).map(|p| p.amount()),
        "paid_currency": unique.and_then(|u| u.value.paid).map(|p| p.currency()),
    })
}

pub(super) fn status(name: &str, into: Option<MsgId>) -> Result<Status, StoreError> {
    Status::from_parts(name, into)
        .ok_or_else(|| StoreError::Protocol(format!("unknown status {name:?}")))
}

/// [`Store::load_items`](crate::store::Store::load_items), through PostgREST.
pub(super) async fn load_items(
    store: &SupabaseStore,
    account_id: UserId,
) -> Result<Vec<Item>, StoreError> {
    store
        .page_items("giftd_load_items", |after| {
            json!({
                "p_account_id": account_id,
                "p_after_msg_id": after.map_or(i32::MIN, |k| k.msg_id),
                "p_limit": PAGE,
            })
        })
        .await
}

/// [`Store::list_owner`](crate::store::Store::list_owner), through PostgREST.
pub(super) async fn list_owner(
    store: &SupabaseStore,
    owner: Owner,
) -> Result<Vec<Item>, StoreError> {
    // RPC arguments are never null (postrust 3.1 reads a JSON null as ""): the unattributed
    // items have their own function.
    let after_json = |after: Option<ItemKey>| {
        json!({
            "p_after_account_id": after.map_or(i64::MIN, |k| k.account_id),
            "p_after_msg_id": after.map_or(i32::MIN, |k| k.msg_id),
            "p_limit": PAGE,
        })
    };
    match owner {
        Owner::User(user_id) => {
            store
                .page_items("giftd_list_owner", |after| {
                    let mut params = after_json(after);
                    params["p_owner_id"] = user_id.into();
                    params
                })
                .await
        }
        Owner::Unattributed => {
            store
                .page_items("giftd_list_unattributed", after_json)
                .await
        }
    }
}

/// [`Store::owner_stats`](crate::store::Store::owner_stats), through PostgREST.
pub(super) async fn owner_stats(
    store: &SupabaseStore,
    user_id: UserId,
) -> Result<OwnerStats, StoreError> {
    store
        .rpc("giftd_owner_stats", json!({ "p_owner_id": user_id }))
        .await
}

/// [`Store::assign_owner`](crate::store::Store::assign_owner), through PostgREST.
pub(super) async fn assign_owner(
    store: &SupabaseStore,
    key: ItemKey,
    user_id: UserId,
) -> Result<bool, StoreError> {
    let a: FnAnswer = store
        .rpc(
            "giftd_assign_owner",
            json!({
                "p_account_id": key.account_id, "p_msg_id": key.msg_id, "p_owner_id": user_id,
            }),
        )
        .await?;
    match a.error.as_deref() {
        None => Ok(a.changed.unwrap_or(false)),
        Some("not_found") => Err(StoreError::ItemNotFound(key)),
        Some("already_owned") => Err(StoreError::AlreadyOwned {
            key,
            owner: a.owner_id.unwrap_or_default(),
        }),
        Some(other) => Err(StoreError::Protocol(format!("giftd_assign_owner: {other}"))),
    }
}
