mod bot;
mod cli;
mod daemon;
mod login;
mod store_bot;
mod store_contract;
mod support;
mod withdrawals;
