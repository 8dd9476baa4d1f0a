//! The calls that move gifts out of the deposit account or spend its Stars, and the reads that
//! tell afterwards what happened.
//!
//! Money-moving calls ([`Telegram::transfer_free`], [`Telegram::pay`]) go out exactly once: no
//! retry on a network error, none on Telegram's internal errors, a FLOOD_WAIT returned rather
//! than slept through, and a deadline. Whether their outcome is known is
//! [`TelegramError::outcome_known`]: a refusal from Telegram (a 4xx error, FLOOD_WAIT) means
//! nothing happened; a timeout, a dropped connection or an internal error means nobody knows,
//! and the caller must look ([`Telegram::still_holds`], [`Telegram::sent_to`]) before trying
//! again. The player is addressed with the access hash the session learnt from the gifts they
//! sent or the saved list.

use std::time::Duration;

use grammers_client::session::Session as _;
use grammers_client::session::types::{PeerId, PeerInfo};
use grammers_client::{InvocationError, tl};

use super::{Telegram, TelegramError};
use crate::gift::{MsgId, UserId};

/// What Telegram asks for a transfer or a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// `NO_PAYMENT_NEEDED`: `payments.transferStarGift` moves it for nothing.
    Free,
    /// A payment form: its id (the idempotency key of the payment, valid about 10 minutes) and
    /// its price in Stars.
    Paid { form_id: i64, stars: i64 },
}

/// What a payment form pays for: moving a collectible, or buying a catalogue gift for a user.
/// `msg_id` is the deposited item: its listing names its sender, whose access hash giftd reads
/// there when the session has not cached it yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purchase {
    Transfer {
        msg_id: MsgId,
        to: UserId,
    },
    Gift {
        gift_id: i64,
        to: UserId,
        msg_id: MsgId,
    },
}

impl Purchase {
    fn to(self) -> (UserId, MsgId) {
        match self {
            Purchase::Transfer { msg_id, to } | Purchase::Gift { to, msg_id, .. } => (to, msg_id),
        }
    }
}

/// The Stars balance of the deposit account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StarsBalance {
    pub stars: i64,
}

impl TelegramError {
    /// Whether Telegram's answer says for sure that nothing happened (a refusal) or what did;
    /// false when the call may or may not have taken effect (timeout, dropped connection,
    /// Telegram's internal error).
    pub fn outcome_known(&self) -> bool {
        match self {
            TelegramError::Rpc { code, .. } => *code < 500,
            TelegramError::FloodWait { .. }
            | TelegramError::NotAuthorised { .. }
            | TelegramError::Session { .. }
            | TelegramError::Unaddressable { .. } => true,
            _ => false,
        }
    }

    /// The RPC error name (`BALANCE_TOO_LOW`), or the prefix of one that carries a number
    /// (`STARGIFT_TRANSFER_TOO_EARLY` for `STARGIFT_TRANSFER_TOO_EARLY_<seconds>`, with the
    /// number in [`TelegramError::rpc_value`]).
    pub fn rpc_name(&self) -> Option<&str> {
        match self {
            TelegramError::Rpc { name, .. } => Some(name),
            TelegramError::FloodWait { .. } => Some("FLOOD_WAIT"),
            _ => None,
        }
    }

    pub fn rpc_value(&self) -> Option<u32> {
        match self {
            TelegramError::Rpc { value, .. } => *value,
            TelegramError::FloodWait { seconds, .. } => Some(*seconds),
            _ => None,
        }
    }
}

impl Telegram {
    /// Calls a method once: no retry of any kind, FLOOD_WAIT returned as an error, and at most
    /// `deadline` (then [`TelegramError::Timeout`]: the outcome is unknown).
    pub async fn call_once<R: tl::RemoteCall>(
        &self,
        method: &'static str,
        request: &R,
        deadline: Duration,
    ) -> Result<R::Return, TelegramError> {
        if self.inner.cancel.is_cancelled() {
            return Err(TelegramError::Cancelled);
        }
        if let Some(left) = self.flood_gate_left(method) {
            return Err(TelegramError::FloodWait {
                method,
                seconds: left,
                max: self.inner.flood_wait_max.as_secs(),
            });
        }
        self.inner
            .stats
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(deadline, self.inner.client.invoke(request)).await {
            Err(_) => Err(TelegramError::Timeout {
                method,
                after: deadline,
            }),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(InvocationError::Rpc(rpc))) if rpc.code == 401 => {
                Err(TelegramError::NotAuthorised {
                    path: self.inner.session_file.clone(),
                    detail: rpc.name,
                })
            }
            Ok(Err(e)) => Err(TelegramError::from_invocation(method, e)),
        }
    }

    /// The player as an input peer, with the access hash this session learnt for them: from
    /// the session's cache, else from the listing of the item `via` (which names its sender).
    async fn input_user(
        &self,
        user: UserId,
        via: MsgId,
    ) -> Result<tl::enums::InputPeer, TelegramError> {
        if let Some(peer) = self.cached_input_user(user).await? {
            return Ok(peer);
        }
        let request = tl::functions::payments::GetSavedStarGift {
            stargift: vec![saved(via)],
        };
        let tl::enums::payments::SavedStarGifts::Gifts(page) =
            self.call("payments.getSavedStarGift", &request).await?;
        self.remember_users(&page.users).await;
        self.cached_input_user(user)
            .await?
            .ok_or(TelegramError::Unaddressable { user })
    }

    async fn cached_input_user(
        &self,
        user: UserId,
    ) -> Result<Option<tl::enums::InputPeer>, TelegramError> {
        let Some(id) = PeerId::user(user) else {
            return Ok(None);
        };
        let info = self
            .inner
            .session
            .peer(id)
            .await
            .map_err(|e| TelegramError::Session {
                path: self.inner.session_file.clone(),
                detail: format!("cannot read cached users: {e}"),
            })?;
        Ok(match info {
            Some(PeerInfo::User {
                auth: Some(auth), ..
            }) => Some(tl::enums::InputPeer::User(tl::types::InputPeerUser {
                user_id: user,
                access_hash: auth.hash(),
            })),
            _ => None,
        })
    }

    async fn invoice(&self, purchase: Purchase) -> Result<tl::enums::InputInvoice, TelegramError> {
        let (to, via) = purchase.to();
        let to_id = self.input_user(to, via).await?;
        Ok(match purchase {
            Purchase::Transfer { msg_id, .. } => {
                tl::enums::InputInvoice::StarGiftTransfer(tl::types::InputInvoiceStarGiftTransfer {
                    stargift: saved(msg_id),
                    to_id,
                })
            }
            Purchase::Gift { gift_id, .. } => {
                tl::enums::InputInvoice::StarGift(tl::types::InputInvoiceStarGift {
                    hide_name: false,
                    include_upgrade: false,
                    peer: to_id,
                    gift_id,
                    message: None,
                })
            }
        })
    }

    /// Asks what moving or buying costs (`payments.getPaymentForm`). Read-only: nothing moves,
    /// so it may be retried. Telegram's refusals (too early, sold out, gifts disallowed) come
    /// back as errors here, before anything is committed.
    pub async fn quote(
        &self,
        purchase: Purchase,
        deadline: Duration,
    ) -> Result<Quote, TelegramError> {
        let request = tl::functions::payments::GetPaymentForm {
            invoice: self.invoice(purchase).await?,
            theme_params: None,
        };
        match self
            .call_once("payments.getPaymentForm", &request, deadline)
            .await
        {
            Ok(tl::enums::payments::PaymentForm::StarGift(form)) => {
                let tl::enums::Invoice::Invoice(invoice) = &form.invoice;
                let stars = invoice
                    .prices
                    .iter()
                    .map(|p| {
                        let tl::enums::LabeledPrice::Price(p) = p;
                        p.amount
                    })
                    .sum();
                Ok(Quote::Paid {
                    form_id: form.form_id,
                    stars,
                })
            }
            Ok(other) => Err(TelegramError::Unexpected {
                method: "payments.getPaymentForm",
                detail: format!("a form that is not for a star gift: {other:?}"),
            }),
            Err(e) if e.rpc_name() == Some("NO_PAYMENT_NEEDED") => Ok(Quote::Free),
            Err(e) => Err(e),
        }
    }

    /// Moves a collectible to `to` for free (`payments.transferStarGift`), once.
    pub async fn transfer_free(
        &self,
        msg_id: MsgId,
        to: UserId,
        deadline: Duration,
    ) -> Result<(), TelegramError> {
        let request = tl::functions::payments::TransferStarGift {
            stargift: saved(msg_id),
            to_id: self.input_user(to, msg_id).await?,
        };
        self.call_once("payments.transferStarGift", &request, deadline)
            .await
            .map(|_| ())
    }

    /// Pays a form (`payments.sendStarsForm`), once. Paying the same form again answers
    /// `FORM_SUBMIT_DUPLICATE`: the form id is what makes a payment happen at most once.
    pub async fn pay(
        &self,
        form_id: i64,
        purchase: Purchase,
        deadline: Duration,
    ) -> Result<(), TelegramError> {
        let request = tl::functions::payments::SendStarsForm {
            form_id,
            invoice: self.invoice(purchase).await?,
        };
        self.call_once("payments.sendStarsForm", &request, deadline)
            .await
            .map(|_| ())
    }

    /// Whether the deposit account still holds the gift its message `msg_id` delivered.
    pub async fn still_holds(&self, msg_id: MsgId) -> Result<bool, TelegramError> {
        let request = tl::functions::payments::GetSavedStarGift {
            stargift: vec![saved(msg_id)],
        };
        match self.call("payments.getSavedStarGift", &request).await {
            Ok(tl::enums::payments::SavedStarGifts::Gifts(page)) => Ok(page.gifts.iter().any(
                |g| matches!(g, tl::enums::SavedStarGift::Gift(s) if s.msg_id == Some(msg_id)),
            )),
            Err(e) if e.rpc_name() == Some("STARGIFT_NOT_FOUND") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the deposit account still holds the gift its message `msg_id` delivered and
    /// Telegram has not refunded it (a refunded gift stays listed, marked `refunded`).
    pub async fn holds_unrefunded(&self, msg_id: MsgId) -> Result<bool, TelegramError> {
        let request = tl::functions::payments::GetSavedStarGift {
            stargift: vec![saved(msg_id)],
        };
        match self.call("payments.getSavedStarGift", &request).await {
            Ok(tl::enums::payments::SavedStarGifts::Gifts(page)) => {
                Ok(page.gifts.iter().any(|g| {
                    matches!(g, tl::enums::SavedStarGift::Gift(s)
                        if s.msg_id == Some(msg_id) && !s.refunded)
                }))
            }
            Err(e) if e.rpc_name() == Some("STARGIFT_NOT_FOUND") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the newest messages of the chat with `to` hold the deposit account's own
    /// service message of a gift going to them since `since` (unix seconds): the collectible
    /// `collectible_id` transferred, or a catalogue gift `gift_id` bought for them.
    pub async fn sent_to(
        &self,
        to: UserId,
        via: MsgId,
        since: i64,
        collectible_id: Option<i64>,
        gift_id: i64,
    ) -> Result<bool, TelegramError> {
        let request = tl::functions::messages::GetHistory {
            peer: self.input_user(to, via).await?,
            offset_id: 0,
            offset_date: 0,
            add_offset: 0,
            limit: 50,
            max_id: 0,
            min_id: 0,
            hash: 0,
        };
        let messages = match self.call("messages.getHistory", &request).await? {
            tl::enums::messages::Messages::Messages(m) => m.messages,
            tl::enums::messages::Messages::Slice(m) => m.messages,
            tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
            tl::enums::messages::Messages::NotModified(_) => Vec::new(),
        };
        Ok(messages.iter().any(|m| {
            let tl::enums::Message::Service(m) = m else {
                return false;
            };
            if !m.out || i64::from(m.date) < since {
                return false;
            }
            match (&m.action, collectible_id) {
                (tl::enums::MessageAction::StarGiftUnique(a), Some(id)) => {
                    matches!(&a.gift, tl::enums::StarGift::Unique(u) if u.id == id)
                }
                (tl::enums::MessageAction::StarGift(a), None) => {
                    matches!(&a.gift, tl::enums::StarGift::Gift(g) if g.id == gift_id)
                }
                _ => false,
            }
        }))
    }

    /// The deposit account's Stars.
    pub async fn stars_balance(&self) -> Result<StarsBalance, TelegramError> {
        let request = tl::functions::payments::GetStarsStatus {
            ton: false,
            peer: tl::enums::InputPeer::PeerSelf,
        };
        let tl::enums::payments::StarsStatus::Status(status) =
            self.call("payments.getStarsStatus", &request).await?;
        Ok(StarsBalance {
            stars: status.balance.amount(),
        })
    }

    /// Remembers the access hashes of users an answer named (senders in the saved list), so a
    /// gift can be sent back to them. One commit for the new ones; known ones cost nothing.
    pub(crate) async fn remember_users(&self, users: &[tl::enums::User]) {
        let fresh: Vec<PeerInfo> = {
            let mut known = self
                .inner
                .known_users
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            users
                .iter()
                .filter(|u| matches!(u, tl::enums::User::User(u) if u.access_hash.is_some()))
                .filter(|u| known.insert(u.id()))
                .cloned()
                .map(PeerInfo::from)
                .collect()
        };
        if fresh.is_empty() {
            return;
        }
        let count = fresh.len();
        if let Err(e) = self.inner.session.cache_peers(fresh).await {
            tracing::warn!(error = %e, count, "could not cache users in the session file");
        }
    }
}

fn saved(msg_id: MsgId) -> tl::enums::InputSavedStarGift {
    tl::enums::InputSavedStarGift::User(tl::types::InputSavedStarGiftUser { msg_id })
}
