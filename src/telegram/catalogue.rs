//! What Telegram says about buying a catalogue gift again: its purchase rules as the deposit
//! account sees them and `payments.checkCanSendGift`. Read-only calls, asked before a withdrawal
//! by purchase spends any Star.

use grammers_client::tl;

use super::{Telegram, TelegramError, convert};
use crate::gift::MsgId;
use crate::gift::rules::{CanSend, GiftRules};

impl Telegram {
    /// The purchase rules of the catalogue gift that the item `msg_id` is, read from its saved
    /// entry (`payments.getSavedStarGift`: the `starGift` carries `sold_out`, `auction`,
    /// `require_premium`, `per_user_remains` and `locked_until_date` for this account).
    /// `None` when the entry is gone or is not a regular gift.
    pub async fn gift_rules(&self, msg_id: MsgId) -> Result<Option<GiftRules>, TelegramError> {
        let request = tl::functions::payments::GetSavedStarGift {
            stargift: vec![tl::enums::InputSavedStarGift::User(
                tl::types::InputSavedStarGiftUser { msg_id },
            )],
        };
        let tl::enums::payments::SavedStarGifts::Gifts(page) =
            self.call("payments.getSavedStarGift", &request).await?;
        Ok(page.gifts.iter().find_map(|g| {
            let tl::enums::SavedStarGift::Gift(s) = g;
            (s.msg_id == Some(msg_id))
                .then(|| convert::gift_rules(&s.gift))
                .flatten()
        }))
    }

    /// `payments.checkCanSendGift`: whether the deposit account may buy `gift_id` now.
    pub async fn can_send_gift(&self, gift_id: i64) -> Result<CanSend, TelegramError> {
        let request = tl::functions::payments::CheckCanSendGift { gift_id };
        Ok(
            match self.call("payments.checkCanSendGift", &request).await? {
                tl::enums::payments::CheckCanSendGiftResult::Ok => CanSend::Yes,
                tl::enums::payments::CheckCanSendGiftResult::Fail(f) => {
                    let tl::enums::TextWithEntities::Entities(t) = f.reason;
                    CanSend::No(t.text)
                }
            },
        )
    }

    /// Whether the deposit account has Telegram Premium (read at connect).
    pub fn premium(&self) -> bool {
        self.inner.premium
    }
}
