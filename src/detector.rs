//! The detector: turns what Telegram shows of the deposit account into gift events.
//!
//! Two paths feed it. The real-time path hands it one gift at a time from an update; the polling
//! path hands it the newest page(s) of `payments.getSavedStarGifts` or, for a reconciliation, the
//! whole list. Both describe a gift the same way ([`ObservedGift`]) and both are checked against
//! what is already known ([`Known`]), so a gift seen by both paths is credited once.
//!
//! Pure: no IO, no clock, no grammers. It never decides an owner by guessing: a gift without a
//! sender is unattributed, and a gift the deposit account sent itself is not a deposit.
//!
//! Defence in depth: when a later observation names the sender of an item that is still
//! unattributed (and held, and not assigned by an operator), it emits [`GiftEvent::Attributed`];
//! the collectible made by upgrading an owned gift takes that gift's owner when the path that saw
//! it could not tell.

use std::collections::{HashMap, HashSet};

use crate::gift::{GiftType, Item, ItemKey, MsgId, Owner, Status, UniqueInfo, UserId};

/// One gift as Telegram shows it, whichever path saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedGift {
    /// The service message that delivered the gift to the deposit account.
    pub msg_id: MsgId,
    /// The sender; `None` for an anonymous gift.
    pub from: Option<UserId>,
    /// Unix seconds of the delivery.
    pub date: i64,
    pub gift: GiftType,
    /// Present for collectibles.
    pub unique: Option<UniqueInfo>,
    pub convert_stars: Option<i64>,
    pub transfer_stars: Option<i64>,
    pub can_transfer_at: Option<i64>,
    /// Telegram refunded it (it may still be listed, flagged).
    pub refunded: bool,
    /// Pinned gifts come first in the saved list whatever their age.
    pub pinned: bool,
    /// For a collectible produced by upgrading a regular gift: the regular gift's msg id, when
    /// the path that saw it can tell.
    pub upgraded_from: Option<MsgId>,
    /// A collectible made by crafting (`starGiftUnique.crafted`): it reuses the id of its first
    /// ingredient, which was used up.
    pub crafted: bool,
}

/// What happened to a gift that is no longer in the saved list, as its service message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Converted,
    Refunded,
    Upgraded {
        into: MsgId,
    },
    /// Sold through an accepted purchase offer: the account's own outgoing `from_offer` message
    /// for the collectible.
    Sold,
    /// Used up by crafting: Telegram shows the collectible burned.
    Burned,
    /// Transferred out, deleted, or nothing tells.
    Gone,
}

/// What the detector needs to know of an item it may have seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownItem {
    pub status: Status,
    pub owner: Owner,
    /// The collectible's id, for a collectible.
    pub collectible_id: Option<i64>,
    /// A poll or reconciliation has listed this item. Polling may stop at such an item (older
    /// pages were read by that earlier listing) but not at one only an update delivered: the
    /// update path can miss a gift older than the ones it did deliver.
    pub confirmed: bool,
}

/// Read access to what giftd already knows (the inventory, including retired items).
pub trait Known {
    fn get(&self, key: ItemKey) -> Option<KnownItem>;
}

impl Known for HashMap<ItemKey, KnownItem> {
    fn get(&self, key: ItemKey) -> Option<KnownItem> {
        HashMap::get(self, &key).copied()
    }
}

/// A change the rest of giftd must apply (inventory, then the store through the mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiftEvent {
    /// A new item is in the account, credited to `item.owner`.
    Deposited { item: Item, gift_type: GiftType },
    /// A known item left the account (or was refunded in place).
    Left { key: ItemKey, to: Status },
    /// An item recorded without a sender now has one: a later observation named it (the
    /// update path saw no sender, the saved list does), or it is the collectible made by
    /// upgrading an attributed gift. Only ever for an unattributed held item.
    Attributed { key: ItemKey, owner: UserId },
}

/// The outcome of looking at the newest page(s) of the saved list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageOutcome {
    pub events: Vec<GiftEvent>,
    /// A non-pinned gift on the page was already listed by an earlier poll or reconciliation:
    /// older pages hold nothing new and polling may stop reading.
    pub reached_known: bool,
}

/// The pure detection logic for one deposit account.
#[derive(Debug, Clone)]
pub struct Detector {
    account_id: UserId,
}

impl Detector {
    pub fn new(account_id: UserId) -> Self {
        Self { account_id }
    }

    pub fn account_id(&self) -> UserId {
        self.account_id
    }

    /// The real-time path: one gift from an update.
    pub fn observe(&self, known: &impl Known, gift: &ObservedGift) -> Vec<GiftEvent> {
        let mut events = Vec::new();
        let mut seen = HashSet::new();
        self.observe_into(known, gift, &mut seen, &mut events);
        events
    }

    /// The polling path: the newest page(s) of the saved list, newest first.
    pub fn observe_page(&self, known: &impl Known, gifts: &[ObservedGift]) -> PageOutcome {
        let mut out = PageOutcome::default();
        let mut seen = HashSet::new();
        for gift in gifts {
            let key = self.key(gift.msg_id);
            if !gift.pinned && !gift.refunded && known.get(key).is_some_and(|k| k.confirmed) {
                out.reached_known = true;
            }
            self.observe_into(known, gift, &mut seen, &mut out.events);
        }
        out
    }

    /// A full reconciliation: `all` is every gift the account holds (every page).
    ///
    /// Returns the events for gifts that are new, refunded in place, or missing; a missing held
    /// item ends with the fate Telegram tells (`fates`: read from its service message, or for a
    /// collectible from the collectible itself and the account's own sale message), `Burned`
    /// when a crafted collectible in the list reuses its id (it was the first ingredient), or
    /// `Gone` when nothing tells. `held` lists the keys giftd believes the account holds.
    pub fn reconcile(
        &self,
        known: &impl Known,
        held: impl IntoIterator<Item = ItemKey>,
        all: &[ObservedGift],
        fates: &HashMap<MsgId, Fate>,
    ) -> Vec<GiftEvent> {
        let mut events = Vec::new();
        let mut seen = HashSet::new();
        for gift in all {
            self.observe_into(known, gift, &mut seen, &mut events);
        }
        for key in self.missing(held, all).into_iter().map(|m| self.key(m)) {
            if seen.contains(&key) {
                continue; // already ended by an upgrade seen above
            }
            let Some(k) = known.get(key) else { continue };
            let mut fate = fates.get(&key.msg_id).copied().unwrap_or(Fate::Gone);
            if fate == Fate::Gone && Self::reused_by_craft(k, key.msg_id, all) {
                fate = Fate::Burned;
            }
            if k.status == Status::Withdrawing && fate == Fate::Gone {
                // Most likely our own transfer: the withdrawal worker records it as withdrawn
                // once Telegram confirms, and resolves it if it does not.
                continue;
            }
            let to = match fate {
                Fate::Converted => Status::Converted,
                Fate::Refunded => Status::Refunded,
                Fate::Upgraded { into } => Status::Upgraded { into },
                Fate::Sold => Status::Sold,
                Fate::Burned => Status::Burned,
                Fate::Gone => Status::Gone,
            };
            if k.status.transition(to).is_ok() {
                events.push(GiftEvent::Left { key, to });
                if let (Status::Upgraded { into }, Owner::User(owner)) = (to, k.owner) {
                    // The owner carries over to the collectible, when the path that saw the
                    // collectible could not tell who it belongs to.
                    let new = self.key(into);
                    if known.get(new).is_some_and(Self::unattributed)
                        || Self::deposited_unattributed(&events, new)
                    {
                        events.push(GiftEvent::Attributed { key: new, owner });
                    }
                }
            }
        }
        events
    }

    /// The real-time path: the account's own outgoing `from_offer` message says it sold
    /// collectible `collectible_id`. Ends the held item that is that collectible; when several
    /// are recorded held (a crafted collectible reuses an ingredient's id), the newest delivery
    /// is the one the account held, the others had left already.
    pub fn observe_sale(
        &self,
        known: &impl Known,
        held: impl IntoIterator<Item = ItemKey>,
        collectible_id: i64,
    ) -> Vec<GiftEvent> {
        let sold = held
            .into_iter()
            .filter(|&key| key.account_id == self.account_id)
            .filter(|&key| {
                known.get(key).is_some_and(|k| {
                    k.collectible_id == Some(collectible_id)
                        && k.status.transition(Status::Sold).is_ok()
                })
            })
            .max_by_key(|key| key.msg_id);
        sold.map(|key| GiftEvent::Left {
            key,
            to: Status::Sold,
        })
        .into_iter()
        .collect()
    }

    /// Whether a crafted collectible in the list reuses the id of `k`, listed under another
    /// message: `k` was the craft's first ingredient, used up.
    fn reused_by_craft(k: KnownItem, msg_id: MsgId, all: &[ObservedGift]) -> bool {
        let Some(id) = k.collectible_id else {
            return false;
        };
        all.iter().any(|g| {
            g.crafted
                && g.msg_id != msg_id
                && g.unique.as_ref().is_some_and(|u| u.collectible_id == id)
        })
    }

    /// The msg ids of held items missing from a full list: the ones whose fate to look up.
    pub fn missing(
        &self,
        held: impl IntoIterator<Item = ItemKey>,
        all: &[ObservedGift],
    ) -> Vec<MsgId> {
        let present: HashSet<MsgId> = all.iter().map(|g| g.msg_id).collect();
        let mut out: Vec<MsgId> = held
            .into_iter()
            .filter(|k| k.account_id == self.account_id && !present.contains(&k.msg_id))
            .map(|k| k.msg_id)
            .collect();
        out.sort_unstable();
        out
    }

    fn key(&self, msg_id: MsgId) -> ItemKey {
        ItemKey::new(self.account_id, msg_id)
    }

    /// An item nobody owns yet that could still be credited: held and unattributed. An item an
    /// operator assigned has an owner and is never re-attributed.
    fn unattributed(k: KnownItem) -> bool {
        k.owner == Owner::Unattributed && k.status.is_held()
    }

    /// Whether `events` credits `key` to nobody (a collectible first seen in this same pass).
    fn deposited_unattributed(events: &[GiftEvent], key: ItemKey) -> bool {
        events.iter().any(|e| {
            matches!(e, GiftEvent::Deposited { item, .. }
                if item.key == key && item.owner == Owner::Unattributed)
        })
    }

    /// `seen` holds keys already decided in this call, so a list that names a gift twice (or an
    /// upgrade seen from both ends) yields one event.
    fn observe_into(
        &self,
        known: &impl Known,
        gift: &ObservedGift,
        seen: &mut HashSet<ItemKey>,
        events: &mut Vec<GiftEvent>,
    ) {
        let key = self.key(gift.msg_id);
        if gift.from == Some(self.account_id) {
            return; // sent by the deposit account itself: not a deposit
        }
        if !seen.insert(key) {
            return;
        }
        match known.get(key) {
            Some(k) => {
                if gift.refunded && k.status.transition(Status::Refunded).is_ok() {
                    events.push(GiftEvent::Left {
                        key,
                        to: Status::Refunded,
                    });
                } else if let (true, Some(owner)) = (Self::unattributed(k), gift.from) {
                    // Recorded without a sender, and Telegram now names one (defence in
                    // depth: the update path may have missed what the saved list tells).
                    events.push(GiftEvent::Attributed { key, owner });
                }
            }
            None if gift.refunded => {} // never credit a gift Telegram already took back
            None => {
                let mut owner = Owner::from_user_id(gift.from);
                if let Some(from_msg) = gift.upgraded_from {
                    let old = self.key(from_msg);
                    if let Some(k) = known.get(old) {
                        // the owner carries over from the regular gift to the collectible
                        owner = k.owner;
                        let to = Status::Upgraded { into: gift.msg_id };
                        if seen.insert(old) && k.status.transition(to).is_ok() {
                            events.push(GiftEvent::Left { key: old, to });
                        }
                    }
                }
                events.push(GiftEvent::Deposited {
                    item: Item {
                        key,
                        owner,
                        gift_id: gift.gift.gift_id,
                        stars: gift.gift.stars,
                        unique: gift.unique.clone().map(Box::new),
                        status: Status::Held,
                        received_at: gift.date,
                        convert_stars: gift.convert_stars,
                        transfer_stars: gift.transfer_stars,
                        can_transfer_at: gift.can_transfer_at,
                        upgraded_from: gift.upgraded_from,
                    },
                    gift_type: gift.gift.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: UserId = 1000;

    fn regular(msg_id: MsgId, from: Option<UserId>) -> ObservedGift {
        ObservedGift {
            msg_id,
            from,
            date: 1_700_000_000 + i64::from(msg_id),
            gift: GiftType {
                gift_id: 5,
                title: None,
                stars: 15,
                unique: false,
            },
            unique: None,
            convert_stars: Some(13),
            transfer_stars: None,
            can_transfer_at: None,
            refunded: false,
            pinned: false,
            upgraded_from: None,
            crafted: false,
        }
    }

    fn unique(msg_id: MsgId, from: Option<UserId>, upgraded_from: Option<MsgId>) -> ObservedGift {
        ObservedGift {
            gift: GiftType {
                gift_id: 9,
                title: Some("Plush Pepe".into()),
                stars: 500,
                unique: true,
            },
            unique: Some(UniqueInfo {
                collectible_id: 777,
                slug: "PlushPepe-1".into(),
                number: 1,
                value: Default::default(),
            }),
            upgraded_from,
            ..regular(msg_id, from)
        }
    }

    fn known(items: &[(MsgId, Status, Owner)]) -> HashMap<ItemKey, KnownItem> {
        items
            .iter()
            .map(|&(m, status, owner)| {
                let k = KnownItem {
                    status,
                    owner,
                    collectible_id: None,
                    confirmed: true,
                };
                (ItemKey::new(ACCOUNT, m), k)
            })
            .collect()
    }

    /// Renders events compactly so cases read as one line each.
    fn render(events: &[GiftEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                GiftEvent::Deposited { item, .. } => {
                    format!("+{} {}", item.key.msg_id, item.owner)
                }
                GiftEvent::Left { key, to } => format!("-{} {}", key.msg_id, to),
                GiftEvent::Attributed { key, owner } => format!("={} {owner}", key.msg_id),
            })
            .collect()
    }

    fn check_one(known_items: &[(MsgId, Status, Owner)], gift: ObservedGift, expected: &[&str]) {
        let d = Detector::new(ACCOUNT);
        let got = render(&d.observe(&known(known_items), &gift));
        assert_eq!(got, expected, "gift {gift:?}");
    }

    #[test]
    fn single_observations() {
        use Owner::*;
        use Status::*;
        check_one(&[], regular(1, Some(42)), &["+1 42"]);
        check_one(&[], regular(1, None), &["+1 unattributed"]);
        check_one(&[(1, Held, User(42))], regular(1, Some(42)), &[]);
        check_one(&[], regular(1, Some(ACCOUNT)), &[]);
        check_one(
            &[],
            ObservedGift {
                refunded: true,
                ..regular(1, Some(42))
            },
            &[],
        );
        check_one(
            &[(1, Held, User(42))],
            ObservedGift {
                refunded: true,
                ..regular(1, Some(42))
            },
            &["-1 refunded"],
        );
        check_one(
            &[(1, Refunded, User(42))],
            ObservedGift {
                refunded: true,
                ..regular(1, Some(42))
            },
            &[],
        );
        // the upgrade carries the owner of the regular gift, even an unattributed one
        check_one(
            &[(1, Held, User(42))],
            unique(2, Some(42), Some(1)),
            &["-1 upgraded into 2", "+2 42"],
        );
        check_one(
            &[(1, Held, Unattributed)],
            unique(2, None, Some(1)),
            &["-1 upgraded into 2", "+2 unattributed"],
        );
        // an upgrade of a gift giftd never saw is credited to its sender
        check_one(&[], unique(2, Some(42), Some(1)), &["+2 42"]);
        // a later observation names the sender of an item recorded without one
        check_one(&[(1, Held, Unattributed)], regular(1, Some(42)), &["=1 42"]);
        check_one(&[(1, Held, Unattributed)], regular(1, None), &[]);
        // never over an owner (Telegram's or an operator's), never for an item that left
        check_one(&[(1, Held, User(41))], regular(1, Some(42)), &[]);
        check_one(&[(1, Gone, Unattributed)], regular(1, Some(42)), &[]);
        // the same collectible deposited again after a withdrawal is a new item
        check_one(
            &[(3, Withdrawn, User(42))],
            unique(8, Some(43), None),
            &["+8 43"],
        );
    }

    #[test]
    fn polling_stops_at_the_first_known_unpinned_gift() {
        use Owner::*;
        use Status::*;
        let d = Detector::new(ACCOUNT);
        let k = known(&[(5, Held, User(1)), (4, Held, User(1))]);
        let pinned_known = ObservedGift {
            pinned: true,
            ..regular(5, Some(1))
        };
        let page = [pinned_known, regular(7, Some(2)), regular(6, None)];
        let out = d.observe_page(&k, &page);
        assert_eq!(render(&out.events), ["+7 2", "+6 unattributed"]);
        assert!(
            !out.reached_known,
            "a known pinned gift says nothing about age"
        );

        let page = [regular(7, Some(2)), regular(4, Some(1))];
        let out = d.observe_page(&k, &page);
        assert_eq!(render(&out.events), ["+7 2"]);
        assert!(out.reached_known);
    }

    /// Updates delivered gifts 2..n but missed gift 1 (pushed before the stream's first
    /// getState): polling that stopped at the update-delivered gifts would never find gift 1.
    #[test]
    fn polling_reads_past_gifts_only_an_update_delivered() {
        use Owner::*;
        use Status::*;
        let d = Detector::new(ACCOUNT);
        let mut k = known(&[(3, Held, User(1)), (2, Held, User(1))]);
        for v in k.values_mut() {
            v.confirmed = false;
        }
        let out = d.observe_page(&k, &[regular(3, Some(1)), regular(2, Some(1))]);
        assert!(out.events.is_empty());
        assert!(
            !out.reached_known,
            "gifts only an update delivered do not stop polling"
        );
        let out = d.observe_page(&k, &[regular(1, Some(1))]);
        assert_eq!(render(&out.events), ["+1 1"]);
    }

    #[test]
    fn duplicates_within_one_list_credit_once() {
        let d = Detector::new(ACCOUNT);
        let out = d.observe_page(&known(&[]), &[regular(7, Some(2)), regular(7, Some(2))]);
        assert_eq!(render(&out.events), ["+7 2"]);
    }

    #[test]
    fn reconciliation_finds_new_and_departed_items() {
        use Owner::*;
        use Status::*;
        let d = Detector::new(ACCOUNT);
        let k = known(&[
            (1, Held, User(1)),
            (2, Held, User(1)),
            (3, WithdrawRequested, User(2)),
            (4, Held, User(3)),
            (5, Held, User(3)),
        ]);
        let held: Vec<ItemKey> = k.keys().copied().collect();
        let all = [
            regular(1, Some(1)),
            regular(9, Some(4)),
            unique(10, Some(3), Some(5)),
        ];
        assert_eq!(d.missing(held.clone(), &all), [2, 3, 4, 5]);
        let fates = HashMap::from([(2, Fate::Converted), (4, Fate::Refunded)]);
        let got = render(&d.reconcile(&k, held, &all, &fates));
        assert_eq!(
            got,
            [
                "+9 4",
                "-5 upgraded into 10",
                "+10 3",
                "-2 converted",
                "-3 gone",
                "-4 refunded",
            ]
        );
    }

    #[test]
    fn an_upgrade_seen_without_sender_takes_the_owner_of_its_regular_gift() {
        use Owner::*;
        use Status::*;
        let d = Detector::new(ACCOUNT);
        let fates = HashMap::from([(1, Fate::Upgraded { into: 2 })]);
        // The collectible was credited (to nobody) by an earlier pass.
        let k = known(&[(1, Held, User(42)), (2, Held, Unattributed)]);
        let all = [unique(2, None, None)];
        let got = render(&d.reconcile(&k, [ItemKey::new(ACCOUNT, 1)], &all, &fates));
        assert_eq!(got, ["-1 upgraded into 2", "=2 42"]);
        // The collectible is first seen in this pass.
        let k = known(&[(1, Held, User(42))]);
        let got = render(&d.reconcile(&k, [ItemKey::new(ACCOUNT, 1)], &all, &fates));
        assert_eq!(got, ["+2 unattributed", "-1 upgraded into 2", "=2 42"]);
        // An owned collectible keeps its owner.
        let k = known(&[(1, Held, User(42)), (2, Held, User(43))]);
        let all = [unique(2, Some(43), None)];
        let got = render(&d.reconcile(&k, [ItemKey::new(ACCOUNT, 1)], &all, &fates));
        assert_eq!(got, ["-1 upgraded into 2"]);
    }

    /// A reconciliation that finds a gift under withdrawal gone must not call it `gone`: it is
    /// most likely our own transfer, which the withdrawal worker records (or resolves).
    #[test]
    fn reconciliation_leaves_a_gift_under_withdrawal_to_the_worker() {
        use Owner::*;
        use Status::*;
        let d = Detector::new(ACCOUNT);
        let k = known(&[(1, Withdrawing, User(1)), (2, Withdrawing, User(1))]);
        let held = [ItemKey::new(ACCOUNT, 1), ItemKey::new(ACCOUNT, 2)];
        let fates = HashMap::from([(2, Fate::Refunded)]);
        let got = render(&d.reconcile(&k, held, &[], &fates));
        assert_eq!(got, ["-2 refunded"]);
    }

    /// Crafting: the first ingredient's id is reused by the crafted collectible (listed under a
    /// new message), the others show burned; both end burned, never gone. A sale seen by the
    /// update path ends the newest held delivery of that collectible.
    #[test]
    fn burned_and_sold_collectibles_end_with_their_own_fate() {
        use Owner::*;
        use Status::*;
        let d = Detector::new(ACCOUNT);
        let mut k = known(&[
            (1, Held, User(42)),
            (2, Held, User(42)),
            (3, Held, User(43)),
            (4, Held, User(44)),
        ]);
        let ids = [(1, 777), (2, 778), (3, 779), (4, 780)];
        for (m, id) in ids {
            k.get_mut(&ItemKey::new(ACCOUNT, m)).unwrap().collectible_id = Some(id);
        }
        let held: Vec<ItemKey> = (1..=4).map(|m| ItemKey::new(ACCOUNT, m)).collect();
        let crafted = ObservedGift {
            crafted: true,
            ..unique(9, None, None)
        };
        // msg 4's collectible is listed again, not crafted: nothing tells what happened to 4
        let fates = HashMap::from([(2, Fate::Burned), (3, Fate::Sold)]);
        let got = render(&d.reconcile(&k, held.clone(), &[crafted], &fates));
        assert_eq!(
            got,
            [
                "+9 unattributed",
                "-1 burned",
                "-2 burned",
                "-3 sold",
                "-4 gone"
            ]
        );

        assert_eq!(render(&d.observe_sale(&k, held.clone(), 779)), ["-3 sold"]);
        assert!(d.observe_sale(&k, held.clone(), 1).is_empty());
        k.get_mut(&ItemKey::new(ACCOUNT, 4)).unwrap().collectible_id = Some(779);
        assert_eq!(render(&d.observe_sale(&k, held.clone(), 779)), ["-4 sold"]);
        k.get_mut(&ItemKey::new(ACCOUNT, 4)).unwrap().status = Sold;
        assert_eq!(render(&d.observe_sale(&k, held, 779)), ["-3 sold"]);
    }

    #[test]
    fn reconciliation_of_an_unchanged_account_is_silent() {
        use Owner::*;
        use Status::*;
        let d = Detector::new(ACCOUNT);
        let k = known(&[(1, Held, User(1)), (2, Held, Unattributed)]);
        let all = [regular(2, None), regular(1, Some(1))];
        let got = d.reconcile(
            &k,
            k.keys().copied().collect::<Vec<_>>(),
            &all,
            &HashMap::new(),
        );
        assert!(got.is_empty(), "{got:?}");
    }
}
