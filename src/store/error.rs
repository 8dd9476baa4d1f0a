//! The store's error type: what went wrong, whether retrying can help, and what the operator
//! should do about it.

use std::time::Duration;

use crate::gift::{ItemKey, Status, UserId};

/// A store failure. Callers branch on the variant; [`StoreError::is_retryable`] separates
/// transient failures (retry with backoff: nothing was written) from permanent ones.
///
/// Messages never contain keys or tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database or its API cannot be reached or answered 5xx (connection refused, reset,
    /// DNS, 500/502/503/504, database restarting).
    #[error("database unavailable: {0}")]
    Unavailable(String),

    /// No answer within the configured request timeout.
    #[error("database request timed out after {0:?}")]
    Timeout(Duration),

    /// HTTP 429.
    #[error("database API rate limit hit (HTTP 429){}", .retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },

    /// Contention: SQLite busy or locked, a PostgreSQL deadlock, serialization failure or lock
    /// timeout. The transaction was rolled back.
    #[error("database busy: {0}")]
    Busy(String),

    /// The key may not do this (PostgREST 401/403, SQLSTATE 42501).
    #[error(
        "permission denied by the database ({detail}): giftd's key{} is probably the anon key, \
         not the service_role key; set SUPABASE_SERVICE_ROLE_KEY to the service_role key from \
         the Supabase dashboard (Project Settings, API)",
        .key_role.as_deref().map(|r| format!(" (its role claim is `{r}`)")).unwrap_or_default()
    )]
    PermissionDenied {
        detail: String,
        /// The `role` claim of the configured key, when it is a readable JWT.
        key_role: Option<String>,
    },

    /// The API refused the key itself (malformed, expired, signed with another secret).
    #[error(
        "the database API rejected giftd's key ({detail}): check SUPABASE_SERVICE_ROLE_KEY \
         (the service_role key of this project)"
    )]
    InvalidKey { detail: String },

    /// A table, column or function giftd uses does not exist: migrations are missing.
    #[error(
        "{object} does not exist in the database: apply migration {migration} and those \
         before it (`supabase db push`, or `giftd schema | psql <database url>`)"
    )]
    SchemaMissing {
        object: String,
        migration: &'static str,
    },

    /// The schema is older than this giftd needs.
    #[error(
        "{backend} schema version {found} is older than version {required} this giftd needs: \
         {}",
        if *.backend == "sqlite" {
            format!("giftd upgrades the embedded database when it opens it (migration {migration}); restart giftd")
        } else {
            format!("apply migration {migration} and the ones after it (`supabase db push`, or `giftd schema | psql <database url>`)")
        }
    )]
    SchemaTooOld {
        backend: &'static str,
        found: u32,
        required: u32,
        migration: &'static str,
    },

    /// The schema is newer than this giftd knows: the binary is older than the database.
    #[error(
        "database schema version {found} is newer than version {required} this giftd knows: \
         upgrade giftd"
    )]
    SchemaTooNew { found: u32, required: u32 },

    #[error("item {0} not found")]
    ItemNotFound(ItemKey),

    #[error("item {key} is not credited to user {user_id}")]
    NotOwner { key: ItemKey, user_id: UserId },

    #[error("item {key} is {status}, not held")]
    NotHeld { key: ItemKey, status: Status },

    #[error("item {key} is already credited to user {owner}")]
    AlreadyOwned { key: ItemKey, owner: UserId },

    #[error("withdrawal {0} not found")]
    WithdrawalNotFound(i64),

    /// The request is not where the move starts (another worker, an operator or a replay moved
    /// it first): nothing was written.
    #[error(
        "withdrawal {id} is {state}{}, so it cannot become {to}",
        holder.as_ref().map(|(w, a)| format!(" (held by {w}, attempt {a})")).unwrap_or_default()
    )]
    WithdrawalMoveRefused {
        id: i64,
        state: crate::withdrawal::RequestState,
        to: crate::withdrawal::RequestState,
        holder: Option<(String, i32)>,
    },

    /// Only the player who asked may cancel their request.
    #[error("withdrawal {id} belongs to another player")]
    WithdrawalNotOwner { id: i64 },

    /// Paying this fee would pass today's budget: an operator decides.
    #[error(
        "withdrawal {id}: {fee} Stars would bring today's spending to {total}, over the daily budget of {budget}"
    )]
    OverDailyBudget {
        id: i64,
        fee: i64,
        total: i64,
        budget: i64,
    },

    /// A link token may live at most `max` (it is a bearer credential for a web account).
    #[error("a link token may be valid for at most {max:?}, not {ttl:?}: ask for a shorter ttl")]
    LinkTokenTtl { ttl: Duration, max: Duration },

    /// The caller built a batch the store must not apply (a bug in giftd).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),

    /// A write decided under a lease term that is over: another instance took the lease (a
    /// newer epoch), or an unfenced write met a lease someone holds. Nothing was written.
    /// Permanent: this instance lost the lease and must stop writing for that account.
    #[error(
        "{lease}: {}; this giftd instance lost the lease and stops writing for that account \
         (nothing was written; the holder of the lease carries on)",
        fenced_detail(*.epoch, *.current)
    )]
    Fenced {
        /// The lease name, e.g. `account:12345`.
        lease: String,
        /// The epoch the write carried; `None` for an unfenced write.
        epoch: Option<super::lease::Epoch>,
        /// The lease's epoch in the database; `None` when there is no such lease.
        current: Option<super::lease::Epoch>,
    },

    /// A language code that is not a language tag (1 to 35 letters, digits, `-`, `_`).
    #[error("invalid language code {0:?}: expected a language tag such as \"en\" or \"fr-CA\"")]
    InvalidLanguage(String),

    /// A lease call with arguments the store refuses (a bug in giftd).
    #[error("invalid lease call: {0}")]
    InvalidLease(String),

    /// The embedded database file is held by another giftd process.
    #[error(
        "the embedded database {} is in use by another giftd process{} (it holds the lock on \
         {}): only one `giftd run` may use an embedded database; stop the other one, or give \
         this one its own `store.state_dir` (`giftd inventory`, `giftd withdrawals` and \
         `giftd check` work beside it)",
        .path.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), .lock.display()
    )]
    InUse {
        path: std::path::PathBuf,
        lock: std::path::PathBuf,
        /// The process id the holder wrote into the lock file, when readable.
        pid: Option<u32>,
    },

    /// The database refused the request for a reason none of the above covers.
    #[error("database refused the request ({code}): {message}")]
    Rejected { code: String, message: String },

    /// An answer giftd cannot read (a proxy's HTML page, an unexpected shape).
    #[error("unexpected answer from the database: {0}")]
    Protocol(String),

    /// The embedded database failed for good (corrupt file, read-only file, disk full...).
    #[error("embedded database: {0}")]
    Sqlite(String),
}

fn fenced_detail(epoch: Option<i64>, current: Option<i64>) -> String {
    match (epoch, current) {
        (Some(e), Some(c)) => format!(
            "the write carried lease epoch {e} but the lease is at epoch {c} (another giftd \
             instance took it over)"
        ),
        (Some(e), None) => {
            format!("the write carried lease epoch {e} but the lease does not exist")
        }
        (None, Some(c)) => {
            format!("an unfenced write met the lease held by another giftd instance at epoch {c}")
        }
        (None, None) => "the write was fenced".to_owned(),
    }
}

impl StoreError {
    /// Whether the same call may succeed later. A retryable failure wrote nothing.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::Timeout(_)
                | StoreError::RateLimited { .. }
                | StoreError::Busy(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_and_permanent() {
        let retryable = [
            StoreError::Unavailable("connection refused".into()),
            StoreError::Timeout(Duration::from_secs(10)),
            StoreError::RateLimited { retry_after: None },
            StoreError::Busy("database is locked".into()),
        ];
        for e in &retryable {
            assert!(e.is_retryable(), "{e}");
        }
        let permanent = [
            StoreError::PermissionDenied {
                detail: "42501".into(),
                key_role: Some("anon".into()),
            },
            StoreError::InvalidKey {
                detail: "PGRST301".into(),
            },
            StoreError::SchemaMissing {
                object: "function giftd_apply_batch".into(),
                migration: "x.sql",
            },
            StoreError::LinkTokenTtl {
                ttl: Duration::from_secs(90_000),
                max: Duration::from_secs(86_400),
            },
            StoreError::Fenced {
                lease: "account:1".into(),
                epoch: Some(1),
                current: Some(2),
            },
            StoreError::Rejected {
                code: "23514".into(),
                message: "check".into(),
            },
        ];
        for e in &permanent {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn fenced_says_the_lease_was_lost_and_writing_stops() {
        let e = StoreError::Fenced {
            lease: "account:7".into(),
            epoch: Some(3),
            current: Some(4),
        };
        let text = e.to_string();
        assert!(text.starts_with("account:7: "), "{text}");
        assert!(
            text.contains("epoch 3") && text.contains("epoch 4"),
            "{text}"
        );
        assert!(text.contains("lost the lease and stops writing"), "{text}");
        let e = StoreError::Fenced {
            lease: "account:7".into(),
            epoch: None,
            current: Some(4),
        };
        assert!(e.to_string().contains("unfenced write"), "{e}");
    }

    #[test]
    fn permission_denied_points_at_the_anon_key() {
        let e = StoreError::PermissionDenied {
            detail: "permission denied for function giftd_schema_version".into(),
            key_role: Some("anon".into()),
        };
        let text = e.to_string();
        assert!(text.contains("anon key"), "{text}");
        assert!(text.contains("service_role"), "{text}");
        assert!(text.contains("role claim is `anon`"), "{text}");
    }
}
