//! The [`Sim`] methods that produce the gift cases Telegram added in 2025-2026 (prepaid
//! upgrades, resale purchases for someone else, purchase offers, auction wins, hosted
//! collectibles, crafting, chat themes, collectible values, purchase rules of regular gifts).
//! Each is a thin, locking wrapper over the world's method of the same name; what each does and
//! why is documented there and in tgsim/FIDELITY.md ("Gift cases since 2025").

use crate::world::{
    AuctionWin, AuctionWon, ChatTheme, Craft, GiftRules, HostUnique, OfferSent, PrepaidUpgrade,
    PrepayUpgrade, ResaleBuy, ResolveOffer, SendOffer, ThemeSet, UniqueValue,
};
use crate::{SentGift, Sim, SimError};

impl Sim {
    /// `payer` prepays the upgrade of `owner`'s regular gift: a notice `messageActionStarGift`
    /// (`prepaid_upgrade`, `upgrade_separate`, `gift_msg_id` = the original) in both dialogs;
    /// the original's upgrade is then free.
    pub fn prepay_upgrade(&self, p: PrepayUpgrade) -> Result<PrepaidUpgrade, SimError> {
        Ok(self.shared.world().prepay_upgrade(p)?)
    }

    /// `buyer` buys a collectible on the resale market for `to` (`resale_amount` in Stars or
    /// TON).
    pub fn resale_buy(&self, r: ResaleBuy) -> Result<SentGift, SimError> {
        Ok(self.shared.world().resale_buy(r)?)
    }

    /// `buyer` offers to buy `owner`'s collectible (`messageActionStarGiftPurchaseOffer`).
    pub fn send_offer(&self, o: SendOffer) -> Result<OfferSent, SimError> {
        Ok(self.shared.world().send_offer(o)?)
    }

    /// The owner accepts or declines an offer; accepted, the collectible leaves as a sale
    /// (`from_offer`). Returns the buyer's new saved gift when accepted.
    pub fn resolve_offer(&self, r: ResolveOffer) -> Result<Option<SentGift>, SimError> {
        Ok(self.shared.world().resolve_offer(r)?)
    }

    /// `winner` wins an auction round, bidding for `to` (`auction_acquired`, `to_id`).
    pub fn auction_win(&self, a: AuctionWin) -> Result<AuctionWon, SimError> {
        Ok(self.shared.world().auction_win(a)?)
    }

    /// A collectible owned by a TON wallet is assigned to (hosted by) an account (`assigned`,
    /// `host_id`, `owner_address`).
    pub fn host_unique(&self, h: HostUnique) -> Result<SentGift, SimError> {
        Ok(self.shared.world().host_unique(h)?)
    }

    /// `owner` crafts collectibles it holds into one (first ingredient's id and number reused,
    /// ingredients burned).
    pub fn craft(&self, c: Craft) -> Result<SentGift, SimError> {
        Ok(self.shared.world().craft(c)?)
    }

    /// `from` sets the theme of its chat with `to` to a collectible it holds.
    pub fn set_chat_theme(&self, t: ChatTheme) -> Result<ThemeSet, SimError> {
        Ok(self.shared.world().set_chat_theme(t)?)
    }

    /// Sets the value and resale listing of the collectible `owner` holds as `msg_id`; returns
    /// the collectible id.
    pub fn set_unique_value(
        &self,
        owner: i64,
        msg_id: i32,
        v: UniqueValue,
    ) -> Result<i64, SimError> {
        Ok(self
            .shared
            .world()
            .set_saved_unique_value(owner, msg_id, v)?)
    }

    /// Sets the purchase rules of a catalogue gift (per-user limit, Premium only, lock,
    /// auction only).
    pub fn set_gift_rules(&self, gift_id: i64, rules: GiftRules) -> Result<(), SimError> {
        Ok(self.shared.world().set_gift_rules(gift_id, rules)?)
    }

    /// Makes an account a Premium user, or not.
    pub fn set_premium(&self, account: i64, premium: bool) -> Result<(), SimError> {
        Ok(self.shared.world().set_premium(account, premium)?)
    }

    /// The simulator's clock (unix seconds, skew included), for dates such as
    /// `locked_until_date`.
    pub fn now_unix(&self) -> i64 {
        self.shared.world().now()
    }
}
