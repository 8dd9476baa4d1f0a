//! The gift cases Telegram added in 2025-2026, modelled at layer 230: prepaid upgrades paid by a
//! third user, resale purchases for someone else (Stars or TON), purchase offers and their
//! resolution, auction wins, hosted (blockchain-assigned) collectibles, crafting and burned
//! ingredients, chat themes set to a collectible, collectible values, and the purchase rules of
//! regular gifts (per-user limits, Premium only, locked until a date, auction only) with
//! `payments.checkCanSendGift`.
//!
//! Each behaviour is written the way Telegram does it, with its source in tgsim/FIDELITY.md
//! ("Gift cases since 2025"). The state lives in [`CaseState`], one field of the world, so the
//! rest of the world is unchanged where no case is used. Like the rest of the world: no IO, no
//! panics on client input.

use std::collections::{HashMap, HashSet};

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::{RpcErr, SERVICE_USER_ID, SentGift, UniqueInfo, World};
use crate::tlb;

/// A price on the gift market: Stars (`starsAmount`) or TON in nanotons (`starsTonAmount`).
/// JSON: `{"stars": 500}` or `{"ton": 1500000000}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Price {
    /// Whole Stars.
    Stars(i64),
    /// Nanotons (1 TON = 10^9).
    Ton(i64),
}

impl Price {
    /// The TL `StarsAmount`.
    pub fn tl(self) -> tl::enums::StarsAmount {
        match self {
            Price::Stars(amount) => {
                tl::enums::StarsAmount::Amount(tl::types::StarsAmount { amount, nanos: 0 })
            }
            Price::Ton(amount) => {
                tl::enums::StarsAmount::StarsTonAmount(tl::types::StarsTonAmount { amount })
            }
        }
    }
}

/// Purchase rules of a catalogue gift beyond the edition size (`starGift` flags). Unknown fields
/// are refused.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GiftRules {
    /// `limited_per_user` + `per_user_total`: how many one user may buy (for anyone).
    pub per_user_total: Option<i32>,
    /// `require_premium`: only Premium users may buy it.
    pub require_premium: bool,
    /// `locked_until_date`: not for sale before this unix time.
    pub locked_until_date: Option<i32>,
    /// `auction`: only obtainable by bidding in its auction, never bought directly.
    pub auction: bool,
}

/// A collectible's value and resale listing (`starGiftUnique.value_*`, `resell_amount`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct UniqueValue {
    /// `value_amount`, in the smallest unit of `value_currency`.
    pub value_amount: Option<i64>,
    /// `value_currency`: an ISO 4217 code (e.g. "USD"), set with `value_amount`.
    pub value_currency: Option<String>,
    /// `value_usd_amount`: the value in US cents.
    pub value_usd_amount: Option<i64>,
    /// `resell_amount`: the listing's prices (Stars and/or TON); empty = not listed.
    pub resell: Vec<Price>,
    /// `resale_ton_only`: the listing accepts TON only.
    pub resale_ton_only: bool,
}

/// An open purchase offer (`payments.sendStarGiftOffer`), by the owner's offer message id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Offer {
    buyer: i64,
    /// The buyer's copy of the offer message.
    buyer_msg_id: i32,
    /// The owner's saved gift the offer is for.
    gift_msg_id: i32,
    price: Price,
    expires_at: i32,
}

/// State of the gift cases; a field of [`World`].
#[derive(Debug, Clone, Default)]
pub struct CaseState {
    rules: HashMap<i64, GiftRules>,
    /// Regular gifts bought per (buyer, catalogue gift), for `per_user_remains`.
    bought: HashMap<(i64, i64), i32>,
    premium: HashSet<i64>,
    values: HashMap<i64, UniqueValue>,
    /// Collectibles hosted by an account but owned by a TON wallet: unique id -> owner address.
    hosted: HashMap<i64, String>,
    /// Collectibles burned as crafting ingredients.
    burned: HashSet<i64>,
    /// Collectibles that came out of crafting.
    crafted: HashSet<i64>,
    /// (owner, msg_id) of regular gifts whose upgrade a third user prepaid.
    prepaid: HashSet<(i64, i32)>,
    /// (owner, offer msg_id) -> offer.
    offers: HashMap<(i64, i32), Offer>,
    /// Auction rounds won per catalogue gift, for `gift_num`.
    auction_nums: HashMap<i64, i32>,
}

/// Input of [`World::prepay_upgrade`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepayUpgrade {
    /// Who pays (any user holding the hash).
    pub payer: i64,
    /// Who holds the regular gift.
    pub owner: i64,
    /// The gift's service message id in `owner`'s dialog.
    pub msg_id: i32,
}

/// What a prepaid upgrade produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrepaidUpgrade {
    /// The notice's message id in the owner's dialog (chat with the payer).
    pub notice_msg_id: i32,
    /// The original gift's message id (`gift_msg_id` of the notice).
    pub gift_msg_id: i32,
    /// Stars the payer paid.
    pub stars: i64,
}

/// Input of [`World::resale_buy`]: `buyer` buys a collectible on the resale market for `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResaleBuy {
    /// Who pays.
    pub buyer: i64,
    /// Who receives it (the buyer itself, or someone else such as the deposit account).
    pub to: i64,
    /// Base catalogue gift of the collectible (a collectible listed by a seller outside the
    /// simulation is minted for the occasion).
    pub gift_id: i64,
    /// The price paid, Stars or TON (`resale_amount`).
    pub price: Price,
    /// Optional text (`inputInvoiceStarGiftResale.message`, layer 230).
    #[serde(default)]
    pub message: Option<String>,
    /// Seconds before the new owner may transfer it (`can_transfer_at`).
    #[serde(default)]
    pub transfer_lock_secs: Option<i64>,
}

/// Input of [`World::send_offer`]: `buyer` offers to buy `owner`'s collectible.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendOffer {
    /// Who offers.
    pub buyer: i64,
    /// Who holds the collectible.
    pub owner: i64,
    /// The collectible's saved-gift message id in `owner`'s dialog.
    pub msg_id: i32,
    /// Offered price.
    pub price: Price,
    /// Seconds the offer stays open (Telegram: 6 to 72 hours).
    #[serde(default = "default_offer_secs")]
    pub duration_secs: i32,
}

fn default_offer_secs() -> i32 {
    6 * 3600
}

/// What an offer produced: the offer message ids on both sides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OfferSent {
    /// The owner's incoming offer message (`offer_msg_id` of `payments.resolveStarGiftOffer`).
    pub offer_msg_id: i32,
    /// The buyer's outgoing copy.
    pub buyer_msg_id: i32,
}

/// Input of [`World::resolve_offer`] (`payments.resolveStarGiftOffer`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveOffer {
    /// The collectible's owner (who received the offer).
    pub owner: i64,
    /// The owner's offer message id.
    pub offer_msg_id: i32,
    /// Decline instead of accept.
    #[serde(default)]
    pub decline: bool,
}

/// Input of [`World::auction_win`]: `winner` won a round of an auction gift's auction, bidding
/// for `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuctionWin {
    /// The bidder who won.
    pub winner: i64,
    /// The gift's receiver (the winner itself, or someone else).
    pub to: i64,
    /// Catalogue gift (should be an `auction` gift).
    pub gift_id: i64,
    /// The winning bid, Stars.
    pub bid_stars: i64,
}

/// What an auction win produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuctionWon {
    /// The winner's `auction_acquired` notice.
    pub winner_msg_id: i32,
    /// The receiver's gift message and saved gift (None when the winner bid for itself: the
    /// notice is then the gift).
    pub gift: Option<SentGift>,
    /// `gift_num`: the number of this gift in its auction.
    pub gift_num: i32,
}

/// Input of [`World::host_unique`]: a collectible owned by a TON wallet, shown (hosted) on
/// `host`'s profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostUnique {
    /// The account that hosts it.
    pub host: i64,
    /// Base catalogue gift.
    pub gift_id: i64,
    /// The owning wallet's address (`owner_address`).
    #[serde(default = "default_address")]
    pub owner_address: String,
}

fn default_address() -> String {
    "UQBtgsimHostedGiftOwnerWalletAddress0000000000000".into()
}

/// Input of [`World::craft`]: `owner` crafts 1-4 collectibles it holds into one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Craft {
    /// Who crafts.
    pub owner: i64,
    /// The ingredients' saved-gift message ids; the first gives its id and number.
    pub msg_ids: Vec<i32>,
}

/// Input of [`World::set_chat_theme`]: `from` sets the theme of its chat with `to` to a
/// collectible `from` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatTheme {
    /// Who sets the theme.
    pub from: i64,
    /// The other side of the chat.
    pub to: i64,
    /// The collectible's saved-gift message id in `from`'s dialog.
    pub msg_id: i32,
}

/// Message ids of a chat-theme change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ThemeSet {
    /// `from`'s outgoing service message.
    pub from_msg_id: i32,
    /// `to`'s incoming service message.
    pub to_msg_id: i32,
}

/// Why `payments.checkCanSendGift` refuses (None: may buy).
fn refusal_text(r: &str) -> &'static str {
    match r {
        "STARGIFT_USER_USAGE_LIMITED" => "You have already bought the maximum number of this gift.",
        "PREMIUM_ACCOUNT_REQUIRED" => "This gift is available to Telegram Premium users only.",
        "STARGIFT_LOCKED" => "This gift is not available for purchase yet.",
        "STARGIFT_AUCTION_ONLY" => "This gift can only be obtained in its auction.",
        "STARGIFT_USAGE_LIMITED" => "This gift is sold out.",
        _ => "This gift cannot be sent.",
    }
}

impl World {
    // ----- catalogue rules and checkCanSendGift ---------------------------------------

    /// Sets the purchase rules of catalogue gift `gift_id`.
    pub fn set_gift_rules(&mut self, gift_id: i64, rules: GiftRules) -> Result<(), RpcErr> {
        self.gift(gift_id)?;
        if rules.per_user_total.is_some_and(|t| t <= 0) {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        self.cases.rules.insert(gift_id, rules);
        Ok(())
    }

    /// Makes `account` a Premium user or not.
    pub fn set_premium(&mut self, account: i64, premium: bool) -> Result<(), RpcErr> {
        self.acc(account)?;
        if premium {
            self.cases.premium.insert(account);
        } else {
            self.cases.premium.remove(&account);
        }
        Ok(())
    }

    /// Whether `account` is a Premium user.
    pub fn is_premium(&self, account: i64) -> bool {
        self.cases.premium.contains(&account)
    }

    fn rules(&self, gift_id: i64) -> GiftRules {
        self.cases.rules.get(&gift_id).copied().unwrap_or_default()
    }

    /// `per_user_remains` of `gift_id` for `buyer` (None when not limited per user).
    fn per_user_remains(&self, buyer: i64, gift_id: i64) -> Option<i32> {
        let total = self.rules(gift_id).per_user_total?;
        let bought = self
            .cases
            .bought
            .get(&(buyer, gift_id))
            .copied()
            .unwrap_or(0);
        Some((total - bought).max(0))
    }

    /// The refusal Telegram gives `buyer` for buying regular gift `gift_id` now, if any: the
    /// per-user limit, Premium only, locked, auction only, sold out (in that order).
    pub(super) fn purchase_refusal(&self, buyer: i64, gift_id: i64) -> Option<RpcErr> {
        let rules = self.rules(gift_id);
        if self.per_user_remains(buyer, gift_id) == Some(0) {
            return Some(RpcErr::bad("STARGIFT_USER_USAGE_LIMITED"));
        }
        if rules.require_premium && !self.is_premium(buyer) {
            return Some(RpcErr::new(403, "PREMIUM_ACCOUNT_REQUIRED"));
        }
        if rules
            .locked_until_date
            .is_some_and(|t| i64::from(t) > self.now())
        {
            return Some(RpcErr::bad("STARGIFT_LOCKED"));
        }
        if rules.auction {
            return Some(RpcErr::bad("STARGIFT_AUCTION_ONLY"));
        }
        let g = self.gift(gift_id).ok()?;
        if g.limited_total.is_some() && g.limited_remains == Some(0) {
            return Some(RpcErr::bad("STARGIFT_USAGE_LIMITED"));
        }
        None
    }

    /// Counts a regular gift `buyer` bought (for the per-user limit).
    pub(super) fn count_purchase(&mut self, buyer: i64, gift_id: i64) {
        *self.cases.bought.entry((buyer, gift_id)).or_insert(0) += 1;
    }

    /// `payments.checkCanSendGift`: ok, or fail with a reason text.
    pub fn check_can_send_gift(
        &self,
        caller: i64,
        gift_id: i64,
    ) -> Result<tl::enums::payments::CheckCanSendGiftResult, RpcErr> {
        self.gift(gift_id)?;
        Ok(match self.purchase_refusal(caller, gift_id) {
            None => tl::enums::payments::CheckCanSendGiftResult::Ok,
            Some(e) => tl::enums::payments::CheckCanSendGiftResult::Fail(
                tl::types::payments::CheckCanSendGiftResultFail {
                    reason: tlb::text(refusal_text(&e.message)),
                },
            ),
        })
    }

    /// Applies the purchase rules to a `starGift` as `viewer` sees it (`per_user_remains` is the
    /// viewer's; without a viewer, the full allowance).
    pub(super) fn apply_gift_rules(&self, g: &mut tl::types::StarGift, viewer: Option<i64>) {
        let rules = self.rules(g.id);
        g.require_premium = rules.require_premium;
        g.limited_per_user = rules.per_user_total.is_some();
        g.per_user_total = rules.per_user_total;
        g.per_user_remains = rules.per_user_total.map(|total| {
            viewer
                .and_then(|v| self.per_user_remains(v, g.id))
                .unwrap_or(total)
        });
        g.locked_until_date = rules.locked_until_date;
        g.auction = rules.auction;
        if rules.auction {
            g.auction_slug = Some(format!("auction-{}", g.id));
            g.gifts_per_round = Some(50);
            g.auction_start_date = Some(self.now32());
        }
    }

    // ----- collectibles: values, hosting, crafting -------------------------------------

    /// Sets a collectible's value and listing.
    pub fn set_unique_value(&mut self, unique_id: i64, v: UniqueValue) -> Result<(), RpcErr> {
        if !self.uniques.contains_key(&unique_id) {
            return Err(RpcErr::bad("STARGIFT_NOT_FOUND"));
        }
        if v.value_amount.is_some() != v.value_currency.is_some() {
            return Err(RpcErr::bad("VALUE_CURRENCY_REQUIRED"));
        }
        self.cases.values.insert(unique_id, v);
        Ok(())
    }

    /// Sets the value and listing of the collectible `owner` holds as saved gift `msg_id`;
    /// returns its collectible id.
    pub fn set_saved_unique_value(
        &mut self,
        owner: i64,
        msg_id: i32,
        v: UniqueValue,
    ) -> Result<i64, RpcErr> {
        let uid = self
            .saved_gift(owner, msg_id)?
            .unique
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
        self.set_unique_value(uid, v)?;
        Ok(uid)
    }

    /// `payments.getUniqueStarGift`: the collectible with this slug as it is now, with its
    /// current owner (`owner_id`; absent once it was burned by crafting, which the `burned`
    /// flag says) and that owner in `users`.
    pub fn unique_star_gift(
        &self,
        caller: i64,
        slug: &str,
    ) -> Result<tl::enums::payments::UniqueStarGift, RpcErr> {
        let u = self
            .uniques
            .values()
            .find(|u| u.slug == slug)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_SLUG_INVALID"))?;
        let holder = self
            .accounts
            .iter()
            .find(|(_, a)| a.saved.values().any(|s| s.unique == Some(u.id)))
            .map(|(&id, _)| id);
        let mut gift = self.tl_unique(&u, holder.unwrap_or(caller));
        if let (tl::enums::StarGift::Unique(g), None) = (&mut gift, holder) {
            g.owner_id = None;
        }
        let users: Vec<i64> = std::iter::once(caller).chain(holder).collect();
        Ok(tl::enums::payments::UniqueStarGift::Gift(
            tl::types::payments::UniqueStarGift {
                gift,
                chats: Vec::new(),
                users: self.tl_users(&users, caller),
            },
        ))
    }

    /// Applies value, listing, hosting and craft state to a `starGiftUnique`.
    pub(super) fn apply_unique_state(&self, u: &mut tl::types::StarGiftUnique, holder: i64) {
        if let Some(v) = self.cases.values.get(&u.id) {
            u.value_amount = v.value_amount;
            u.value_currency = v.value_currency.clone();
            // value_amount, value_currency and value_usd_amount share flag 8.
            u.value_usd_amount = v
                .value_amount
                .map(|_| v.value_usd_amount.unwrap_or_default());
            u.resell_amount =
                (!v.resell.is_empty()).then(|| v.resell.iter().map(|p| p.tl()).collect());
            u.resale_ton_only = v.resale_ton_only;
        }
        if let Some(address) = self.cases.hosted.get(&u.id) {
            u.owner_id = None;
            u.owner_address = Some(address.clone());
            u.host_id = Some(tlb::peer_user(holder));
        }
        u.burned = self.cases.burned.contains(&u.id);
        u.crafted = self.cases.crafted.contains(&u.id);
    }

    /// Whether collectible `unique_id` is only hosted (owned by a TON wallet).
    pub(super) fn is_hosted(&self, unique_id: i64) -> bool {
        self.cases.hosted.contains_key(&unique_id)
    }

    /// A collectible owned by a TON wallet becomes hosted on `host`'s profile: Telegram assigns
    /// it from the blockchain with a service message from 777000 (`assigned`, no sender), and
    /// getSavedStarGifts lists it with `host_id` = host and `owner_address` (left out with
    /// `exclude_hosted`).
    pub fn host_unique(&mut self, h: HostUnique) -> Result<SentGift, RpcErr> {
        self.acc(h.host)?;
        let u = self.mint_unique(h.gift_id)?;
        self.cases.hosted.insert(u.id, h.owner_address);
        self.give_unique(u, None, h.host, None, None, None, None)
            .map(|(sent, _)| sent)
    }

    /// Crafts 1-4 collectibles of `owner` into one (`payments.craftStarGift`): the result reuses
    /// the first ingredient's id and number, every ingredient is burned (gone from the saved
    /// list), and a service message with `craft` carries the result.
    pub fn craft(&mut self, c: Craft) -> Result<SentGift, RpcErr> {
        if c.msg_ids.is_empty() || c.msg_ids.len() > 4 {
            return Err(RpcErr::bad("STARGIFT_CRAFT_COUNT_INVALID"));
        }
        let mut ingredients = Vec::with_capacity(c.msg_ids.len());
        for &m in &c.msg_ids {
            let s = self.saved_gift(c.owner, m)?;
            let uid = s.unique.ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
            if ingredients.iter().any(|(_, u)| *u == uid) {
                return Err(RpcErr::bad("STARGIFT_INVALID"));
            }
            ingredients.push((s, uid));
        }
        let first = ingredients[0].1;
        if self.is_hosted(first) {
            // "The first passed gift must not be located on the TON blockchain."
            return Err(RpcErr::bad("STARGIFT_INVALID"));
        }
        let base = self
            .uniques
            .get(&first)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?;
        for (s, uid) in &ingredients {
            self.acc_mut(c.owner)?.saved.remove(&s.msg_id);
            self.cases.burned.insert(*uid);
        }
        // The crafted gift keeps the first ingredient's id and number: it is not burned.
        self.cases.burned.remove(&first);
        self.cases.crafted.insert(first);
        let date = self.now32();
        let mut act = self.unique_action(&base, c.owner, None, false, false, None, None, None);
        if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
            a.transferred = false;
            a.craft = true;
        }
        let (msg_id, _) = self.deliver(
            c.owner,
            |id| tlb::service_message(id, false, c.owner, SERVICE_USER_ID, date, act),
            None,
        )?;
        let (first_saved, _) = ingredients.swap_remove(0);
        self.acc_mut(c.owner)?.saved.insert(
            msg_id,
            super::Saved {
                msg_id,
                date,
                message: None,
                ..first_saved
            },
        );
        Ok(SentGift {
            msg_id,
            to: c.owner,
            gift_id: base.gift_id,
            unique_id: Some(base.id),
            slug: Some(base.slug),
            num: Some(base.num),
            date,
        })
    }

    // ----- prepaid upgrades ------------------------------------------------------------

    /// The `prepaid_upgrade_hash` of `owner`'s upgradable regular gift `msg_id`: set while the
    /// gift can still be upgraded and nobody has prepaid it.
    pub(super) fn prepaid_upgrade_hash(&self, owner: i64, msg_id: i32) -> Option<String> {
        let s = self.acc(owner).ok()?.saved.get(&msg_id)?;
        if s.unique.is_some() || s.upgrade_stars.is_none() || s.refunded {
            return None;
        }
        if self.cases.prepaid.contains(&(owner, msg_id)) {
            return None;
        }
        Some(format!(
            "{:016x}{:08x}",
            owner.rotate_left(17) ^ 0x5f3759df,
            msg_id
        ))
    }

    /// Whether a third user prepaid the upgrade of `owner`'s gift `msg_id`.
    pub(super) fn upgrade_prepaid(&self, owner: i64, msg_id: i32) -> bool {
        self.cases.prepaid.contains(&(owner, msg_id))
    }

    /// `payer` pays for the upgrade of `owner`'s regular gift (inputInvoiceStarGiftPrepaidUpgrade
    /// with its hash): a NEW `messageActionStarGift` about the same gift goes to both sides, in
    /// their chat: `prepaid_upgrade` and `upgrade_separate` set, `gift_msg_id` = the original's
    /// message id. The original stays where it is and its upgrade is now free.
    pub fn prepay_upgrade(&mut self, p: PrepayUpgrade) -> Result<PrepaidUpgrade, RpcErr> {
        self.acc(p.payer)?;
        let s = self.saved_gift(p.owner, p.msg_id)?;
        if s.unique.is_some() {
            return Err(RpcErr::bad("STARGIFT_ALREADY_UPGRADED"));
        }
        let Some(stars) = s.upgrade_stars else {
            return Err(RpcErr::bad("STARGIFT_UPGRADE_UNAVAILABLE"));
        };
        if self.upgrade_prepaid(p.owner, p.msg_id) {
            return Err(RpcErr::bad("STARGIFT_ALREADY_UPGRADED"));
        }
        if self.acc(p.payer)?.stars < stars {
            return Err(RpcErr::bad("BALANCE_TOO_LOW"));
        }
        self.acc_mut(p.payer)?.stars -= stars;
        self.cases.prepaid.insert((p.owner, p.msg_id));
        let mut act = self.regular_action(&s)?;
        if let tl::enums::MessageAction::StarGift(a) = &mut act {
            a.prepaid_upgrade = true;
            a.upgrade_separate = true;
            a.gift_msg_id = Some(p.msg_id);
            a.can_upgrade = false;
            a.upgrade_stars = Some(stars);
            a.convert_stars = None;
            a.message = None;
            a.saved = false;
        }
        let date = self.now32();
        let payer_act = act.clone();
        self.deliver(
            p.payer,
            |id| tlb::service_message(id, true, p.payer, p.owner, date, payer_act),
            None,
        )?;
        let (notice_msg_id, _) = self.deliver(
            p.owner,
            |id| tlb::service_message(id, false, p.owner, p.payer, date, act),
            None,
        )?;
        Ok(PrepaidUpgrade {
            notice_msg_id,
            gift_msg_id: p.msg_id,
            stars,
        })
    }

    // ----- resale -----------------------------------------------------------------------

    /// `buyer` buys a listed collectible for `to` (inputInvoiceStarGiftResale with `to_id`):
    /// `to` gets an incoming `messageActionStarGiftUnique` in the chat with the buyer with
    /// `resale_amount` (Stars or TON), neither `transferred` nor `upgrade`; the buyer gets the
    /// outgoing copy (when `to` is someone else). Stars are taken from the buyer (TON is not
    /// modelled as a balance).
    pub fn resale_buy(&mut self, r: ResaleBuy) -> Result<SentGift, RpcErr> {
        self.acc(r.buyer)?;
        self.acc(r.to)?;
        if r.to != r.buyer {
            self.check_accepts(r.to, true, false)?;
        }
        if let Price::Stars(stars) = r.price {
            if stars <= 0 {
                return Err(RpcErr::bad("STARS_AMOUNT_INVALID"));
            }
            if self.acc(r.buyer)?.stars < stars {
                return Err(RpcErr::bad("BALANCE_TOO_LOW"));
            }
            self.acc_mut(r.buyer)?.stars -= stars;
        }
        let u = self.mint_unique(r.gift_id)?;
        let can_transfer_at = r
            .transfer_lock_secs
            .map(|s| self.now().saturating_add(s).clamp(0, i64::from(i32::MAX)) as i32);
        let date = self.now32();
        let resale = |mut act: tl::enums::MessageAction| {
            if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
                a.transferred = false;
                a.resale_amount = Some(r.price.tl());
            }
            act
        };
        let peer = if r.to == r.buyer {
            SERVICE_USER_ID
        } else {
            let own = resale(self.unique_action(
                &u,
                r.to,
                None,
                false,
                false,
                None,
                None,
                r.message.as_deref(),
            ));
            self.deliver(
                r.buyer,
                |id| tlb::service_message(id, true, r.buyer, r.to, date, own),
                None,
            )?;
            r.buyer
        };
        let act = resale(self.unique_action(
            &u,
            r.to,
            None,
            false,
            false,
            None,
            can_transfer_at,
            r.message.as_deref(),
        ));
        let (msg_id, _) = self.deliver(
            r.to,
            |id| tlb::service_message(id, false, r.to, peer, date, act),
            None,
        )?;
        let from = (r.to != r.buyer).then_some(r.buyer);
        self.acc_mut(r.to)?.saved.insert(
            msg_id,
            super::Saved {
                msg_id,
                from,
                date,
                gift_id: u.gift_id,
                unique: Some(u.id),
                message: r.message,
                name_hidden: false,
                unsaved: false,
                refunded: false,
                pinned: false,
                convert_stars: None,
                upgrade_stars: None,
                transfer_stars: None,
                can_transfer_at,
            },
        );
        Ok(SentGift {
            msg_id,
            to: r.to,
            gift_id: u.gift_id,
            unique_id: Some(u.id),
            slug: Some(u.slug),
            num: Some(u.num),
            date,
        })
    }

    // ----- purchase offers --------------------------------------------------------------

    fn offer_action(
        &self,
        u: &UniqueInfo,
        owner: i64,
        price: Price,
        expires_at: i32,
    ) -> tl::enums::MessageAction {
        tl::enums::MessageAction::StarGiftPurchaseOffer(
            tl::types::MessageActionStarGiftPurchaseOffer {
                accepted: false,
                declined: false,
                gift: self.tl_unique(u, owner),
                price: price.tl(),
                expires_at,
            },
        )
    }

    /// The collectible a saved gift is, as the account holding it sees it.
    fn unique_of(&self, s: &super::Saved) -> Result<UniqueInfo, RpcErr> {
        let uid = s.unique.ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
        self.uniques
            .get(&uid)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))
    }

    /// `buyer` offers to buy `owner`'s collectible (`payments.sendStarGiftOffer`): the owner gets
    /// an incoming `messageActionStarGiftPurchaseOffer` in the chat with the buyer carrying the
    /// OWNER's own collectible; the buyer gets the outgoing copy. Stars are held from the buyer
    /// until the offer is resolved.
    pub fn send_offer(&mut self, o: SendOffer) -> Result<OfferSent, RpcErr> {
        self.acc(o.buyer)?;
        let s = self.saved_gift(o.owner, o.msg_id)?;
        let u = self.unique_of(&s)?;
        if !(6 * 3600..=72 * 3600).contains(&o.duration_secs) {
            return Err(RpcErr::bad("DURATION_INVALID"));
        }
        if let Price::Stars(stars) = o.price {
            if stars <= 0 {
                return Err(RpcErr::bad("STARS_AMOUNT_INVALID"));
            }
            if self.acc(o.buyer)?.stars < stars {
                return Err(RpcErr::bad("BALANCE_TOO_LOW"));
            }
            self.acc_mut(o.buyer)?.stars -= stars;
        }
        let date = self.now32();
        let expires_at = date.saturating_add(o.duration_secs);
        let act = self.offer_action(&u, o.owner, o.price, expires_at);
        let buyer_act = act.clone();
        let (buyer_msg_id, _) = self.deliver(
            o.buyer,
            |id| tlb::service_message(id, true, o.buyer, o.owner, date, buyer_act),
            None,
        )?;
        let (offer_msg_id, _) = self.deliver(
            o.owner,
            |id| tlb::service_message(id, false, o.owner, o.buyer, date, act),
            None,
        )?;
        self.cases.offers.insert(
            (o.owner, offer_msg_id),
            Offer {
                buyer: o.buyer,
                buyer_msg_id,
                gift_msg_id: o.msg_id,
                price: o.price,
                expires_at,
            },
        );
        Ok(OfferSent {
            offer_msg_id,
            buyer_msg_id,
        })
    }

    fn mark_offer(&mut self, account: i64, msg_id: i32, accepted: bool) -> Result<(), RpcErr> {
        self.edit_gift_action(account, msg_id, |act| {
            if let tl::enums::MessageAction::StarGiftPurchaseOffer(a) = act {
                a.accepted = accepted;
                a.declined = !accepted;
            }
        })
    }

    /// `payments.resolveStarGiftOffer`. Declined: both offer messages are edited (`declined`)
    /// and the buyer's Stars are returned. Accepted: the collectible leaves the owner as a sale:
    /// the owner's OUTGOING `messageActionStarGiftUnique` with `from_offer` and `resale_amount`
    /// in the chat with the buyer, the buyer's incoming copy and saved gift; the owner is paid
    /// (Stars; TON is not modelled as a balance). Returns the buyer's new saved gift, if any.
    pub fn resolve_offer(&mut self, r: ResolveOffer) -> Result<Option<SentGift>, RpcErr> {
        let offer = self
            .cases
            .offers
            .remove(&(r.owner, r.offer_msg_id))
            .ok_or_else(|| RpcErr::bad("STARGIFT_OFFER_INVALID"))?;
        let expired = i64::from(offer.expires_at) <= self.now();
        let gift = self.saved_gift(r.owner, offer.gift_msg_id).ok();
        if r.decline || expired || gift.is_none() {
            if let Price::Stars(stars) = offer.price {
                let b = self.acc_mut(offer.buyer)?;
                b.stars = b.stars.saturating_add(stars);
            }
            self.mark_offer(r.owner, r.offer_msg_id, false)?;
            self.mark_offer(offer.buyer, offer.buyer_msg_id, false)?;
            // The buyer is told with a new message (TDLib MessageStarGiftPurchaseOfferDeclined,
            // a reply to the offer; the reply header is not modelled).
            if let Some(s) = &gift
                && let Some(u) = s.unique.and_then(|u| self.uniques.get(&u)).cloned()
            {
                let act = tl::enums::MessageAction::StarGiftPurchaseOfferDeclined(
                    tl::types::MessageActionStarGiftPurchaseOfferDeclined {
                        expired,
                        gift: self.tl_unique(&u, r.owner),
                        price: offer.price.tl(),
                    },
                );
                let date = self.now32();
                self.deliver(
                    offer.buyer,
                    |id| tlb::service_message(id, false, offer.buyer, r.owner, date, act),
                    None,
                )?;
            }
            return if r.decline {
                Ok(None)
            } else {
                Err(RpcErr::bad("STARGIFT_OFFER_EXPIRED"))
            };
        }
        let Some(s) = gift else {
            return Err(RpcErr::bad("STARGIFT_NOT_FOUND"));
        };
        let u = self.unique_of(&s)?;
        self.mark_offer(r.owner, r.offer_msg_id, true)?;
        self.mark_offer(offer.buyer, offer.buyer_msg_id, true)?;
        self.acc_mut(r.owner)?.saved.remove(&offer.gift_msg_id);
        if let Price::Stars(stars) = offer.price {
            let o = self.acc_mut(r.owner)?;
            o.stars = o.stars.saturating_add(stars);
        }
        let date = self.now32();
        let sale = |mut act: tl::enums::MessageAction| {
            if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
                a.transferred = false;
                a.from_offer = true;
                a.resale_amount = Some(offer.price.tl());
            }
            act
        };
        let own = sale(self.unique_action(&u, offer.buyer, None, false, false, None, None, None));
        self.deliver(
            r.owner,
            |id| tlb::service_message(id, true, r.owner, offer.buyer, date, own),
            None,
        )?;
        let act = sale(self.unique_action(&u, offer.buyer, None, false, false, None, None, None));
        let (msg_id, _) = self.deliver(
            offer.buyer,
            |id| tlb::service_message(id, false, offer.buyer, r.owner, date, act),
            None,
        )?;
        self.acc_mut(offer.buyer)?.saved.insert(
            msg_id,
            super::Saved {
                msg_id,
                from: Some(r.owner),
                date,
                message: None,
                name_hidden: false,
                unsaved: false,
                pinned: false,
                transfer_stars: None,
                can_transfer_at: None,
                ..s
            },
        );
        Ok(Some(SentGift {
            msg_id,
            to: offer.buyer,
            gift_id: u.gift_id,
            unique_id: Some(u.id),
            slug: Some(u.slug),
            num: Some(u.num),
            date,
        }))
    }

    // ----- auctions ---------------------------------------------------------------------

    /// `winner` won an auction round of `gift_id`, bidding for `to`. The winner gets a
    /// `messageActionStarGift` with `auction_acquired`, `to_id` = the receiver and `gift_num`
    /// (TDLib treats it as the winner's own notice, never a received gift); a receiver other
    /// than the winner gets the gift as an ordinary incoming `messageActionStarGift` from the
    /// winner, with `gift_num`.
    pub fn auction_win(&mut self, a: AuctionWin) -> Result<AuctionWon, RpcErr> {
        self.acc(a.winner)?;
        self.acc(a.to)?;
        let gift = self.gift(a.gift_id)?;
        if a.bid_stars <= 0 {
            return Err(RpcErr::bad("STARS_AMOUNT_INVALID"));
        }
        if self.acc(a.winner)?.stars < a.bid_stars {
            return Err(RpcErr::bad("BALANCE_TOO_LOW"));
        }
        self.acc_mut(a.winner)?.stars -= a.bid_stars;
        let n = self.cases.auction_nums.entry(a.gift_id).or_insert(0);
        *n += 1;
        let gift_num = *n;
        let date = self.now32();
        // The receiver's copy is an ordinary gift from the winner (its `gift_num` is not
        // modelled on the receiver's side).
        let received = if a.to != a.winner {
            Some(
                self.deliver_regular(a.winner, a.to, &gift, false, None, false, None)?
                    .0,
            )
        } else {
            None
        };
        let saved = super::Saved {
            msg_id: 0,
            from: None,
            date,
            gift_id: gift.id,
            unique: None,
            message: None,
            name_hidden: false,
            unsaved: false,
            refunded: false,
            pinned: false,
            convert_stars: Some(gift.convert_stars),
            upgrade_stars: gift.upgrade_stars,
            transfer_stars: None,
            can_transfer_at: None,
        };
        let mut act = self.regular_action(&saved)?;
        if let tl::enums::MessageAction::StarGift(x) = &mut act {
            x.auction_acquired = true;
            x.to_id = Some(tlb::peer_user(a.to));
            x.gift_num = Some(gift_num);
            x.can_upgrade = false;
            x.convert_stars = None;
        }
        let (winner_msg_id, _) = self.deliver(
            a.winner,
            |id| tlb::service_message(id, false, a.winner, SERVICE_USER_ID, date, act),
            None,
        )?;
        if a.to == a.winner {
            self.acc_mut(a.winner)?.saved.insert(
                winner_msg_id,
                super::Saved {
                    msg_id: winner_msg_id,
                    ..saved
                },
            );
        }
        Ok(AuctionWon {
            winner_msg_id,
            gift: received,
            gift_num,
        })
    }

    // ----- chat themes ------------------------------------------------------------------

    /// `from` sets the theme of its chat with `to` to a collectible it holds
    /// (`messages.setChatWallPaper`-style `messages.setChatTheme` with
    /// `inputChatThemeUniqueGift`): both sides get `messageActionSetChatTheme` with
    /// `chatThemeUniqueGift` carrying the collectible; nothing changes hands.
    pub fn set_chat_theme(&mut self, t: ChatTheme) -> Result<ThemeSet, RpcErr> {
        self.acc(t.to)?;
        let s = self.saved_gift(t.from, t.msg_id)?;
        let u = self.unique_of(&s)?;
        let act = tl::enums::MessageAction::SetChatTheme(tl::types::MessageActionSetChatTheme {
            theme: tl::enums::ChatTheme::UniqueGift(tl::types::ChatThemeUniqueGift {
                gift: self.tl_unique(&u, t.from),
                theme_settings: Vec::new(),
            }),
        });
        let date = self.now32();
        let from_act = act.clone();
        let (from_msg_id, _) = self.deliver(
            t.from,
            |id| tlb::service_message(id, true, t.from, t.to, date, from_act),
            None,
        )?;
        let (to_msg_id, _) = self.deliver(
            t.to,
            |id| tlb::service_message(id, false, t.to, t.from, date, act),
            None,
        )?;
        Ok(ThemeSet {
            from_msg_id,
            to_msg_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use grammers_tl_types::{Deserializable, Serializable};

    use super::*;
    use crate::world::{CreateUser, SendGift, SendUniqueGift, Ttls};

    fn world() -> (World, i64, i64, i64) {
        let mut w = World::new(2, "127.0.0.1:1".parse().expect("addr"), 0, Ttls::default());
        let mut user = |name: &str| {
            w.create_user(CreateUser {
                username: name.into(),
                stars: 1_000_000,
                ..CreateUser::default()
            })
            .expect("user")
            .id
        };
        let (dep, a, b) = (user("dep"), user("alice"), user("bob"));
        (w, dep, a, b)
    }

    /// The message as a client decodes it from the wire (every shared flag consistent).
    fn wire(w: &World, account: i64, msg_id: i32) -> tl::types::MessageService {
        let m = w.acc(account).expect("account").messages[&msg_id].clone();
        let bytes = m.to_bytes();
        match tl::enums::Message::from_bytes(&bytes).expect("decodes at layer 230") {
            tl::enums::Message::Service(s) => s,
            other => panic!("not a service message: {other:?}"),
        }
    }

    fn star_gift(w: &World, account: i64, msg_id: i32) -> tl::types::MessageActionStarGift {
        match wire(w, account, msg_id).action {
            tl::enums::MessageAction::StarGift(a) => a,
            other => panic!("not messageActionStarGift: {other:?}"),
        }
    }

    fn unique(w: &World, account: i64, msg_id: i32) -> tl::types::MessageActionStarGiftUnique {
        match wire(w, account, msg_id).action {
            tl::enums::MessageAction::StarGiftUnique(a) => a,
            other => panic!("not messageActionStarGiftUnique: {other:?}"),
        }
    }

    fn gift(w: &World) -> i64 {
        w.catalogue()[0].id
    }

    fn send(w: &mut World, from: i64, to: i64) -> i32 {
        let gift_id = gift(w);
        w.send_gift(SendGift {
            from,
            to,
            gift_id,
            ..SendGift::default()
        })
        .expect("sent")
        .msg_id
    }

    fn send_unique(w: &mut World, from: i64, to: i64) -> SentGift {
        let gift_id = gift(w);
        w.send_unique_gift(SendUniqueGift {
            from,
            to,
            gift_id,
            ..SendUniqueGift::default()
        })
        .expect("sent")
    }

    fn saved(w: &World, owner: i64, msg_id: i32) -> tl::types::SavedStarGift {
        let s = w.acc(owner).expect("owner").saved[&msg_id].clone();
        let tl::enums::SavedStarGift::Gift(g) = w.tl_saved(&s, owner).expect("saved");
        g
    }

    #[test]
    fn prepaid_upgrade_notice_points_at_the_original_and_the_upgrade_says_so() {
        let (mut w, dep, a, b) = world();
        let original = send(&mut w, a, dep);
        assert!(saved(&w, dep, original).prepaid_upgrade_hash.is_some());
        let n = w
            .prepay_upgrade(PrepayUpgrade {
                payer: b,
                owner: dep,
                msg_id: original,
            })
            .expect("prepaid");
        let notice = wire(&w, dep, n.notice_msg_id);
        assert!(!notice.out);
        assert_eq!(notice.peer_id, tlb::peer_user(b));
        let act = star_gift(&w, dep, n.notice_msg_id);
        assert!(act.prepaid_upgrade && act.upgrade_separate);
        assert_eq!(act.gift_msg_id, Some(original));
        let s = saved(&w, dep, original);
        assert!(s.prepaid_upgrade_hash.is_none() && s.upgrade_separate);
        assert_eq!(
            w.saved_gifts(dep).expect("list").len(),
            1,
            "no new saved gift"
        );
        let again = w.prepay_upgrade(PrepayUpgrade {
            payer: b,
            owner: dep,
            msg_id: original,
        });
        assert_eq!(
            again.expect_err("twice").message,
            "STARGIFT_ALREADY_UPGRADED"
        );
        let up = w.upgrade_gift(dep, original).expect("upgrade");
        assert!(unique(&w, dep, up.msg_id).prepaid_upgrade);
    }

    #[test]
    fn the_sender_of_an_upgraded_gift_gets_an_incoming_upgrade() {
        let (mut w, dep, a, _) = world();
        let sent = send(&mut w, dep, a);
        let before = w.acc(dep).expect("dep").next_msg_id;
        w.upgrade_gift(a, sent).expect("upgrade");
        let m = wire(&w, dep, before);
        assert!(!m.out, "incoming for the sender");
        assert_eq!(m.peer_id, tlb::peer_user(a));
        assert!(unique(&w, dep, before).upgrade);
        assert!(w.saved_gifts(dep).expect("list").is_empty());
    }

    #[test]
    fn resale_purchase_for_someone_else_carries_its_price() {
        let (mut w, dep, a, _) = world();
        let stars_before = w.stars(a).expect("stars");
        for price in [Price::Stars(900), Price::Ton(3_500_000_000)] {
            let gift_id = gift(&w);
            let sent = w
                .resale_buy(ResaleBuy {
                    buyer: a,
                    to: dep,
                    gift_id,
                    price,
                    message: Some("deposit".into()),
                    transfer_lock_secs: Some(60),
                })
                .expect("bought");
            let m = wire(&w, dep, sent.msg_id);
            assert!(!m.out);
            assert_eq!(m.peer_id, tlb::peer_user(a));
            let act = unique(&w, dep, sent.msg_id);
            assert!(!act.transferred && !act.upgrade);
            assert_eq!(act.resale_amount, Some(price.tl()));
            assert_eq!(saved(&w, dep, sent.msg_id).from_id, Some(tlb::peer_user(a)));
        }
        assert_eq!(w.stars(a).expect("stars"), stars_before - 900);
    }

    #[test]
    fn offers_carry_the_owners_gift_and_an_accepted_one_is_a_sale() {
        let (mut w, dep, a, b) = world();
        let held = send_unique(&mut w, a, dep);
        let offer = |w: &mut World| {
            w.send_offer(SendOffer {
                buyer: b,
                owner: dep,
                msg_id: held.msg_id,
                price: Price::Stars(700),
                duration_secs: 6 * 3600,
            })
            .expect("offer")
        };
        let first = offer(&mut w);
        let act = match wire(&w, dep, first.offer_msg_id).action {
            tl::enums::MessageAction::StarGiftPurchaseOffer(o) => o,
            other => panic!("{other:?}"),
        };
        let tl::enums::StarGift::Unique(g) = act.gift else {
            panic!("a collectible")
        };
        assert_eq!(Some(g.id), held.unique_id, "the owner's own collectible");
        let stars = w.stars(b).expect("stars");
        let none = w
            .resolve_offer(ResolveOffer {
                owner: dep,
                offer_msg_id: first.offer_msg_id,
                decline: true,
            })
            .expect("declined");
        assert!(none.is_none());
        assert_eq!(
            w.stars(b).expect("stars"),
            stars + 700,
            "held Stars returned"
        );
        assert_eq!(w.saved_gifts(dep).expect("list").len(), 1);
        let second = offer(&mut w);
        let before = w.acc(dep).expect("dep").next_msg_id;
        let bought = w
            .resolve_offer(ResolveOffer {
                owner: dep,
                offer_msg_id: second.offer_msg_id,
                decline: false,
            })
            .expect("accepted")
            .expect("the buyer's gift");
        assert!(
            w.saved_gifts(dep).expect("list").is_empty(),
            "the gift left"
        );
        let sale = wire(&w, dep, before);
        assert!(sale.out);
        let act = unique(&w, dep, before);
        assert!(act.from_offer && act.resale_amount.is_some());
        assert!(unique(&w, b, bought.msg_id).from_offer);
    }

    #[test]
    fn auction_wins_notify_the_winner_and_deliver_to_the_receiver() {
        let (mut w, dep, a, _) = world();
        let gift_id = gift(&w);
        let won = w
            .auction_win(AuctionWin {
                winner: dep,
                to: a,
                gift_id,
                bid_stars: 1_000,
            })
            .expect("won");
        let act = star_gift(&w, dep, won.winner_msg_id);
        assert!(act.auction_acquired);
        assert_eq!(act.to_id, Some(tlb::peer_user(a)));
        assert_eq!(act.gift_num, Some(won.gift_num));
        assert!(w.saved_gifts(dep).expect("list").is_empty());
        let g = won.gift.expect("delivered");
        assert!(!star_gift(&w, a, g.msg_id).auction_acquired);
    }

    #[test]
    fn hosted_collectibles_are_assigned_and_left_out_with_exclude_hosted() {
        let (mut w, dep, _, _) = world();
        let gift_id = gift(&w);
        let sent = w
            .host_unique(HostUnique {
                host: dep,
                gift_id,
                owner_address: "UQwallet".into(),
            })
            .expect("hosted");
        assert!(unique(&w, dep, sent.msg_id).assigned);
        let s = saved(&w, dep, sent.msg_id);
        let tl::enums::StarGift::Unique(u) = s.gift else {
            panic!("a collectible")
        };
        assert_eq!(u.host_id, Some(tlb::peer_user(dep)));
        assert_eq!(u.owner_address.as_deref(), Some("UQwallet"));
        assert!(u.owner_id.is_none());
        let req = |exclude_hosted| tl::functions::payments::GetSavedStarGifts {
            exclude_unsaved: false,
            exclude_saved: false,
            exclude_unlimited: false,
            exclude_unique: false,
            sort_by_value: false,
            exclude_upgradable: false,
            exclude_unupgradable: false,
            peer_color_available: false,
            exclude_hosted,
            peer: tl::enums::InputPeer::PeerSelf,
            collection_id: None,
            offset: String::new(),
            limit: 100,
        };
        let count = |w: &World, ex| {
            let tl::enums::payments::SavedStarGifts::Gifts(p) =
                w.get_saved_star_gifts(dep, &req(ex)).expect("list");
            p.count
        };
        assert_eq!(count(&w, false), 1);
        assert_eq!(count(&w, true), 0);
    }

    #[test]
    fn crafting_reuses_the_first_id_and_burns_the_rest() {
        let (mut w, dep, a, _) = world();
        let x = send_unique(&mut w, a, dep);
        let y = send_unique(&mut w, a, dep);
        let c = w
            .craft(Craft {
                owner: dep,
                msg_ids: vec![x.msg_id, y.msg_id],
            })
            .expect("crafted");
        assert_eq!((c.unique_id, c.num), (x.unique_id, x.num));
        let act = unique(&w, dep, c.msg_id);
        assert!(act.craft);
        let tl::enums::StarGift::Unique(g) = act.gift else {
            panic!("a collectible")
        };
        assert!(g.crafted && !g.burned);
        let list = w.saved_gifts(dep).expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].msg_id, c.msg_id);
        assert_eq!(list[0].from, Some(a), "keeps the first ingredient's sender");
    }

    #[test]
    fn chat_themes_carry_a_collectible_without_moving_it() {
        let (mut w, dep, a, b) = world();
        let own = send_unique(&mut w, b, a);
        let t = w
            .set_chat_theme(ChatTheme {
                from: a,
                to: dep,
                msg_id: own.msg_id,
            })
            .expect("theme");
        match wire(&w, dep, t.to_msg_id).action {
            tl::enums::MessageAction::SetChatTheme(s) => {
                assert!(matches!(s.theme, tl::enums::ChatTheme::UniqueGift(_)))
            }
            other => panic!("{other:?}"),
        }
        assert!(w.saved_gifts(dep).expect("list").is_empty());
        assert_eq!(w.saved_gifts(a).expect("list").len(), 1);
    }

    #[test]
    fn values_and_ton_listings_are_on_the_wire() {
        let (mut w, dep, a, _) = world();
        let held = send_unique(&mut w, a, dep);
        w.set_saved_unique_value(
            dep,
            held.msg_id,
            UniqueValue {
                value_amount: Some(12_345),
                value_currency: Some("USD".into()),
                value_usd_amount: Some(12_345),
                resell: vec![Price::Stars(5_000), Price::Ton(2_000_000_000)],
                resale_ton_only: false,
            },
        )
        .expect("valued");
        let s = saved(&w, dep, held.msg_id);
        let bytes = tl::enums::SavedStarGift::Gift(s).to_bytes();
        let tl::enums::SavedStarGift::Gift(s) =
            tl::enums::SavedStarGift::from_bytes(&bytes).expect("decodes");
        let tl::enums::StarGift::Unique(u) = s.gift else {
            panic!("a collectible")
        };
        assert_eq!(u.value_currency.as_deref(), Some("USD"));
        assert_eq!(u.value_usd_amount, Some(12_345));
        assert_eq!(
            u.resell_amount,
            Some(vec![
                Price::Stars(5_000).tl(),
                Price::Ton(2_000_000_000).tl()
            ])
        );
        let bad = w.set_saved_unique_value(
            dep,
            held.msg_id,
            UniqueValue {
                value_amount: Some(1),
                ..UniqueValue::default()
            },
        );
        assert!(bad.is_err(), "an amount needs its currency");
    }

    #[test]
    fn purchase_rules_refuse_before_payment_and_check_can_send_gift_says_why() {
        let (mut w, dep, a, _) = world();
        let gift_id = gift(&w);
        let ok = |w: &World| {
            matches!(
                w.check_can_send_gift(dep, gift_id).expect("check"),
                tl::enums::payments::CheckCanSendGiftResult::Ok
            )
        };
        w.set_gift_rules(
            gift_id,
            GiftRules {
                per_user_total: Some(1),
                ..GiftRules::default()
            },
        )
        .expect("rules");
        assert!(ok(&w));
        send(&mut w, dep, a);
        assert!(!ok(&w), "per-user limit reached");
        let e = w
            .send_gift(SendGift {
                from: dep,
                to: a,
                gift_id,
                ..SendGift::default()
            })
            .expect_err("limit");
        assert_eq!(e.message, "STARGIFT_USER_USAGE_LIMITED");
        let e = w
            .gift_payment_form(dep, a, gift_id, false, false, None)
            .expect_err("no form");
        assert_eq!(e.message, "STARGIFT_USER_USAGE_LIMITED");
        // The starGift in the buyer's own saved gift shows the buyer's allowance.
        let received = send(&mut w, a, dep);
        let tl::enums::StarGift::Gift(g) = saved(&w, dep, received).gift else {
            panic!("regular")
        };
        assert!(g.limited_per_user);
        assert_eq!((g.per_user_total, g.per_user_remains), (Some(1), Some(0)));
        for (rules, error) in [
            (
                GiftRules {
                    require_premium: true,
                    ..GiftRules::default()
                },
                "PREMIUM_ACCOUNT_REQUIRED",
            ),
            (
                GiftRules {
                    locked_until_date: Some(i32::MAX),
                    ..GiftRules::default()
                },
                "STARGIFT_LOCKED",
            ),
            (
                GiftRules {
                    auction: true,
                    ..GiftRules::default()
                },
                "STARGIFT_AUCTION_ONLY",
            ),
        ] {
            w.set_gift_rules(gift_id, rules).expect("rules");
            assert!(!ok(&w), "{error}");
            let e = w
                .gift_payment_form(dep, a, gift_id, false, false, None)
                .expect_err(error);
            assert_eq!(e.message, error);
        }
        w.set_premium(dep, true).expect("premium");
        w.set_gift_rules(
            gift_id,
            GiftRules {
                require_premium: true,
                ..GiftRules::default()
            },
        )
        .expect("rules");
        assert!(ok(&w), "Premium may buy");
        let auction = GiftRules {
            auction: true,
            ..GiftRules::default()
        };
        w.set_gift_rules(gift_id, auction).expect("rules");
        let g = w.tl_star_gift(&w.gift(gift_id).expect("gift"));
        let bytes = g.to_bytes();
        let tl::enums::StarGift::Gift(g) =
            tl::enums::StarGift::from_bytes(&bytes).expect("decodes")
        else {
            panic!("regular")
        };
        assert!(g.auction && g.auction_slug.is_some());
    }
}
