//! Linking a Telegram user to a web account: the values the store's link-token calls take and
//! give back.
//!
//! A web account is a Supabase auth user (`auth.uid()`, a uuid): [`WebUserId`]. The web app (RPC
//! `request_link_token`, for its signed-in user) or an operator (`giftd link-token`) mints a
//! single-use, expiring token for it; the player opens `t.me/<bot>?start=<token>` and the bot
//! spends it with [`Store::consume_link_token`](super::Store::consume_link_token), which links
//! the two in one transaction. Only the SHA-256 of a token is stored.
//!
//! A link is one to one and made only with the player's consent: `/start <token>` shows which
//! web account the token links (its [`LinkLabel`]) and only the player's Confirm spends it. A
//! web account linking another Telegram user replaces its own earlier link (its owner minted
//! the token); a player linked to another web account must confirm the replacement as well,
//! and the replaced web account can read that it was replaced ([`ReplacedLink`]).
//!
//! Must never: keep a token in clear, or print one in `Debug` ([`LinkToken`] holds a
//! [`Secret`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A web account: the Supabase auth user id (`auth.uid()`, the JWT's `sub`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebUserId(pub uuid::Uuid);

impl WebUserId {
    pub fn new(id: uuid::Uuid) -> Self {
        WebUserId(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for WebUserId {
    /// Lower-case hyphenated, as PostgreSQL prints a uuid (and the embedded store keeps it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for WebUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebUserId({self})")
    }
}

/// A web user id that is not a uuid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a web account id: expected a uuid such as 123e4567-e89b-12d3-a456-426614174000 (the Supabase auth user id)"
)]
pub struct InvalidWebUserId {
    input: String,
}

impl FromStr for WebUserId {
    type Err = InvalidWebUserId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        // Only the hyphenated form (what Supabase shows and stores); the uuid crate would also
        // take braces, urn: prefixes and 32 bare hex digits.
        if trimmed.len() != 36 {
            return Err(InvalidWebUserId {
                input: s.chars().take(64).collect(),
            });
        }
        uuid::Uuid::parse_str(trimmed)
            .map(WebUserId)
            .map_err(|_| InvalidWebUserId {
                input: s.chars().take(64).collect(),
            })
    }
}

/// A link token as its creator hands it to the player, once. Only its hash is stored.
#[derive(Debug, Clone)]
pub struct LinkToken {
    pub token: Secret,
    /// The web account it links.
    pub web_user: WebUserId,
    /// What the player is shown.
    pub label: LinkLabel,
    /// Unix milliseconds after which the token is refused.
    pub expires_at_ms: i64,
}

/// What the web account is called when the player is asked to link it: a masked e-mail or
/// phone (the web app's `request_link_token` makes it from the JWT), or what an operator typed
/// (`giftd link-token --label`). 1 to 64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkLabel(String);

/// A label that is empty, too long or holds control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a link label is 1 to 64 characters without control characters (e.g. a masked e-mail such as a•••@example.com)"
)]
pub struct InvalidLinkLabel;

impl LinkLabel {
    pub fn new(label: &str) -> Result<Self, InvalidLinkLabel> {
        let label = label.trim();
        let chars = label.chars().count();
        if chars == 0 || chars > 64 || label.chars().any(char::is_control) {
            return Err(InvalidLinkLabel);
        }
        Ok(LinkLabel(label.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What spending (or looking at) a link token came to. The bot answers each differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The token can be spent: ask the player whether to link `web_user` (called `label`).
    /// `replaces`: the web account the player is linked to now, when it is another.
    Ask {
        web_user: WebUserId,
        label: String,
        replaces: Option<Replaced>,
    },
    /// The player is linked to another web account: linking this one needs their confirmation
    /// of the replacement. Nothing was written.
    NeedsReplace {
        web_user: WebUserId,
        label: String,
        replaces: Replaced,
    },
    /// The Telegram user is now linked to `web_user`.
    Linked { web_user: WebUserId, label: String },
    /// The token is right but its time ran out: mint a new one.
    Expired,
    /// The token was already spent (by this user or another).
    Used,
    /// No such token (mistyped, cut short, or removed long after it expired).
    Unknown,
}

/// The web account a new link would replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub web_user: WebUserId,
    pub label: String,
}

/// A web account's link that its Telegram user replaced by a link to another web account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacedLink {
    pub telegram_user: crate::gift::UserId,
    /// The web account linked instead.
    pub replaced_by: WebUserId,
    pub replaced_at_ms: i64,
}

/// The longest a link token may live: a token is a bearer credential for a web account.
pub const MAX_LINK_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_labels_are_short_printable_text() {
        assert_eq!(
            LinkLabel::new(" a•••@example.com ").unwrap().as_str(),
            "a•••@example.com"
        );
        assert!(LinkLabel::new(&"x".repeat(64)).is_ok());
        for bad in ["", "   ", "a\nb", "\u{7}", &"x".repeat(65)] {
            assert_eq!(LinkLabel::new(bad), Err(InvalidLinkLabel), "{bad:?}");
        }
    }

    #[test]
    fn web_user_ids_parse_only_as_hyphenated_uuids() {
        let id: WebUserId = "123E4567-E89B-12D3-A456-426614174000".parse().unwrap();
        assert_eq!(id.to_string(), "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(
            format!("{id:?}"),
            "WebUserId(123e4567-e89b-12d3-a456-426614174000)"
        );
        for bad in [
            "",
            "42",
            "123e4567e89b12d3a456426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "123e4567-e89b-12d3-a456-42661417400g",
        ] {
            let err = bad.parse::<WebUserId>().unwrap_err();
            assert!(err.to_string().contains("expected a uuid"), "{bad}: {err}");
        }
    }
}
