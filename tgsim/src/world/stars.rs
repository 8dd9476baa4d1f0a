//! Each account's Stars history, as `payments.getStarsTransactions` lists it: one
//! `starsTransaction` per payment, newest first.
//!
//! Modelled on what Telegram returns and TDLib reads (td/telegram/StarManager.cpp,
//! `StarManager::get_star_transaction_object`): a catalogue gift bought for a user is an
//! outgoing transaction (negative `amount`) whose `peer` is `starsTransactionPeer` of the
//! receiving user and whose `stargift` is the gift, without the `gift`, `refund` or upgrade
//! flags; TDLib shows it as `starTransactionTypeGiftPurchase`. Only the account that paid sees
//! it; the receiver's history is not touched.

use grammers_tl_types as tl;

use super::{RpcErr, World};
use crate::tlb;

/// One transaction.
#[derive(Debug, Clone)]
struct StarsTx {
    /// Telegram's transaction id (a string).
    id: String,
    /// Stars, negative when spent.
    amount: i64,
    date: i32,
    /// The user on the other side.
    peer: i64,
    /// The catalogue gift bought, when it is a gift purchase.
    gift_id: Option<i64>,
}

/// Every account's transactions, oldest first.
#[derive(Debug, Default)]
pub(super) struct StarsHistory {
    by_account: std::collections::HashMap<i64, Vec<StarsTx>>,
}

/// Telegram's page size when the client asks for more than it serves.
const MAX_LIMIT: i32 = 100;

impl World {
    /// Records `payer` buying catalogue gift `gift_id` for `to` at `stars`.
    pub(super) fn record_gift_purchase(&mut self, payer: i64, to: i64, gift_id: i64, stars: i64) {
        let date = self.now32();
        let id = format!("{:x}", super::rnd_i64());
        self.stars_history
            .by_account
            .entry(payer)
            .or_default()
            .push(StarsTx {
                id,
                amount: -stars,
                date,
                peer: to,
                gift_id: Some(gift_id),
            });
    }

    /// `payments.getStarsTransactions` for the caller's own balance (`peer` = self): newest
    /// first unless `ascending`, only spending with `outbound`, only income with `inbound`;
    /// `offset` is the opaque `next_offset` of the previous page (empty for the first).
    pub fn stars_transactions(
        &self,
        me: i64,
        r: &tl::functions::payments::GetStarsTransactions,
    ) -> Result<tl::enums::payments::StarsStatus, RpcErr> {
        if r.ton || r.subscription_id.is_some() {
            // tgsim accounts hold no TON and have no subscriptions.
            return Err(RpcErr::bad("INPUT_REQUEST_INVALID"));
        }
        if r.limit <= 0 {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        let skip: usize = if r.offset.is_empty() {
            0
        } else {
            r.offset
                .parse()
                .map_err(|_| RpcErr::bad("OFFSET_INVALID"))?
        };
        let mut txs: Vec<&StarsTx> = self
            .stars_history
            .by_account
            .get(&me)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        if !r.ascending {
            txs.reverse();
        }
        txs.retain(|t| (!r.outbound || t.amount < 0) && (!r.inbound || t.amount > 0));
        let limit = r.limit.min(MAX_LIMIT) as usize;
        let page: Vec<&StarsTx> = txs.iter().skip(skip).take(limit).copied().collect();
        let next_offset = (skip + page.len() < txs.len()).then(|| (skip + page.len()).to_string());
        let mut users = vec![me];
        users.extend(page.iter().map(|t| t.peer));
        users.sort_unstable();
        users.dedup();
        let history = page
            .iter()
            .map(|t| -> Result<tl::enums::StarsTransaction, RpcErr> {
                let stargift = match t.gift_id {
                    Some(g) => Some(self.tl_star_gift(&self.gift(g)?)),
                    None => None,
                };
                Ok(tl::enums::StarsTransaction::Transaction(
                    tl::types::StarsTransaction {
                        refund: false,
                        pending: false,
                        failed: false,
                        gift: false,
                        reaction: false,
                        stargift_upgrade: false,
                        business_transfer: false,
                        stargift_resale: false,
                        posts_search: false,
                        stargift_prepaid_upgrade: false,
                        stargift_drop_original_details: false,
                        phonegroup_message: false,
                        stargift_auction_bid: false,
                        offer: false,
                        id: t.id.clone(),
                        amount: tl::enums::StarsAmount::Amount(tl::types::StarsAmount {
                            amount: t.amount,
                            nanos: 0,
                        }),
                        date: t.date,
                        peer: tl::enums::StarsTransactionPeer::Peer(
                            tl::types::StarsTransactionPeer {
                                peer: tlb::peer_user(t.peer),
                            },
                        ),
                        title: None,
                        description: None,
                        photo: None,
                        transaction_date: None,
                        transaction_url: None,
                        bot_payload: None,
                        msg_id: None,
                        extended_media: None,
                        subscription_period: None,
                        giveaway_post_id: None,
                        stargift,
                        floodskip_number: None,
                        starref_commission_permille: None,
                        starref_peer: None,
                        starref_amount: None,
                        paid_messages: None,
                        premium_gift_months: None,
                        ads_proceeds_from_date: None,
                        ads_proceeds_to_date: None,
                    },
                ))
            })
            .collect::<Result<Vec<_>, RpcErr>>()?;
        Ok(tl::enums::payments::StarsStatus::Status(
            tl::types::payments::StarsStatus {
                balance: tl::enums::StarsAmount::Amount(tl::types::StarsAmount {
                    amount: self.stars(me)?,
                    nanos: 0,
                }),
                subscriptions: None,
                subscriptions_next_offset: None,
                subscriptions_missing_balance: None,
                history: Some(history),
                next_offset,
                chats: Vec::new(),
                users: users
                    .iter()
                    .filter_map(|id| self.tl_user(*id, me))
                    .collect(),
            },
        ))
    }
}
