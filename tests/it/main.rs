// First: its `contract!` macro is used by the modules below.
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
