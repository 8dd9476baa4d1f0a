//! giftd: a Telegram Star Gift deposit daemon.
//!
//! ARCHITECTURE.md has the layers, the walk of one gift and one withdrawal, and the map of the
//! modules; each module's doc comment holds its detail and the invariants it keeps.

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
