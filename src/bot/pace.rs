//! The pace of what the bot sends: a token bucket per chat and one for all chats, shaped by
//! Telegram's limits for bots (core.telegram.org/bots/faq, "My bot is hitting limits, how do I
//! avoid this?": in one chat "avoid sending more than one message per second. We may allow
//! short bursts that go over this limit, but eventually you'll begin receiving 429 errors";
//! overall "the API will not allow more than 30 messages per second or so").
//!
//! A chat's bucket holds [`PaceConfig::chat_burst`] messages and regains one per
//! [`PaceConfig::chat_interval`], so a player who asks twice right after a notification is
//! answered at once both times, and a chat never averages more than Telegram's one a second.
//! The overall bucket holds [`PaceConfig::overall_burst`] and regains
//! [`PaceConfig::overall_per_second`]; in any second it lets through at most their sum, kept
//! under Telegram's 30.
//!
//! Replies come first: a notification ([`Class::Notice`]) takes a token only when one stays
//! for a reply, in its chat and overall, at most one per [`PaceConfig::notice_per_chat`] in a
//! chat and [`PaceConfig::notice_per_second`] overall. Nothing here waits: [`Pacer::try_acquire`]
//! books a send now or says when to ask again, so one chat's pace never holds another chat's
//! answer. Only Telegram's FLOOD_WAIT holds every chat ([`Pacer::hold_until`]).
//!
//! Pure: the time is passed in, so tests drive a clock by hand.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::gift::UserId;

/// What a message is, for its share of the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An answer to what the player just did: as soon as Telegram allows.
    Reply,
    /// A notification: only out of what replies leave over.
    Notice,
}

/// The shape of the pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceConfig {
    /// Messages one chat may get at once (its bucket's size). 3: the short burst Telegram
    /// tolerates as tgsim models it (tgsim/FIDELITY.md, bot sending limits).
    pub chat_burst: u32,
    /// One token back per this long in a chat: 1.05 s, Telegram's one a second with a margin
    /// for network jitter (Telegram measures when a request arrives).
    pub chat_interval: Duration,
    /// Messages at once over all chats.
    pub overall_burst: u32,
    /// Tokens regained per second over all chats: `overall_burst + overall_per_second` stays
    /// under Telegram's 30 in any second.
    pub overall_per_second: u32,
    /// At most one notification per this long in a chat (they are grouped per player, so
    /// nothing is lost by waiting).
    pub notice_per_chat: Duration,
    /// At most this many notifications a second overall.
    pub notice_per_second: u32,
}

impl PaceConfig {
    /// Telegram's documented pace with margins, with a burst of `chat_burst` per chat (1: one
    /// message per 1.05 s in a chat, no burst).
    pub fn telegram(chat_burst: u32) -> Self {
        PaceConfig {
            chat_burst: chat_burst.max(1),
            chat_interval: Duration::from_millis(1050),
            overall_burst: 2,
            overall_per_second: 27,
            notice_per_chat: Duration::from_secs(3),
            notice_per_second: 20,
        }
    }
}

/// A token bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The tokens at `now`, refilled at `per_second` up to `size`.
    fn level(&self, now: Instant, size: f64, per_second: f64) -> f64 {
        (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * per_second).min(size)
    }

    /// When the bucket holds `want` tokens (now if it does).
    fn when(&self, now: Instant, want: f64, size: f64, per_second: f64) -> Instant {
        let missing = want - self.level(now, size, per_second);
        if missing <= 0.0 {
            return now;
        }
        // Rounded up to the next microsecond so that asking again then finds the token.
        now + Duration::from_micros((missing / per_second * 1e6).ceil() as u64 + 1)
    }

    fn take(&mut self, now: Instant, size: f64, per_second: f64) {
        self.tokens = self.level(now, size, per_second) - 1.0;
        // Callers may come a little out of order (each read the clock before the lock): the
        // refill is never counted twice.
        self.at = self.at.max(now);
    }
}

/// A chat's state: its bucket and its last notification.
#[derive(Debug, Clone, Copy)]
struct Chat {
    bucket: Bucket,
    last_notice: Option<Instant>,
}

/// The pace of outgoing messages ([`PaceConfig`]). [`Pacer::try_acquire`] books a send at the
/// instant it goes.
#[derive(Debug)]
pub struct Pacer {
    config: PaceConfig,
    /// When the pace started: what an earlier process sent just before is unknown, so every
    /// bucket starts empty then and fills from there.
    origin: Instant,
    chats: HashMap<UserId, Chat>,
    overall: Bucket,
    /// When the next notification may go overall.
    notice_next: Option<Instant>,
    /// Telegram said FLOOD_WAIT: nothing before this.
    held_until: Option<Instant>,
}

impl Pacer {
    /// A pacer whose buckets are empty at `origin` (a process starting does not know what the
    /// one before it sent).
    pub fn new(config: PaceConfig, origin: Instant) -> Self {
        Pacer {
            config,
            origin,
            chats: HashMap::new(),
            overall: Bucket {
                tokens: 0.0,
                at: origin,
            },
            notice_next: None,
            held_until: None,
        }
    }

    fn chat_size(&self) -> f64 {
        f64::from(self.config.chat_burst.max(1))
    }

    fn chat_rate(&self) -> f64 {
        1.0 / self.config.chat_interval.as_secs_f64().max(1e-3)
    }

    fn overall_size(&self) -> f64 {
        f64::from(self.config.overall_burst.max(1))
    }

    fn overall_rate(&self) -> f64 {
        f64::from(self.config.overall_per_second.max(1))
    }

    /// Books a send to `chat` at `now` if the limits allow it; otherwise says when to ask
    /// again (nothing is booked). Booking at the instant of sending, not ahead of time, keeps a
    /// task that wakes late (a loaded machine) from sending in a burst.
    pub fn try_acquire(&mut self, chat: UserId, class: Class, now: Instant) -> Result<(), Instant> {
        let (chat_size, chat_rate) = (self.chat_size(), self.chat_rate());
        let (all_size, all_rate) = (self.overall_size(), self.overall_rate());
        let origin = self.origin;
        let state = self.chats.get(&chat).copied().unwrap_or(Chat {
            bucket: Bucket {
                tokens: 0.0,
                at: origin,
            },
            last_notice: None,
        });
        // A notification leaves a token for a reply, in the chat and overall (a bucket of one
        // leaves none: the notification then waits for a full bucket).
        let want = |size: f64| match class {
            Class::Reply => 1.0,
            Class::Notice => (size).min(2.0),
        };
        let mut at = now;
        if let Some(h) = self.held_until {
            at = at.max(h);
        }
        at = at.max(
            state
                .bucket
                .when(now, want(chat_size), chat_size, chat_rate),
        );
        at = at.max(self.overall.when(now, want(all_size), all_size, all_rate));
        if class == Class::Notice {
            if let Some(last) = state.last_notice {
                at = at.max(last + self.config.notice_per_chat);
            }
            if let Some(n) = self.notice_next {
                at = at.max(n);
            }
        }
        if at > now {
            return Err(at);
        }
        let mut state = state;
        state.bucket.take(now, chat_size, chat_rate);
        if class == Class::Notice {
            state.last_notice = Some(now);
            self.notice_next = Some(
                now + Duration::from_secs_f64(
                    1.0 / f64::from(self.config.notice_per_second.max(1)),
                ),
            );
        }
        self.chats.insert(chat, state);
        self.overall.take(now, all_size, all_rate);
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

    /// Forgets chats whose bucket is full again and whose last notification is old enough not
    /// to matter (a forgotten chat starts full, the same as it is).
    pub fn prune(&mut self, now: Instant) {
        let (size, rate) = (self.chat_size(), self.chat_rate());
        let notice = self.config.notice_per_chat;
        self.chats.retain(|_, c| {
            c.bucket.level(now, size, rate) < size
                || c.last_notice.is_some_and(|t| t + notice > now)
        });
    }

    /// Chats remembered (for tests).
    pub fn chats(&self) -> usize {
        self.chats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Class::{Notice as N, Reply as R};

    /// A pacer that started long ago (its buckets full).
    fn warm(config: PaceConfig) -> (Pacer, Instant) {
        let t0 = Instant::now();
        let p = Pacer::new(config, t0);
        (p, t0 + Duration::from_secs(3600))
    }

    fn slots(config: PaceConfig, sends: &[(u64, UserId, Class)]) -> Vec<u128> {
        let (mut p, t0) = warm(config);
        sends
            .iter()
            .map(|(ms, c, class)| {
                p.reserve(*c, *class, t0 + Duration::from_millis(*ms))
                    .duration_since(t0)
                    .as_millis()
            })
            .collect()
    }

    const SMALL: PaceConfig = PaceConfig {
        chat_burst: 3,
        chat_interval: Duration::from_secs(1),
        overall_burst: 2,
        overall_per_second: 10,
        notice_per_chat: Duration::from_secs(3),
        notice_per_second: 5,
    };

    #[test]
    fn a_chat_gets_a_short_burst_then_one_a_second() {
        assert_eq!(
            slots(
                SMALL,
                &[(0, 1, R), (0, 1, R), (0, 1, R), (0, 1, R), (0, 1, R)]
            ),
            // The overall bucket (2, then 10 a second) spaces the third by 100 ms.
            [0, 0, 100, 1000, 2000]
        );
        let one = PaceConfig {
            chat_burst: 1,
            ..SMALL
        };
        assert_eq!(
            slots(one, &[(0, 1, R), (0, 1, R), (0, 1, R)]),
            [0, 1000, 2000]
        );
    }

    #[test]
    fn one_chat_pace_never_holds_another_chat() {
        // Chat 1 is out of tokens; chat 2's answer goes at once.
        let (mut p, t0) = warm(SMALL);
        for _ in 0..3 {
            p.reserve(1, R, t0);
        }
        let t = t0 + Duration::from_millis(500);
        assert!(p.try_acquire(1, R, t).is_err());
        assert_eq!(p.try_acquire(2, R, t), Ok(()));
    }

    #[test]
    fn an_answer_right_after_a_notification_goes_at_once() {
        // Two answers right after a notification: neither waits for the chat (the second
        // waits 80 ms for the overall bucket of this small shape).
        assert_eq!(
            slots(SMALL, &[(0, 1, N), (10, 1, R), (20, 1, R)]),
            [0, 10, 100]
        );
        // A chat holding one token: a notification leaves it for a reply.
        let (mut p, t0) = warm(SMALL);
        assert_eq!(p.try_acquire(1, R, t0), Ok(()));
        assert_eq!(p.try_acquire(1, R, t0), Ok(()));
        let t = t0 + Duration::from_millis(300);
        assert!(p.try_acquire(1, N, t).is_err());
        assert_eq!(p.try_acquire(1, R, t), Ok(()));
    }

    #[test]
    fn notifications_leave_room_for_replies() {
        // One notification per 3 s in a chat, 5 a second overall.
        assert_eq!(slots(SMALL, &[(0, 1, N), (0, 1, N)]), [0, 3000]);
        assert_eq!(
            slots(SMALL, &[(0, 1, N), (0, 2, N), (0, 3, N)]),
            [0, 200, 400]
        );
        // The overall bucket's last token is a reply's.
        let (mut p, t0) = warm(SMALL);
        assert_eq!(p.try_acquire(1, R, t0), Ok(()));
        assert!(p.try_acquire(2, N, t0).is_err());
        assert_eq!(p.try_acquire(3, R, t0), Ok(()));
    }

    #[test]
    fn buckets_start_empty_when_the_process_starts() {
        let t0 = Instant::now();
        let mut p = Pacer::new(PaceConfig::telegram(3), t0);
        let first = p.reserve(1, R, t0);
        assert!(first >= t0 + Duration::from_millis(1050), "{first:?}");
    }

    #[test]
    fn telegram_pace_keeps_telegrams_limits() {
        for burst in [1, 3] {
            for class in [R, N] {
                let (mut p, t0) = warm(PaceConfig::telegram(burst));
                // 300 chats as fast as allowed, then 10 more to one chat.
                let mut t = t0;
                let mut at: Vec<(UserId, Instant)> = Vec::new();
                for c in (0..300).chain([7; 10]) {
                    t = p.reserve(c, class, t);
                    at.push((c, t));
                }
                for (i, (_, a)) in at.iter().enumerate() {
                    let n = at
                        .iter()
                        .filter(|(_, b)| *b >= *a && *b < *a + Duration::from_secs(1))
                        .count();
                    assert!(n <= 29, "{n} sends in the second after send {i}");
                }
                // In one chat: at most `burst` plus one a second (tgsim's bucket: 3, 1 a second).
                let chat: Vec<Instant> = at
                    .iter()
                    .filter(|(c, _)| *c == 7)
                    .map(|(_, a)| *a)
                    .collect();
                for w in chat.windows(burst as usize + 1) {
                    assert!(
                        w[burst as usize].duration_since(w[0]) >= Duration::from_millis(1000),
                        "{burst} burst: {:?}",
                        w.iter().map(|a| a.duration_since(t0)).collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    #[test]
    fn a_flood_wait_holds_every_chat() {
        let (mut p, t0) = warm(PaceConfig::telegram(3));
        p.hold_until(t0 + Duration::from_secs(7));
        assert_eq!(p.reserve(5, R, t0), t0 + Duration::from_secs(7));
        assert!(p.reserve(6, N, t0) >= t0 + Duration::from_secs(7));
    }

    #[test]
    fn full_chats_are_forgotten() {
        let (mut p, t0) = warm(SMALL);
        p.reserve(1, R, t0);
        p.reserve(2, N, t0);
        p.prune(t0 + Duration::from_millis(1500));
        assert_eq!(
            p.chats(),
            1,
            "chat 1 refilled; chat 2's notification is recent"
        );
        p.prune(t0 + Duration::from_secs(4));
        assert_eq!(p.chats(), 0);
    }
}
