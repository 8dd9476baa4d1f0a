//! The Supabase backend: PostgREST over HTTP with the `postgrest` crate.
//!
//! Every multi-row change is one of the `giftd_*` SQL functions of
//! `supabase/migrations`, called as RPC (`POST /rpc/<fn>`): one request, one transaction, all or
//! nothing, so a retry after any failure is safe. A batch of thousands of gifts is one request.
//! Reads page by key (keyset), so a server's `max-rows` cap (1000 on Supabase) never truncates
//! them silently.
//!
//! # Files
//!
//! This file holds [`SupabaseStore`] (the client, built without a request) and its [`Store`]
//! impl, which hands each call to the file of its table family, a function that takes the
//! store: `schema`, `inventory`, `batch`, `ledger`, `withdrawals`, `lease`, `link`, `notify`,
//! `player`, `catalogue`, `desk`, `sync_log` (the same families as the embedded backend), each
//! with the row and argument shapes its functions use. `rest` holds what they share: one
//! request with the store's timeout (`send`), one function call (`rpc`), the mapping of
//! PostgREST's and Postgres's errors onto [`StoreError`], and the `{error: ...}` and `fenced`
//! answers.
//!
//! # Schema and transactions
//!
//! The schema is the operator's to apply (`giftd schema` prints it); giftd reads its version
//! with `giftd_schema_version` and refuses an older one, naming the migration to apply. A
//! missing function or table is reported the same way. RPC arguments are never null (postrust
//! reads a JSON null as `""`): "any" is `i64::MIN` or an empty list, "no error" is `""`.
//!
//! # Leases and the fence
//!
//! Lease expiries are computed from the database's own `now()`, the one clock every instance
//! shares. The fenced writes are the `giftd_fenced_*` functions: each locks the account's lease
//! row `FOR SHARE` before writing, so a take (an `UPDATE` of that row) waits for the writes in
//! flight and every later write of the old term is refused (`{error: "fenced"}`, mapped to
//! [`StoreError::Fenced`]). Rows two claimers may want (requests, notifications) are claimed
//! `for update skip locked`.
//!
//! # What the web app reads
//!
//! Row level security reads a request's player from `app_metadata.telegram_id` (written by the
//! server; never `user_metadata` or a top-level claim), or else from the Telegram user linked
//! to its `sub` (`giftd_private.jwt_player_id()`), for `users`, `inventory`, `transactions` and
//! `withdrawals`; `request_withdrawal` takes its owner the same way and answers `not_found`
//! alike for a missing item and someone else's. `request_link_token` (security definer) mints a
//! token for the signed-in web user, refused for `anon`, for anonymous sessions and for a JWT
//! without a uuid `sub`; its label is the JWT's e-mail or phone, masked, and the plaintext is
//! returned once. `web_link_replacements` is readable by the replaced web account only.
//! `inventory` is in the `supabase_realtime` publication with replica identity full, so each
//! change reaches a subscriber once, and a player's JWT reads only their own rows.
//!
//! Architecture invariant: PostgreSQL grants EXECUTE on new functions to PUBLIC; every giftd
//! function has it revoked. `anon` executes none; `authenticated` only `request_withdrawal`,
//! `request_link_token` and the JWT helpers row level security calls; the rest is
//! `service_role`'s.
//!
//! # The `postgrest` crate
//!
//! It has no timeout and overwrites `Prefer`: every request goes through `.build()` to set the
//! timeout on the `reqwest::RequestBuilder`. `in_()` (does not quote) and `limit(0)` (panics)
//! are not used.
//!
//! Must never: log or format the service key (it lives only in the client's headers, and this
//! type's `Debug` prints the URL alone).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use postgrest::Postgrest;

use super::{
    BatchOutcome, ChangeBatch, Epoch, Lease, LeaseAnswer, LinkLabel, LinkOutcome, LinkToken,
    Notification, NotificationId, NotificationOutcome, OwnerStats, PlayerLanguage, ReplacedLink,
    Store, StoreError, SyncLog, WebUserId, Withdrawal, WithdrawalFilter, WithdrawalId,
    WithdrawalMove,
};
use crate::config::SupabaseConfig;
use crate::gift::{GiftType, Item, ItemKey, LedgerEntry, Owner, UserId};

mod batch;
mod catalogue;
mod desk;
mod inventory;
mod lease;
mod ledger;
mod link;
mod notify;
mod player;
mod rest;
mod schema;
mod sync_log;
mod withdrawals;

use self::rest::jwt_role;

/// Rows asked for per page. Pages are read until one comes back empty, so a smaller server cap
/// costs requests, never rows.
const PAGE: usize = 1000;

pub struct SupabaseStore {
    /// Carries the base URL and the `apikey` / `Authorization` headers (the key).
    client: Postgrest,
    /// Base URL, for messages.
    url: String,
    /// Applied to every request.
    timeout: Duration,
    /// The `role` claim of the configured key, to make a permission error precise.
    key_role: Option<String>,
}

impl fmt::Debug for SupabaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupabaseStore")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SupabaseStore {
    /// Builds the client. Makes no request: [`Store::check_schema`] is the first contact.
    pub fn new(config: &SupabaseConfig) -> Result<Self, StoreError> {
        let url = config.rest_url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(StoreError::Protocol(format!(
                "supabase url {url:?} is not an http(s) URL"
            )));
        }
        let key = config.service_role_key.expose();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StoreError::InvalidKey {
                detail: "the key is empty or contains spaces or control characters".into(),
            });
        }
        let client = Postgrest::new(url.clone())
            .insert_header("apikey", key)
            .insert_header("Authorization", format!("Bearer {key}"));
        Ok(SupabaseStore {
            client,
            url,
            timeout: config.request_timeout,
            key_role: jwt_role(&config.service_role_key),
        })
    }
}

#[async_trait]
impl Store for SupabaseStore {
    fn backend(&self) -> &'static str {
        "supabase"
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        schema::schema_version(self).await
    }

    async fn check_write(&self) -> Result<(), StoreError> {
        schema::check_write(self).await
    }

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<BatchOutcome, StoreError> {
        batch::apply_batch(self, batch).await
    }

    async fn load_items(&self, account_id: UserId) -> Result<Vec<Item>, StoreError> {
        inventory::load_items(self, account_id).await
    }

    async fn list_owner(&self, owner: Owner) -> Result<Vec<Item>, StoreError> {
        inventory::list_owner(self, owner).await
    }

    async fn owner_stats(&self, user_id: UserId) -> Result<OwnerStats, StoreError> {
        inventory::owner_stats(self, user_id).await
    }

    async fn item_history(&self, key: ItemKey) -> Result<Vec<LedgerEntry>, StoreError> {
        ledger::item_history(self, key).await
    }

    async fn assign_owner(&self, key: ItemKey, user_id: UserId) -> Result<bool, StoreError> {
        inventory::assign_owner(self, key, user_id).await
    }

    async fn create_withdrawal(
        &self,
        owner: UserId,
        key: ItemKey,
    ) -> Result<WithdrawalId, StoreError> {
        withdrawals::create_withdrawal(self, owner, key).await
    }

    async fn claim_withdrawal(
        &self,
        account_id: UserId,
        worker_id: &str,
        lease: Duration,
        epoch: Option<Epoch>,
    ) -> Result<Option<Withdrawal>, StoreError> {
        withdrawals::claim_withdrawal(self, account_id, worker_id, lease, epoch).await
    }

    async fn move_withdrawal(&self, mv: &WithdrawalMove) -> Result<Withdrawal, StoreError> {
        withdrawals::move_withdrawal(self, mv).await
    }

    async fn rescue_withdrawals(
        &self,
        account_id: UserId,
        epoch: Option<Epoch>,
    ) -> Result<u64, StoreError> {
        withdrawals::rescue_withdrawals(self, account_id, epoch).await
    }

    async fn withdrawal(&self, id: WithdrawalId) -> Result<Option<Withdrawal>, StoreError> {
        withdrawals::withdrawal(self, id).await
    }

    async fn list_withdrawals(
        &self,
        filter: &WithdrawalFilter,
    ) -> Result<Vec<Withdrawal>, StoreError> {
        withdrawals::list_withdrawals(self, filter).await
    }

    async fn create_link_token(
        &self,
        web_user: WebUserId,
        label: &LinkLabel,
        ttl: Duration,
    ) -> Result<LinkToken, StoreError> {
        link::create_link_token(self, web_user, label, ttl).await
    }

    async fn peek_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
    ) -> Result<LinkOutcome, StoreError> {
        link::peek_link_token(self, token, telegram_user).await
    }

    async fn consume_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
        replace: bool,
    ) -> Result<LinkOutcome, StoreError> {
        link::consume_link_token(self, token, telegram_user, replace).await
    }

    async fn replaced_links(&self, web_user: WebUserId) -> Result<Vec<ReplacedLink>, StoreError> {
        link::replaced_links(self, web_user).await
    }

    async fn linked_telegram_user(
        &self,
        web_user: WebUserId,
    ) -> Result<Option<UserId>, StoreError> {
        link::linked_telegram_user(self, web_user).await
    }

    async fn claim_notifications(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Notification>, StoreError> {
        notify::claim_notifications(self, limit, lease).await
    }

    async fn finish_notifications(
        &self,
        ids: &[NotificationId],
        outcome: &NotificationOutcome,
    ) -> Result<u64, StoreError> {
        notify::finish_notifications(self, ids, outcome).await
    }

    async fn requeue_undelivered(
        &self,
        user: UserId,
        max_age: Duration,
    ) -> Result<u64, StoreError> {
        notify::requeue_undelivered(self, user, max_age).await
    }

    async fn note_language(
        &self,
        user: UserId,
        code: &str,
        chosen: bool,
    ) -> Result<PlayerLanguage, StoreError> {
        player::note_language(self, user, code, chosen).await
    }

    async fn language(&self, user: UserId) -> Result<Option<PlayerLanguage>, StoreError> {
        player::language(self, user).await
    }

    async fn append_sync_log(&self, log: &SyncLog) -> Result<(), StoreError> {
        sync_log::append_sync_log(self, log).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError> {
        lease::take_lease(self, name, holder, ttl).await
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError> {
        lease::renew_lease(self, name, holder, epoch, ttl).await
    }

    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
    ) -> Result<bool, StoreError> {
        lease::release_lease(self, name, holder, epoch).await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        lease::lease(self, name).await
    }

    async fn gift_types(&self) -> Result<Vec<GiftType>, StoreError> {
        catalogue::gift_types(self).await
    }

    async fn desk(&self) -> Result<Vec<super::desk::AccountDesk>, StoreError> {
        desk::desk(self).await
    }

    async fn record_balance(&self, account: UserId, stars: i64) -> Result<(), StoreError> {
        desk::record_balance(self, account, stars).await
    }
}
