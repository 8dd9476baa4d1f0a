//! Transfers of collectibles: the checks on a transfer (a collectible, its transfer lock, the
//! recipient's gift privacy), the Stars a transfer costs and the payment form of a paid one.

use grammers_tl_types as tl;

use super::{FormKind, RpcErr, Saved, SentGift, World};

impl World {
    /// Sets the Stars `owner` must pay to transfer collectible `msg_id` (None: free).
    pub fn set_transfer_stars(
        &mut self,
        owner: i64,
        msg_id: i32,
        stars: Option<i64>,
    ) -> Result<(), RpcErr> {
        let s = self
            .acc_mut(owner)?
            .saved
            .get_mut(&msg_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?;
        if s.unique.is_none() {
            return Err(RpcErr::bad("STARGIFT_NOT_UNIQUE"));
        }
        s.transfer_stars = stars;
        Ok(())
    }

    /// Transfers a collectible `owner` holds to `to` (free transfer, checks applied). `paid`:
    /// the transfer fee was paid through a form (the recipient was checked then).
    pub fn transfer_gift(
        &mut self,
        owner: i64,
        msg_id: i32,
        to: i64,
        caller_conn: Option<u64>,
        paid: bool,
    ) -> Result<(SentGift, Option<tl::enums::Update>), RpcErr> {
        let s = self.check_transfer(owner, msg_id, to)?;
        if !paid {
            self.check_accepts(to, true, false)?;
            if s.transfer_stars.is_some() {
                return Err(RpcErr::bad("PAYMENT_REQUIRED"));
            }
        }
        // check_transfer guarantees a collectible.
        let uid = s.unique.ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
        let u = self
            .uniques
            .get(&uid)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?;
        self.acc_mut(owner)?.saved.remove(&msg_id);
        self.give_unique(u, Some(owner), to, None, None, None, caller_conn)
    }

    pub(super) fn check_transfer(&self, owner: i64, msg_id: i32, to: i64) -> Result<Saved, RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        self.acc(to)?;
        if s.unique.is_none() {
            return Err(RpcErr::bad("STARGIFT_NOT_UNIQUE"));
        }
        if let Some(at) = s.can_transfer_at {
            let left = at as i64 - self.now();
            if left > 0 {
                return Err(RpcErr::bad(format!("STARGIFT_TRANSFER_TOO_EARLY_{left}")));
            }
        }
        Ok(s)
    }

    /// `payments.getPaymentForm(inputInvoiceStarGiftTransfer)`: (form_id, stars).
    pub fn payment_form(&mut self, owner: i64, msg_id: i32, to: i64) -> Result<(i64, i64), RpcErr> {
        let s = self.check_transfer(owner, msg_id, to)?;
        self.check_accepts(to, true, false)?;
        let Some(stars) = s.transfer_stars else {
            return Err(RpcErr::bad("NO_PAYMENT_NEEDED"));
        };
        Ok((
            self.new_form(owner, FormKind::Transfer { msg_id, to }, stars),
            stars,
        ))
    }
}
