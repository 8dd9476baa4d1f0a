//! The limit on what players send: a token bucket per user for commands and button presses.
//! (The pace of what the bot sends is [`super::pace`].)
//!
//! Pure: the time is passed in, so tests drive a clock by hand.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::gift::UserId;

/// What to do with one message or press from a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// Over the limit, the first time since the user was last allowed: answer "slow down" once.
    SlowDown,
    /// Over the limit again: ignore it (a button press still gets an empty answer).
    Drop,
}

/// A token bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketConfig {
    /// How many may come at once.
    pub burst: u32,
    /// Tokens regained per second.
    pub per_second: f64,
}

impl Default for BucketConfig {
    /// 20 at once, then two a second: a player paging quickly through an inventory is never
    /// held back; a script is.
    fn default() -> Self {
        BucketConfig {
            burst: 20,
            per_second: 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When the user was last told to slow down: once per [`WARN_EVERY`], however the flood
    /// comes (a trickle let through between refusals does not earn a second warning).
    warned_at: Option<Instant>,
}

/// At most one "slow down" per user in this long.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// A token bucket per user id (like teloxide's `Throttle`, but for incoming traffic): a flood
/// gets one "slow down" and costs a map entry and a counter.
#[derive(Debug)]
pub struct Limiter {
    config: BucketConfig,
    buckets: HashMap<UserId, Bucket>,
}

impl Limiter {
    pub fn new(config: BucketConfig) -> Self {
        Limiter {
            config,
            buckets: HashMap::new(),
        }
    }

    /// Counts one message or press from `user` at `now`.
    pub fn check(&mut self, user: UserId, now: Instant) -> Verdict {
        let burst = f64::from(self.config.burst.max(1));
        let b = self.buckets.entry(user).or_insert(Bucket {
            tokens: burst,
            at: now,
            warned_at: None,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.config.per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Allow
        } else if b
            .warned_at
            .is_none_or(|w| now.saturating_duration_since(w) >= WARN_EVERY)
        {
            b.warned_at = Some(now);
            Verdict::SlowDown
        } else {
            Verdict::Drop
        }
    }

    /// Forgets users whose bucket has refilled (they would start full anyway): keeps memory
    /// bounded by the users active in the last `burst / per_second` seconds.
    pub fn prune(&mut self, now: Instant) {
        let burst = f64::from(self.config.burst.max(1));
        let rate = self.config.per_second;
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
                || b.warned_at
                    .is_some_and(|w| now.saturating_duration_since(w) < WARN_EVERY)
        });
    }

    pub fn users(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: BucketConfig, at_ms: &[u64]) -> Vec<Verdict> {
        let t0 = Instant::now();
        let mut l = Limiter::new(config);
        at_ms
            .iter()
            .map(|ms| l.check(1, t0 + Duration::from_millis(*ms)))
            .collect()
    }

    fn check(config: BucketConfig, at_ms: &[u64], expected: &[Verdict]) {
        assert_eq!(run(config, at_ms), expected, "{at_ms:?}");
    }

    use Verdict::*;
    const TWO: BucketConfig = BucketConfig {
        burst: 2,
        per_second: 1.0,
    };

    #[test]
    fn bucket() {
        check(TWO, &[0, 0], &[Allow, Allow]);
        check(TWO, &[0, 0, 0, 0, 0], &[Allow, Allow, SlowDown, Drop, Drop]);
        check(TWO, &[0, 0, 0, 1000], &[Allow, Allow, SlowDown, Allow]);
        check(
            TWO,
            &[0, 0, 0, 1000, 1000],
            &[Allow, Allow, SlowDown, Allow, Drop],
        );
        check(
            TWO,
            &[0, 0, 0, 61_000, 61_000, 61_000],
            &[Allow, Allow, SlowDown, Allow, Allow, SlowDown],
        );
        check(TWO, &[0, 500, 1000, 1500], &[Allow, Allow, Allow, SlowDown]);
        check(TWO, &[0, 1000, 2000, 3000], &[Allow, Allow, Allow, Allow]);
        check(TWO, &[0, 0, 999], &[Allow, Allow, SlowDown]);
        check(
            TWO,
            &[0, 0, 5000, 5000, 5000],
            &[Allow, Allow, Allow, Allow, SlowDown],
        );
    }

    #[test]
    fn a_flood_gets_one_slow_down() {
        let times: Vec<u64> = (0..1000).map(|i| i / 100).collect();
        let v = run(BucketConfig::default(), &times);
        assert_eq!(v.iter().filter(|v| **v == SlowDown).count(), 1);
        assert_eq!(v.iter().filter(|v| **v == Allow).count(), 20);
    }

    #[test]
    fn users_have_their_own_buckets_and_full_ones_are_pruned() {
        let t0 = Instant::now();
        let mut l = Limiter::new(TWO);
        assert_eq!(l.check(1, t0), Allow);
        assert_eq!(l.check(1, t0), Allow);
        assert_eq!(l.check(1, t0), SlowDown);
        assert_eq!(l.check(2, t0), Allow);
        l.prune(t0 + Duration::from_millis(1500));
        assert_eq!(l.users(), 1, "user 2 refilled, user 1 not yet");
        l.prune(t0 + Duration::from_secs(3));
        assert_eq!(l.users(), 1, "user 1 is remembered while warned");
        l.prune(t0 + WARN_EVERY);
        assert_eq!(l.users(), 0);
    }
}
