//! The checks a resend (a regular gift bought again for its player, the original kept by the
//! house) passes before Stars are spent: the original is old enough that its sender's payment
//! is unlikely to be refunded (`withdraw.resend_hold`), and, just before the payment, it is
//! still claimed for this request and still in the deposit account, unrefunded.
//!
//! Must never: let a resend pay for an original that was refunded, converted or otherwise left
//! the account after the player asked.

use super::worker::{Step, Worker};
use crate::gift::{Item, Status};
use crate::store::{Epoch, StoreError};
use crate::withdrawal::{WaitReason, Withdrawal, WithdrawalMove};

type Moved = Result<(Step, Option<Withdrawal>), StoreError>;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Worker {
    /// `Some` (the request waits) when the original arrived less than `withdraw.resend_hold`
    /// ago.
    pub(super) async fn resend_too_young(
        &self,
        w: &Withdrawal,
        item: &Item,
        epoch: Option<Epoch>,
    ) -> Option<Moved> {
        let hold = i64::try_from(self.config.resend_hold.as_secs()).unwrap_or(i64::MAX);
        let ready_at = item.received_at.saturating_add(hold);
        if ready_at <= now_s() {
            return None;
        }
        Some(
            self.apply(
                WithdrawalMove::defer(
                    w,
                    WaitReason::TooEarly,
                    Some(ready_at.saturating_mul(1000)),
                    &format!(
                        "regular gifts are bought again once they are {} s old (Telegram may \
                         still refund the sender's payment): waiting until then",
                        hold
                    ),
                ),
                epoch,
            )
            .await,
        )
    }

    /// `Some` (the request fails, nothing paid) when, just before the payment, the original is
    /// not `withdrawing` in the live inventory or Telegram no longer lists it unrefunded in the
    /// deposit account; a wait when Telegram cannot be asked.
    pub(super) async fn resend_original_gone(
        &self,
        sending: &Withdrawal,
        epoch: Option<Epoch>,
    ) -> Option<Moved> {
        let claimed = self
            .inventory
            .get(sending.key)
            .is_some_and(|i| i.status == Status::Withdrawing);
        let why = if !claimed {
            "the gift left the deposit account or changed after the request: nothing was bought"
        } else {
            match self.telegram.holds_unrefunded(sending.key.msg_id).await {
                Ok(true) => return None,
                Ok(false) => {
                    "Telegram no longer lists the gift in the deposit account (refunded, \
                     converted or gone): nothing was bought"
                }
                Err(e) => {
                    return Some(
                        self.apply(
                            WithdrawalMove::defer(
                                sending,
                                WaitReason::Retry,
                                Some(now_s().saturating_add(5).saturating_mul(1000)),
                                &format!(
                                    "Telegram could not be asked whether the gift is still \
                                     here: {e}"
                                ),
                            ),
                            epoch,
                        )
                        .await,
                    );
                }
            }
        };
        tracing::warn!(id = sending.id, key = %sending.key, "{why}");
        Some(
            self.apply(WithdrawalMove::failed(sending, why), epoch)
                .await,
        )
    }
}
