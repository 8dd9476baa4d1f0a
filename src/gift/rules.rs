//! What Telegram says about buying a catalogue gift again: its purchase rules as the deposit
//! account sees them, and `payments.checkCanSendGift`'s answer. Plain values: `telegram` reads
//! them, the withdrawal pre-check (`withdraw::precheck`) decides with them.

/// The purchase rules of a catalogue gift as the deposit account sees them (`starGift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GiftRules {
    pub sold_out: bool,
    /// Only obtainable through an auction.
    pub auction: bool,
    pub require_premium: bool,
    /// `limited_per_user` with the account's `per_user_remains`.
    pub per_user_remains: Option<i32>,
    /// Unix seconds before which the gift cannot be bought.
    pub locked_until: Option<i64>,
}

/// `payments.checkCanSendGift`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanSend {
    Yes,
    /// Telegram's reason text.
    No(String),
}
