//! Fault injection: the faults a test sets ([`Fault`]) and the lookups the server and the
//! dispatcher make before answering (an RPC error, a dropped answer, an empty saved-gifts page, a
//! delay).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RpcErr, World};

/// A fault to inject; see [`crate::Sim::inject`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The next `count` calls of `method` (TL name, e.g. `payments.getSavedStarGifts`) fail
    /// with 420 `FLOOD_WAIT_<seconds>`.
    FloodWait {
        /// TL method name.
        method: String,
        /// Seconds in the error.
        seconds: i32,
        /// How many calls fail.
        count: u32,
    },
    /// The next `count` calls of `method` fail with `code message` (e.g. 500 `RPC_CALL_FAIL`,
    /// 500 `INTERNAL`).
    RpcError {
        /// TL method name.
        method: String,
        /// Error code.
        code: i32,
        /// Error message.
        message: String,
        /// How many calls fail.
        count: u32,
    },
    /// Stop pushing updates to clients. With `honest_difference`, `updates.getDifference` still
    /// returns what was missed; without, it lies that nothing happened (the updates are lost and
    /// only polling finds the gifts).
    WithholdUpdates {
        /// Answer getDifference truthfully.
        honest_difference: bool,
    },
    /// Delay every answer (to `method`, or to all RPCs when `None`) by `millis`.
    Delay {
        /// TL method name, or all.
        method: Option<String>,
        /// Delay in milliseconds.
        millis: u64,
    },
    /// Push `updatesTooLong` instead of each batch of updates, as Telegram does under load:
    /// clients must call updates.getDifference to see what happened.
    UpdatesTooLong,
    /// Close every client connection now (a one-off action; nothing stays active).
    DropConnections,
    /// The next `count` payments.getSavedStarGifts answers have the true `count` but no gifts
    /// and no `next_offset` (Telegram does this; see Telethon#4534).
    EmptySavedGiftsPage {
        /// How many answers are empty.
        count: u32,
    },
    /// The next `count` calls of `method` take effect in the world (the gift moves, the Stars
    /// are spent; or the call is refused, whatever it would answer), then the connection they
    /// came on is closed without an answer: the network failed after Telegram applied the
    /// request, so the client cannot know the outcome. The caller's own update is in the
    /// account's update log (`updates.getDifference`) and its other sessions get it pushed.
    DropAnswer {
        /// TL method name.
        method: String,
        /// How many answers are lost.
        count: u32,
    },
    /// Skew the simulator's clock by `secs` (positive: the simulator is ahead of clients).
    /// [`crate::Sim::clear_faults`] restores the configured skew.
    ClockSkew {
        /// Seconds added to the real clock.
        secs: i64,
    },
}

impl World {
    /// Adds a fault.
    pub fn inject(&mut self, f: Fault) {
        match f {
            Fault::ClockSkew { secs } => self.skew = secs,
            // Dropping connections is done by the server; nothing to remember.
            Fault::DropConnections => {}
            other => self.faults.push(other),
        }
    }

    /// Removes every fault and restores the configured clock skew.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.skew = self.base_skew;
    }

    /// Active faults.
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Consumes one error fault for `method`, if any.
    pub fn take_error_fault(&mut self, method: &str) -> Option<RpcErr> {
        let pos = self.faults.iter().position(|f| match f {
            Fault::FloodWait {
                method: m, count, ..
            }
            | Fault::RpcError {
                method: m, count, ..
            } => m == method && *count > 0,
            _ => false,
        })?;
        let (err, left) = match &mut self.faults[pos] {
            Fault::FloodWait { seconds, count, .. } => {
                *count -= 1;
                (RpcErr::new(420, format!("FLOOD_WAIT_{seconds}")), *count)
            }
            Fault::RpcError {
                code,
                message,
                count,
                ..
            } => {
                *count -= 1;
                (RpcErr::new(*code, message.clone()), *count)
            }
            _ => return None,
        };
        if left == 0 {
            self.faults.remove(pos);
        }
        Some(err)
    }

    /// Consumes one [`Fault::DropAnswer`] for `method`, if any.
    pub fn take_drop_answer(&mut self, method: &str) -> bool {
        let Some(pos) = self.faults.iter().position(
            |f| matches!(f, Fault::DropAnswer { method: m, count } if m == method && *count > 0),
        ) else {
            return false;
        };
        if let Fault::DropAnswer { count, .. } = &mut self.faults[pos] {
            *count -= 1;
            if *count == 0 {
                self.faults.remove(pos);
            }
        }
        true
    }

    /// Consumes one [`Fault::EmptySavedGiftsPage`], if any.
    pub fn take_empty_page_fault(&mut self) -> bool {
        let Some(pos) = self
            .faults
            .iter()
            .position(|f| matches!(f, Fault::EmptySavedGiftsPage { count } if *count > 0))
        else {
            return false;
        };
        if let Fault::EmptySavedGiftsPage { count } = &mut self.faults[pos] {
            *count -= 1;
            if *count == 0 {
                self.faults.remove(pos);
            }
        }
        true
    }

    /// The delay to apply before answering `method`.
    pub fn delay_for(&self, method: &str) -> Option<Duration> {
        self.faults.iter().find_map(|f| match f {
            Fault::Delay { method: m, millis } if m.as_deref().is_none_or(|m| m == method) => {
                Some(Duration::from_millis(*millis))
            }
            _ => None,
        })
    }
}
