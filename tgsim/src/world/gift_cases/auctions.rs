//! Auction wins: the winner of a round of an auction gift's auction is notified and the gift is
//! delivered to the receiver it bid for.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use crate::tlb;
use crate::world::{RpcErr, SERVICE_USER_ID, Saved, SentGift, World};

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

impl World {
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
        let saved = Saved {
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
                Saved {
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
}

#[cfg(test)]
mod tests {

    use crate::tlb;

    use crate::world::gift_cases::AuctionWin;
    use crate::world::gift_cases::testkit::*;

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
}
