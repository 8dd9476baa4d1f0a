//! A lease's term, as plain values every layer may use: the epoch that fences an account's
//! writes, and the times a lease lasts and is renewed. The task that takes and renews leases is
//! the `lease` module; what the store says about them, `store::lease`.

use std::time::Duration;

/// The term of a lease: raised by one each time a holder takes it after it was free, expired
/// or released. Epochs start at 1.
pub type Epoch = i64;

/// Whether `s` can be an instance's identity (`lease.instance`, or the one kept in the state
/// directory): 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn valid_identity(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// How long a lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    /// How long a take or renewal holds the lease, by the database's clock (15 s).
    pub ttl: Duration,
    /// How often the holder renews (5 s). Less than half the TTL, so one failed renewal
    /// leaves room for another.
    pub renew_every: Duration,
    /// How often an instance that does not hold the lease tries to take it (1 s), so a
    /// released lease is taken within this; a holder's term that runs out is tried just after
    /// its expiry.
    pub take_every: Duration,
    /// How long before the database could hand the lease to someone else this instance stops
    /// acting (3 s): room for clock-rate differences and for a call already under way.
    pub margin: Duration,
}

impl Default for LeaseTimes {
    fn default() -> Self {
        LeaseTimes {
            ttl: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            take_every: Duration::from_secs(1),
            margin: Duration::from_secs(3),
        }
    }
}

/// Lease times that cannot keep a lease safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease times: {0}")]
pub struct LeaseTimesError(String);

impl LeaseTimes {
    /// Times with a margin of a fifth of the TTL and takes tried every renewal or every
    /// second, whichever is sooner, checked.
    pub fn new(ttl: Duration, renew_every: Duration) -> Result<Self, LeaseTimesError> {
        LeaseTimes {
            ttl,
            renew_every,
            take_every: renew_every.min(Duration::from_secs(1)),
            margin: ttl / 5,
        }
        .validated()
    }

    /// Checks that these times keep a lease safely: `renew_every` under half the TTL, a margin
    /// that leaves a renewal before the local deadline.
    pub fn validated(self) -> Result<Self, LeaseTimesError> {
        let err = |s: String| Err(LeaseTimesError(s));
        if self.ttl < Duration::from_millis(200) || self.ttl > Duration::from_secs(3600) {
            return err(format!(
                "ttl {:?} must be between 200 ms and one hour",
                self.ttl
            ));
        }
        if self.renew_every.is_zero() || self.renew_every * 2 >= self.ttl {
            return err(format!(
                "renewal every {:?} must be more than zero and less than half the ttl ({:?})",
                self.renew_every, self.ttl
            ));
        }
        if self.take_every.is_zero() || self.take_every > self.ttl {
            return err(format!(
                "takes every {:?} must be more than zero and at most the ttl ({:?})",
                self.take_every, self.ttl
            ));
        }
        if self.margin.is_zero() || self.margin + self.renew_every >= self.ttl {
            return err(format!(
                "margin {:?} must be more than zero and leave a renewal ({:?}) within the ttl \
                 ({:?})",
                self.margin, self.renew_every, self.ttl
            ));
        }
        Ok(self)
    }

    /// How long after the start of a successful take or renewal this instance may act.
    pub fn hold_for(&self) -> Duration {
        self.ttl - self.margin
    }

    /// How soon a failed call is tried again.
    pub(crate) fn retry_after(&self) -> Duration {
        self.renew_every.min(Duration::from_secs(1))
    }
}
