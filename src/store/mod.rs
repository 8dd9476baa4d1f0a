//! The store: where the mirror of the deposit accounts' inventory, the ledger, withdrawal
//! requests, leases, the gift catalogue, link tokens and web links, the notifications outbox,
//! players' languages, balances and sync logs are kept.
//!
//! [`Store`] is the one interface the rest of giftd sees, with two backends chosen by [`open`]
//! from the configuration: an embedded SQLite file ([`sqlite::SqliteStore`], the default) and
//! Supabase through PostgREST ([`supabase::SupabaseStore`]). Both pass one contract suite (the
//! store tests in `tests/it/`, run against a real PostgreSQL behind a real PostgREST-compatible
//! server and against a file). Every write is keyed on [`ItemKey`] or an idempotency key, so
//! replaying any call changes nothing, and every multi-row change is one transaction: all or
//! nothing. Errors are one enum ([`StoreError`]) that tells a retryable failure (nothing was
//! written) from a permanent one.
//!
//! # Layout
//!
//! This module holds the trait and the values both backends take and give back; the values of
//! one concern have their own file ([`lease`], [`link`], [`notify`], [`player`], [`desk`]),
//! and [`wake`] tells a running daemon that a request is waiting. Each backend is a folder with
//! the same files, one per table family: `schema` (versions and migrations), `inventory` (items,
//! owners), `batch` (a detection pass's writes), `ledger`, `withdrawals`, `lease` (and the
//! fence), `link`, `notify`, `player`, `catalogue`, `desk`, `sync_log`; plus the helpers the
//! families share (`sqlite/tx.rs`: the write transaction and SQLite's errors;
//! `supabase/rest.rs`: the request, the RPC call and PostgREST's errors). Each backend's
//! `mod.rs` holds the store type and its [`Store`] impl, which hands each call to its family.
//!
//! # Tables
//!
//! `users` and `gifts` (the gift catalogue: every kind seen, with the title and price Telegram
//! gave it, written with the batches that carry it, a later sighting without a title keeping
//! the known one, and read back at start by [`Store::gift_types`] so a restarted daemon names
//! gifts before Telegram lists them again); `inventory` (one row per gift a deposit account
//! holds or held); `transactions` (the ledger, one row per movement, unique on its idempotency
//! key); `withdrawals` (requests and their state machine, [`crate::withdrawal`]); `leases`;
//! `link_tokens`, `web_links`, `web_link_replacements`; `notifications`; `players`;
//! `account_balances` (the Stars balance the serving instance recorded, for the desk);
//! `sync_logs` (one row per reconciliation pass, named by its pass); `schema_version`.
//!
//! A collectible's worth is stored as Telegram gives it: `value_amount` + `value_currency`
//! (ISO 4217, smallest units), `value_usd_cents`, and what a buyer paid, `paid_amount` +
//! `paid_currency` (`XTR` Stars or `TON` nano units); nothing is converted.
//!
//! # Schema versions and migrations
//!
//! [`SCHEMA_VERSION`] is the version this giftd needs. On Supabase the schema is
//! `supabase/migrations/*.sql` ([`migrations`], printed by `giftd schema`), applied by the
//! operator; [`Store::check_schema`] at start refuses an older schema and names the migration
//! to apply ([`migration_for`]). The embedded file migrates itself when opened, one step per
//! version, each the twin of a migration (`sqlite/schema.rs`); a file newer than this giftd is
//! refused. A schema change is a new migration file plus the matching embedded step and one
//! more [`SCHEMA_VERSION`].
//!
//! # Batches
//!
//! A [`ChangeBatch`] carries what a detection pass found: users, gift kinds, new items,
//! departures (each checked against [`Status::transition`]; a refused one is reported back in
//! [`BatchOutcome::refused`], nothing else of it written), `attributions` (an unattributed item
//! credited to the sender Telegram named later: only an item that still has no owner, so an
//! operator's assignment is never overwritten; ledger kind `attributed`) and `sync_logs` (each
//! written once however often the batch is replayed). When a regular gift is upgraded, the
//! store points the collectible back at it (`upgraded_from`) whichever of the two is written
//! first. A request nobody has claimed yet for an item that left the account is cancelled in
//! the same transaction.
//!
//! # Leases and fencing
//!
//! Leases are rows the store takes, renews and releases for the daemon's lease keeper (values
//! in [`lease`]). The
//! writes only an account's active instance makes ([`Store::apply_batch`],
//! [`Store::claim_withdrawal`], [`Store::rescue_withdrawals`], the worker's
//! [`Store::move_withdrawal`]) carry the epoch of the account's lease and are refused whole
//! ([`StoreError::Fenced`], not retryable) when it is stale: a write with an epoch is applied
//! only while the account's lease is at that epoch, a holder's write without one (a daemon
//! running without leases) only while nobody holds a live lease on the account. The check runs
//! inside the write's own transaction. Operators' and players' writes (create, approve, retry,
//! cancel a request; assign an owner) carry no epoch: they are compare-and-set on the request's
//! or item's state and never race a holder's move from the same state.
//!
//! [`open`] (the daemon) opens the embedded database exclusively: an OS lock on
//! `<file>.lock`, so a second `giftd run` on the same file refuses to start
//! ([`StoreError::InUse`], naming the file and the holder's pid); [`open_shared`] (the commands
//! `check`, `inventory`, `withdrawals`) does not take it.
//!
//! # The two backends
//!
//! | | embedded SQLite | Supabase |
//! |---|---|---|
//! | one call | `BEGIN IMMEDIATE` on the one connection | one `giftd_*` SQL function (RPC) |
//! | migrations | run by giftd when the file opens | applied by the operator |
//! | lease clock | this host's (one process per file) | the database's `now()` |
//! | fence | `check_fence` in the transaction | `giftd_fenced_*`, lease row `FOR SHARE` |
//! | claiming rows | the write lock | `for update skip locked` |
//! | wake-ups | a unix socket beside the file | `NOTIFY giftd_withdrawals` |
//! | the web app | no access | row level security, Realtime |
//!
//! Architecture invariant: this is the only module that speaks SQL or HTTP to a database. It
//! never logs keys or tokens, and it never decides what happened to a gift: callers hand it
//! values from the pure gift model ([`crate::gift`]) and it checks them against what it holds.

pub mod desk;
mod error;
pub mod lease;
pub mod link;
pub mod notify;
pub mod player;
pub mod sqlite;
pub mod supabase;
pub mod wake;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::error::StoreError;
pub use self::lease::{BOT_LEASE, Epoch, Lease, LeaseAnswer, account_lease};
pub use self::link::{
    InvalidLinkLabel, InvalidWebUserId, LinkLabel, LinkOutcome, LinkToken, MAX_LINK_TOKEN_TTL,
    Replaced, ReplacedLink, WebUserId,
};
pub use self::notify::{
    Notification, NotificationId, NotificationKind, NotificationOutcome, NotificationState,
};
pub use self::player::PlayerLanguage;
use crate::config::StoreConfig;
use crate::gift::{
    GiftType, IllegalTransition, Item, ItemKey, LedgerEntry, Owner, Status, UserId, UserInfo,
};

/// The schema version this giftd needs. Raised by each migration that changes what giftd reads
/// or writes; giftd refuses to run against an older schema.
pub const SCHEMA_VERSION: u32 = 10;

/// The Supabase migrations, in the order they apply: `(file name, SQL)`.
static MIGRATIONS: &[(&str, &str)] = &[
    (
        "20261121090000_giftd_init.sql",
        include_str!("../../supabase/migrations/20261121090000_giftd_init.sql"),
    ),
    (
        "20261201190000_giftd_attribution.sql",
        include_str!("../../supabase/migrations/20261201190000_giftd_attribution.sql"),
    ),
    (
        "20261201200000_giftd_withdrawals.sql",
        include_str!("../../supabase/migrations/20261201200000_giftd_withdrawals.sql"),
    ),
    (
        "20261202000000_giftd_bot.sql",
        include_str!("../../supabase/migrations/20261202000000_giftd_bot.sql"),
    ),
    (
        "20261202010000_giftd_leases.sql",
        include_str!("../../supabase/migrations/20261202010000_giftd_leases.sql"),
    ),
    (
        "20261204120000_giftd_consent.sql",
        include_str!("../../supabase/migrations/20261204120000_giftd_consent.sql"),
    ),
    (
        "20261204130000_giftd_desk.sql",
        include_str!("../../supabase/migrations/20261204130000_giftd_desk.sql"),
    ),
    (
        "20261204140000_giftd_players.sql",
        include_str!("../../supabase/migrations/20261204140000_giftd_players.sql"),
    ),
    (
        "20261204160000_giftd_values.sql",
        include_str!("../../supabase/migrations/20261204160000_giftd_values.sql"),
    ),
    (
        "20261204170000_giftd_fates.sql",
        include_str!("../../supabase/migrations/20261204170000_giftd_fates.sql"),
    ),
];

/// The schema version each entry of [`MIGRATIONS`] sets, increasing but not necessarily
/// contiguous (branches add versions side by side).
const MIGRATION_VERSIONS: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/// The Supabase migrations (`supabase/migrations/*.sql`) as `(file name, SQL)`, in the order
/// they apply. `giftd schema` prints them.
pub fn migrations() -> &'static [(&'static str, &'static str)] {
    MIGRATIONS
}

/// The migration that brings a schema to `version` (the newest one when none matches).
pub fn migration_for(version: u32) -> &'static str {
    let index = MIGRATION_VERSIONS
        .iter()
        .position(|&v| v >= version)
        .unwrap_or(MIGRATION_VERSIONS.len().saturating_sub(1));
    MIGRATIONS.get(index).map_or("(none)", |m| m.0)
}

/// Opens the store the configuration names for the daemon (`giftd run`). Does not check the
/// schema version: call [`Store::check_schema`] before writing (the daemon does).
///
/// The embedded database is opened exclusively: an OS lock on `<file>.lock`, held while the
/// store lives (the daemon's whole life) and released by the OS when the process dies, keeps a
/// second daemon off the same file ([`StoreError::InUse`]).
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Embedded(c) => Arc::new(sqlite::SqliteStore::open_exclusive(&c.path).await?),
        StoreConfig::Supabase(c) => Arc::new(supabase::SupabaseStore::new(c)?),
    })
}

/// Opens the store for the commands that read or steer it beside a running daemon (`giftd
/// check`, `inventory`, `withdrawals`): the embedded database without the daemon's lock. Their
/// writes are an operator's or a player's (approve, cancel, retry, request), compare-and-set on
/// the request's state like every move, and never fenced writes of an account's holder.
pub async fn open_shared(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Embedded(c) => Arc::new(sqlite::SqliteStore::open(&c.path).await?),
        StoreConfig::Supabase(c) => Arc::new(supabase::SupabaseStore::new(c)?),
    })
}

/// Everything a detection pass found, written in one transaction by [`Store::apply_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Senders seen in this pass (inserted, or their names refreshed).
    pub users: Vec<UserInfo>,
    /// Gift kinds seen in this pass (inserted, or their title and price refreshed).
    pub gifts: Vec<GiftType>,
    /// Items detected. Items the store already has are left exactly as they are: a replayed or
    /// late batch never moves an item back.
    pub items: Vec<Item>,
    /// Items that left the account (converted, refunded, upgraded, gone).
    pub changes: Vec<StatusChange>,
    /// Items recorded without a sender that Telegram has since named one for. Applied after
    /// `items` and only to an item that still has no owner (never over an operator's
    /// assignment); each writes its ledger entry once.
    pub attributions: Vec<Attribution>,
    /// Reconciliation passes to record (`sync_logs`), each once by its `pass_id`. They travel
    /// with the inventory's changes so a pass that ran while the store was down is written
    /// when it is back.
    pub sync_logs: Vec<SyncLog>,
    /// The lease epoch this writer holds for deposit accounts the batch touches. An account
    /// with an epoch here is fenced: the whole batch is refused ([`StoreError::Fenced`], nothing
    /// written) unless the account's lease is still at that epoch. An account without one is
    /// written unfenced, which the store refuses while another instance holds a live lease on
    /// it (a single instance without leases never has one).
    pub epochs: BTreeMap<UserId, Epoch>,
}

impl ChangeBatch {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.gifts.is_empty()
            && self.items.is_empty()
            && self.changes.is_empty()
            && self.attributions.is_empty()
            && self.sync_logs.is_empty()
    }

    /// The deposit accounts whose rows the batch writes (users and gift kinds belong to none).
    pub fn accounts(&self) -> BTreeSet<UserId> {
        let mut accounts = BTreeSet::new();
        accounts.extend(self.items.iter().map(|i| i.key.account_id));
        accounts.extend(self.changes.iter().map(|c| c.key.account_id));
        accounts.extend(self.attributions.iter().map(|a| a.key.account_id));
        accounts.extend(self.sync_logs.iter().map(|l| l.account_id));
        accounts
    }

    /// Rejects what the store must never be asked to do: only departures travel in a batch,
    /// and each carries the ledger entry of its own item.
    fn validate(&self) -> Result<(), StoreError> {
        for c in &self.changes {
            if !c.to.is_terminal() || c.to == Status::Withdrawn {
                return Err(StoreError::InvalidBatch(format!(
                    "item {}: a batch may only move items to converted, refunded, upgraded or \
                     gone, not {} (withdrawals have their own calls)",
                    c.key, c.to
                )));
            }
            if c.entry.key != c.key {
                return Err(StoreError::InvalidBatch(format!(
                    "item {}: ledger entry is for item {}",
                    c.key, c.entry.key
                )));
            }
        }
        for a in &self.attributions {
            if a.entry.key != a.key || a.entry.owner != Owner::User(a.owner) {
                return Err(StoreError::InvalidBatch(format!(
                    "item {}: attribution to {} carries the ledger entry of item {} for {}",
                    a.key, a.owner, a.entry.key, a.entry.owner
                )));
            }
        }
        Ok(())
    }
}

/// An unattributed item credited to the sender Telegram named later, with its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub key: ItemKey,
    pub owner: UserId,
    pub entry: LedgerEntry,
}

/// An item leaving the deposit account, with the ledger entry that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub key: ItemKey,
    pub to: Status,
    pub entry: LedgerEntry,
}

impl StatusChange {
    /// The change (and its ledger entry) for `item` moving to `to` at unix time `at`, checked
    /// against the state machine as the caller knows the item.
    pub fn new(item: &Item, to: Status, at: i64) -> Result<Self, IllegalTransition> {
        let mut moved = item.clone();
        let entry = moved.apply(to, at)?;
        Ok(StatusChange {
            key: item.key,
            to,
            entry,
        })
    }
}

/// What [`Store::apply_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Items recorded for the first time.
    pub items_new: u64,
    /// Items the store already had (left untouched).
    pub items_known: u64,
    /// Status changes applied (each wrote its ledger entry).
    pub changes_applied: u64,
    /// Status changes to the status the item already had: nothing to do.
    pub changes_unchanged: u64,
    /// Attributions applied (the item had no owner; each wrote its ledger entry).
    pub attributed: u64,
    /// Attributions not applied because the item already has an owner (an operator assigned
    /// it, or a replay) or is unknown to the store.
    pub attributions_skipped: u64,
    /// Status changes refused: the item is unknown or the move is illegal from where it is.
    /// Nothing of a refused change was written; the rest of the batch was.
    pub refused: Vec<RefusedChange>,
}

/// A status change [`Store::apply_batch`] did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedChange {
    pub key: ItemKey,
    pub to: Status,
    /// Where the item is; `None` when the store does not know the item.
    pub current: Option<Status>,
}

impl fmt::Display for RefusedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.current {
            Some(from) => write!(
                f,
                "item {}: illegal move from {from} to {}",
                self.key, self.to
            ),
            None => write!(
                f,
                "item {}: unknown item, cannot move it to {}",
                self.key, self.to
            ),
        }
    }
}

/// One owner's figures, for `/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerStats {
    /// Items held and not being withdrawn.
    pub held: u64,
    /// Star value of everything still in the account (held or being withdrawn).
    pub held_stars: i64,
    /// Items with a withdrawal requested or in progress.
    pub withdraw_pending: u64,
    /// Items transferred back out.
    pub withdrawn: u64,
    /// Every item ever deposited by this owner.
    pub deposited: u64,
}

pub type WithdrawalId = i64;

pub use crate::withdrawal::{
    Canceller, RequestState, WaitReason, Withdrawal, WithdrawalKind, WithdrawalMove,
};

/// Which requests [`Store::list_withdrawals`] returns (every given condition holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WithdrawalFilter {
    pub account_id: Option<UserId>,
    pub owner: Option<UserId>,
    /// Empty: every state.
    pub states: Vec<RequestState>,
    /// At most this many, newest first (0: no limit).
    pub limit: usize,
}

/// One reconciliation pass, for the `sync_logs` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncLog {
    /// Names the pass, so writing its row again (a batch replayed after a lost answer) writes
    /// one row.
    pub pass_id: String,
    pub account_id: UserId,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds.
    pub finished_at: i64,
    pub items_seen: u32,
    pub items_new: u32,
    pub items_changed: u32,
    /// Why the pass failed, if it did.
    pub error: Option<String>,
}

/// The store interface. Object safe: giftd holds an `Arc<dyn Store>`.
///
/// Errors: [`StoreError::is_retryable`] tells a transient failure (worth retrying with backoff;
/// nothing was written) from a permanent one.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// `"sqlite"` or `"supabase"`, for logs and `giftd check`.
    fn backend(&self) -> &'static str;

    /// The schema version the database has.
    async fn schema_version(&self) -> Result<u32, StoreError>;

    /// Refuses a schema older (or newer) than [`SCHEMA_VERSION`]; returns the version.
    async fn check_schema(&self) -> Result<u32, StoreError> {
        let found = self.schema_version().await?;
        check_version(self.backend(), found)
    }

    /// Proves the credentials may write (a harmless write), for `giftd check`.
    async fn check_write(&self) -> Result<(), StoreError>;

    /// Records a batch of detected items and departures: one transaction, all or nothing;
    /// replaying it changes nothing.
    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<BatchOutcome, StoreError>;

    /// Everything `account_id` holds (held, withdrawal requested, withdrawing), by msg id.
    async fn load_items(&self, account_id: UserId) -> Result<Vec<Item>, StoreError>;

    /// One owner's items still in a deposit account, by key.
    async fn list_owner(&self, owner: Owner) -> Result<Vec<Item>, StoreError>;

    async fn owner_stats(&self, user_id: UserId) -> Result<OwnerStats, StoreError>;

    /// The ledger entries of one item, oldest first.
    async fn item_history(&self, key: ItemKey) -> Result<Vec<LedgerEntry>, StoreError>;

    /// Credits an unattributed item to `user_id` (an operator's decision) and writes an
    /// `assigned` ledger entry. Returns false when it was already credited to that user.
    async fn assign_owner(&self, key: ItemKey, user_id: UserId) -> Result<bool, StoreError>;

    /// `owner` asks for `key` back: the item must be held and theirs. Asking again while the
    /// request is open returns the same request. A collectible is transferred, a regular gift
    /// resent (bought again for the player); the worker refuses a resend when the operator
    /// configured `withdraw.regular = "refuse"`.
    async fn create_withdrawal(
        &self,
        owner: UserId,
        key: ItemKey,
    ) -> Result<WithdrawalId, StoreError>;

    /// Hands the oldest claimable request of `account_id` (requested, or waiting past its
    /// `not_before`) to `worker_id` for `lease`, marks the item withdrawing and counts the
    /// attempt. Atomic: two claimers never get the same request. Only the session of that
    /// deposit account can transfer its gifts, hence the account.
    ///
    /// `epoch`: the term of the account's lease the worker holds; the claim is refused
    /// ([`StoreError::Fenced`]) once the lease moved on, and the request records the epoch so
    /// the next holder takes it back at once. `None`: unfenced (a single instance without
    /// leases), refused while another instance holds a live lease on the account.
    async fn claim_withdrawal(
        &self,
        account_id: UserId,
        worker_id: &str,
        lease: Duration,
        epoch: Option<Epoch>,
    ) -> Result<Option<Withdrawal>, StoreError>;

    /// Applies one move of the state machine ([`WithdrawalMove`]) in one transaction: refused
    /// unless the request is in one of `from` (and held by `worker` at `attempt` when given);
    /// the item moves with it and the ledger entry is written. A move to where the request
    /// already is changes nothing and returns it.
    ///
    /// A move with an `epoch` (the worker's) is refused ([`StoreError::Fenced`]) once the lease
    /// of the request's deposit account moved past it. A move without one is an operator's or a
    /// player's (approve, retry, cancel), checked only against the request's state.
    async fn move_withdrawal(&self, mv: &WithdrawalMove) -> Result<Withdrawal, StoreError>;

    /// Requests of `account_id` whose worker's lease ran out: claimed ones go back to the queue
    /// (nothing was sent), sending ones become unknown (something may have been). Returns how
    /// many moved.
    ///
    /// With the account lease's `epoch` (fenced like a claim), requests claimed under an older
    /// epoch are taken back too, whatever their worker's lease says: their worker lost the
    /// account and can no longer write. `None`: unfenced, like a claim.
    async fn rescue_withdrawals(
        &self,
        account_id: UserId,
        epoch: Option<Epoch>,
    ) -> Result<u64, StoreError>;

    async fn withdrawal(&self, id: WithdrawalId) -> Result<Option<Withdrawal>, StoreError>;

    async fn list_withdrawals(
        &self,
        filter: &WithdrawalFilter,
    ) -> Result<Vec<Withdrawal>, StoreError>;

    /// A new single-use token that links `web_user` to the Telegram user who spends it, valid
    /// for `ttl` (at most [`MAX_LINK_TOKEN_TTL`]). `label` names the web account to the player
    /// (see [`LinkLabel`]). The plaintext is returned once; only its SHA-256 is stored.
    async fn create_link_token(
        &self,
        web_user: WebUserId,
        label: &LinkLabel,
        ttl: Duration,
    ) -> Result<LinkToken, StoreError>;

    /// What spending a token would do for `telegram_user`, writing nothing (the bot's
    /// `/start <token>` asks the player before anything happens): [`LinkOutcome::Ask`] for a
    /// token that can be spent.
    async fn peek_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
    ) -> Result<LinkOutcome, StoreError>;

    /// Spends a token for `telegram_user` (the player's Confirm): marks it used and links the
    /// two in one transaction. When the player is linked to another web account, only with
    /// `replace` (their second confirmation; else [`LinkOutcome::NeedsReplace`] and nothing is
    /// written), and the replaced web account can read that it was replaced
    /// ([`Store::replaced_links`]). Expired, used and unknown tokens are outcomes, not errors:
    /// nothing is written for them.
    async fn consume_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
        replace: bool,
    ) -> Result<LinkOutcome, StoreError>;

    /// The times `web_user`'s link was replaced by its Telegram user's link to another web
    /// account, newest first.
    async fn replaced_links(&self, web_user: WebUserId) -> Result<Vec<ReplacedLink>, StoreError>;

    /// The Telegram user `web_user` is linked to, if any.
    async fn linked_telegram_user(&self, web_user: WebUserId)
    -> Result<Option<UserId>, StoreError>;

    /// Hands out up to `limit` pending notifications, oldest first, and marks them claimed for
    /// `lease`: two claimers never get the same row. Before that, rows claimed earlier whose
    /// lease ran out become `unknown` (never handed out again: they may have been sent), and
    /// old rows are pruned (see [`notify`]).
    async fn claim_notifications(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Records what became of claimed notifications. `Sent` and `Undeliverable` apply to rows
    /// claimed or marked unknown (a late report is still the truth); `Released` puts claimed or
    /// unknown rows back to pending. Other ids are left alone. Returns how many rows changed.
    async fn finish_notifications(
        &self,
        ids: &[NotificationId],
        outcome: &NotificationOutcome,
    ) -> Result<u64, StoreError>;

    /// Puts back to pending the notifications `user` could not get because the bot could not
    /// reach them (they had not started it, or had blocked it: reason `unreachable`) that are
    /// at most `max_age` old, so the next claim sends them (once: a sent row stays sent).
    /// Returns how many. Called when the player starts the bot.
    async fn requeue_undelivered(&self, user: UserId, max_age: Duration)
    -> Result<u64, StoreError>;

    /// Records the language the bot speaks to `user`: Telegram's `lang_code` (`chosen` false;
    /// ignored when the player chose one) or the player's choice (`chosen` true). Returns the
    /// language in effect.
    async fn note_language(
        &self,
        user: UserId,
        code: &str,
        chosen: bool,
    ) -> Result<PlayerLanguage, StoreError>;

    /// The language recorded for `user`, if any.
    async fn language(&self, user: UserId) -> Result<Option<PlayerLanguage>, StoreError>;

    async fn append_sync_log(&self, log: &SyncLog) -> Result<(), StoreError>;

    /// Takes the lease `name` for `holder` for `ttl` (by the database's clock) when it is free,
    /// expired or released (a new term: the epoch goes up by one), or extends it when `holder`
    /// already holds it (same epoch: taking again after a lost answer is harmless). Refused,
    /// with the lease as it is, while another holder's term runs.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError>;

    /// Extends `holder`'s term `epoch` of the lease by `ttl` from the database's now. Refused
    /// when the term is over: another holder or another epoch (a lease that merely expired and
    /// that nobody took is still the caller's term, and renewing it is allowed).
    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError>;

    /// Ends `holder`'s term `epoch` now, so another instance takes the lease at once instead of
    /// after its expiry. Returns false (and changes nothing) when that term was already over.
    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
    ) -> Result<bool, StoreError>;

    /// The lease as the database holds it, `None` when it was never taken.
    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError>;

    /// Every kind of gift the store has seen (the catalogue: title, price, collectible or not),
    /// read at start so gifts are named before Telegram lists them again.
    async fn gift_types(&self) -> Result<Vec<GiftType>, StoreError>;

    /// Every deposit account the store knows, whichever instance serves it, for the
    /// operator's desk ([`desk::AccountDesk`]), by account id.
    async fn desk(&self) -> Result<Vec<desk::AccountDesk>, StoreError>;

    /// Records the Stars balance the serving instance read from Telegram for `account`, for
    /// the desks of every instance.
    async fn record_balance(&self, account: UserId, stars: i64) -> Result<(), StoreError>;
}

fn check_version(backend: &'static str, found: u32) -> Result<u32, StoreError> {
    use std::cmp::Ordering::*;
    match found.cmp(&SCHEMA_VERSION) {
        Equal => Ok(found),
        Less => Err(StoreError::SchemaTooOld {
            backend,
            found,
            required: SCHEMA_VERSION,
            migration: migration_for(found + 1),
        }),
        Greater => Err(StoreError::SchemaTooNew {
            found,
            required: SCHEMA_VERSION,
        }),
    }
}

/// A fresh random link token (256 bits, hex).
fn new_link_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A link token's lifetime in ms, refused above [`MAX_LINK_TOKEN_TTL`].
fn link_token_ttl(ttl: Duration) -> Result<i64, StoreError> {
    if ttl > MAX_LINK_TOKEN_TTL {
        return Err(StoreError::LinkTokenTtl {
            ttl,
            max: MAX_LINK_TOKEN_TTL,
        });
    }
    Ok(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// What the stores keep of a link token: its SHA-256, hex.
fn link_token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    // A clock before 1970 is a broken host; treat it as the epoch rather than panic.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The row shape both backends read items from (PostgREST returns it as JSON).
#[derive(Debug, Deserialize)]
struct ItemRow {
    account_id: i64,
    msg_id: i32,
    owner_id: Option<i64>,
    gift_id: i64,
    stars: i64,
    collectible_id: Option<i64>,
    slug: Option<String>,
    number: Option<i32>,
    status: String,
    upgraded_into: Option<i32>,
    upgraded_from: Option<i32>,
    received_at: i64,
    convert_stars: Option<i64>,
    transfer_stars: Option<i64>,
    can_transfer_at: Option<i64>,
    /// The collectible's worth as Telegram gave it (see [`crate::gift::CollectibleValue`]).
    #[serde(default)]
    value_amount: Option<i64>,
    #[serde(default)]
    value_currency: Option<String>,
    #[serde(default)]
    value_usd_cents: Option<i64>,
    #[serde(default)]
    paid_amount: Option<i64>,
    #[serde(default)]
    paid_currency: Option<String>,
}

impl ItemRow {
    fn into_item(self) -> Result<Item, StoreError> {
        let key = ItemKey::new(self.account_id, self.msg_id);
        let status = Status::from_parts(&self.status, self.upgraded_into).ok_or_else(|| {
            StoreError::Protocol(format!("item {key}: unknown status {:?}", self.status))
        })?;
        let unique = match (self.collectible_id, self.slug, self.number) {
            (Some(collectible_id), Some(slug), Some(number)) => {
                Some(Box::new(crate::gift::UniqueInfo {
                    collectible_id,
                    slug,
                    number,
                    value: crate::gift::CollectibleValue {
                        fiat: match (self.value_amount, self.value_currency) {
                            (Some(amount), Some(currency)) => {
                                Some(crate::gift::Money { amount, currency })
                            }
                            _ => None,
                        },
                        usd_cents: self.value_usd_cents,
                        paid: crate::gift::Price::from_parts(
                            self.paid_amount,
                            self.paid_currency.as_deref(),
                        ),
                    },
                }))
            }
            _ => None,
        };
        Ok(Item {
            key,
            owner: Owner::from_user_id(self.owner_id),
            gift_id: self.gift_id,
            stars: self.stars,
            unique,
            status,
            received_at: self.received_at,
            convert_stars: self.convert_stars,
            transfer_stars: self.transfer_stars,
            can_transfer_at: self.can_transfer_at,
            upgraded_from: self.upgraded_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_named_like_supabase_wants() {
        let all = migrations();
        assert!(!all.is_empty());
        for pair in all.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (name, sql) in all {
            let (stamp, rest) = name.split_once('_').expect("<timestamp>_<name>.sql");
            assert_eq!(stamp.len(), 14, "{name}");
            assert!(stamp.bytes().all(|b| b.is_ascii_digit()), "{name}");
            assert!(rest.ends_with(".sql"), "{name}");
            assert!(!sql.trim().is_empty());
        }
        assert_eq!(MIGRATION_VERSIONS.len(), all.len());
        assert_eq!(MIGRATION_VERSIONS.last(), Some(&SCHEMA_VERSION));
        assert!(
            all.last()
                .is_some_and(|m| m.1.contains(&format!("values ({SCHEMA_VERSION}, '"))),
            "the newest migration sets the schema version giftd requires"
        );
    }

    /// Branches add schema versions side by side, so the list may have gaps (1, 2, 3, 5 until
    /// 4 is merged): each version names its own migration, a missing one the next above it.
    #[test]
    fn migration_versions_may_have_gaps() {
        for pair in MIGRATION_VERSIONS.windows(2) {
            assert!(pair[0] < pair[1], "{MIGRATION_VERSIONS:?}");
        }
        for (i, &v) in MIGRATION_VERSIONS.iter().enumerate() {
            assert_eq!(migration_for(v), MIGRATIONS[i].0);
            assert!(
                MIGRATIONS[i].1.contains(&format!(
                    "values ({v}, '{}",
                    MIGRATIONS[i].0.trim_end_matches(".sql")
                )),
                "{} sets version {v}",
                MIGRATIONS[i].0
            );
        }
        for missing in 1..SCHEMA_VERSION {
            if !MIGRATION_VERSIONS.contains(&missing) {
                let next = MIGRATION_VERSIONS
                    .iter()
                    .position(|&v| v > missing)
                    .unwrap();
                assert_eq!(migration_for(missing), MIGRATIONS[next].0);
            }
        }
    }

    #[test]
    fn version_check_names_the_migration() {
        assert_eq!(
            check_version("supabase", SCHEMA_VERSION).ok(),
            Some(SCHEMA_VERSION)
        );
        let err = check_version("supabase", SCHEMA_VERSION - 1).unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.to_string().contains(migration_for(SCHEMA_VERSION)),
            "{err}"
        );
        let err = check_version("supabase", SCHEMA_VERSION + 1).unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    }

    #[test]
    fn batches_carry_only_departures() {
        let item = Item {
            key: ItemKey::new(1, 2),
            owner: Owner::User(3),
            gift_id: 4,
            stars: 5,
            unique: None,
            status: Status::Held,
            received_at: 6,
            convert_stars: None,
            transfer_stars: None,
            can_transfer_at: None,
            upgraded_from: None,
        };
        let ok = ChangeBatch {
            changes: vec![StatusChange::new(&item, Status::Gone, 7).unwrap()],
            ..ChangeBatch::default()
        };
        assert!(ok.validate().is_ok());
        let bad = ChangeBatch {
            changes: vec![StatusChange::new(&item, Status::WithdrawRequested, 7).unwrap()],
            ..ChangeBatch::default()
        };
        assert!(matches!(bad.validate(), Err(StoreError::InvalidBatch(_))));
    }

    #[test]
    fn link_tokens_are_random_and_stored_hashed() {
        let a = new_link_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_link_token());
        assert_eq!(link_token_hash(&a).len(), 64);
        assert_ne!(link_token_hash(&a), a);
        assert_eq!(
            link_token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
