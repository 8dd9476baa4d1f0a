//! giftd: a Telegram Star Gift deposit daemon.
//!
//! See ARCHITECTURE.md for the map of modules and the invariants each one keeps.

pub mod app;
pub mod bot;
pub mod cli;
pub mod config;
pub mod demo;
pub mod detector;
pub mod gift;
pub mod health;
pub mod inventory;
pub mod lease;
pub mod mirror;
pub mod secret;
pub mod store;
pub mod telegram;
pub mod term;
pub mod utc;
pub mod withdraw;
pub mod withdrawal;

/// Whether this build has the withdrawal crash points (`--features failpoints`, for tests).
pub fn failpoints_enabled() -> bool {
    cfg!(feature = "failpoints")
}
