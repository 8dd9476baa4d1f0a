//! Telegram's limits on what a bot sends (`messages.sendMessage` by a bot account), as
//! core.telegram.org/bots/faq ("My bot is hitting limits, how do I avoid this?") documents
//! them: in one chat "avoid sending more than one message per second. We may allow short bursts
//! that go over this limit, but eventually you'll begin receiving 429 errors"; for bulk
//! notifications "the API will not allow more than 30 messages per second or so". Beyond them
//! Telegram answers 420 `FLOOD_WAIT_X` (the Bot API's 429 with `retry_after`).
//!
//! The FAQ gives no size for the tolerated burst; tgsim takes a small one, so a bot that passes
//! here passes on Telegram: a token bucket per chat of [`CHAT_BURST`] messages regaining one a
//! second, and at most [`OVERALL_PER_SECOND`] messages in any second overall (a sliding
//! window, no burst). Edits and callback answers are not counted (the FAQ's limits are on
//! messages). Sends by users are not limited here.

use std::collections::{HashMap, VecDeque};

/// Messages a bot may send to one chat at once before it is held to one a second.
pub const CHAT_BURST: i64 = 3;

/// Messages a bot may send per second overall.
pub const OVERALL_PER_SECOND: usize = 30;

/// A chat's bucket, in thousandths of a message, as of a simulator instant (ms).
#[derive(Debug, Clone, Copy)]
struct ChatBucket {
    milli_tokens: i64,
    at_ms: i64,
}

/// One bot's recent sends.
#[derive(Debug, Default, Clone)]
pub struct BotSends {
    /// Instants (ms of the simulator clock) of the sends of the last second.
    overall: VecDeque<i64>,
    /// Each chat's bucket; a chat not here has a full one.
    chats: HashMap<i64, ChatBucket>,
}

impl BotSends {
    /// Counts a message to `to` at `now_ms` if the limits allow it; otherwise the milliseconds
    /// until it would pass (nothing is counted).
    pub fn check(&mut self, to: i64, now_ms: i64) -> Result<(), i64> {
        const FULL: i64 = CHAT_BURST * 1000;
        while self.overall.front().is_some_and(|t| *t <= now_ms - 1000) {
            self.overall.pop_front();
        }
        let bucket = self.chats.get(&to).map_or(FULL, |b| {
            // One token (1000 milli-tokens) a second: one milli-token a millisecond.
            (b.milli_tokens + (now_ms - b.at_ms).max(0)).min(FULL)
        });
        let mut wait_ms = 0;
        if bucket < 1000 {
            wait_ms = 1000 - bucket;
        }
        if self.overall.len() >= OVERALL_PER_SECOND
            && let Some(first) = self.overall.front()
        {
            wait_ms = wait_ms.max(first + 1000 - now_ms);
        }
        if wait_ms > 0 {
            return Err(wait_ms);
        }
        self.overall.push_back(now_ms);
        self.chats.insert(
            to,
            ChatBucket {
                milli_tokens: bucket - 1000,
                at_ms: now_ms,
            },
        );
        if self.chats.len() > 10_000 {
            self.chats
                .retain(|_, b| b.milli_tokens + (now_ms - b.at_ms) < FULL);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of the sends `(ms, chat)` pass.
    fn run(sends: &[(i64, i64)]) -> Vec<bool> {
        let mut s = BotSends::default();
        sends.iter().map(|(t, c)| s.check(*c, *t).is_ok()).collect()
    }

    #[test]
    fn a_chat_takes_a_short_burst_then_one_a_second() {
        assert_eq!(
            run(&[
                (0, 1),
                (0, 1),
                (0, 1),
                (0, 1),
                (999, 1),
                (1000, 1),
                (1500, 1)
            ]),
            [true, true, true, false, false, true, false]
        );
        let mut s = BotSends::default();
        for _ in 0..3 {
            s.check(1, 0).unwrap();
        }
        assert_eq!(s.check(1, 400), Err(600));
        // Other chats are not held by chat 1.
        assert_eq!(s.check(2, 400), Ok(()));
        // A quiet chat is full again after three seconds.
        assert_eq!(
            run(&[
                (0, 1),
                (0, 1),
                (0, 1),
                (3000, 1),
                (3000, 1),
                (3000, 1),
                (3000, 1)
            ]),
            [true, true, true, true, true, true, false]
        );
    }

    #[test]
    fn thirty_a_second_overall() {
        let mut s = BotSends::default();
        for c in 0..30 {
            s.check(c, 10 * c).unwrap();
        }
        assert_eq!(s.check(99, 500), Err(500));
        assert_eq!(s.check(99, 1000), Ok(()));
    }
}
