//! The operator's desk as the store sees it: every deposit account it knows (by its items, its
//! lease, its requests or its recorded balance), whichever instance serves it, with what that
//! account holds, who holds its lease, its last Stars balance and its queue. Read by the bot's
//! `/admin` of any instance, so one desk shows every account.
//!
//! Must never: decide anything. These are figures to show; every move an operator makes from
//! the desk is a compare-and-set in the store, checked there.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Lease;
use crate::gift::UserId;
use crate::withdrawal::RequestState;

/// One deposit account on the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDesk {
    pub account_id: UserId,
    /// Items in the account (held, or on their way out), and their value in Stars.
    pub items: u64,
    pub stars: i64,
    /// The account's lease (holder, epoch, expiry), `None` when no instance ever took it (the
    /// embedded store without leases, or an account no instance lists).
    pub lease: Option<Lease>,
    /// The Stars balance its serving instance last read from Telegram, and when (unix ms).
    pub balance: Option<(i64, i64)>,
    /// Open requests by state (states with none are left out).
    pub queue: Vec<(RequestState, u64)>,
}

impl AccountDesk {
    /// The instance serving the account now: the lease's holder while its term runs.
    pub fn holder(&self) -> Option<&str> {
        self.lease
            .as_ref()
            .filter(|l| l.expires_at_ms > l.db_now_ms)
            .map(|l| l.holder.as_str())
    }

    pub fn queued(&self, state: RequestState) -> u64 {
        self.queue
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// A row of `giftd_desk()` (and of the embedded store's query), before it is typed.
#[derive(Debug, Deserialize)]
pub(super) struct DeskRow {
    pub account_id: UserId,
    pub items: i64,
    pub stars: i64,
    pub holder: Option<String>,
    pub epoch: Option<i64>,
    pub lease_expires_at_ms: Option<i64>,
    pub db_now_ms: i64,
    pub balance: Option<i64>,
    pub balance_at_ms: Option<i64>,
    #[serde(default)]
    pub queue: BTreeMap<String, i64>,
}

impl DeskRow {
    pub(super) fn into_desk(self) -> AccountDesk {
        let lease = match (self.holder, self.epoch, self.lease_expires_at_ms) {
            (Some(holder), Some(epoch), Some(expires_at_ms)) => Some(Lease {
                name: super::account_lease(self.account_id),
                holder,
                epoch,
                expires_at_ms,
                db_now_ms: self.db_now_ms,
            }),
            _ => None,
        };
        AccountDesk {
            account_id: self.account_id,
            items: self.items.max(0) as u64,
            stars: self.stars,
            lease,
            balance: self.balance.zip(self.balance_at_ms),
            queue: self
                .queue
                .into_iter()
                .filter_map(|(s, n)| Some((RequestState::parse(&s)?, n.max(0) as u64)))
                .collect(),
        }
    }
}
