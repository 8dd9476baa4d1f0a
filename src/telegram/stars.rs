//! The deposit account's own Stars history (`payments.getStarsTransactions`): the evidence a
//! purchase for a player happened that the player cannot forge or erase (unlike the chat with
//! them, which they can flood or clear).
//!
//! A catalogue gift bought for a user is an outgoing transaction (negative amount) whose peer is
//! that user and which carries the gift (TDLib's `starTransactionTypeGiftPurchase`,
//! td/telegram/StarManager.cpp).

use grammers_client::tl;

use super::{Telegram, TelegramError};
use crate::gift::UserId;

/// One catalogue gift the deposit account paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftPurchase {
    /// Telegram's transaction id.
    pub id: String,
    /// The user it was bought for.
    pub to: UserId,
    pub gift_id: i64,
    /// Stars spent (positive).
    pub stars: i64,
    /// Unix seconds.
    pub date: i64,
}

/// Pages read at most (100 transactions each): a resolution looks minutes back, not months.
const MAX_PAGES: usize = 20;

impl Telegram {
    /// The catalogue gifts the deposit account bought since `since` (unix seconds), newest
    /// first, read from its outgoing Stars transactions.
    pub async fn gift_purchases_since(
        &self,
        since: i64,
    ) -> Result<Vec<GiftPurchase>, TelegramError> {
        let mut found = Vec::new();
        let mut offset = String::new();
        for _ in 0..MAX_PAGES {
            let request = tl::functions::payments::GetStarsTransactions {
                inbound: false,
                outbound: true,
                ascending: false,
                ton: false,
                subscription_id: None,
                peer: tl::enums::InputPeer::PeerSelf,
                offset: offset.clone(),
                limit: 100,
            };
            let tl::enums::payments::StarsStatus::Status(page) =
                self.call("payments.getStarsTransactions", &request).await?;
            let history = page.history.unwrap_or_default();
            let mut older = false;
            for tx in &history {
                let tl::enums::StarsTransaction::Transaction(tx) = tx;
                if i64::from(tx.date) < since {
                    older = true;
                    continue;
                }
                if let Some(p) = gift_purchase(tx) {
                    found.push(p);
                }
            }
            match page.next_offset {
                Some(next) if !older && !history.is_empty() && next != offset => offset = next,
                _ => return Ok(found),
            }
        }
        Ok(found)
    }
}

/// The purchase a transaction records, if it is a plain catalogue gift bought for a user (not
/// refunded, pending or failed; not an upgrade, resale, transfer, auction bid or offer).
fn gift_purchase(tx: &tl::types::StarsTransaction) -> Option<GiftPurchase> {
    if tx.refund
        || tx.pending
        || tx.failed
        || tx.gift
        || tx.stargift_upgrade
        || tx.stargift_resale
        || tx.stargift_prepaid_upgrade
        || tx.stargift_drop_original_details
        || tx.stargift_auction_bid
        || tx.offer
        || tx.business_transfer
    {
        return None;
    }
    let stars = -tx.amount.amount();
    if stars <= 0 {
        return None;
    }
    let tl::enums::StarsTransactionPeer::Peer(peer) = &tx.peer else {
        return None;
    };
    let tl::enums::Peer::User(user) = &peer.peer else {
        return None;
    };
    let Some(tl::enums::StarGift::Gift(gift)) = &tx.stargift else {
        return None;
    };
    Some(GiftPurchase {
        id: tx.id.clone(),
        to: user.user_id,
        gift_id: gift.id,
        stars,
        date: i64::from(tx.date),
    })
}
