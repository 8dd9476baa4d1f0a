//! The live inventory: every item the deposit account holds, by key and by owner, in memory.
//!
//! This is what the bot reads (`/inventory`, `/stats`) and what the detector checks new
//! observations against. It is a view, not the record: the store keeps every item and every
//! ledger entry; at start the inventory is filled from the store's held items.
//!
//! Pure: no IO, no clock (callers pass the time of a transition), no `.await`. Every method takes
//! `&self` and is safe to call from many tasks at once.
//!
//! # Layout
//!
//! Two [`DashMap`]s:
//! - `items`: [`ItemKey`] -> a compact [`Slot`] holding the whole [`Item`]. Lookup by key is one
//!   hash probe.
//! - `by_owner`: [`Owner`] -> the keys of that owner's *held* items (ordered, so listings are
//!   stable) and their running star total. Listing one owner's items or reading their stats
//!   never scans the other owners.
//!
//! An item that reaches a terminal status (withdrawn, converted, ...) leaves `by_owner` at once,
//! so it no longer counts anywhere, but stays in `items` until [`Inventory::evict`]: until the
//! mirror has written the change, the detector must still recognise the key and not credit it
//! again.
//!
//! # Lock order
//!
//! A method may hold a guard on `items` while it takes a guard on `by_owner`, never the other
//! way round, and never two guards of the same map at once. Listings copy the keys out of
//! `by_owner`, drop that guard, then read `items`. So no two threads can wait on each other.
//! No guard ever escapes a method: callers receive owned [`Item`] values.

use std::collections::BTreeSet;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::detector::{Known, KnownItem};
use crate::gift::{
    IllegalTransition, Item, ItemKey, LedgerEntry, MsgId, Owner, Status, UniqueInfo, UserId,
};

/// The live view. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Every item in the view, held or terminal-but-not-yet-evicted.
    items: DashMap<ItemKey, Slot>,
    /// Held items per owner. An owner with no held item has no entry.
    by_owner: DashMap<Owner, OwnerIndex>,
}

/// One owner's held items.
#[derive(Debug, Default)]
struct OwnerIndex {
    /// Ordered by key (deposit account, then msg id: oldest deposit first).
    keys: BTreeSet<ItemKey>,
    /// Sum of the star values of `keys`, kept up to date so stats cost nothing.
    stars: i64,
}

/// Count and value of one owner's items still in a deposit account: held, withdrawal requested
/// or withdrawing ([`Status::is_held`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnerStats {
    pub items: usize,
    /// Sum of the items' star values at deposit time.
    pub stars: i64,
}

/// Why an inventory change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("item {0} is not in the live inventory")]
    UnknownItem(ItemKey),
    #[error("item {key}: {source}")]
    IllegalTransition {
        key: ItemKey,
        #[source]
        source: IllegalTransition,
    },
    #[error("item {key} already belongs to user {owner}: only unattributed items can be assigned")]
    AlreadyAttributed { key: ItemKey, owner: UserId },
    #[error("item {key} is {status}: the account no longer holds it")]
    NotHeld { key: ItemKey, status: Status },
    #[error("item {key} is still {status}: only items in a terminal status can be evicted")]
    StillHeld { key: ItemKey, status: Status },
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an item. Idempotent: when the key is already in the view nothing changes (the first
    /// version wins, the owner is credited once) and `false` is returned.
    ///
    /// An item inserted in a terminal status is remembered (so its key is known) but not listed
    /// or counted.
    pub fn insert(&self, item: Item) -> bool {
        match self.items.entry(item.key) {
            Entry::Occupied(_) => false,
            Entry::Vacant(vacant) => {
                let slot = Slot::pack(&item);
                // Lock order: the `items` guard is held while `by_owner` is locked.
                let _guard = vacant.insert(slot);
                if item.status.is_held() {
                    self.index(item.owner, item.key, item.stars);
                }
                true
            }
        }
    }

    /// The item with this key, if the view has it.
    pub fn get(&self, key: ItemKey) -> Option<Item> {
        self.items.get(&key).map(|slot| slot.unpack(key))
    }

    /// Number of items in the view (held or awaiting eviction).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of owners (the unattributed bucket included) with at least one held item.
    pub fn owner_count(&self) -> usize {
        self.by_owner.len()
    }

    /// Moves an item to a new status and returns the ledger entry the move writes. A move to a
    /// terminal status takes the item out of its owner's listing and stats; the item stays
    /// known until [`Inventory::evict`].
    pub fn apply(&self, key: ItemKey, to: Status, at: i64) -> Result<LedgerEntry, InventoryError> {
        let mut slot = self
            .items
            .get_mut(&key)
            .ok_or(InventoryError::UnknownItem(key))?;
        let mut item = slot.unpack(key);
        let was_held = item.status.is_held();
        let entry = item
            .apply(to, at)
            .map_err(|source| InventoryError::IllegalTransition { key, source })?;
        slot.status = item.status;
        if was_held && !item.status.is_held() {
            // Lock order: `items` guard held, `by_owner` taken.
            self.unindex(item.owner, key, item.stars);
        }
        Ok(entry)
    }

    /// Credits an unattributed held item to `user` and returns it as it now is. The caller
    /// records the change in the store.
    pub fn assign_owner(&self, key: ItemKey, user: UserId) -> Result<Item, InventoryError> {
        let mut slot = self
            .items
            .get_mut(&key)
            .ok_or(InventoryError::UnknownItem(key))?;
        if let Owner::User(owner) = slot.owner() {
            return Err(InventoryError::AlreadyAttributed { key, owner });
        }
        if !slot.status.is_held() {
            return Err(InventoryError::NotHeld {
                key,
                status: slot.status,
            });
        }
        slot.set_owner(Owner::User(user));
        // Lock order: `items` guard held; the two `by_owner` guards are taken one after the
        // other, never together.
        self.unindex(Owner::Unattributed, key, slot.stars);
        self.index(Owner::User(user), key, slot.stars);
        Ok(slot.unpack(key))
    }

    /// Credits an unattributed held item to the sender Telegram named later, returning the
    /// ledger entry that records it ([`Item::attribution_entry`]).
    pub fn attribute(
        &self,
        key: ItemKey,
        user: UserId,
        at: i64,
    ) -> Result<LedgerEntry, InventoryError> {
        let item = self.assign_owner(key, user)?;
        Ok(item.attribution_entry(user, at))
    }

    /// Forgets an item in a terminal status (once the store has recorded its fate).
    pub fn evict(&self, key: ItemKey) -> Result<Item, InventoryError> {
        if let Some((key, slot)) = self.items.remove_if(&key, |_, s| !s.status.is_held()) {
            return Ok(slot.unpack(key));
        }
        match self.items.get(&key) {
            Some(slot) => Err(InventoryError::StillHeld {
                key,
                status: slot.status,
            }),
            None => Err(InventoryError::UnknownItem(key)),
        }
    }

    /// Forgets every item of deposit account `account`, held or not: when this instance stops
    /// serving the account (its lease went to another instance), so a later term starts again
    /// from the store instead of from what this view last saw. Returns how many were dropped.
    pub fn forget_account(&self, account: UserId) -> usize {
        let keys: Vec<ItemKey> = self
            .items
            .iter()
            .filter(|e| e.key().account_id == account)
            .map(|e| *e.key())
            .collect();
        let mut dropped = 0;
        for key in keys {
            if let Some((key, slot)) = self.items.remove(&key) {
                let item = slot.unpack(key);
                if item.status.is_held() {
                    self.unindex(item.owner, key, item.stars);
                }
                dropped += 1;
            }
        }
        dropped
    }

    /// One owner's held items, oldest deposit first. Costs one lookup per item of that owner.
    pub fn owner_items(&self, owner: Owner) -> Vec<Item> {
        let keys: Vec<ItemKey> = match self.by_owner.get(&owner) {
            Some(ix) => ix.keys.iter().copied().collect(),
            None => return Vec::new(),
        };
        // The `by_owner` guard is dropped: an item may leave between the two reads, so missing
        // and no-longer-held items are skipped.
        keys.into_iter()
            .filter_map(|key| self.get(key))
            .filter(|item| item.owner == owner && item.status.is_held())
            .collect()
    }

    /// Records that a poll or reconciliation listed these items (unknown keys are ignored).
    pub fn confirm(&self, keys: impl IntoIterator<Item = ItemKey>) {
        for key in keys {
            if let Some(mut slot) = self.items.get_mut(&key) {
                slot.flags |= CONFIRMED;
            }
        }
    }

    /// The keys of every held item. A full scan: for reconciliation, which reads every page of
    /// the account's gifts anyway; the per-request paths use the indexes above.
    pub fn held_keys(&self) -> Vec<ItemKey> {
        self.items
            .iter()
            .filter(|e| e.value().status.is_held())
            .map(|e| *e.key())
            .collect()
    }

    /// Held items nobody is credited with yet (anonymous gifts waiting for an operator).
    pub fn unattributed(&self) -> Vec<Item> {
        self.owner_items(Owner::Unattributed)
    }

    /// Count and star value of one owner's held items. One lookup.
    pub fn owner_stats(&self, owner: Owner) -> OwnerStats {
        self.by_owner
            .get(&owner)
            .map_or_else(OwnerStats::default, |ix| OwnerStats {
                items: ix.keys.len(),
                stars: ix.stars,
            })
    }

    fn index(&self, owner: Owner, key: ItemKey, stars: i64) {
        let mut ix = self.by_owner.entry(owner).or_default();
        if ix.keys.insert(key) {
            ix.stars += stars;
        }
    }

    fn unindex(&self, owner: Owner, key: ItemKey, stars: i64) {
        let now_empty = match self.by_owner.get_mut(&owner) {
            Some(mut ix) => {
                if ix.keys.remove(&key) {
                    ix.stars -= stars;
                }
                ix.keys.is_empty()
            }
            None => false,
        };
        if now_empty {
            // Re-checked under the lock: another task may have indexed a key meanwhile.
            self.by_owner.remove_if(&owner, |_, ix| ix.keys.is_empty());
        }
    }
}

impl Known for Inventory {
    fn get(&self, key: ItemKey) -> Option<KnownItem> {
        self.items.get(&key).map(|slot| KnownItem {
            status: slot.status,
            owner: slot.owner(),
            collectible_id: slot.unique.as_ref().map(|u| u.collectible_id),
            confirmed: slot.flags & CONFIRMED != 0,
        })
    }
}

/// An [`Item`] packed for the live map: the key is the map's key and the optional numbers share
/// one flag byte, which brings an item from 128 to 80 bytes. With the map's own overhead this is
/// what keeps the inventory within 300 bytes per item at a million items
/// (`cargo bench --bench inventory_memory`).
#[derive(Debug)]
struct Slot {
    /// The owner's user id; meaningful only with `ATTRIBUTED`.
    owner_id: UserId,
    gift_id: i64,
    stars: i64,
    received_at: i64,
    /// Meaningful only with `HAS_CONVERT_STARS`.
    convert_stars: i64,
    /// Meaningful only with `HAS_TRANSFER_STARS`.
    transfer_stars: i64,
    /// Meaningful only with `HAS_CAN_TRANSFER_AT`.
    can_transfer_at: i64,
    unique: Option<Box<UniqueInfo>>,
    status: Status,
    /// Meaningful only with `HAS_UPGRADED_FROM`.
    upgraded_from: MsgId,
    flags: u8,
}

const ATTRIBUTED: u8 = 1;
const HAS_CONVERT_STARS: u8 = 1 << 1;
const HAS_TRANSFER_STARS: u8 = 1 << 2;
const HAS_CAN_TRANSFER_AT: u8 = 1 << 3;
const HAS_UPGRADED_FROM: u8 = 1 << 4;
/// A poll or reconciliation listed the item (see [`KnownItem::confirmed`]).
const CONFIRMED: u8 = 1 << 5;

impl Slot {
    fn pack(item: &Item) -> Slot {
        let mut flags = 0;
        let mut opt = |value: Option<i64>, flag: u8| match value {
            Some(v) => {
                flags |= flag;
                v
            }
            None => 0,
        };
        let owner_id = opt(item.owner.user_id(), ATTRIBUTED);
        let convert_stars = opt(item.convert_stars, HAS_CONVERT_STARS);
        let transfer_stars = opt(item.transfer_stars, HAS_TRANSFER_STARS);
        let can_transfer_at = opt(item.can_transfer_at, HAS_CAN_TRANSFER_AT);
        let upgraded_from = opt(item.upgraded_from.map(i64::from), HAS_UPGRADED_FROM);
        Slot {
            owner_id,
            gift_id: item.gift_id,
            stars: item.stars,
            received_at: item.received_at,
            convert_stars,
            transfer_stars,
            can_transfer_at,
            unique: item.unique.clone(),
            status: item.status,
            // It came from a `MsgId`, so it fits.
            upgraded_from: MsgId::try_from(upgraded_from).unwrap_or_default(),
            flags,
        }
    }

    fn unpack(&self, key: ItemKey) -> Item {
        let opt = |value: i64, flag: u8| (self.flags & flag != 0).then_some(value);
        Item {
            key,
            owner: self.owner(),
            gift_id: self.gift_id,
            stars: self.stars,
            unique: self.unique.clone(),
            status: self.status,
            received_at: self.received_at,
            convert_stars: opt(self.convert_stars, HAS_CONVERT_STARS),
            transfer_stars: opt(self.transfer_stars, HAS_TRANSFER_STARS),
            can_transfer_at: opt(self.can_transfer_at, HAS_CAN_TRANSFER_AT),
            upgraded_from: (self.flags & HAS_UPGRADED_FROM != 0).then_some(self.upgraded_from),
        }
    }

    fn owner(&self) -> Owner {
        if self.flags & ATTRIBUTED != 0 {
            Owner::User(self.owner_id)
        } else {
            Owner::Unattributed
        }
    }

    fn set_owner(&mut self, owner: Owner) {
        match owner {
            Owner::User(id) => {
                self.owner_id = id;
                self.flags |= ATTRIBUTED;
            }
            Owner::Unattributed => {
                self.owner_id = 0;
                self.flags &= !ATTRIBUTED;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gift::LedgerKind;

    const ACCOUNT: UserId = 1000;

    fn item(msg_id: MsgId, owner: Option<UserId>, stars: i64) -> Item {
        Item {
            key: ItemKey::new(ACCOUNT, msg_id),
            owner: Owner::from_user_id(owner),
            gift_id: 5,
            stars,
            unique: None,
            status: Status::Held,
            received_at: 1_700_000_000 + i64::from(msg_id),
            convert_stars: None,
            transfer_stars: None,
            can_transfer_at: None,
            upgraded_from: None,
        }
    }

    fn key(msg_id: MsgId) -> ItemKey {
        ItemKey::new(ACCOUNT, msg_id)
    }

    /// One step of a scenario.
    #[derive(Debug)]
    enum Op {
        /// Insert msg id, owner, stars; the bool is the expected "new".
        Insert(MsgId, Option<UserId>, i64, bool),
        Apply(MsgId, Status),
        Assign(MsgId, UserId),
        Evict(MsgId),
    }

    /// Runs `ops` on an empty inventory and compares a rendering of every step's outcome and
    /// the final state (per owner: msg ids, count, stars; then what is known) with `expected`.
    #[track_caller]
    fn check(ops: &[Op], expected: &str) {
        let inv = Inventory::new();
        let mut out = Vec::new();
        for op in ops {
            let line = match op {
                Op::Insert(msg, owner, stars, want_new) => {
                    let new = inv.insert(item(*msg, *owner, *stars));
                    assert_eq!(new, *want_new, "{op:?}");
                    continue;
                }
                Op::Apply(msg, to) => match inv.apply(key(*msg), *to, 50) {
                    Ok(e) => format!("apply {msg}: {} {} {}", e.kind.as_str(), e.owner, e.stars),
                    Err(e) => format!("apply {msg}: error: {e}"),
                },
                Op::Assign(msg, user) => match inv.assign_owner(key(*msg), *user) {
                    Ok(item) => format!("assign {msg}: now {}", item.owner),
                    Err(e) => format!("assign {msg}: error: {e}"),
                },
                Op::Evict(msg) => match inv.evict(key(*msg)) {
                    Ok(item) => format!("evict {msg}: {}", item.status),
                    Err(e) => format!("evict {msg}: error: {e}"),
                },
            };
            out.push(line);
        }
        let mut owners: Vec<Owner> = inv.by_owner.iter().map(|e| *e.key()).collect();
        owners.sort_by_key(|o| o.user_id());
        for owner in owners {
            let items: Vec<String> = inv
                .owner_items(owner)
                .iter()
                .map(|i| match i.status {
                    Status::Held => i.key.msg_id.to_string(),
                    s => format!("{}({s})", i.key.msg_id),
                })
                .collect();
            let stats = inv.owner_stats(owner);
            out.push(format!(
                "owner {owner}: [{}] count {} stars {}",
                items.join(" "),
                stats.items,
                stats.stars
            ));
        }
        let mut known: Vec<String> = inv
            .items
            .iter()
            .map(|e| format!("{}={}", e.key().msg_id, e.status))
            .collect();
        known.sort();
        out.push(format!("known: {}", known.join(" ")));
        let got = out.join("\n");
        let want: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(got, want.join("\n"));
    }

    use Op::*;

    #[test]
    fn forgetting_an_account_leaves_the_others() {
        let inv = Inventory::new();
        inv.insert(item(1, Some(7), 10));
        inv.insert(item(2, Some(8), 5));
        let other = Item {
            key: ItemKey::new(ACCOUNT + 1, 1),
            ..item(1, Some(7), 3)
        };
        inv.insert(other.clone());
        inv.apply(key(2), Status::Converted, 1).unwrap();
        assert_eq!(inv.forget_account(ACCOUNT), 2, "held and terminal alike");
        assert_eq!(inv.get(key(1)), None);
        assert_eq!(inv.get(other.key), Some(other));
        assert_eq!(
            inv.owner_stats(Owner::User(7)),
            OwnerStats { items: 1, stars: 3 }
        );
        assert_eq!(inv.owner_count(), 1, "owner 8's empty index is gone");
        assert!(
            inv.insert(item(1, Some(7), 10)),
            "a later term loads it again"
        );
    }

    #[test]
    fn inserting_twice_credits_once() {
        check(
            &[
                Insert(1, Some(7), 10, true),
                Insert(1, Some(7), 10, false),
                Insert(1, Some(8), 99, false),
                Insert(2, Some(7), 5, true),
            ],
            "owner 7: [1 2] count 2 stars 15
             known: 1=held 2=held",
        );
    }

    #[test]
    fn owners_are_kept_apart() {
        check(
            &[
                Insert(3, Some(8), 1, true),
                Insert(1, Some(7), 10, true),
                Insert(2, None, 4, true),
                Insert(4, Some(8), 2, true),
            ],
            "owner unattributed: [2] count 1 stars 4
             owner 7: [1] count 1 stars 10
             owner 8: [3 4] count 2 stars 3
             known: 1=held 2=held 3=held 4=held",
        );
    }

    #[test]
    fn withdrawal_path_keeps_counting_until_withdrawn() {
        check(
            &[
                Insert(1, Some(7), 10, true),
                Apply(1, Status::WithdrawRequested),
                Apply(1, Status::Withdrawing),
                Apply(1, Status::Held),
                Apply(1, Status::WithdrawRequested),
                Apply(1, Status::Withdrawing),
                Apply(1, Status::Withdrawn),
            ],
            "apply 1: withdraw_requested 7 10
             apply 1: withdraw_started 7 10
             apply 1: withdraw_failed 7 10
             apply 1: withdraw_requested 7 10
             apply 1: withdraw_started 7 10
             apply 1: withdrawn 7 10
             known: 1=withdrawn",
        );
        check(
            &[
                Insert(1, Some(7), 10, true),
                Insert(2, Some(7), 3, true),
                Apply(1, Status::WithdrawRequested),
            ],
            "apply 1: withdraw_requested 7 10
             owner 7: [1(withdraw_requested) 2] count 2 stars 13
             known: 1=withdraw_requested 2=held",
        );
    }

    #[test]
    fn terminal_items_leave_listings_but_stay_known_until_evicted() {
        check(
            &[
                Insert(1, Some(7), 10, true),
                Insert(2, Some(7), 5, true),
                Apply(1, Status::Converted),
                Insert(1, Some(7), 10, false),
                Evict(2),
                Evict(1),
                Evict(1),
            ],
            "apply 1: converted 7 10
             evict 2: error: item 1000/2 is still held: only items in a terminal status can be evicted
             evict 1: converted
             evict 1: error: item 1000/1 is not in the live inventory
             owner 7: [2] count 1 stars 5
             known: 2=held",
        );
    }

    #[test]
    fn illegal_and_unknown_transitions_change_nothing() {
        check(
            &[
                Insert(1, Some(7), 10, true),
                Apply(1, Status::Withdrawn),
                Apply(2, Status::Gone),
                Apply(1, Status::Upgraded { into: 9 }),
                Apply(1, Status::Held),
            ],
            "apply 1: error: item 1000/1: illegal item status transition from held to withdrawn
             apply 2: error: item 1000/2 is not in the live inventory
             apply 1: upgraded 7 10
             apply 1: error: item 1000/1: illegal item status transition from upgraded into 9 to held
             known: 1=upgraded into 9",
        );
    }

    #[test]
    fn assigning_unattributed_items() {
        check(
            &[
                Insert(1, None, 10, true),
                Insert(2, None, 5, true),
                Insert(3, Some(7), 1, true),
                Assign(1, 7),
                Assign(1, 8),
                Assign(3, 8),
                Assign(4, 8),
                Apply(2, Status::Refunded),
                Assign(2, 8),
            ],
            "assign 1: now 7
             assign 1: error: item 1000/1 already belongs to user 7: only unattributed items can be assigned
             assign 3: error: item 1000/3 already belongs to user 7: only unattributed items can be assigned
             assign 4: error: item 1000/4 is not in the live inventory
             apply 2: refunded unattributed 5
             assign 2: error: item 1000/2 is refunded: the account no longer holds it
             owner 7: [1 3] count 2 stars 11
             known: 1=held 2=refunded 3=held",
        );
    }

    #[test]
    fn inserting_a_terminal_item_remembers_it_without_counting_it() {
        let inv = Inventory::new();
        let mut gone = item(1, Some(7), 10);
        gone.status = Status::Gone;
        assert!(inv.insert(gone));
        assert_eq!(inv.owner_stats(Owner::User(7)), OwnerStats::default());
        assert_eq!(inv.owner_count(), 0);
        assert_eq!(
            Known::get(&inv, key(1)),
            Some(KnownItem {
                status: Status::Gone,
                owner: Owner::User(7),
                collectible_id: None,
                confirmed: false,
            })
        );
        assert_eq!(Known::get(&inv, key(2)), None);
        inv.confirm([key(1), key(2)]);
        assert!(Known::get(&inv, key(1)).is_some_and(|k| k.confirmed));
        assert_eq!(
            Known::get(&inv, key(2)),
            None,
            "confirming does not invent items"
        );
    }

    #[test]
    fn items_round_trip_through_slots() {
        let mut full = item(3, Some(-5), 25);
        full.unique = Some(Box::new(UniqueInfo {
            collectible_id: 77,
            slug: "PlushPepe-12".to_owned(),
            number: 12,
            value: Default::default(),
        }));
        full.status = Status::Upgraded { into: 4 };
        full.convert_stars = Some(0);
        full.transfer_stars = Some(i64::MAX);
        full.can_transfer_at = Some(i64::MIN);
        full.upgraded_from = Some(MsgId::MIN);
        let cases = [item(1, None, 0), item(2, Some(i64::MAX), -1), full];
        for it in cases {
            assert_eq!(Slot::pack(&it).unpack(it.key), it);
        }
    }

    #[test]
    fn ledger_entries_match_the_gift_model() {
        let inv = Inventory::new();
        let mut it = item(1, Some(7), 10);
        it.convert_stars = Some(8);
        inv.insert(it.clone());
        let got = inv.apply(key(1), Status::Converted, 99).unwrap();
        let want = it.apply(Status::Converted, 99).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.kind, LedgerKind::Converted);
    }

    #[test]
    fn slot_stays_small() {
        assert!(
            std::mem::size_of::<Slot>() <= 80,
            "Slot is {} bytes; the memory budget assumes 80",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn concurrent_inserts_and_transitions_stay_consistent() {
        let inv = std::sync::Arc::new(Inventory::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let inv = inv.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        // Every thread inserts the same keys: each is credited once.
                        inv.insert(item(i, Some(i64::from(i % 10)), 1));
                        if i % 2 == t % 2 {
                            let _ = inv.apply(key(i), Status::Gone, 0);
                        }
                        if i % 3 == 0 {
                            let _ = inv.evict(key(i));
                        }
                        let _ = inv.owner_items(Owner::User(i64::from(i % 10)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut held = 0;
        for owner in 0..10 {
            let stats = inv.owner_stats(Owner::User(owner));
            let items = inv.owner_items(Owner::User(owner));
            assert_eq!(stats.items, items.len());
            assert_eq!(stats.stars, items.len() as i64);
            held += stats.items;
        }
        let held_in_map = inv.items.iter().filter(|e| e.status.is_held()).count();
        assert_eq!(held, held_in_map);
    }
}
