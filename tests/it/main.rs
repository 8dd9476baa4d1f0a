mod cli;
mod daemon;
mod lease_contract;
mod login;
mod sqlite_lock;
mod store_contract;
mod support;
mod withdrawals;
