//! What a player is told without asking ([`Notification`]): a gift credited, a withdrawal
//! queued, sent, waiting (and why), failed or cancelled.

use super::s;
use crate::bot::i18n::{Arg, Key, Lang, tr};
use crate::withdrawal::WaitReason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A gift was credited to them (one line; the totals follow the list once,
    /// [`holding`](super::holding)).
    Deposit {
        title: String,
        stars: i64,
    },
    Queued {
        id: i64,
        title: String,
    },
    Sent {
        title: String,
    },
    Waiting {
        title: String,
        reason: WaitReason,
        until: Option<i64>,
    },
    Failed {
        title: String,
        reason: String,
    },
    Cancelled {
        id: i64,
        title: String,
    },
}

pub fn notification(lang: Lang, n: &Notification) -> String {
    match n {
        Notification::Deposit { title, stars } => tr(
            lang,
            Key::NDeposit,
            &[("title", title.as_str().into()), ("stars", (*stars).into())],
        ),
        Notification::Queued { id, title } => tr(
            lang,
            Key::NQueued,
            &[("id", (*id).into()), ("title", title.as_str().into())],
        ),
        Notification::Sent { title } => tr(lang, Key::NSent, &[("title", title.as_str().into())]),
        Notification::Waiting {
            title,
            reason,
            until,
        } => {
            let reason = s(
                lang,
                match reason {
                    WaitReason::TooEarly => Key::ReasonTooEarly,
                    WaitReason::Stars => Key::ReasonStars,
                    WaitReason::FeeCap | WaitReason::DailyBudget | WaitReason::Operator => {
                        Key::ReasonApproval
                    }
                    WaitReason::Retry => Key::ReasonRetry,
                },
            );
            tr(
                lang,
                Key::NWaiting,
                &[
                    ("title", title.as_str().into()),
                    (
                        "until",
                        until.map_or(Arg::from("none"), |u| crate::utc::utc(u).into()),
                    ),
                    ("reason", reason.into()),
                ],
            )
        }
        Notification::Failed { title, reason } => tr(
            lang,
            Key::NFailed,
            &[
                ("title", title.as_str().into()),
                ("reason", reason.as_str().into()),
            ],
        ),
        Notification::Cancelled { id, title } => tr(
            lang,
            Key::NCancelled,
            &[("id", (*id).into()), ("title", title.as_str().into())],
        ),
    }
}
