//! The `/metrics` exposition: [`Scalars`], the collector that reads the atomics of [`Metrics`],
//! the deposit accounts' states, the bot link and the closed Telegram methods at each scrape,
//! and [`Health::render_metrics`], the Prometheus text format (0.0.4) of the whole registry.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::{AccountView, Accounts, BotLink, FloodGates, Health, Metrics, unix_now};
use crate::gift::classify::{HoldReason, IgnoreReason};

impl Health {
    /// The Prometheus text exposition (format 0.0.4) of everything giftd measures.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and the encoders fail only when the writer does.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the atomics of [`Metrics`] at each scrape.
#[derive(Debug)]
pub(super) struct Scalars {
    pub(super) ready: Arc<AtomicBool>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) flood_gates: Arc<FloodGates>,
    pub(super) accounts: Arc<Accounts>,
    pub(super) bot_link: Arc<Mutex<Option<BotLink>>>,
}

impl Collector for Scalars {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &*self.metrics;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Counter names get `_total` from the encoder: `deposits_update` is exposed as
        // `giftd_deposits_update_total`.
        let counters: [(&str, &str, u64); 14] = [
            (
                "deposits_update",
                "items credited from real-time updates",
                get(&m.deposits_update),
            ),
            (
                "deposits_poll",
                "items credited by polling",
                get(&m.deposits_poll),
            ),
            (
                "deposits_reconcile",
                "items credited by full reconciliation",
                get(&m.deposits_reconcile),
            ),
            (
                "departures",
                "items that left the deposit account",
                get(&m.departures),
            ),
            (
                "refunds_after_resend",
                "regular gifts kept by the house after a resend, then refunded by telegram",
                get(&m.refunds_after_resend),
            ),
            (
                "polls",
                "polls of payments.getSavedStarGifts",
                get(&m.polls),
            ),
            (
                "reconciliations",
                "full reconciliations",
                get(&m.reconciliations),
            ),
            (
                "mirror_batches",
                "batches written to the store",
                get(&m.mirror_batches),
            ),
            (
                "mirror_rows",
                "changes written to the store",
                get(&m.mirror_rows),
            ),
            (
                "mirror_failures",
                "failed store writes (retried)",
                get(&m.mirror_failures),
            ),
            (
                "telegram_errors",
                "failed Telegram calls",
                get(&m.telegram_errors),
            ),
            (
                "attributions",
                "items first recorded without a sender, credited later to the sender Telegram named",
                get(&m.attributions),
            ),
            (
                "updates_received",
                "telegram updates received into giftd's update buffer",
                get(&m.updates_received),
            ),
            (
                "updates_dropped",
                "telegram updates dropped because the update buffer was full (polling finds their gifts)",
                get(&m.updates_dropped),
            ),
        ];
        let more: [(&str, &str, u64); 4] = [
            (
                "telegram_unreadable",
                "updates or answers telegram sent that giftd could not decode (newer than its TL layer); nothing was credited",
                get(&m.unreadable),
            ),
            (
                "mirror_fenced",
                "changes not written because this instance does not hold the lease of their deposit account",
                get(&m.mirror_fenced),
            ),
            (
                "telegram_flood_closures",
                "times a FLOOD_WAIT longer than telegram.flood_wait_max closed a telegram method",
                get(&m.flood_closures),
            ),
            (
                "clock_storms",
                "storms of msg_id-too-high resends: the host clock is ahead of telegram's (each stops the daemon)",
                get(&m.clock_storms),
            ),
        ];
        for (name, help, value) in counters.into_iter().chain(more) {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let mut family = encoder.encode_descriptor(
            "gift_messages_ignored",
            "gift-bearing messages and saved gifts that are not deposits, by reason (update path and reconciliations)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for reason in IgnoreReason::ALL {
            let counter = ConstCounter::new(get(&m.gifts_ignored[reason.index()]));
            counter.encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "gifts_held",
            "new items recorded without an owner for an operator, by reason",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for reason in HoldReason::ALL {
            let counter = ConstCounter::new(get(&m.gifts_held[reason.index()]));
            counter.encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let now = unix_now();
        let (closed, gates): (i64, Vec<(String, i64)>) = {
            let gates = self.flood_gates.lock().unwrap_or_else(|e| e.into_inner());
            let open: Vec<_> = gates
                .iter()
                .filter(|&(_, &until)| until > now)
                .map(|(method, &until)| (method.clone(), until))
                .collect();
            (open.len() as i64, open)
        };
        let accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ready = self.ready.load(Ordering::Relaxed)
            && !accounts.iter().any(AccountView::is_down)
            && !matches!(
                *self.bot_link.lock().unwrap_or_else(|e| e.into_inner()),
                Some(BotLink::Failed(_))
            );
        let bot_connected = matches!(
            *self.bot_link.lock().unwrap_or_else(|e| e.into_inner()),
            Some(BotLink::Connected)
        );
        let gauges: [(&str, &str, i64); 7] = [
            (
                "bot_connected",
                "1 while the companion bot is signed in and answering in this instance",
                i64::from(bot_connected),
            ),
            (
                "ready",
                "1 when the daemon is ready (no deposit account down or left unserved by a silent lease holder, the bot not failed)",
                i64::from(ready),
            ),
            (
                "mirror_backlog",
                "changes waiting for the store",
                get(&m.mirror_backlog) as i64,
            ),
            (
                "last_poll_timestamp_seconds",
                "unix time of the last successful poll",
                m.last_poll_unix.load(Ordering::Relaxed),
            ),
            (
                "inventory_items",
                "items in the live inventory",
                get(&m.inventory_items) as i64,
            ),
            (
                "telegram_methods_closed",
                "telegram methods closed now by a FLOOD_WAIT longer than telegram.flood_wait_max",
                closed,
            ),
            (
                "start_time_seconds",
                "unix time this giftd process started",
                m.start_unix.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let family = encoder.encode_descriptor(
            "telegram_method_closed_until_timestamp_seconds",
            "unix time a telegram method closed by a long FLOOD_WAIT opens again",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let mut family = family;
        for (method, until) in gates {
            let gauge = ConstGauge::new(until);
            gauge.encode(family.encode_family(&[("method", method)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "account",
            "1 for each deposit account's state in this instance (starting, serving, standby: \
             another instance serves it, down)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for a in accounts {
            for state in ["starting", "serving", "standby", "down"] {
                let gauge = ConstGauge::new(i64::from(a.state.label() == state));
                gauge.encode(
                    family.encode_family(&[("name", a.name.as_str()), ("state", state)])?,
                )?;
            }
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::*;
    use crate::gift::classify::{Decision, HoldReason, IgnoreReason};

    #[test]
    fn metrics_render_every_counter() {
        let h = Health::new();
        h.watch_account(42);
        h.metrics.deposits_poll.store(3, Ordering::Relaxed);
        h.set_ready(true, "watching");
        let text = h.render_metrics();
        assert!(text.contains("giftd_deposits_poll_total 3\n"), "{text}");
        assert!(text.contains("giftd_ready 1\n"), "{text}");
        // 18 counters, the 2 counters by reason (ignored, held), 7 gauges, the 2 gauge families
        // (methods closed until, the deposit accounts' states), 4 histograms and the withdrawal
        // queue's 2 gauges created per account (the Stars balance and the passes appear once the
        // worker has set them).
        assert_eq!(text.matches("# TYPE").count(), 35, "{text}");
        assert!(text.contains("giftd_bot_connected 0\n"), "{text}");
        h.metrics.count_decision(&Decision::Ignore {
            reason: IgnoreReason::UpgradedByOtherSide,
        });
        h.metrics.count_decision(&Decision::Hold {
            reason: HoldReason::NoSender,
        });
        let text = h.render_metrics();
        assert!(
            text.contains(
                "giftd_gift_messages_ignored_total{reason=\"upgraded_by_other_side\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("giftd_gifts_held_total{reason=\"no_sender\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("giftd_telegram_unreadable_total 0\n"),
            "{text}"
        );
        for name in [
            "giftd_refunds_after_resend_total counter",
            "giftd_detection_seconds histogram",
            "giftd_mirror_commit_seconds histogram",
            "giftd_bot_reply_seconds histogram",
            "giftd_withdrawal_seconds histogram",
            "giftd_updates_dropped_total counter",
            "giftd_mirror_fenced_total counter",
            "giftd_mirror_backlog gauge",
            "giftd_withdrawals gauge",
            "giftd_withdrawal_stars_needed gauge",
        ] {
            assert!(text.contains(&format!("# TYPE {name}\n")), "{name}: {text}");
        }
    }

    #[test]
    fn histograms_are_labelled_by_account() {
        let h = Health::new();
        h.latency
            .mirror_commit
            .get_or_create(&AccountLabel {
                account: "42".to_owned(),
            })
            .observe(0.004);
        h.latency
            .detection
            .get_or_create(&DetectionLabels {
                account: "42".to_owned(),
                path: "update".to_owned(),
            })
            .observe(0.0);
        let text = h.render_metrics();
        for line in [
            "giftd_mirror_commit_seconds_bucket{account=\"42\",le=\"0.0025\"} 0\n",
            "giftd_mirror_commit_seconds_bucket{account=\"42\",le=\"0.005\"} 1\n",
            "giftd_mirror_commit_seconds_count{account=\"42\"} 1\n",
            "giftd_detection_seconds_bucket{account=\"42\",path=\"update\",le=\"1\"} 1\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }
}
