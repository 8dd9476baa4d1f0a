//! Whether a withdrawal can go now, decided before any Star is spent.
//!
//! A regular gift is "returned" by buying the same catalogue gift for the player, which
//! Telegram refuses for gifts that are sold out, auction-only, premium-only (for a sender
//! without Premium), over the per-user limit, or locked until a date (core.telegram.org
//! /api/gifts; `payments.checkCanSendGift`). A collectible cannot move before its
//! `can_transfer_at`. [`resend`] and [`transfer`] turn those facts into a [`Verdict`]: go,
//! wait until a time (the request is scheduled, not failed), or refuse with a reason the player
//! and the operator read.
//!
//! Pure: plain values in, a verdict out; the worker reads the facts from Telegram.

pub use crate::gift::rules::{CanSend, GiftRules};

/// What to do with a withdrawal request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Schedule the request for this unix time (seconds).
    WaitUntil {
        at: i64,
        why: String,
    },
    /// Refuse: it can never go this way.
    Refuse(String),
}

/// A regular gift bought again for the player. `premium`: whether the deposit account has
/// Telegram Premium. `can_send` is asked only when the rules allow a purchase now.
pub fn resend(rules: &GiftRules, premium: bool, now: i64, can_send: Option<&CanSend>) -> Verdict {
    if rules.sold_out {
        return Verdict::Refuse(
            "this gift is sold out: it cannot be bought again for the player".to_owned(),
        );
    }
    if rules.auction {
        return Verdict::Refuse(
            "this gift is sold only at auction: it cannot be bought again for the player"
                .to_owned(),
        );
    }
    if rules.require_premium && !premium {
        return Verdict::Refuse(
            "this gift can be bought only with Telegram Premium, which the deposit account \
             does not have"
                .to_owned(),
        );
    }
    if rules.per_user_remains.is_some_and(|n| n <= 0) {
        return Verdict::Refuse(
            "the deposit account bought as many of this gift as Telegram allows one user: it \
             cannot be bought again for the player"
                .to_owned(),
        );
    }
    if let Some(at) = rules.locked_until.filter(|&at| at > now) {
        return Verdict::WaitUntil {
            at,
            why: "Telegram sells this gift again only later (locked until a date)".to_owned(),
        };
    }
    match can_send {
        Some(CanSend::No(reason)) => Verdict::Refuse(format!(
            "Telegram does not let the deposit account buy this gift: {reason}"
        )),
        Some(CanSend::Yes) | None => Verdict::Go,
    }
}

/// A collectible transferred to the player: not before `can_transfer_at`.
pub fn transfer(can_transfer_at: Option<i64>, now: i64) -> Verdict {
    match can_transfer_at.filter(|&at| at > now) {
        Some(at) => Verdict::WaitUntil {
            at,
            why: "Telegram allows this transfer only later (the collectible is locked)".to_owned(),
        },
        None => Verdict::Go,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn kind(v: &Verdict) -> String {
        match v {
            Verdict::Go => "go".to_owned(),
            Verdict::WaitUntil { at, .. } => format!("wait {}", at - NOW),
            Verdict::Refuse(r) => format!("refuse {}", r.split(':').next().unwrap_or(r)),
        }
    }

    #[track_caller]
    fn check(rules: GiftRules, premium: bool, can_send: Option<CanSend>, expected: &str) {
        assert_eq!(
            kind(&resend(&rules, premium, NOW, can_send.as_ref())),
            expected,
            "{rules:?}"
        );
    }

    #[test]
    fn regular_gifts_bought_again() {
        let any = GiftRules::default();
        check(any, false, None, "go");
        check(any, false, Some(CanSend::Yes), "go");
        check(
            GiftRules {
                sold_out: true,
                ..any
            },
            true,
            None,
            "refuse this gift is sold out",
        );
        check(
            GiftRules {
                auction: true,
                ..any
            },
            true,
            None,
            "refuse this gift is sold only at auction",
        );
        check(
            GiftRules {
                require_premium: true,
                ..any
            },
            false,
            None,
            "refuse this gift can be bought only with Telegram Premium, which the deposit account does not have",
        );
        check(
            GiftRules {
                require_premium: true,
                ..any
            },
            true,
            None,
            "go",
        );
        check(
            GiftRules {
                per_user_remains: Some(0),
                ..any
            },
            false,
            None,
            "refuse the deposit account bought as many of this gift as Telegram allows one user",
        );
        check(
            GiftRules {
                per_user_remains: Some(1),
                ..any
            },
            false,
            None,
            "go",
        );
        check(
            GiftRules {
                locked_until: Some(NOW + 60),
                ..any
            },
            false,
            None,
            "wait 60",
        );
        check(
            GiftRules {
                locked_until: Some(NOW),
                ..any
            },
            false,
            None,
            "go",
        );
        // a permanent refusal wins over a lock: waiting would not help
        check(
            GiftRules {
                sold_out: true,
                locked_until: Some(NOW + 60),
                ..any
            },
            false,
            None,
            "refuse this gift is sold out",
        );
        check(
            any,
            false,
            Some(CanSend::No("not yet".into())),
            "refuse Telegram does not let the deposit account buy this gift",
        );
    }

    #[test]
    fn collectible_locks_schedule() {
        assert_eq!(kind(&transfer(None, NOW)), "go");
        assert_eq!(kind(&transfer(Some(NOW - 1), NOW)), "go");
        assert_eq!(kind(&transfer(Some(NOW + 3600), NOW)), "wait 3600");
    }
}
