//! Rate limits, both ways: a token bucket per user for what players send (commands and button
//! presses), and the pace of what the bot sends (Telegram's limits: about one message per
//! second in one chat, about 30 per second overall; core.telegram.org/bots/faq, "My bot is
//! hitting limits").
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

/// What a message is, for its share of the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An answer to what the player just did: as soon as Telegram allows.
    Reply,
    /// A notification: at most `notice_per_second` overall and one per `notice_per_chat` in a
    /// chat, so replies always find room in the overall and the per-chat limits.
    Notice,
}

/// The pace of outgoing messages: at most one per `per_chat` in one chat and
/// `overall_per_second` overall, evenly spaced; notifications take a smaller share
/// ([`Class::Notice`]). [`Pacer::try_acquire`] books a send at the instant it goes.
#[derive(Debug)]
pub struct Pacer {
    per_chat: Duration,
    notice_per_chat: Duration,
    overall_interval: Duration,
    notice_interval: Duration,
    /// The last send in each chat.
    last: HashMap<UserId, Instant>,
    /// When the next message may go overall, and the next notification.
    overall_next: Option<Instant>,
    notice_next: Option<Instant>,
    /// Telegram said FLOOD_WAIT: nothing before this.
    held_until: Option<Instant>,
}

fn interval(per_second: u32) -> Duration {
    // Rounded up: `per_second` intervals must not fit in one second.
    Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(per_second.max(1))))
}

impl Pacer {
    /// Telegram's documented pace with a margin (the interval Telegram measures starts when a
    /// request arrives, which network jitter moves): one message per 1.05 s in one chat, 28 a
    /// second overall, evenly spaced; notifications at most 20 a second and one per 3 s in a
    /// chat (they are grouped per player, so nothing is lost by waiting).
    pub fn telegram() -> Self {
        Pacer::new(Duration::from_millis(1050), 28, Duration::from_secs(3), 20)
    }

    pub fn new(
        per_chat: Duration,
        overall_per_second: u32,
        notice_per_chat: Duration,
        notice_per_second: u32,
    ) -> Self {
        Pacer {
            per_chat,
            notice_per_chat: notice_per_chat.max(per_chat),
            overall_interval: interval(overall_per_second),
            notice_interval: interval(notice_per_second),
            last: HashMap::new(),
            overall_next: None,
            notice_next: None,
            held_until: None,
        }
    }

    /// Books a send to `chat` at `now` if the limits allow it; otherwise says when to ask
    /// again (nothing is booked). Booking at the instant of sending, not ahead of time, keeps a
    /// task that wakes late (a loaded machine) from sending in a burst.
    pub fn try_acquire(&mut self, chat: UserId, class: Class, now: Instant) -> Result<(), Instant> {
        let mut at = now;
        if let Some(h) = self.held_until {
            at = at.max(h);
        }
        if let Some(last) = self.last.get(&chat) {
            at = at.max(
                *last
                    + match class {
                        Class::Reply => self.per_chat,
                        Class::Notice => self.notice_per_chat,
                    },
            );
        }
        if let Some(n) = self.overall_next {
            at = at.max(n);
        }
        if class == Class::Notice
            && let Some(n) = self.notice_next
        {
            at = at.max(n);
        }
        if at > now {
            return Err(at);
        }
        self.last.insert(chat, now);
        self.overall_next = Some(now + self.overall_interval);
        if class == Class::Notice {
            self.notice_next = Some(now + self.notice_interval);
        }
        Ok(())
    }

    /// The instant a caller asking from `now` on gets to send to `chat`, booked (what a
    /// sequence of [`Pacer::try_acquire`] calls, each retried when told, comes to).
    pub fn reserve(&mut self, chat: UserId, class: Class, now: Instant) -> Instant {
        let mut t = now;
        loop {
            match self.try_acquire(chat, class, t) {
                Ok(()) => return t,
                Err(at) => t = at,
            }
        }
    }

    /// Telegram said FLOOD_WAIT: nothing goes before `until`, in any chat.
    pub fn hold_until(&mut self, until: Instant) {
        self.held_until = Some(self.held_until.map_or(until, |h| h.max(until)));
    }

    /// Forgets chats whose last send is older than any interval.
    pub fn prune(&mut self, now: Instant) {
        let keep = self.notice_per_chat;
        self.last.retain(|_, at| *at + keep > now);
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

    fn slots(p: &mut Pacer, sends: &[(UserId, Class)]) -> Vec<u128> {
        let t0 = Instant::now();
        sends
            .iter()
            .map(|(c, class)| p.reserve(*c, *class, t0).duration_since(t0).as_millis())
            .collect()
    }

    use Class::{Notice as N, Reply as R};

    #[test]
    fn pace_per_chat_and_overall() {
        let new = || Pacer::new(Duration::from_secs(1), 10, Duration::from_secs(3), 5);
        assert_eq!(
            slots(&mut new(), &[(1, R), (1, R), (1, R)]),
            [0, 1000, 2000]
        );
        assert_eq!(
            slots(&mut new(), &[(1, R), (2, R), (3, R), (4, R)]),
            [0, 100, 200, 300]
        );
        assert_eq!(slots(&mut new(), &[(1, R), (2, R), (1, R)]), [0, 100, 1000]);
        // Notifications: one per 3 s in a chat, 5 a second overall; replies still go.
        assert_eq!(
            slots(&mut new(), &[(1, N), (1, N), (1, R)]),
            [0, 3000, 4000]
        );
        assert_eq!(
            slots(&mut new(), &[(1, N), (2, N), (3, R), (4, N)]),
            [0, 200, 300, 400]
        );
    }

    #[test]
    fn telegram_pace_sends_thirty_a_second_at_most() {
        for class in [R, N] {
            let mut p = Pacer::telegram();
            let t0 = Instant::now();
            let at: Vec<Instant> = (0..300).map(|c| p.reserve(c, class, t0)).collect();
            for (i, a) in at.iter().enumerate() {
                let n = at
                    .iter()
                    .filter(|b| **b >= *a && **b < *a + Duration::from_secs(1))
                    .count();
                assert!(n <= 30, "{n} sends in the second after send {i}");
            }
            assert!(at[299].duration_since(t0) >= Duration::from_millis(9000));
        }
    }

    #[test]
    fn a_flood_wait_holds_every_chat() {
        let t0 = Instant::now();
        let mut p = Pacer::telegram();
        p.hold_until(t0 + Duration::from_secs(7));
        assert_eq!(p.reserve(5, R, t0), t0 + Duration::from_secs(7));
        assert_eq!(
            p.reserve(6, N, t0),
            t0 + Duration::from_secs(7) + interval(28)
        );
    }
}
