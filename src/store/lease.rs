//! What the store says about leases, and the fence every account write carries.
//!
//! A lease is a row per name (`account:<deposit account id>` for each deposit account, `bot`
//! for the companion bot) with its holder (an instance id), its epoch and its expiry by the
//! database's clock. Taking a free or expired lease starts a new term (the epoch goes up by
//! one); renewing or taking again the lease one already holds keeps the epoch. Writes that only
//! the account's active instance makes (mirror batches, withdrawal claims, rescues and the
//! worker's moves) carry the epoch of the term they were decided in, and the store refuses them
//! ([`super::StoreError::Fenced`], nothing written) once the epoch moved on.
//!
//! Pure values: the SQL is in the backends; the task that takes and renews is the `lease` module.

use std::time::Duration;

use crate::gift::UserId;

pub use crate::term::Epoch;

/// The lease name of a deposit account.
pub fn account_lease(account: UserId) -> String {
    format!("account:{account}")
}

/// The deposit account a lease name names (`account:<id>`), if it names one.
pub fn account_of(lease: &str) -> Option<UserId> {
    lease.strip_prefix("account:")?.parse().ok()
}

/// The lease name of the companion bot (it runs on exactly one instance).
pub const BOT_LEASE: &str = "bot";

/// The longest lease name the stores accept.
pub const MAX_LEASE_NAME: usize = 200;

/// A lease as the database holds it, read in the same transaction as the call that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// The instance that took it last (it may have expired or been released since).
    pub holder: String,
    pub epoch: Epoch,
    /// Unix ms, by the database's clock: after it, anyone may take the lease.
    pub expires_at_ms: i64,
    /// The database's clock when it answered (unix ms).
    pub db_now_ms: i64,
}

impl Lease {
    /// Whether someone holds it now, by the database's clock.
    pub fn is_live(&self) -> bool {
        self.expires_at_ms > self.db_now_ms
    }

    /// How long it has left by the database's clock (zero once expired).
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(
            u64::try_from(self.expires_at_ms.saturating_sub(self.db_now_ms)).unwrap_or(0),
        )
    }
}

/// What a take or a renewal came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// The caller holds the lease, at this epoch, until `expires_at_ms`.
    Held(Lease),
    /// Refused: another instance holds it (take), or the term the caller renews is over
    /// (renew: another holder, another epoch). The lease as it is now; `None` when the
    /// database has no such lease.
    Refused(Option<Lease>),
}

impl LeaseAnswer {
    /// The lease when the caller holds it.
    pub fn held(&self) -> Option<&Lease> {
        match self {
            LeaseAnswer::Held(l) => Some(l),
            LeaseAnswer::Refused(_) => None,
        }
    }
}

/// Checks a lease call's arguments before any database sees them.
pub(super) fn check_lease_args(
    name: &str,
    holder: &str,
    ttl: Option<Duration>,
) -> Result<(), super::StoreError> {
    let bad = |why: String| Err(super::StoreError::InvalidLease(why));
    if name.is_empty() || name.len() > MAX_LEASE_NAME {
        return bad(format!(
            "lease name {name:?} must be 1 to {MAX_LEASE_NAME} bytes"
        ));
    }
    if holder.is_empty() || holder.len() > MAX_LEASE_NAME {
        return bad(format!(
            "lease holder {holder:?} must be 1 to {MAX_LEASE_NAME} bytes"
        ));
    }
    if let Some(ttl) = ttl
        && (ttl < Duration::from_millis(100) || ttl > Duration::from_secs(86_400))
    {
        return bad(format!(
            "lease ttl {ttl:?} must be between 100 ms and one day"
        ));
    }
    Ok(())
}

/// A duration in whole milliseconds for the stores (saturating).
pub(super) fn millis(d: Duration) -> i64 {
    millis_of(d)
}

/// A duration in whole milliseconds (saturating).
pub fn millis_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_remaining_time() {
        assert_eq!(account_lease(42), "account:42");
        assert_eq!(account_of("account:42"), Some(42));
        assert_eq!(account_of("bot"), None);
        let lease = Lease {
            name: account_lease(42),
            holder: "a".into(),
            epoch: 3,
            expires_at_ms: 10_500,
            db_now_ms: 10_000,
        };
        assert!(lease.is_live());
        assert_eq!(lease.remaining(), Duration::from_millis(500));
        let expired = Lease {
            db_now_ms: 11_000,
            ..lease.clone()
        };
        assert!(!expired.is_live());
        assert_eq!(expired.remaining(), Duration::ZERO);
        assert_eq!(LeaseAnswer::Held(lease.clone()).held(), Some(&lease));
        assert_eq!(LeaseAnswer::Refused(None).held(), None);
    }

    #[test]
    fn bad_arguments_are_refused_before_the_database() {
        let ok = Some(Duration::from_secs(15));
        assert!(check_lease_args("account:1", "h", ok).is_ok());
        assert!(check_lease_args("", "h", ok).is_err());
        assert!(check_lease_args("x", "", ok).is_err());
        assert!(check_lease_args(&"x".repeat(201), "h", ok).is_err());
        assert!(check_lease_args("x", "h", Some(Duration::from_millis(5))).is_err());
        assert!(check_lease_args("x", "h", None).is_ok());
    }
}
