//! The integration tests, one binary: each module starts the real components (PostgreSQL and
//! the PostgREST-compatible server from `scripts/test-env.sh`, tgsim speaking real MTProto to the
//! real grammers client, giftd's `Daemon` or its binary) on free loopback ports, through the one
//! scaffolding in `support`. No `#[ignore]`: a test that needs PostgreSQL fails with a clear
//! message when it is missing. A test about one path (the update stream, the poll, the
//! reconciliation) makes the others unable to see the gift with a tgsim fault (withheld updates,
//! a failing `getSavedStarGifts`) instead of relying on which is faster: the suite must pass with
//! every core busy (`scripts/flake-hunt.sh`). Performance figures come from `benches/`, never
//! from timed tests.

// First: its `contract!` and `on_both_stores!` macros are used by the modules below.
#[macro_use]
mod support;

mod accounts;
mod bot;
mod bot_restart;
mod catalogue;
mod cli;
mod daemon;
mod dashboard;
mod desk;
mod failover;
mod fates;
mod gift_cases;
mod layers;
mod lease_contract;
mod lease_keeper;
mod lease_worker;
mod login;
mod realtime;
mod restart;
mod sqlite_lock;
mod store_bot;
mod store_contract;
mod wake;
mod withdrawals;
