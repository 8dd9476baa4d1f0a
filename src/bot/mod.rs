//! The companion bot: players see, withdraw and link their gifts in Telegram; operators run the
//! deposit desk from it.
//!
//! Pure parts: [`intent`] (text and button data -> what was asked), [`view`] (state -> text and
//! buttons), [`limit`] (token buckets), [`i18n`] (the catalogues).

pub mod i18n;
pub mod intent;
pub mod limit;
pub mod view;
