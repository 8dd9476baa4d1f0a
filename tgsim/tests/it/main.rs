//! tgsim tested with the real grammers 0.11 client.

mod support;

mod auth;
mod basics;
mod bots;
mod concurrency;
mod faults;
mod gifts;
mod hostile;
mod payments;
mod raw;
mod state;
mod transfers;
