//! Withdrawals: every requested gift leaves the deposit account exactly once, whatever crashes,
//! races or Telegram answers.
//!
//! [`machine`] is the state machine (pure); the store applies its moves atomically; the worker
//! (one task per deposit account inside `giftd run`) claims requests, asks Telegram and records
//! what happened, writing its intent before any call that moves a gift or spends Stars, and
//! resolving every "I don't know" by looking at Telegram.
//!
//! A request is `requested`, `approval` (above the operator's caps or daily budget, or retries
//! spent), `waiting` (too early, no Stars, FLOOD_WAIT), `claimed`, `sending`, `unknown`, then
//! `sent`, `failed` or `cancelled`. Each move is a `WithdrawalMove` the store applies in one
//! transaction as a compare-and-set on the request's state, its worker and its attempt, moving the
//! item with it and writing a ledger entry whose idempotency key names the request and the attempt.
//!
//! One pass of [`worker`]: rescue requests whose worker's lease ran out, resolve unknown outcomes
//! whose settle delay passed, claim a request, run the pure [`precheck`] (a locked collectible or a
//! regular gift locked until a date is scheduled for then; a regular gift Telegram will not sell
//! again, read from the item's saved entry and `payments.checkCanSendGift`, is refused with the
//! reason before any Star is spent), ask Telegram what the move costs (a payment form: read-only),
//! apply the operator's caps, record `sending` (with the form id and the fee; the daily budget is
//! checked in the same transaction, under a transaction advisory lock per deposit account and kind
//! on PostgreSQL so two sends cannot both fit), make the one call, record the answer.
//! Collectibles are transferred (free, or by paying the transfer form); regular gifts are bought
//! again for the player (`withdraw.regular = "resend"`), the original kept by the house (the store
//! loads it at start so no reconciliation credits it again), or refused. `resend` holds the
//! resend's own checks: the original must be `withdraw.resend_hold` old and, just before the
//! payment, still `withdrawing` in the live inventory and listed unrefunded by Telegram. A kept
//! original Telegram refunds later moves `withdrawn -> refunded` with the ledger kind
//! `refunded_after_resend` and the counter `giftd_refunds_after_resend_total`.
//!
//! Must never:
//! - call Telegram to move a gift or spend Stars before `sending` is committed, or make that call
//!   twice: no retry in grammers (`NoRetries`) nor here (`Telegram::call_once`, with a deadline).
//!   A definite refusal is a wait or `failed`; a timeout, a dropped connection, an internal error,
//!   a crash or a lost lease is `unknown`, and the item is never given back while a request is
//!   unknown;
//! - resolve `unknown` by anything but Telegram, after `withdraw.settle_delay` (longer than
//!   `withdraw.call_timeout`): the gift still in the account, the account's outgoing transfer in
//!   the chat with the player, `FORM_SUBMIT_DUPLICATE` when paying the same form again, or, for a
//!   purchase whose form expired, the account's own Stars history (`payments.getStarsTransactions`:
//!   an outgoing purchase of that gift for that player since `sending`, counted one to one against
//!   the other resends to that player), never the chat, which the player controls. Without
//!   evidence the request goes to an operator (`approval`, wait reason `operator`, which the player
//!   cannot cancel), never back to the queue by itself;
//! - act without the account's lease: every claim, rescue and move carries the epoch read at the
//!   start of the pass; a worker whose instance does not hold the account makes no pass, and one
//!   whose term ended mid-pass is refused by the store and leaves the request. A new term's first
//!   rescue takes back every request claimed under an older epoch at once (a claim to the queue, a
//!   send to unknown, resolved by looking at Telegram after the settle delay);
//! - hold a request two ways: a claim is a lease (`withdraw.lease`, longer than the call timeout);
//!   a claim whose lease ran out goes back to the queue (nothing was sent), a send whose lease ran
//!   out becomes unknown; the claim skips locked rows; a worker whose request moved under it
//!   (rescued, cancelled, approved) gets a refused move and leaves it. A reconciliation that finds
//!   a gift under withdrawal gone leaves it to the worker.

/// The state machine lives in the domain layer, where the store can use it too.
pub use crate::withdrawal as machine;
pub mod precheck;
mod resend;
pub mod worker;
