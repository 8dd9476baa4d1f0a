//! What the store keeps about a player for the bot: the language it speaks to them. Telegram
//! reports each player's app language (`lang_code`) with every message; a player may choose
//! another with `/language`, and a choice stays until they choose again (Telegram's code does
//! not overwrite it). The bot reads it for notifications to players it has not heard from since
//! it started.
//!
//! Must never: store a code that is not a short language tag (it is shown nowhere, but it is
//! input from Telegram and from button data).

use super::StoreError;

/// The language the bot speaks to a player, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerLanguage {
    /// An IETF language tag: Telegram's `lang_code`, or the code of the language chosen.
    pub code: String,
    /// Chosen by the player with `/language`: Telegram's code no longer replaces it.
    pub chosen: bool,
}

/// The longest language tag stored (IETF tags in practice are far shorter).
pub const MAX_LANGUAGE_CODE: usize = 35;

/// Refuses a code that is not a language tag: 1 to 35 ASCII letters, digits, `-` or `_`.
pub(crate) fn check_language_code(code: &str) -> Result<(), StoreError> {
    if code.is_empty()
        || code.len() > MAX_LANGUAGE_CODE
        || !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(StoreError::InvalidLanguage(code.chars().take(40).collect()));
    }
    Ok(())
}
