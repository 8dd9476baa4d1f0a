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
    /// Told to slow down since the last allowed message.
    warned: bool,
}

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
            warned: false,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.config.per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.warned = false;
            Verdict::Allow
        } else if !b.warned {
            b.warned = true;
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
        });
    }

    pub fn users(&self) -> usize {
        self.buckets.len()
    }
}

/// The pace of outgoing messages: at most one per `per_chat` in one chat, at most
/// `overall_burst` at once and `overall_per_second` per second overall. [`Pacer::reserve`] says
/// when a message may go and books that slot.
#[derive(Debug)]
pub struct Pacer {
    per_chat: Duration,
    overall_interval: Duration,
    /// When the next message may go in each chat.
    chats: HashMap<UserId, Instant>,
    /// When the next message may go overall (a virtual schedule, GCRA style).
    overall_next: Option<Instant>,
    overall_burst: u32,
}

impl Pacer {
    /// Telegram's documented pace with a margin (the interval Telegram measures starts when a
    /// request arrives, which network jitter moves): one message per 1.05 s in one chat, 28 a
    /// second overall, evenly spaced (a burst followed by the steady rate would put nearly
    /// twice the rate in the first second).
    pub fn telegram() -> Self {
        Pacer::new(Duration::from_millis(1050), 28, 1)
    }

    pub fn new(per_chat: Duration, overall_per_second: u32, overall_burst: u32) -> Self {
        Pacer {
            per_chat,
            // Rounded up: 30 intervals must not fit in one second.
            overall_interval: Duration::from_nanos(
                1_000_000_000u64.div_ceil(u64::from(overall_per_second.max(1))),
            ),
            chats: HashMap::new(),
            overall_next: None,
            overall_burst: overall_burst.max(1),
        }
    }

    /// Books a send to `chat` at `now` if both limits allow it; otherwise says when to ask
    /// again (nothing is booked). Booking at the instant of sending, not ahead of time, keeps a
    /// task that wakes late (a loaded machine) from sending in a burst.
    pub fn try_acquire(&mut self, chat: UserId, now: Instant) -> Result<(), Instant> {
        let chat_at = self.chats.get(&chat).copied().unwrap_or(now);
        // GCRA: the overall schedule may run up to `burst - 1` intervals ahead of now.
        let tolerance = self.overall_interval * (self.overall_burst - 1);
        let theoretical = self.overall_next.unwrap_or(now).max(now);
        let overall_at = theoretical.checked_sub(tolerance).unwrap_or(now);
        let at = chat_at.max(overall_at);
        if at > now {
            return Err(at);
        }
        self.overall_next = Some(theoretical + self.overall_interval);
        self.chats.insert(chat, now + self.per_chat);
        Ok(())
    }

    /// The instant a caller asking from `now` on gets to send to `chat`, booked (what a
    /// sequence of [`Pacer::try_acquire`] calls, each retried when told, comes to).
    pub fn reserve(&mut self, chat: UserId, now: Instant) -> Instant {
        let mut t = now;
        loop {
            match self.try_acquire(chat, t) {
                Ok(()) => return t,
                Err(at) => t = at,
            }
        }
    }

    /// Telegram said FLOOD_WAIT: nothing goes before `until`, in any chat.
    pub fn hold_until(&mut self, until: Instant) {
        let tolerance = self.overall_interval * (self.overall_burst - 1);
        let next = until + tolerance;
        self.overall_next = Some(self.overall_next.map_or(next, |n| n.max(next)));
    }

    /// Forgets chats whose next slot has passed.
    pub fn prune(&mut self, now: Instant) {
        self.chats.retain(|_, at| *at > now);
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
            &[Allow, Allow, SlowDown, Allow, SlowDown],
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
        assert_eq!(l.users(), 0);
    }

    fn slots(p: &mut Pacer, chats: &[UserId]) -> Vec<u128> {
        let t0 = Instant::now();
        chats
            .iter()
            .map(|c| p.reserve(*c, t0).duration_since(t0).as_millis())
            .collect()
    }

    #[test]
    fn pace_per_chat_and_overall() {
        let mut p = Pacer::new(Duration::from_secs(1), 10, 2);
        assert_eq!(slots(&mut p, &[1, 1, 1]), [0, 1000, 2000]);
        let mut p = Pacer::new(Duration::from_secs(1), 10, 2);
        // Two at once, then one every 100 ms.
        assert_eq!(slots(&mut p, &[1, 2, 3, 4, 5]), [0, 0, 100, 200, 300]);
        let mut p = Pacer::new(Duration::from_secs(1), 10, 1);
        assert_eq!(slots(&mut p, &[1, 2, 1]), [0, 100, 1000]);
    }

    #[test]
    fn telegram_pace_sends_thirty_a_second_at_most() {
        let mut p = Pacer::telegram();
        let t0 = Instant::now();
        let at: Vec<Instant> = (0..300).map(|c| p.reserve(c, t0)).collect();
        for (i, a) in at.iter().enumerate() {
            // In any window of one second starting at a send, at most 30 sends (+1 at the edge).
            let n = at
                .iter()
                .filter(|b| **b >= *a && **b < *a + Duration::from_secs(1))
                .count();
            assert!(n <= 30, "{n} sends in the second after send {i}");
        }
        assert!(at[299].duration_since(t0) >= Duration::from_millis(9000));
    }

    #[test]
    fn a_flood_wait_holds_every_chat() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(1), 30, 30);
        p.hold_until(t0 + Duration::from_secs(7));
        assert_eq!(p.reserve(5, t0), t0 + Duration::from_secs(7));
    }
}
