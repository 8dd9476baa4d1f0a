//! Withdrawals: every requested gift leaves the deposit account exactly once, whatever crashes,
//! races or Telegram answers.
//!
//! [`machine`] is the state machine (pure); the store applies its moves atomically; the worker
//! (one task per deposit account inside `giftd run`) claims requests, asks Telegram and records
//! what happened, writing its intent before any call that moves a gift or spends Stars, and
//! resolving every "I don't know" by looking at Telegram.

/// The state machine lives in the domain layer, where the store can use it too.
pub use crate::withdrawal as machine;
pub mod precheck;
mod resend;
pub mod worker;
