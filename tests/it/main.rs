mod cli;
mod daemon;
mod store_contract;
mod support;
