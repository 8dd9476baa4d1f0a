//! The withdrawal worker: one task per deposit account inside `giftd run`. It claims requests,
//! asks Telegram what a transfer or a purchase costs, records its intent, makes the one call
//! that moves the gift or spends Stars, and records what Telegram answered; an answer it does
//! not get is `unknown`, resolved after a settle delay by looking at Telegram (is the gift still
//! in the account? is our outgoing message in the chat with the player? does paying the same
//! form again say it was paid?), never by calling again blindly.
//!
//! It keeps the live inventory following the store. Players hear of each step through the
//! store's notifications outbox, written in the same transaction as the move and sent by the
//! companion bot (`bot::notify`): one path, whoever moved the request.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::precheck;
use crate::config::{RegularPolicy, WithdrawConfig};
use crate::gift::{Status, UserId};
use crate::health::{AccountLabel, Health, OPEN_WITHDRAWAL_STATES, WithdrawalLabels};
use crate::inventory::Inventory;
use crate::lease::Epochs;
use crate::store::{Store, StoreError, WithdrawalFilter};
use crate::telegram::transfer::{Purchase, Quote};
use crate::telegram::{Telegram, TelegramError};
use crate::withdrawal::{RequestState, WaitReason, Withdrawal, WithdrawalKind, WithdrawalMove};

/// Everything one account's worker needs.
#[derive(Debug, Clone)]
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub telegram: Telegram,
    pub inventory: Arc<Inventory>,
    pub config: WithdrawConfig,
    /// Names this worker in the store's claims: host, process and account.
    pub id: String,
    /// Woken when a request is created in this process (the CLI and the web app are picked up
    /// by the queue poll).
    pub wake: Arc<Notify>,
    /// Where the queue's gauges and the withdrawal durations go.
    pub health: Arc<Health>,
    /// The account lease's epoch every claim, rescue and move carries
    /// ([`Epochs::unfenced`] without leases). While this instance does not hold the account's
    /// lease the worker makes no claim and no move.
    pub epochs: Epochs,
}

/// How often the worker reads the deposit account's Stars balance for `/metrics`.
const BALANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What processing one request came to (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Moved(RequestState),
    /// Someone else moved the request first; nothing to do.
    Lost,
}

impl Worker {
    /// The worker id giftd uses for `account` in this process: the process id and a random
    /// part, so two processes (on one host or two) never share one. (No host name: reading it
    /// from /proc is what the unit's `ProcSubset=pid` forbids.)
    pub fn id_for(account: UserId) -> String {
        format!(
            "{}:{:08x}:{account}",
            std::process::id(),
            rand::random::<u32>()
        )
    }

    /// Runs until `cancel`: rescues expired claims, resolves unknown outcomes whose settle
    /// delay passed, then drains the queue; waits for a wake-up or the poll interval.
    pub async fn run(self, cancel: CancellationToken) {
        let account = self.telegram.self_id();
        tracing::info!(account, worker = %self.id, "withdrawal worker started");
        if self.epochs.is_leased() && !self.resolve_before_claims(account, &cancel).await {
            return;
        }
        let mut balance_read: Option<tokio::time::Instant> = None;
        loop {
            if balance_read.is_none_or(|t| t.elapsed() >= BALANCE_EVERY) {
                balance_read = Some(tokio::time::Instant::now());
                match self.telegram.stars_balance().await {
                    Ok(b) => {
                        self.health
                            .withdrawals
                            .stars_balance
                            .get_or_create(&AccountLabel {
                                account: account.to_string(),
                            })
                            .set(b.stars);
                        // For the desks of every instance (`/admin`).
                        if let Err(e) = self.store.record_balance(account, b.stars).await {
                            tracing::debug!(account, error = %e, "could not record the balance");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(account, error = %e, "could not read the Stars balance")
                    }
                }
            }
            if let Err(e) = self.pass(&cancel).await {
                tracing::warn!(account, error = %e, "withdrawal pass failed; retrying");
            }
            if let Err(e) = self.measure(account).await {
                tracing::debug!(account, error = %e, "could not measure the withdrawal queue");
            }
            self.health
                .withdrawals
                .passes
                .get_or_create(&AccountLabel {
                    account: account.to_string(),
                })
                .inc();
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        tracing::info!(account, "withdrawal worker stopped");
    }

    /// A new holder of the account's lease (leases on) first settles every request the
    /// previous holder left `sending` or `unknown`: takes back expired claims (sends become
    /// unknown) and resolves each unknown outcome by looking at Telegram once its settle delay
    /// passed, before it claims anything. Returns false when cancelled first.
    async fn resolve_before_claims(&self, account: UserId, cancel: &CancellationToken) -> bool {
        let mut said = false;
        loop {
            if let Some(epoch) = self.epoch() {
                let open = async {
                    self.store.rescue_withdrawals(account, epoch).await?;
                    self.resolve_unknowns(account, epoch).await?;
                    self.store
                        .list_withdrawals(&WithdrawalFilter {
                            account_id: Some(account),
                            states: vec![RequestState::Sending, RequestState::Unknown],
                            ..Default::default()
                        })
                        .await
                }
                .await;
                match open {
                    Ok(open) if open.is_empty() => {
                        if said {
                            tracing::info!(account, "in-flight withdrawals resolved; claiming");
                        }
                        return true;
                    }
                    Ok(open) => {
                        if !said {
                            said = true;
                            tracing::warn!(
                                account,
                                open = open.len(),
                                "withdrawals the previous holder left sending or unknown are \
                                 resolved against Telegram before any claim"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(account, error = %e,
                        "could not settle the previous holder's withdrawals yet"),
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// The epoch this worker's writes carry now (`Some(None)`: unfenced), or `None` when this
    /// instance does not hold the account's lease and must not write.
    fn epoch(&self) -> Option<Option<crate::store::Epoch>> {
        self.epochs.fence(self.telegram.self_id()).write_epoch()
    }

    /// One pass over the account's queue. Does nothing while this instance does not hold the
    /// account's lease; every write carries the epoch read at the start of the pass, so a pass
    /// that outlives its term is refused by the store ([`StoreError::Fenced`]).
    pub async fn pass(&self, cancel: &CancellationToken) -> Result<(), StoreError> {
        let account = self.telegram.self_id();
        let Some(epoch) = self.epoch() else {
            return Ok(());
        };
        let rescued = self.store.rescue_withdrawals(account, epoch).await?;
        if rescued > 0 {
            tracing::warn!(
                account,
                rescued,
                "withdrawals whose worker's lease ran out were taken back (sends became unknown)"
            );
        }
        self.resolve_unknowns(account, epoch).await?;
        while !cancel.is_cancelled() {
            // Between requests: a term that ended stops the pass before the next claim.
            if self.epoch() != Some(epoch) {
                break;
            }
            let Some(w) = self
                .store
                .claim_withdrawal(account, &self.id, self.config.lease, epoch)
                .await?
            else {
                break;
            };
            let span = tracing::info_span!("withdrawal", id = w.id, key = %w.key, owner = w.owner, attempt = w.attempt);
            let _ = tracing::Instrument::instrument(self.process(w, epoch), span).await;
        }
        Ok(())
    }

    /// Sets the queue's gauges: open requests per state, Stars the waiting ones need.
    async fn measure(&self, account: UserId) -> Result<(), StoreError> {
        let open = self
            .store
            .list_withdrawals(&WithdrawalFilter {
                account_id: Some(account),
                states: RequestState::ALL
                    .into_iter()
                    .filter(|s| !s.is_final())
                    .collect(),
                ..Default::default()
            })
            .await?;
        let gauges = &self.health.withdrawals;
        for state in OPEN_WITHDRAWAL_STATES {
            let n = open.iter().filter(|w| w.state.as_str() == state).count();
            gauges
                .open
                .get_or_create(&WithdrawalLabels {
                    account: account.to_string(),
                    state: state.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let needed: i64 = open
            .iter()
            .filter(|w| w.wait_reason == Some(WaitReason::Stars))
            .filter_map(|w| w.fee_stars)
            .sum();
        gauges
            .stars_needed
            .get_or_create(&AccountLabel {
                account: account.to_string(),
            })
            .set(needed);
        Ok(())
    }

    /// Resolves each unknown outcome whose settle delay passed, by looking at Telegram.
    async fn resolve_unknowns(
        &self,
        account: UserId,
        epoch: Option<crate::store::Epoch>,
    ) -> Result<(), StoreError> {
        let unknown = self
            .store
            .list_withdrawals(&WithdrawalFilter {
                account_id: Some(account),
                states: vec![RequestState::Unknown],
                ..Default::default()
            })
            .await?;
        let settle = i64::try_from(self.config.settle_delay.as_millis()).unwrap_or(i64::MAX);
        for w in unknown {
            if w.sending_at_ms.unwrap_or(0).saturating_add(settle) > now_ms() {
                continue;
            }
            if let Err(e) = self.resolve(&w, epoch).await {
                tracing::warn!(id = w.id, error = %e, "could not resolve an unknown withdrawal yet");
            }
        }
        Ok(())
    }

    /// Keeps the live inventory following the request (the bot reads it).
    fn follow(&self, w: &Withdrawal) {
        let target = w.state.item_status();
        let Some(item) = self.inventory.get(w.key) else {
            return;
        };
        let path: &[Status] = match (item.status, target) {
            (a, b) if a == b => &[],
            (Status::Held, Status::Withdrawing) => {
                &[Status::WithdrawRequested, Status::Withdrawing]
            }
            (Status::Held, Status::Withdrawn) => &[
                Status::WithdrawRequested,
                Status::Withdrawing,
                Status::Withdrawn,
            ],
            (Status::WithdrawRequested, Status::Withdrawn) => {
                &[Status::Withdrawing, Status::Withdrawn]
            }
            _ => std::slice::from_ref(&target),
        };
        for &to in path {
            if let Err(e) = self.inventory.apply(w.key, to, now_ms() / 1000) {
                tracing::debug!(key = %w.key, error = %e, "live inventory did not follow");
                return;
            }
        }
    }

    /// Applies a move and follows it in the inventory. `Lost` when another worker, an operator
    /// or the player moved the request first.
    pub(super) async fn apply(
        &self,
        mv: WithdrawalMove,
        epoch: Option<crate::store::Epoch>,
    ) -> Result<(Step, Option<Withdrawal>), StoreError> {
        match self.store.move_withdrawal(&mv.with_epoch(epoch)).await {
            Ok(w) => {
                self.follow(&w);
                Ok((Step::Moved(w.state), Some(w)))
            }
            Err(e @ StoreError::WithdrawalMoveRefused { .. }) => {
                tracing::warn!(error = %e, "the request moved under this worker; leaving it");
                Ok((Step::Lost, None))
            }
            Err(e @ StoreError::Fenced { .. }) => {
                // The next holder of the account takes the request back and, for a send,
                // resolves it by looking at Telegram.
                tracing::error!(error = %e, "the move was refused: this instance lost the account's lease");
                Ok((Step::Lost, None))
            }
            Err(e) => Err(e),
        }
    }

    async fn process(&self, w: Withdrawal, epoch: Option<crate::store::Epoch>) {
        // Tests crash the process here and at the two points below (`--features failpoints`,
        // FAILPOINTS=withdraw-after-claim=return): the restart must send the gift exactly once.
        fail::fail_point!("withdraw-after-claim", |_| std::process::abort());
        self.follow(&w);
        let result = self.try_process(&w, epoch).await;
        match result {
            Ok((Step::Moved(state), Some(moved))) => {
                tracing::info!(state = %state, reason = moved.reason.as_deref().unwrap_or(""), "withdrawal moved");
                self.tell(&moved).await;
            }
            Ok(_) => {}
            Err(e) => {
                // The store failed after the claim: the lease runs out and the request is
                // rescued (a claim back to the queue, a send to unknown).
                tracing::warn!(error = %e, "withdrawal step could not be recorded; the lease will hand it back");
            }
        }
    }

    /// Records how long a finished request took (the player hears of it through the outbox).
    async fn tell(&self, w: &Withdrawal) {
        if matches!(w.state, RequestState::Sent | RequestState::Failed) {
            let secs = (now_ms() / 1000 - w.requested_at).max(0) as f64;
            self.health
                .latency
                .withdrawal
                .get_or_create(&AccountLabel {
                    account: w.key.account_id.to_string(),
                })
                .observe(secs);
        }
        tracing::debug!(id = w.id, player = w.owner, state = %w.state, "withdrawal moved");
    }

    fn purchase(&self, w: &Withdrawal, gift_id: i64) -> Purchase {
        match w.kind {
            WithdrawalKind::Transfer => Purchase::Transfer {
                msg_id: w.key.msg_id,
                to: w.owner,
            },
            WithdrawalKind::Resend => Purchase::Gift {
                gift_id,
                to: w.owner,
                msg_id: w.key.msg_id,
            },
        }
    }

    async fn try_process(
        &self,
        w: &Withdrawal,
        epoch: Option<crate::store::Epoch>,
    ) -> Result<(Step, Option<Withdrawal>), StoreError> {
        let Some(item) = self.inventory.get(w.key) else {
            return self
                .apply(
                    WithdrawalMove::failed(w, "the gift is no longer in the deposit account"),
                    epoch,
                )
                .await;
        };
        if w.kind == WithdrawalKind::Resend && self.config.regular == RegularPolicy::Refuse {
            return self
                .apply(
                    WithdrawalMove::failed(
                        w,
                        "regular gifts cannot be withdrawn here: Telegram moves only collectibles, \
                     and the operator does not buy regular gifts back (withdraw.regular = refuse)",
                    ),
                    epoch,
                )
                .await;
        }
        if let Some(mv) = self.precheck(w, &item).await {
            return self.apply(mv, epoch).await;
        }
        if w.kind == WithdrawalKind::Resend
            && let Some(wait) = self.resend_too_young(w, &item, epoch).await
        {
            return wait;
        }
        let purchase = self.purchase(w, item.gift_id);

        // 1. What does it cost? Read-only: nothing moves, any error leaves the request safe.
        let quote = match self
            .telegram
            .quote(purchase, self.config.call_timeout)
            .await
        {
            Ok(q) => q,
            Err(e) => return self.refused_before_sending(w, &e, epoch).await,
        };
        let (fee, form_id) = match quote {
            Quote::Free => (0, None),
            Quote::Paid { form_id, stars } => (stars, Some(form_id)),
        };
        let (cap, budget) = match w.kind {
            WithdrawalKind::Transfer => (self.config.max_fee_stars, self.config.daily_fee_stars),
            WithdrawalKind::Resend => {
                (self.config.max_resend_stars, self.config.daily_resend_stars)
            }
        };
        let approved = w.approved_stars.is_some_and(|a| a >= fee);
        if fee > cap && !approved {
            return self
                .apply(
                    WithdrawalMove::defer_quoted(
                        w,
                        WaitReason::FeeCap,
                        fee,
                        &format!(
                            "Telegram asks {fee} Stars, above the {cap} Stars an operator allows \
                         without approval: `giftd withdrawals approve {}`",
                            w.id
                        ),
                    ),
                    epoch,
                )
                .await;
        }

        // 2. The intent, committed before the call that moves the gift or spends Stars.
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let daily = (fee > 0 && !approved).then_some(budget);
        let sending = match self
            .store
            .move_withdrawal(
                &WithdrawalMove::begin_send(w, fee, form_id, lease, daily).with_epoch(epoch),
            )
            .await
        {
            Ok(s) => s,
            Err(StoreError::OverDailyBudget { total, budget, .. }) => {
                return self
                    .apply(
                        WithdrawalMove::defer_quoted(
                            w,
                            WaitReason::DailyBudget,
                            fee,
                            &format!(
                                "paying {fee} Stars would bring today's spending to {total}, over \
                             the daily budget of {budget}: `giftd withdrawals approve {}`",
                                w.id
                            ),
                        ),
                        epoch,
                    )
                    .await;
            }
            Err(e @ StoreError::WithdrawalMoveRefused { .. }) => {
                tracing::warn!(error = %e, "the request moved before sending; leaving it");
                return Ok((Step::Lost, None));
            }
            Err(e @ StoreError::Fenced { .. }) => {
                tracing::error!(error = %e, "not sending: this instance lost the account's lease");
                return Ok((Step::Lost, None));
            }
            Err(e) => return Err(e),
        };

        fail::fail_point!("withdraw-after-sending", |_| std::process::abort());

        // The term may have ended by this instance's clock since the pass began: then it does
        // not act. A lost lease is `unknown` like any other interruption after `sending` (the
        // design's rule): the settle delay passes and a look at Telegram finds the gift still
        // in the account. If even that write is refused, the next holder does the same.
        if self.epoch() != Some(epoch) {
            tracing::warn!("not sending: this instance no longer holds the account's lease");
            return self
                .apply(
                    WithdrawalMove::unknown(
                        &sending,
                        "the instance sending it lost the deposit account's lease before the \
                         call",
                    ),
                    epoch,
                )
                .await;
        }

        // A resend pays for a gift the house keeps: only while the original is still the
        // house's, claimed for this request and not refunded.
        if sending.kind == WithdrawalKind::Resend
            && let Some(refused) = self.resend_original_gone(&sending, epoch).await
        {
            return refused;
        }

        // 3. The one call.
        let timeout = self.config.call_timeout;
        let answer = match (quote, form_id) {
            (Quote::Free, _) => {
                self.telegram
                    .transfer_free(w.key.msg_id, w.owner, timeout)
                    .await
            }
            (Quote::Paid { .. }, Some(form)) => self.telegram.pay(form, purchase, timeout).await,
            (Quote::Paid { .. }, None) => unreachable!("a paid quote carries its form id"),
        };
        fail::fail_point!("withdraw-after-answer", |_| std::process::abort());
        self.record_answer(&sending, answer, epoch).await
    }

    /// What must stop or delay the request before Telegram is asked for a price: a locked
    /// collectible waits for its `can_transfer_at`; a regular gift that cannot be bought again
    /// (sold out, auction-only, premium-only, per-user limit, `payments.checkCanSendGift`) is
    /// refused with the reason, and one locked until a date waits for it. `None`: go on. A
    /// Telegram error here is not a verdict: the quote that follows asks again.
    async fn precheck(&self, w: &Withdrawal, item: &crate::gift::Item) -> Option<WithdrawalMove> {
        let now = now_ms() / 1000;
        let verdict = match w.kind {
            WithdrawalKind::Transfer => precheck::transfer(item.can_transfer_at, now),
            WithdrawalKind::Resend => {
                let premium = self.telegram.premium();
                let rules = match self.telegram.gift_rules(w.key.msg_id).await {
                    Ok(Some(rules)) => rules,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::warn!(id = w.id, error = %e, "could not read the gift's purchase rules; asking for a price");
                        return None;
                    }
                };
                match precheck::resend(&rules, premium, now, None) {
                    precheck::Verdict::Go => {
                        match self.telegram.can_send_gift(item.gift_id).await {
                            Ok(can) => precheck::resend(&rules, premium, now, Some(&can)),
                            Err(e) => {
                                tracing::warn!(id = w.id, error = %e, "payments.checkCanSendGift failed; asking for a price");
                                precheck::Verdict::Go
                            }
                        }
                    }
                    other => other,
                }
            }
        };
        match verdict {
            precheck::Verdict::Go => None,
            precheck::Verdict::WaitUntil { at, why } => Some(WithdrawalMove::defer(
                w,
                WaitReason::TooEarly,
                Some(at * 1000),
                &why,
            )),
            precheck::Verdict::Refuse(reason) => Some(WithdrawalMove::failed(w, &reason)),
        }
    }

    /// Telegram refused before anything was committed (the quote): wait, fail or retry.
    async fn refused_before_sending(
        &self,
        w: &Withdrawal,
        e: &TelegramError,
        epoch: Option<crate::store::Epoch>,
    ) -> Result<(Step, Option<Withdrawal>), StoreError> {
        let now = now_ms();
        let mv = match (e.rpc_name(), e.rpc_value()) {
            (Some("STARGIFT_TRANSFER_TOO_EARLY"), Some(secs)) => WithdrawalMove::defer(
                w,
                WaitReason::TooEarly,
                Some(now + i64::from(secs) * 1000),
                &format!(
                    "Telegram allows this transfer in {secs} s (the gift is locked until then)"
                ),
            ),
            (Some("FLOOD_WAIT"), secs) => WithdrawalMove::defer(
                w,
                WaitReason::Retry,
                Some(now + i64::from(secs.unwrap_or(1)) * 1000),
                "Telegram asked to slow down (FLOOD_WAIT)",
            ),
            (Some("BALANCE_TOO_LOW"), _) => self.no_stars(w, now),
            (Some(name), _) if e.outcome_known() => WithdrawalMove::failed(w, &refusal(name)),
            _ if matches!(e, TelegramError::Unaddressable { .. }) => {
                WithdrawalMove::failed(w, &e.to_string())
            }
            // Telegram could not be asked (network, internal error): nothing moved.
            _ => WithdrawalMove::defer(
                w,
                WaitReason::Retry,
                Some(now + 5_000),
                &format!("Telegram could not be asked: {e}"),
            ),
        };
        self.apply(mv, epoch).await
    }

    fn no_stars(&self, w: &Withdrawal, now: i64) -> WithdrawalMove {
        WithdrawalMove::defer(
            w,
            WaitReason::Stars,
            Some(now + 600_000),
            "the deposit account lacks the Stars (BALANCE_TOO_LOW): top it up; giftd tries \
             again every 10 minutes, or at once with `giftd withdrawals retry ID`",
        )
    }

    /// Records what the money-moving call answered. A definite refusal sends the request back
    /// or fails it; anything else is unknown.
    async fn record_answer(
        &self,
        sending: &Withdrawal,
        answer: Result<(), TelegramError>,
        epoch: Option<crate::store::Epoch>,
    ) -> Result<(Step, Option<Withdrawal>), StoreError> {
        let now = now_ms();
        let e = match answer {
            Ok(()) => {
                let how = match (sending.kind, sending.fee_stars.unwrap_or(0)) {
                    (WithdrawalKind::Resend, fee) => format!("bought for the player ({fee} Stars)"),
                    (WithdrawalKind::Transfer, 0) => "transferred".to_owned(),
                    (WithdrawalKind::Transfer, fee) => format!("transferred ({fee} Stars fee)"),
                };
                return self.apply(WithdrawalMove::sent(sending, &how), epoch).await;
            }
            Err(e) => e,
        };
        if !e.outcome_known() {
            return self
                .apply(WithdrawalMove::unknown(sending, &e.to_string()), epoch)
                .await;
        }
        let mv = match (e.rpc_name(), e.rpc_value()) {
            // This very form was paid already: the payment happened.
            (Some("FORM_SUBMIT_DUPLICATE"), _) => {
                WithdrawalMove::sent(sending, "paid (Telegram says this form was already paid)")
            }
            (Some("STARGIFT_TRANSFER_TOO_EARLY"), Some(secs)) => WithdrawalMove::defer(
                sending,
                WaitReason::TooEarly,
                Some(now + i64::from(secs) * 1000),
                &format!(
                    "Telegram allows this transfer in {secs} s (the gift is locked until then)"
                ),
            ),
            (Some("BALANCE_TOO_LOW"), _) => self.no_stars(sending, now),
            (Some("FLOOD_WAIT"), secs) => WithdrawalMove::defer(
                sending,
                WaitReason::Retry,
                Some(now + i64::from(secs.unwrap_or(1)) * 1000),
                "Telegram asked to slow down (FLOOD_WAIT)",
            ),
            // The price or the form changed: ask again, nothing was paid.
            (Some("PAYMENT_REQUIRED" | "FORM_EXPIRED" | "STARS_FORM_AMOUNT_MISMATCH"), _) => {
                WithdrawalMove::defer(
                    sending,
                    WaitReason::Retry,
                    Some(now),
                    &format!(
                        "{}: asking Telegram for a new form",
                        e.rpc_name().unwrap_or("")
                    ),
                )
            }
            // The gift is not in the account: maybe an earlier attempt of ours moved it. Only
            // Telegram can tell.
            (Some("STARGIFT_NOT_FOUND"), _) => WithdrawalMove::unknown(
                sending,
                "Telegram does not find the gift in the deposit account",
            ),
            (Some(name), _) => WithdrawalMove::failed(sending, &refusal(name)),
            (None, _) => WithdrawalMove::failed(sending, &e.to_string()),
        };
        self.apply(mv, epoch).await
    }

    /// Looks at Telegram to learn what an unknown outcome was.
    async fn resolve(
        &self,
        w: &Withdrawal,
        epoch: Option<crate::store::Epoch>,
    ) -> Result<(), TelegramError> {
        let Some(item) = self.inventory.get(w.key) else {
            tracing::warn!(
                id = w.id,
                "unknown withdrawal of an item giftd no longer holds in memory"
            );
            return Ok(());
        };
        let since = w.sending_at_ms.unwrap_or(0) / 1000 - 5;
        let collectible = item.unique.as_ref().map(|u| u.collectible_id);
        let verdict = match w.kind {
            WithdrawalKind::Transfer => {
                if self.telegram.still_holds(w.key.msg_id).await? {
                    Verdict::NotSent("the gift is still in the deposit account".to_owned())
                } else if self
                    .telegram
                    .sent_to(w.owner, w.key.msg_id, since, collectible, item.gift_id)
                    .await?
                {
                    Verdict::Sent(
                        "the gift left the deposit account and the transfer to the player is in \
                         their chat"
                            .to_owned(),
                    )
                } else {
                    Verdict::Unresolved(
                        "the gift left the deposit account but no transfer to the player is in \
                         their chat: an operator must check"
                            .to_owned(),
                    )
                }
            }
            WithdrawalKind::Resend => self.resolve_purchase(w, item.gift_id, since).await?,
        };
        let mv = match verdict {
            Verdict::Sent(how) => WithdrawalMove::sent(w, &how),
            Verdict::NotSent(why) => WithdrawalMove::not_sent(w, self.config.max_attempts, &why),
            Verdict::Operator(why) => {
                tracing::warn!(id = w.id, key = %w.key, "{why}");
                WithdrawalMove::to_operator(w, &why)
            }
            Verdict::Unresolved(why) => {
                tracing::error!(id = w.id, key = %w.key, "{why}");
                return Ok(());
            }
        };
        match self.apply(mv, epoch).await {
            Ok((Step::Moved(state), Some(moved))) => {
                tracing::info!(id = w.id, state = %state, "unknown withdrawal resolved");
                self.tell(&moved).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(id = w.id, error = %e, "could not record the resolution"),
        }
        Ok(())
    }

    /// A purchase's outcome, from evidence only Telegram and the deposit account write: paying
    /// the same form again (`FORM_SUBMIT_DUPLICATE`: it was paid; success: it had not been, and
    /// now is), else the account's own Stars history (an outgoing purchase of this gift for this
    /// player after `sending`, not already the evidence of another request). Anything else is
    /// for an operator: never bought again by itself.
    async fn resolve_purchase(
        &self,
        w: &Withdrawal,
        gift_id: i64,
        since: i64,
    ) -> Result<Verdict, TelegramError> {
        if let Some(form) = w.form_id {
            let purchase = self.purchase(w, gift_id);
            match self
                .telegram
                .pay(form, purchase, self.config.call_timeout)
                .await
            {
                Ok(()) => {
                    return Ok(Verdict::Sent(
                        "paid on resolving (the first payment had not gone through)".to_owned(),
                    ));
                }
                Err(e) if e.rpc_name() == Some("FORM_SUBMIT_DUPLICATE") => {
                    return Ok(Verdict::Sent("Telegram says the form was paid".to_owned()));
                }
                Err(e) if e.rpc_name() == Some("FORM_EXPIRED") => {}
                Err(e) if e.outcome_known() => {
                    // A refusal of the second payment says nothing about the first.
                    if self.purchase_in_history(w, gift_id, since).await? {
                        return Ok(Verdict::Sent(
                            "the purchase for the player is in the deposit account's Stars history"
                                .to_owned(),
                        ));
                    }
                    return Ok(Verdict::Operator(format!(
                        "paying the form again was refused ({}) and the deposit account's Stars \
                         history shows no purchase for the player: an operator must check, then \
                         approve (buy again) or cancel",
                        e.rpc_name().unwrap_or("refused")
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(if self.purchase_in_history(w, gift_id, since).await? {
            Verdict::Sent(
                "the purchase for the player is in the deposit account's Stars history".to_owned(),
            )
        } else {
            Verdict::Operator(
                "the payment form expired and the deposit account's Stars history shows no \
                 purchase for the player: an operator must check, then approve (buy again) or \
                 cancel"
                    .to_owned(),
            )
        })
    }

    /// Whether the account's Stars history holds a purchase of `gift_id` for the player at the
    /// request's price since `since` that no other request already counts as its own: the
    /// purchases found must outnumber the other resends to the same player sent since then.
    async fn purchase_in_history(
        &self,
        w: &Withdrawal,
        gift_id: i64,
        since: i64,
    ) -> Result<bool, TelegramError> {
        let matching = self
            .telegram
            .gift_purchases_since(since)
            .await?
            .into_iter()
            .filter(|p| {
                p.to == w.owner
                    && p.gift_id == gift_id
                    && w.fee_stars.is_none_or(|fee| fee == p.stars)
            })
            .count();
        if matching == 0 {
            return Ok(false);
        }
        let others = self
            .store
            .list_withdrawals(&WithdrawalFilter {
                account_id: Some(w.key.account_id),
                owner: Some(w.owner),
                states: vec![RequestState::Sent],
                ..Default::default()
            })
            .await
            .map_err(|e| TelegramError::Unexpected {
                method: "payments.getStarsTransactions",
                detail: format!("the store could not list the other sent requests: {e}"),
            })?
            .into_iter()
            .filter(|o| {
                o.id != w.id
                    && o.kind == WithdrawalKind::Resend
                    && o.sending_at_ms.unwrap_or(i64::MAX) / 1000 >= since
                    // An item the inventory no longer knows counts as the same gift: fewer
                    // purchases are claimed, never more.
                    && self.inventory.get(o.key).is_none_or(|i| i.gift_id == gift_id)
            })
            .count();
        Ok(matching > others)
    }
}

enum Verdict {
    Sent(String),
    NotSent(String),
    /// Stays unknown (logged): nothing the player could be given back.
    Unresolved(String),
    /// No evidence either way: an operator decides.
    Operator(String),
}

/// What a player and an operator read for a definite refusal.
fn refusal(name: &str) -> String {
    match name {
        "USER_DISALLOWED_STARGIFTS" => {
            "the player's privacy settings refuse gifts: they must allow gifts, then ask again"
                .to_owned()
        }
        "STARGIFT_USAGE_LIMITED" => {
            "this gift is sold out: it cannot be bought again for the player".to_owned()
        }
        "STARGIFT_NOT_UNIQUE" => "Telegram moves only collectibles".to_owned(),
        "PEER_ID_INVALID" | "USER_ID_INVALID" => {
            "Telegram does not know this player any more".to_owned()
        }
        other => format!("Telegram refused ({other})"),
    }
}
