//! The shared PostgREST helpers of the Supabase store: one request with the store's timeout
//! ([`SupabaseStore::send`]), a call of a `giftd_*` function ([`SupabaseStore::rpc`]), the
//! mapping of PostgREST's and Postgres's errors onto [`StoreError`] (what is retryable, what
//! names a missing migration, what is the key's fault), and the answers the functions share
//! (`{error: ...}`, `fenced`).
//!
//! Must never: put the key in an error (reqwest's errors name the URL, never the headers).

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::SupabaseStore;
use crate::gift::MsgId;
use crate::secret::Secret;
use crate::store::{StoreError, migration_for};

impl SupabaseStore {
    pub(super) async fn send(
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

    pub(super) async fn rpc<T: DeserializeOwned>(
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
pub(super) struct Body(pub(super) Vec<u8>);

impl Body {
    /// The start of the body, for error messages.
    pub(super) fn preview(&self) -> String {
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
                migration: migration_for(crate::store::SCHEMA_VERSION),
            };
        }
        "PGRST205" | "42P01" | "PGRST204" | "42703" => {
            return StoreError::SchemaMissing {
                object: format!("{object} ({message})"),
                migration: migration_for(crate::store::SCHEMA_VERSION),
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
pub(super) fn jwt_role(key: &Secret) -> Option<String> {
    use base64::Engine;
    let payload = key.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("role")?.as_str().map(str::to_owned)
}

/// The `{error: ...}` answers of the giftd_* functions.
#[derive(Debug, Deserialize)]
pub(super) struct FnAnswer {
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(super) id: Option<i64>,
    #[serde(default)]
    pub(super) changed: Option<bool>,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) upgraded_into: Option<MsgId>,
    #[serde(default)]
    pub(super) owner_id: Option<i64>,
}

/// The refusal a `giftd_fenced_*` function answered, if it did.
pub(super) fn fenced(answer: &Value) -> Result<(), StoreError> {
    if answer.get("error").and_then(Value::as_str) != Some("fenced") {
        return Ok(());
    }
    Err(StoreError::Fenced {
        lease: answer["lease"].as_str().unwrap_or("?").to_owned(),
        epoch: answer["epoch"].as_i64(),
        current: answer["current"].as_i64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SupabaseConfig;

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
