//! [`TelegramError`], the failures of the deposit account's session that callers branch on, and
//! the recognition of an auth key Telegram does not know (shared with `login` and `bot`).

use std::path::PathBuf;
use std::time::Duration;

use grammers_client::InvocationError;

use crate::gift::UserId;

/// Failures of the Telegram side. Callers branch on the variant; [`TelegramError::is_retryable`]
/// says whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error(
        "session file {path} is not authorised (Telegram answered {detail}): run `giftd login`"
    )]
    NotAuthorised { path: PathBuf, detail: String },
    #[error("session file {path}: {detail}")]
    Session { path: PathBuf, detail: String },
    #[error(
        "telegram asked giftd to wait {seconds} s before calling {method} again (FLOOD_WAIT), \
         more than the configured maximum of {max} s"
    )]
    FloodWait {
        method: &'static str,
        seconds: u32,
        max: u64,
    },
    #[error("telegram refused {method}: {name} (code {code})")]
    Rpc {
        method: &'static str,
        code: i32,
        name: String,
        value: Option<u32>,
    },
    #[error("could not reach telegram for {method}: {detail}")]
    Network {
        method: &'static str,
        detail: String,
    },
    #[error(
        "the host clock is ahead of Telegram's: the server rejected {count} requests as \
         'msg_id too high' within seconds; fix the system clock (timedatectl, NTP) and restart"
    )]
    ClockAhead { count: u64 },
    #[error("unexpected answer to {method}: {detail}")]
    Unexpected {
        method: &'static str,
        detail: String,
    },
    #[error("telegram did not answer {method} within {after:?}; whether it took effect is unknown")]
    Timeout {
        method: &'static str,
        after: Duration,
    },
    #[error(
        "giftd cannot address user {user}: the deposit account's session has no access hash for \
         them (it learns one from a gift they send or the saved gift list); ask the player to \
         send a message or a gift to the deposit account first"
    )]
    Unaddressable { user: UserId },
    #[error(
        "telegram sent {method} an object giftd cannot decode ({detail}): it is newer than \
         giftd's TL layer; nothing was credited from it, and polling carries on (update giftd \
         when this repeats)"
    )]
    Unreadable {
        method: &'static str,
        detail: String,
    },
    #[error("stopped")]
    Cancelled,
}

impl TelegramError {
    pub fn is_retryable(&self) -> bool {
        match self {
            TelegramError::Network { .. }
            | TelegramError::FloodWait { .. }
            | TelegramError::Timeout { .. } => true,
            TelegramError::Rpc { code, .. } => *code >= 500,
            _ => false,
        }
    }

    pub(super) fn from_invocation(method: &'static str, err: InvocationError) -> Self {
        match err {
            InvocationError::Rpc(rpc) => TelegramError::Rpc {
                method,
                code: rpc.code,
                name: rpc.name,
                value: rpc.value,
            },
            InvocationError::Deserialize(e) => TelegramError::Unreadable {
                method,
                detail: e.to_string(),
            },
            other => TelegramError::Network {
                method,
                detail: other.to_string(),
            },
        }
    }
}

/// What to do about a session whose auth key Telegram does not know.
pub(crate) const UNKNOWN_KEY: &str = "holds an auth key Telegram does not know (transport error \
                                      -404): delete the file and run `giftd login`";

/// Whether `err` is MTProto's transport error -404: the data centre does not know the auth key
/// (it was never registered there, or Telegram dropped it), so no retry can help. grammers 0.11
/// keeps the status in grammers-mtproto's `transport::Error`, a crate giftd does not depend on,
/// and prints it as `bad status (negative length -404)`.
pub(crate) fn is_unknown_auth_key(err: &InvocationError) -> bool {
    matches!(err, InvocationError::Transport(t) if t.to_string().ends_with("negative length -404)"))
}
