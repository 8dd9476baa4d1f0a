//! Link tokens and web links in the Supabase store: the calls behind the link flow and what
//! `giftd_peek_link_token` and `giftd_consume_link_token` answer. Semantics in
//! [`crate::store::link`].

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::SupabaseStore;
use crate::gift::UserId;
use crate::secret::Secret;
use crate::store::{
    LinkLabel, LinkOutcome, LinkToken, Replaced, ReplacedLink, StoreError, WebUserId,
    link_token_hash, link_token_ttl, new_link_token,
};

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

/// [`Store::create_link_token`](crate::store::Store::create_link_token), through PostgREST.
pub(super) async fn create_link_token(
    store: &SupabaseStore,
    web_user: WebUserId,
    label: &LinkLabel,
    ttl: Duration,
) -> Result<LinkToken, StoreError> {
    let ttl_ms = link_token_ttl(ttl)?;
    let token = new_link_token();
    let expires_at_ms: i64 = store
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

/// [`Store::peek_link_token`](crate::store::Store::peek_link_token), through PostgREST.
pub(super) async fn peek_link_token(
    store: &SupabaseStore,
    token: &str,
    telegram_user: UserId,
) -> Result<LinkOutcome, StoreError> {
    let a: LinkAnswer = store
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

/// [`Store::consume_link_token`](crate::store::Store::consume_link_token), through PostgREST.
pub(super) async fn consume_link_token(
    store: &SupabaseStore,
    token: &str,
    telegram_user: UserId,
    replace: bool,
) -> Result<LinkOutcome, StoreError> {
    let a: LinkAnswer = store
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

/// [`Store::replaced_links`](crate::store::Store::replaced_links), through PostgREST.
pub(super) async fn replaced_links(
    store: &SupabaseStore,
    web_user: WebUserId,
) -> Result<Vec<ReplacedLink>, StoreError> {
    #[derive(Deserialize)]
    struct Row {
        telegram_user_id: UserId,
        replaced_by: WebUserId,
        replaced_at_ms: i64,
    }
    let rows: Vec<Row> = store
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

/// [`Store::linked_telegram_user`](crate::store::Store::linked_telegram_user), through PostgREST.
pub(super) async fn linked_telegram_user(
    store: &SupabaseStore,
    web_user: WebUserId,
) -> Result<Option<UserId>, StoreError> {
    store
        .rpc(
            "giftd_linked_telegram_user",
            json!({ "p_web_user_id": web_user.to_string() }),
        )
        .await
}
