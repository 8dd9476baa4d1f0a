//! The store contract: one suite, run against the embedded SQLite store and against Supabase
//! (real PostgreSQL 15 behind postrust, started by `scripts/test-env.sh`).
//!
//! Each test makes its own deposit account and user ids, so the Supabase tests share one
//! database and run in parallel. The tests that stop the database or lower its schema version
//! use the separate chaos instance, one at a time (`chaos` in their name; .config/nextest.toml).

use std::sync::Arc;
use std::time::Duration;

use giftd::gift::{
    GiftType, Item, ItemKey, LedgerKind, Owner, Status, UniqueInfo, UserId, UserInfo,
};
use giftd::store::{
    Attribution, Canceller, ChangeBatch, RefusedChange, RequestState, StatusChange, Store,
    StoreError, SyncLog, WaitReason, Withdrawal, WithdrawalFilter, WithdrawalKind, WithdrawalMove,
};

use crate::support::{Backend, unique_id};

mod batches;
mod sqlite_chaos;
mod supabase_access;
mod supabase_chaos;
mod withdrawals;

pub(crate) use batches::*;
pub(crate) use withdrawals::*;

contract!(
    replaying_a_batch_changes_nothing,
    departures_are_checked_against_the_state_machine,
    batch_of_5000_items_in_one_call,
    concurrent_writers_of_overlapping_batches,
    redeposit_of_unique_gift_after_withdrawal,
    concurrent_claimers_never_share_a_request,
    withdrawal_rules,
    a_resent_gift_is_kept_by_the_house,
    the_daily_budget_is_checked_when_the_intent_is_written,
    expired_leases_are_rescued,
    unattributed_items_wait_for_an_operator,
    a_sender_named_later_is_credited_once_never_over_an_operator,
    an_upgrade_points_both_ways_whichever_is_written_first,
    stats_and_sync_logs,
    sync_logs_travel_in_batches_once_per_pass,
);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const T0: i64 = 1_760_000_000;

pub(crate) fn regular(account: UserId, msg_id: i32, owner: Owner) -> Item {
    Item {
        key: ItemKey::new(account, msg_id),
        owner,
        gift_id: 5_983_471_780_763_796_287,
        stars: 15,
        unique: None,
        status: Status::Held,
        received_at: T0 + i64::from(msg_id),
        convert_stars: Some(13),
        transfer_stars: None,
        can_transfer_at: None,
        upgraded_from: None,
    }
}

pub(crate) fn collectible(account: UserId, msg_id: i32, owner: Owner, collectible_id: i64) -> Item {
    Item {
        gift_id: 6_028_601_630_662_853_006,
        stars: 350,
        unique: Some(Box::new(UniqueInfo {
            collectible_id,
            slug: format!("PlushPepe-{collectible_id}"),
            number: 7,
            value: Default::default(),
        })),
        convert_stars: None,
        transfer_stars: Some(25),
        can_transfer_at: Some(T0 + 86_400),
        ..regular(account, msg_id, owner)
    }
}

/// A deposit batch: the items with their senders and gift kinds.
pub(crate) fn deposit(items: Vec<Item>) -> ChangeBatch {
    let mut users: Vec<UserInfo> = items
        .iter()
        .filter_map(|i| i.owner.user_id())
        .map(|id| UserInfo {
            id,
            username: Some(format!("player{id}")),
            first_name: Some("Player".into()),
        })
        .collect();
    users.dedup_by_key(|u| u.id);
    let mut gifts: Vec<GiftType> = items
        .iter()
        .map(|i| GiftType {
            gift_id: i.gift_id,
            title: i.unique.as_ref().map(|_| "Plush Pepe".to_owned()),
            stars: i.stars,
            unique: i.unique.is_some(),
        })
        .collect();
    gifts.sort_by_key(|g| g.gift_id);
    gifts.dedup_by_key(|g| g.gift_id);
    ChangeBatch {
        users,
        gifts,
        items,
        ..ChangeBatch::default()
    }
}

pub(crate) fn departures(items: &[Item], to: Status, at: i64) -> ChangeBatch {
    ChangeBatch {
        changes: items
            .iter()
            .map(|i| StatusChange::new(i, to, at).unwrap())
            .collect(),
        ..ChangeBatch::default()
    }
}

fn keys(items: &[Item]) -> Vec<ItemKey> {
    items.iter().map(|i| i.key).collect()
}

async fn kinds(store: &Arc<dyn Store>, key: ItemKey) -> Vec<LedgerKind> {
    store
        .item_history(key)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}
