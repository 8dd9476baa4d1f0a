//! The Supabase backend: PostgREST over HTTP with the `postgrest` crate.
//!
//! Every multi-row change is one of the `giftd_*` SQL functions of
//! `supabase/migrations`, called as RPC (`POST /rpc/<fn>`): one request, one transaction, all or
//! nothing, so a retry after any failure is safe. A batch of thousands of gifts is one request.
//! Reads page by key (keyset), so a server's `max-rows` cap (1000 on Supabase) never truncates
//! them silently.
//!
//! The `postgrest` crate has no timeout and overwrites `Prefer`: every request goes through
//! `.build()` to set the timeout on the `reqwest::RequestBuilder`. `in_()` (does not quote) and
//! `limit(0)` (panics) are not used.
//!
//! Must never: log or format the service key (it lives only in the client's headers, and this
//! type's `Debug` prints the URL alone).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use postgrest::Postgrest;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::lease::{check_lease_args, millis};
use super::{
    BatchOutcome, ChangeBatch, Epoch, ItemRow, Lease, LeaseAnswer, LinkLabel, LinkOutcome,
    LinkToken, Notification, NotificationId, NotificationKind, NotificationOutcome, OwnerStats,
    PlayerLanguage, RefusedChange, Replaced, ReplacedLink, RequestState, Store, StoreError,
    SyncLog, WaitReason, WebUserId, Withdrawal, WithdrawalFilter, WithdrawalId, WithdrawalKind,
    WithdrawalMove, link_token_hash, link_token_ttl, migration_for, new_link_token,
};
use crate::config::SupabaseConfig;
use crate::gift::{GiftType, Item, ItemKey, LedgerEntry, LedgerKind, MsgId, Owner, Status, UserId};
use crate::secret::Secret;

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

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        object: &str,
    ) -> Result<Body, StoreError> {
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if (200..300).contains(&status) {
            Ok(Body(body.to_vec()))
        } else {
            Err(error_from_response(
                status,
                retry_after,
                &body,
                object,
                self.key_role.clone(),
            ))
        }
    }

    async fn rpc<T: DeserializeOwned>(
        &self,
        function: &'static str,
        params: Value,
    ) -> Result<T, StoreError> {
        let request = self.client.rpc(function, params.to_string()).build();
        let started = std::time::Instant::now();
        let result = self.send(request, &format!("function {function}")).await;
        tracing::debug!(
            function,
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "postgrest rpc"
        );
        let body = result?;
        serde_json::from_slice(&body.0)
            .map_err(|e| StoreError::Protocol(format!("{function}: {e}: {}", body.preview())))
    }

    fn transport_error(&self, e: &reqwest::Error) -> StoreError {
        // reqwest's Display names the URL, never the headers: no key in here.
        if e.is_timeout() {
            StoreError::Timeout(self.timeout)
        } else if e.is_connect() {
            StoreError::Unavailable(format!(
                "cannot connect to {}: {}",
                self.url,
                error_chain(e)
            ))
        } else {
            StoreError::Unavailable(format!(
                "request to {} failed: {}",
                self.url,
                error_chain(e)
            ))
        }
    }

    async fn page_items(
        &self,
        function: &'static str,
        mut params: impl FnMut(Option<ItemKey>) -> Value,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut after = None;
        loop {
            let rows: Vec<ItemRow> = self.rpc(function, params(after)).await?;
            if rows.is_empty() {
                return Ok(items);
            }
            for row in rows {
                let item = row.into_item()?;
                after = Some(item.key);
                items.push(item);
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A successful response body.
struct Body(Vec<u8>);

impl Body {
    /// The start of the body, for error messages.
    fn preview(&self) -> String {
        String::from_utf8_lossy(&self.0[..self.0.len().min(200)]).into_owned()
    }
}

/// PostgREST's error body.
#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<String>,
}

/// Maps a failed response to a [`StoreError`]. `object` names what was asked for
/// (`function giftd_apply_batch`, `table transactions`).
fn error_from_response(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    object: &str,
    key_role: Option<String>,
) -> StoreError {
    let api: ApiError = serde_json::from_slice(body).unwrap_or_default();
    let code = api.code.unwrap_or_default();
    let mut message = api.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
        format!("HTTP {status}: {}", text.trim())
    });
    if let Some(details) = api.details.filter(|d| !d.is_empty()) {
        message = format!("{message} ({details})");
    }
    let pg_class = code.get(..2).unwrap_or("");
    match code.as_str() {
        // Deadlock, serialization failure, lock not available, statement timeout.
        "40001" | "40P01" | "55P03" | "57014" => {
            return StoreError::Busy(format!("{code}: {message}"));
        }
        // Admin shutdown, crash shutdown, cannot connect now.
        "57P01" | "57P02" | "57P03" => {
            return StoreError::Unavailable(format!("{code}: {message}"));
        }
        "42501" => {
            return StoreError::PermissionDenied {
                detail: message,
                key_role,
            };
        }
        "PGRST202" | "42883" => {
            return StoreError::SchemaMissing {
                object: object.to_owned(),
                migration: migration_for(super::SCHEMA_VERSION),
            };
        }
        "PGRST205" | "42P01" | "PGRST204" | "42703" => {
            return StoreError::SchemaMissing {
                object: format!("{object} ({message})"),
                migration: migration_for(super::SCHEMA_VERSION),
            };
        }
        _ => {}
    }
    // Connection exceptions and insufficient resources.
    if pg_class == "08" || pg_class == "53" {
        return StoreError::Unavailable(format!("{code}: {message}"));
    }
    if code.starts_with("PGRST3") {
        return StoreError::InvalidKey {
            detail: format!("{code}: {message}"),
        };
    }
    match status {
        401 | 403 => StoreError::PermissionDenied {
            detail: format!("HTTP {status}: {message}"),
            key_role,
        },
        429 => StoreError::RateLimited { retry_after },
        500..=599 => StoreError::Unavailable(format!("HTTP {status} {code}: {message}")),
        _ => StoreError::Rejected {
            code: if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            },
            message,
        },
    }
}

/// The `role` claim of a JWT, read without checking the signature (only to word an error).
fn jwt_role(key: &Secret) -> Option<String> {
    use base64::Engine;
    let payload = key.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("role")?.as_str().map(str::to_owned)
}

fn item_json(item: &Item) -> Value {
    let unique = item.unique.as_deref();
    json!({
        "account_id": item.key.account_id,
        "msg_id": item.key.msg_id,
        "owner_id": item.owner.user_id(),
        "gift_id": item.gift_id,
        "stars": item.stars,
        "collectible_id": unique.map(|u| u.collectible_id),
        "slug": unique.map(|u| u.slug.as_str()),
        "number": unique.map(|u| u.number),
        "status": item.status.as_str(),
        "upgraded_into": item.status.upgraded_into(),
        "upgraded_from": item.upgraded_from,
        "received_at": item.received_at,
        "convert_stars": item.convert_stars,
        "transfer_stars": item.transfer_stars,
        "can_transfer_at": item.can_transfer_at,
        "value_amount": unique.and_then(|u| u.value.fiat.as_ref()).map(|m| m.amount),
        "value_currency": unique.and_then(|u| u.value.fiat.as_ref()).map(|m| m.currency.as_str()),
        "value_usd_cents": unique.and_then(|u| u.value.usd_cents),
        "paid_amount": unique.and_then(|u| u.value.paid).map(|p| p.amount()),
        "paid_currency": unique.and_then(|u| u.value.paid).map(|p| p.currency()),
    })
}

fn ledger_json(e: &LedgerEntry) -> Value {
    json!({
        "idempotency_key": e.idempotency_key,
        "account_id": e.key.account_id,
        "msg_id": e.key.msg_id,
        "owner_id": e.owner.user_id(),
        "kind": e.kind.as_str(),
        "stars": e.stars,
        "at": e.at,
    })
}

fn batch_json(batch: &ChangeBatch) -> Value {
    // Sorted by key, so concurrent batches lock rows in the same order.
    let mut items: Vec<&Item> = batch.items.iter().collect();
    items.sort_by_key(|i| i.key);
    let mut changes: Vec<_> = batch.changes.iter().collect();
    changes.sort_by_key(|c| c.key);
    let mut attributions: Vec<_> = batch.attributions.iter().collect();
    attributions.sort_by_key(|a| a.key);
    json!({
        "users": batch.users.iter().map(|u| json!({
            "id": u.id, "username": u.username, "first_name": u.first_name,
        })).collect::<Vec<_>>(),
        "gifts": batch.gifts.iter().map(|g| json!({
            "gift_id": g.gift_id, "title": g.title, "stars": g.stars, "unique": g.unique,
        })).collect::<Vec<_>>(),
        "items": items.iter().map(|i| item_json(i)).collect::<Vec<_>>(),
        "ledger": items.iter().map(|i| ledger_json(&i.deposit_entry())).collect::<Vec<_>>(),
        "changes": changes.iter().map(|c| json!({
            "account_id": c.key.account_id,
            "msg_id": c.key.msg_id,
            "status": c.to.as_str(),
            "upgraded_into": c.to.upgraded_into(),
            "entry": ledger_json(&c.entry),
        })).collect::<Vec<_>>(),
        "attributions": attributions.iter().map(|a| json!({
            "account_id": a.key.account_id,
            "msg_id": a.key.msg_id,
            "owner_id": a.owner,
            "entry": ledger_json(&a.entry),
        })).collect::<Vec<_>>(),
        "sync_logs": &batch.sync_logs,
    })
}

/// A `withdrawals` row as the giftd_* functions return it.
#[derive(Debug, Deserialize)]
struct WithdrawalRow {
    id: i64,
    account_id: i64,
    msg_id: MsgId,
    owner_id: i64,
    status: String,
    kind: String,
    attempt: i32,
    worker_id: Option<String>,
    lease_until_ms: Option<i64>,
    not_before_ms: Option<i64>,
    wait_reason: Option<String>,
    fee_stars: Option<i64>,
    approved_stars: Option<i64>,
    form_id: Option<i64>,
    reason: Option<String>,
    requested_at: i64,
    sending_at_ms: Option<i64>,
}

impl WithdrawalRow {
    fn into_withdrawal(self) -> Result<Withdrawal, StoreError> {
        Ok(Withdrawal {
            id: self.id,
            key: ItemKey::new(self.account_id, self.msg_id),
            owner: self.owner_id,
            state: request_state(&self.status)?,
            kind: WithdrawalKind::parse(&self.kind).ok_or_else(|| {
                StoreError::Protocol(format!("unknown withdrawal kind {:?}", self.kind))
            })?,
            attempt: self.attempt,
            worker: self.worker_id,
            not_before_ms: self.not_before_ms,
            lease_until_ms: self.lease_until_ms,
            wait_reason: self.wait_reason.as_deref().and_then(WaitReason::parse),
            fee_stars: self.fee_stars,
            approved_stars: self.approved_stars,
            form_id: self.form_id,
            reason: self.reason,
            requested_at: self.requested_at,
            sending_at_ms: self.sending_at_ms,
        })
    }
}

fn request_state(name: &str) -> Result<RequestState, StoreError> {
    RequestState::parse(name)
        .ok_or_else(|| StoreError::Protocol(format!("unknown withdrawal state {name:?}")))
}

/// A move as `giftd_move_withdrawal` reads it: optional columns are present only when the move
/// sets them (possibly to null).
fn move_json(mv: &WithdrawalMove) -> Value {
    let mut m = json!({
        "id": mv.id,
        "from": mv.from.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "to": mv.to.as_str(),
        "item_to": mv.to.item_status().as_str(),
        "ledger_kind": mv.ledger.as_str(),
        "mark_sending": mv.mark_sending,
        "reset_attempts": mv.reset_attempts,
        "kept_by_house": mv.kept_by_house,
    });
    let o = m.as_object_mut().expect("a JSON object literal");
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_owned(), v);
    };
    if let Some(w) = &mv.worker {
        put("worker", json!(w));
    }
    if let Some(a) = mv.attempt {
        put("attempt", json!(a));
    }
    if let Some(x) = mv.owner {
        put("owner", json!(x));
    }
    if let Some(v) = &mv.set_worker {
        put("set_worker", json!(v));
    }
    if let Some(v) = mv.lease_ms {
        put("lease_ms", json!(v));
    }
    if let Some(v) = mv.not_before_ms {
        put("not_before_ms", json!(v));
    }
    if let Some(v) = mv.wait_reason {
        put("wait_reason", json!(v.map(WaitReason::as_str)));
    }
    if let Some(v) = mv.fee_stars {
        put("fee_stars", json!(v));
    }
    if let Some(v) = mv.approved_stars {
        put("approved_stars", json!(v));
    }
    if let Some(v) = mv.form_id {
        put("form_id", json!(v));
    }
    if let Some(v) = &mv.reason {
        put("reason", json!(v));
    }
    if let Some(v) = mv.daily_budget {
        put("daily_budget", json!(v));
    }
    if let Some(v) = mv.epoch {
        put("epoch", json!(v));
    }
    m
}

#[derive(Debug, Deserialize)]
struct OutcomeRow {
    items_new: u64,
    items_known: u64,
    changes_applied: u64,
    changes_unchanged: u64,
    refused: Vec<RefusedRow>,
    attributed: u64,
    attributions_skipped: u64,
}

#[derive(Debug, Deserialize)]
struct RefusedRow {
    account_id: i64,
    msg_id: MsgId,
    status: String,
    upgraded_into: Option<MsgId>,
    current: Option<String>,
    current_upgraded_into: Option<MsgId>,
}

fn status(name: &str, into: Option<MsgId>) -> Result<Status, StoreError> {
    Status::from_parts(name, into)
        .ok_or_else(|| StoreError::Protocol(format!("unknown status {name:?}")))
}

/// A player's language as `giftd_note_language` and `giftd_player_language` return it.
#[derive(Debug, Deserialize)]
struct LanguageRow {
    code: String,
    chosen: bool,
}

impl From<LanguageRow> for PlayerLanguage {
    fn from(r: LanguageRow) -> Self {
        PlayerLanguage {
            code: r.code,
            chosen: r.chosen,
        }
    }
}

/// A `notifications` row as `giftd_claim_notifications` returns it.
#[derive(Debug, Deserialize)]
struct NotificationRow {
    id: i64,
    kind: String,
    user_id: i64,
    account_id: i64,
    msg_id: MsgId,
    gift_id: i64,
    title: Option<String>,
    stars: i64,
    slug: Option<String>,
    number: Option<i32>,
    withdrawal_id: Option<i64>,
    wait_reason: Option<String>,
    until_ms: Option<i64>,
    reason: Option<String>,
    created_at_ms: i64,
}

impl NotificationRow {
    fn into_notification(self) -> Result<Notification, StoreError> {
        Ok(Notification {
            id: self.id,
            kind: NotificationKind::parse(&self.kind).ok_or_else(|| {
                StoreError::Protocol(format!("unknown notification kind {:?}", self.kind))
            })?,
            user_id: self.user_id,
            key: ItemKey::new(self.account_id, self.msg_id),
            gift_id: self.gift_id,
            title: self.title,
            stars: self.stars,
            slug: self.slug,
            number: self.number,
            withdrawal_id: self.withdrawal_id,
            wait_reason: self.wait_reason.as_deref().and_then(WaitReason::parse),
            until_ms: self.until_ms,
            reason: self.reason,
            created_at_ms: self.created_at_ms,
        })
    }
}

/// The `{error: ...}` answers of the giftd_* functions.
#[derive(Debug, Deserialize)]
struct FnAnswer {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    changed: Option<bool>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    upgraded_into: Option<MsgId>,
    #[serde(default)]
    owner_id: Option<i64>,
}

#[async_trait]
impl Store for SupabaseStore {
    fn backend(&self) -> &'static str {
        "supabase"
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        let v: i64 = self.rpc("giftd_schema_version", json!({})).await?;
        u32::try_from(v).map_err(|_| StoreError::Protocol(format!("schema version {v}")))
    }

    async fn check_write(&self) -> Result<(), StoreError> {
        let _: Option<i64> = self.rpc("giftd_check_write", json!({})).await?;
        Ok(())
    }

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<BatchOutcome, StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let epochs: serde_json::Map<String, Value> = batch
            .epochs
            .iter()
            .map(|(account, epoch)| (account.to_string(), json!(epoch)))
            .collect();
        let answer: Value = self
            .rpc(
                "giftd_fenced_apply_batch_values",
                json!({ "p_batch": batch_json(batch), "p_epochs": epochs }),
            )
            .await?;
        fenced(&answer)?;
        let row: OutcomeRow = serde_json::from_value(answer)
            .map_err(|e| StoreError::Protocol(format!("giftd_fenced_apply_batch_values: {e}")))?;
        let refused = row
            .refused
            .into_iter()
            .map(|r| {
                Ok(RefusedChange {
                    key: ItemKey::new(r.account_id, r.msg_id),
                    to: status(&r.status, r.upgraded_into)?,
                    current: r
                        .current
                        .map(|c| status(&c, r.current_upgraded_into))
                        .transpose()?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(BatchOutcome {
            items_new: row.items_new,
            items_known: row.items_known,
            changes_applied: row.changes_applied,
            changes_unchanged: row.changes_unchanged,
            refused,
            attributed: row.attributed,
            attributions_skipped: row.attributions_skipped,
        })
    }

    async fn load_items(&self, account_id: UserId) -> Result<Vec<Item>, StoreError> {
        self.page_items("giftd_load_items", |after| {
            json!({
                "p_account_id": account_id,
                "p_after_msg_id": after.map_or(i32::MIN, |k| k.msg_id),
                "p_limit": PAGE,
            })
        })
        .await
    }

    async fn list_owner(&self, owner: Owner) -> Result<Vec<Item>, StoreError> {
        // RPC arguments are never null (postrust 3.1 reads a JSON null as ""): the unattributed
        // items have their own function.
        let after_json = |after: Option<ItemKey>| {
            json!({
                "p_after_account_id": after.map_or(i64::MIN, |k| k.account_id),
                "p_after_msg_id": after.map_or(i32::MIN, |k| k.msg_id),
                "p_limit": PAGE,
            })
        };
        match owner {
            Owner::User(user_id) => {
                self.page_items("giftd_list_owner", |after| {
                    let mut params = after_json(after);
                    params["p_owner_id"] = user_id.into();
                    params
                })
                .await
            }
            Owner::Unattributed => self.page_items("giftd_list_unattributed", after_json).await,
        }
    }

    async fn owner_stats(&self, user_id: UserId) -> Result<OwnerStats, StoreError> {
        self.rpc("giftd_owner_stats", json!({ "p_owner_id": user_id }))
            .await
    }

    async fn item_history(&self, key: ItemKey) -> Result<Vec<LedgerEntry>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            idempotency_key: String,
            owner_id: Option<i64>,
            kind: String,
            stars: i64,
            at: i64,
        }
        let request = self
            .client
            .from("transactions")
            .select("idempotency_key,owner_id,kind,stars,at")
            .eq("account_id", key.account_id.to_string())
            .eq("msg_id", key.msg_id.to_string())
            .order("id.asc")
            .build();
        let body = self.send(request, "table transactions").await?;
        let rows: Vec<Row> = serde_json::from_slice(&body.0)
            .map_err(|e| StoreError::Protocol(format!("transactions: {e}: {}", body.preview())))?;
        rows.into_iter()
            .map(|r| {
                Ok(LedgerEntry {
                    kind: LedgerKind::parse(&r.kind).ok_or_else(|| {
                        StoreError::Protocol(format!("unknown ledger kind {:?}", r.kind))
                    })?,
                    idempotency_key: r.idempotency_key,
                    key,
                    owner: Owner::from_user_id(r.owner_id),
                    stars: r.stars,
                    at: r.at,
                })
            })
            .collect()
    }

    async fn assign_owner(&self, key: ItemKey, user_id: UserId) -> Result<bool, StoreError> {
        let a: FnAnswer = self
            .rpc(
                "giftd_assign_owner",
                json!({
                    "p_account_id": key.account_id, "p_msg_id": key.msg_id, "p_owner_id": user_id,
                }),
            )
            .await?;
        match a.error.as_deref() {
            None => Ok(a.changed.unwrap_or(false)),
            Some("not_found") => Err(StoreError::ItemNotFound(key)),
            Some("already_owned") => Err(StoreError::AlreadyOwned {
                key,
                owner: a.owner_id.unwrap_or_default(),
            }),
            Some(other) => Err(StoreError::Protocol(format!("giftd_assign_owner: {other}"))),
        }
    }

    async fn create_withdrawal(
        &self,
        owner: UserId,
        key: ItemKey,
    ) -> Result<WithdrawalId, StoreError> {
        let a: FnAnswer = self
            .rpc(
                "giftd_create_withdrawal",
                json!({
                    "p_account_id": key.account_id, "p_msg_id": key.msg_id, "p_owner_id": owner,
                }),
            )
            .await?;
        match (a.error.as_deref(), a.id) {
            (None, Some(id)) => Ok(id),
            (Some("not_found"), _) => Err(StoreError::ItemNotFound(key)),
            (Some("not_owner"), _) => Err(StoreError::NotOwner {
                key,
                user_id: owner,
            }),
            (Some("not_held"), _) => Err(StoreError::NotHeld {
                key,
                status: status(a.status.as_deref().unwrap_or(""), a.upgraded_into)?,
            }),
            (other, _) => Err(StoreError::Protocol(format!(
                "giftd_create_withdrawal: {other:?}"
            ))),
        }
    }

    async fn claim_withdrawal(
        &self,
        account_id: UserId,
        worker_id: &str,
        lease: Duration,
        epoch: Option<Epoch>,
    ) -> Result<Option<Withdrawal>, StoreError> {
        let answer: Value = self
            .rpc(
                "giftd_fenced_claim_withdrawal",
                json!({
                    "p_account_id": account_id,
                    "p_worker_id": worker_id,
                    "p_lease_ms": i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                    "p_epoch": epoch.unwrap_or(0),
                }),
            )
            .await?;
        fenced(&answer)?;
        let row: Option<WithdrawalRow> =
            serde_json::from_value(answer.get("row").cloned().unwrap_or(Value::Null))
                .map_err(|e| StoreError::Protocol(format!("giftd_fenced_claim_withdrawal: {e}")))?;
        row.map(WithdrawalRow::into_withdrawal).transpose()
    }

    async fn move_withdrawal(&self, mv: &WithdrawalMove) -> Result<Withdrawal, StoreError> {
        #[derive(Deserialize)]
        struct Answer {
            row: Option<WithdrawalRow>,
            error: Option<String>,
            status: Option<String>,
            worker_id: Option<String>,
            attempt: Option<i32>,
            fee: Option<i64>,
            total: Option<i64>,
            budget: Option<i64>,
        }
        let answer: Value = self
            .rpc(
                "giftd_fenced_move_withdrawal",
                json!({ "p_move": move_json(mv) }),
            )
            .await?;
        fenced(&answer)?;
        let a: Answer = serde_json::from_value(answer)
            .map_err(|e| StoreError::Protocol(format!("giftd_fenced_move_withdrawal: {e}")))?;
        match (a.error.as_deref(), a.row) {
            (None, Some(row)) => row.into_withdrawal(),
            (Some("not_found"), _) => Err(StoreError::WithdrawalNotFound(mv.id)),
            (Some("not_owner"), _) => Err(StoreError::WithdrawalNotOwner { id: mv.id }),
            (Some("wrong_state"), _) => Err(StoreError::WithdrawalMoveRefused {
                id: mv.id,
                state: request_state(a.status.as_deref().unwrap_or(""))?,
                to: mv.to,
                holder: a.worker_id.map(|w| (w, a.attempt.unwrap_or(0))),
            }),
            (Some("over_budget"), _) => Err(StoreError::OverDailyBudget {
                id: mv.id,
                fee: a.fee.unwrap_or(0),
                total: a.total.unwrap_or(0),
                budget: a.budget.unwrap_or(0),
            }),
            (other, _) => Err(StoreError::Protocol(format!(
                "giftd_move_withdrawal: {other:?}"
            ))),
        }
    }

    async fn rescue_withdrawals(
        &self,
        account_id: UserId,
        epoch: Option<Epoch>,
    ) -> Result<u64, StoreError> {
        let answer: Value = self
            .rpc(
                "giftd_fenced_rescue_withdrawals",
                json!({ "p_account_id": account_id, "p_epoch": epoch.unwrap_or(0) }),
            )
            .await?;
        fenced(&answer)?;
        let n = answer["rescued"].as_i64().ok_or_else(|| {
            StoreError::Protocol(format!("giftd_fenced_rescue_withdrawals: {answer}"))
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn withdrawal(&self, id: WithdrawalId) -> Result<Option<Withdrawal>, StoreError> {
        let row: Option<WithdrawalRow> = self
            .rpc("giftd_get_withdrawal", json!({ "p_id": id }))
            .await?;
        row.map(WithdrawalRow::into_withdrawal).transpose()
    }

    async fn list_withdrawals(
        &self,
        filter: &WithdrawalFilter,
    ) -> Result<Vec<Withdrawal>, StoreError> {
        // RPC arguments are never null (postrust 3.1 reads a JSON null as ""): i64::MIN and an
        // empty list mean "any".
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        let rows: Vec<WithdrawalRow> = self
            .rpc(
                "giftd_list_withdrawals",
                json!({
                    "p_account_id": filter.account_id.unwrap_or(i64::MIN),
                    "p_owner_id": filter.owner.unwrap_or(i64::MIN),
                    "p_states": states.join(","),
                    "p_limit": i64::try_from(filter.limit).unwrap_or(i64::MAX),
                }),
            )
            .await?;
        rows.into_iter()
            .map(WithdrawalRow::into_withdrawal)
            .collect()
    }

    async fn create_link_token(
        &self,
        web_user: WebUserId,
        label: &LinkLabel,
        ttl: Duration,
    ) -> Result<LinkToken, StoreError> {
        let ttl_ms = link_token_ttl(ttl)?;
        let token = new_link_token();
        let expires_at_ms: i64 = self
            .rpc(
                "giftd_create_link_token",
                json!({
                    "p_token_hash": link_token_hash(&token),
                    "p_web_user_id": web_user.to_string(),
                    "p_label": label.as_str(),
                    "p_ttl_ms": ttl_ms,
                }),
            )
            .await?;
        Ok(LinkToken {
            token: Secret::new(token),
            web_user,
            label: label.clone(),
            expires_at_ms,
        })
    }

    async fn peek_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
    ) -> Result<LinkOutcome, StoreError> {
        let a: LinkAnswer = self
            .rpc(
                "giftd_peek_link_token",
                json!({
                    "p_token_hash": link_token_hash(token),
                    "p_telegram_user_id": telegram_user,
                }),
            )
            .await?;
        a.outcome("giftd_peek_link_token")
    }

    async fn consume_link_token(
        &self,
        token: &str,
        telegram_user: UserId,
        replace: bool,
    ) -> Result<LinkOutcome, StoreError> {
        let a: LinkAnswer = self
            .rpc(
                "giftd_consume_link_token",
                json!({
                    "p_token_hash": link_token_hash(token),
                    "p_telegram_user_id": telegram_user,
                    "p_replace": replace,
                }),
            )
            .await?;
        a.outcome("giftd_consume_link_token")
    }

    async fn replaced_links(&self, web_user: WebUserId) -> Result<Vec<ReplacedLink>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            telegram_user_id: UserId,
            replaced_by: WebUserId,
            replaced_at_ms: i64,
        }
        let rows: Vec<Row> = self
            .rpc(
                "giftd_replaced_links",
                json!({ "p_web_user_id": web_user.to_string() }),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ReplacedLink {
                telegram_user: r.telegram_user_id,
                replaced_by: r.replaced_by,
                replaced_at_ms: r.replaced_at_ms,
            })
            .collect())
    }

    async fn linked_telegram_user(
        &self,
        web_user: WebUserId,
    ) -> Result<Option<UserId>, StoreError> {
        self.rpc(
            "giftd_linked_telegram_user",
            json!({ "p_web_user_id": web_user.to_string() }),
        )
        .await
    }

    async fn claim_notifications(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows: Vec<NotificationRow> = self
            .rpc(
                "giftd_claim_notifications",
                json!({
                    "p_limit": i32::try_from(limit).unwrap_or(i32::MAX),
                    "p_lease_ms": i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                }),
            )
            .await?;
        rows.into_iter()
            .map(NotificationRow::into_notification)
            .collect()
    }

    async fn finish_notifications(
        &self,
        ids: &[NotificationId],
        outcome: &NotificationOutcome,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        // RPC arguments are never null (postrust 3.1 reads a JSON null as ""): "" is no error.
        let (state, error) = match outcome {
            NotificationOutcome::Sent => ("sent", ""),
            NotificationOutcome::Undeliverable { reason } => ("undeliverable", reason.as_str()),
            NotificationOutcome::Released => ("pending", ""),
        };
        let n: i64 = self
            .rpc(
                "giftd_finish_notifications",
                json!({ "p_ids": ids, "p_state": state, "p_error": error }),
            )
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn requeue_undelivered(
        &self,
        user: UserId,
        max_age: Duration,
    ) -> Result<u64, StoreError> {
        let n: i64 = self
            .rpc(
                "giftd_requeue_notifications",
                json!({
                    "p_user_id": user,
                    "p_max_age_ms": i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX),
                }),
            )
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn note_language(
        &self,
        user: UserId,
        code: &str,
        chosen: bool,
    ) -> Result<PlayerLanguage, StoreError> {
        super::player::check_language_code(code)?;
        let row: LanguageRow = self
            .rpc(
                "giftd_note_language",
                json!({ "p_user_id": user, "p_lang": code, "p_chosen": chosen }),
            )
            .await?;
        Ok(row.into())
    }

    async fn language(&self, user: UserId) -> Result<Option<PlayerLanguage>, StoreError> {
        let row: Option<LanguageRow> = self
            .rpc("giftd_player_language", json!({ "p_user_id": user }))
            .await?;
        Ok(row.map(Into::into))
    }

    async fn append_sync_log(&self, log: &SyncLog) -> Result<(), StoreError> {
        // The row's id, or null when this pass was already written.
        let _: Option<i64> = self
            .rpc("giftd_append_sync_log", json!({ "p_log": log }))
            .await?;
        Ok(())
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError> {
        check_lease_args(name, holder, Some(ttl))?;
        let a: LeaseReply = self
            .rpc(
                "giftd_take_lease",
                json!({ "p_name": name, "p_holder": holder, "p_ttl_ms": millis(ttl) }),
            )
            .await?;
        Ok(a.into_answer())
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
        ttl: Duration,
    ) -> Result<LeaseAnswer, StoreError> {
        check_lease_args(name, holder, Some(ttl))?;
        let a: LeaseReply = self
            .rpc(
                "giftd_renew_lease",
                json!({
                    "p_name": name, "p_holder": holder, "p_epoch": epoch,
                    "p_ttl_ms": millis(ttl),
                }),
            )
            .await?;
        Ok(a.into_answer())
    }

    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        epoch: Epoch,
    ) -> Result<bool, StoreError> {
        check_lease_args(name, holder, None)?;
        self.rpc(
            "giftd_release_lease",
            json!({ "p_name": name, "p_holder": holder, "p_epoch": epoch }),
        )
        .await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let row: Option<LeaseRow> = self
            .rpc("giftd_get_lease", json!({ "p_name": name }))
            .await?;
        Ok(row.map(LeaseRow::into_lease))
    }

    async fn gift_types(&self) -> Result<Vec<GiftType>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            gift_id: i64,
            title: Option<String>,
            stars: i64,
            is_unique: bool,
        }
        // The catalogue is Telegram's list of gift kinds: hundreds of rows, one request.
        let request = self
            .client
            .from("gifts")
            .select("gift_id,title,stars,is_unique")
            .order("gift_id.asc")
            .build();
        let body = self.send(request, "table gifts").await?;
        let rows: Vec<Row> = serde_json::from_slice(&body.0)
            .map_err(|e| StoreError::Protocol(format!("gifts: {e}: {}", body.preview())))?;
        Ok(rows
            .into_iter()
            .map(|r| GiftType {
                gift_id: r.gift_id,
                title: r.title,
                stars: r.stars,
                unique: r.is_unique,
            })
            .collect())
    }

    async fn desk(&self) -> Result<Vec<super::desk::AccountDesk>, StoreError> {
        let rows: Vec<super::desk::DeskRow> = self.rpc("giftd_desk", json!({})).await?;
        Ok(rows
            .into_iter()
            .map(super::desk::DeskRow::into_desk)
            .collect())
    }

    async fn record_balance(&self, account: UserId, stars: i64) -> Result<(), StoreError> {
        let request = self
            .client
            .rpc(
                "giftd_record_balance",
                json!({ "p_account_id": account, "p_stars": stars }).to_string(),
            )
            .build();
        self.send(request, "function giftd_record_balance").await?;
        Ok(())
    }
}

/// A lease as the giftd_*_lease functions return it.
#[derive(Debug, Deserialize)]
struct LeaseRow {
    name: String,
    holder: String,
    epoch: Epoch,
    expires_at_ms: i64,
    db_now_ms: i64,
}

impl LeaseRow {
    fn into_lease(self) -> Lease {
        Lease {
            name: self.name,
            holder: self.holder,
            epoch: self.epoch,
            expires_at_ms: self.expires_at_ms,
            db_now_ms: self.db_now_ms,
        }
    }
}

#[derive(Debug, Deserialize)]
struct LeaseReply {
    held: bool,
    lease: Option<LeaseRow>,
}

impl LeaseReply {
    fn into_answer(self) -> LeaseAnswer {
        match (self.held, self.lease) {
            (true, Some(l)) => LeaseAnswer::Held(l.into_lease()),
            (_, l) => LeaseAnswer::Refused(l.map(LeaseRow::into_lease)),
        }
    }
}

/// The refusal a `giftd_fenced_*` function answered, if it did.
fn fenced(answer: &Value) -> Result<(), StoreError> {
    if answer.get("error").and_then(Value::as_str) != Some("fenced") {
        return Ok(());
    }
    Err(StoreError::Fenced {
        lease: answer["lease"].as_str().unwrap_or("?").to_owned(),
        epoch: answer["epoch"].as_i64(),
        current: answer["current"].as_i64(),
    })
}

/// What `giftd_peek_link_token` and `giftd_consume_link_token` answer.
#[derive(Deserialize)]
struct LinkAnswer {
    state: String,
    #[serde(default)]
    web_user_id: Option<WebUserId>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    replaces: Option<WebUserId>,
    #[serde(default)]
    replaces_label: Option<String>,
}

impl LinkAnswer {
    fn outcome(self, function: &str) -> Result<LinkOutcome, StoreError> {
        let label = self.label.unwrap_or_default();
        let replaces = self.replaces.map(|web_user| Replaced {
            web_user,
            label: self.replaces_label.unwrap_or_default(),
        });
        match (self.state.as_str(), self.web_user_id, replaces) {
            ("ask", Some(web_user), replaces) => Ok(LinkOutcome::Ask {
                web_user,
                label,
                replaces,
            }),
            ("needs_replace", Some(web_user), Some(replaces)) => Ok(LinkOutcome::NeedsReplace {
                web_user,
                label,
                replaces,
            }),
            ("linked", Some(web_user), _) => Ok(LinkOutcome::Linked { web_user, label }),
            ("unknown", _, _) => Ok(LinkOutcome::Unknown),
            ("expired", _, _) => Ok(LinkOutcome::Expired),
            ("used", _, _) => Ok(LinkOutcome::Used),
            (other, _, _) => Err(StoreError::Protocol(format!("{function}: {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, body: &str, expected: &str, retryable: bool) {
        let e = error_from_response(status, None, body.as_bytes(), "function giftd_x", None);
        let text = e.to_string();
        assert!(text.contains(expected), "{status} {body}: {text}");
        assert_eq!(e.is_retryable(), retryable, "{status} {body}: {text}");
    }

    #[test]
    fn maps_postgrest_errors() {
        check(
            401,
            r#"{"code":"42501","message":"permission denied for function giftd_x"}"#,
            "probably the anon key",
            false,
        );
        check(
            403,
            r#"{"code":"42501","message":"denied"}"#,
            "service_role",
            false,
        );
        check(
            404,
            r#"{"code":"PGRST202","message":"Could not find the function"}"#,
            "function giftd_x does not exist in the database: apply migration 2026",
            false,
        );
        check(
            404,
            r#"{"code":"PGRST205","message":"Could not find the table public.inventory"}"#,
            "apply migration",
            false,
        );
        check(
            404,
            r#"{"code":"42P01","message":"relation does not exist"}"#,
            "apply migration",
            false,
        );
        check(
            401,
            r#"{"code":"PGRST301","message":"JWSError"}"#,
            "rejected giftd's key",
            false,
        );
        check(
            503,
            r#"{"code":"PGRST001","message":"no connection"}"#,
            "unavailable",
            true,
        );
        check(
            500,
            r#"{"code":"PGRST500","message":"Service temporarily unavailable"}"#,
            "unavailable",
            true,
        );
        check(502, "<html>bad gateway</html>", "bad gateway", true);
        check(429, "", "rate limit", true);
        check(
            409,
            r#"{"code":"40P01","message":"deadlock detected"}"#,
            "busy",
            true,
        );
        check(
            500,
            r#"{"code":"57P01","message":"terminating connection"}"#,
            "unavailable",
            true,
        );
        check(
            400,
            r#"{"code":"23514","message":"violates check"}"#,
            "violates check",
            false,
        );
    }

    #[test]
    fn reads_the_role_of_a_key_without_printing_it() {
        // {"role":"anon"} as a JWT payload; signature irrelevant.
        let key = Secret::new("eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.sig");
        assert_eq!(jwt_role(&key).as_deref(), Some("anon"));
        assert_eq!(jwt_role(&Secret::new("not-a-jwt")), None);
        let store = SupabaseStore::new(&SupabaseConfig {
            rest_url: "http://127.0.0.1:9/".into(),
            service_role_key: key,
            request_timeout: Duration::from_secs(1),
            listen_url: None,
        })
        .unwrap();
        let debug = format!("{store:?}");
        assert!(!debug.contains("eyJ"), "{debug}");
        assert!(debug.contains("http://127.0.0.1:9"), "{debug}");
    }
}
