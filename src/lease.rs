//! Leases: which giftd instance acts for a deposit account (or runs the bot), and the epoch
//! every write for that account carries.
//!
//! A [`Keeper`] is one task per lease name. It takes the lease through the store (a row with
//! holder, epoch and an expiry by the database's clock), renews it every
//! [`LeaseTimes::renew_every`] for [`LeaseTimes::ttl`], and publishes its state through a
//! `tokio::sync::watch` ([`LeaseState`]: held at an epoch, standby, lost) and, for an account,
//! into the shared [`Epochs`] the mirror and the withdrawal worker read their fence from.
//!
//! It steps down by its **own monotonic clock**: a term counts as held only until the start
//! of the last successful take or renewal plus `ttl - margin`. The database cannot give the
//! lease to anyone before that start plus `ttl`, so an instance that was paused (SIGSTOP, a VM
//! freeze) or cut off from the database stops acting before anyone else can start, even if it
//! never hears from the store again. What it still writes afterwards is refused by the store
//! (fencing: [`crate::store::StoreError::Fenced`]). On shutdown the caller flushes what it owes
//! the store, then calls [`LeaseHandle::release`], so another instance takes over at once.
//!
//! The transitions are a pure part ([`Machine`]) driven by instants, tested with plain values;
//! the task around it only makes the store calls and sleeps. Must never: report a lease held
//! past its local deadline, or release a term that is not its own.
//!
//! Default times: TTL 15 s (the database's clock), renewal every 5 s (under half the TTL, so one
//! failed renewal leaves room for another), margin 3 s (a fifth of the TTL): a term counts as held
//! until the start of the last successful take or renewal plus 12 s. A renewal still running at
//! that instant does not keep the term.
//!
//! A take of a free, expired or released lease starts a new term (epoch + 1); the holder taking
//! again or renewing keeps its epoch; a renewal or release names its holder and epoch and is
//! refused for any other. Concurrent takers serialise on the lease row: one wins. An instance that
//! does not hold a lease tries to take it every second (`take_every`), or just after the holder's
//! term expires, so a released lease changes hands within a second. The daemon (`app`) runs one
//! keeper per configured deposit account (`account:<telegram id>`) and one for the bot (`bot`)
//! when the store is Supabase; with the embedded store it runs `Epochs::unfenced()` (one instance,
//! kept alone by the file lock). [`identity`] is which instance a process is: its stable
//! identity, the holder name it takes leases under, and telling a dead predecessor of the same
//! identity from a live twin.
//!
//! Losing a lease (a refused renewal, or none within TTL - margin by the instance's own clock)
//! clears the epochs first, so the mirror and the worker stop writing for the account at once; then
//! the account's intake and worker stop and its items leave this instance's inventory, so a later
//! term starts again from the store. An instance that cannot serve an account it holds (session
//! revoked, Telegram unreachable) releases the lease at once so another can take over, and signs in
//! again before it competes for the lease after its backoff.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::gift::UserId;
use crate::store::{Epoch, Lease, LeaseAnswer, Store, StoreError, account_lease};

mod identity;
pub use self::identity::*;
pub use crate::term::{LeaseTimes, LeaseTimesError};

/// What a keeper knows about its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Not held (never was, someone else holds it, or released): do not act.
    Standby,
    /// Held at this epoch: act, and write with this epoch.
    Held { epoch: Epoch },
    /// Was held at this epoch and is no longer (renewal refused, or the local deadline passed
    /// without one): stop acting at once. The keeper goes on trying to take it again.
    Lost { epoch: Epoch },
}

impl LeaseState {
    /// The epoch to write with, when held.
    pub fn epoch(self) -> Option<Epoch> {
        match self {
            LeaseState::Held { epoch } => Some(epoch),
            _ => None,
        }
    }
}

/// The store call a keeper makes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Take,
    Renew { epoch: Epoch },
}

/// The keeper's transitions, pure: fed the instants of its calls and their answers, it says
/// what the state is, when to call next and when a held term ends.
#[derive(Debug, Clone)]
pub struct Machine {
    times: LeaseTimes,
    state: LeaseState,
    /// While held: the local instant after which this instance must not act.
    deadline: Option<Instant>,
    /// When to make the next call.
    next: Instant,
}

impl Machine {
    pub fn new(times: LeaseTimes, now: Instant) -> Self {
        Machine {
            times,
            state: LeaseState::Standby,
            deadline: None,
            next: now,
        }
    }

    pub fn state(&self) -> LeaseState {
        self.state
    }

    /// While held, the instant the term ends by the local clock.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The next call and when to make it.
    pub fn next_call(&self) -> (Instant, Call) {
        let call = match self.state {
            LeaseState::Held { epoch } => Call::Renew { epoch },
            LeaseState::Standby | LeaseState::Lost { .. } => Call::Take,
        };
        (self.next, call)
    }

    /// A call started at `started` answered at `now`.
    pub fn on_answer(
        &mut self,
        started: Instant,
        now: Instant,
        answer: &Result<LeaseAnswer, StoreError>,
    ) -> LeaseState {
        match answer {
            Ok(LeaseAnswer::Held(lease)) => {
                let deadline = started + self.times.hold_for();
                if deadline <= now {
                    // The answer came too late to act on: the term may end any moment.
                    self.lose(now);
                    self.next = now + self.times.retry_after();
                } else {
                    self.state = LeaseState::Held { epoch: lease.epoch };
                    self.deadline = Some(deadline);
                    self.next = started + self.times.renew_every;
                }
            }
            Ok(LeaseAnswer::Refused(current)) => {
                self.lose(now);
                // Try again when the current term expires, or at the usual pace.
                let wait = current
                    .as_ref()
                    .filter(|l| l.is_live())
                    .map_or(self.times.take_every, |l| {
                        (l.remaining() + Duration::from_millis(10)).min(self.times.take_every)
                    });
                self.next = now + wait;
            }
            Err(_) => {
                // Keep what is held until the deadline; try again soon.
                self.next = now + self.times.retry_after();
            }
        }
        self.state
    }

    /// The local clock reached `now`: a held term past its deadline is over.
    pub fn on_time(&mut self, now: Instant) -> LeaseState {
        if self.deadline.is_some_and(|d| now >= d) {
            self.lose(now);
            // Not at once: whoever watches sees `Lost` before a new term can follow it.
            self.next = now + self.times.take_every;
        }
        self.state
    }

    /// The lease was released (or given up): standby, nothing to renew.
    pub fn on_release(&mut self) -> LeaseState {
        self.state = LeaseState::Standby;
        self.deadline = None;
        self.state
    }

    fn lose(&mut self, now: Instant) {
        if let LeaseState::Held { epoch } = self.state {
            self.state = LeaseState::Lost { epoch };
        }
        self.deadline = None;
        self.next = self.next.max(now);
    }
}

/// Whether and how a write for an account is fenced, as [`Epochs::fence`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// No leases in this process (a single instance): write without an epoch.
    Unfenced,
    /// This instance holds the account's lease: write with this epoch.
    Epoch(Epoch),
    /// Leases are on and this instance does not hold the account's: do not write.
    NotHeld,
}

impl Fence {
    /// The epoch a write carries (`Some(None)`: unfenced), or `None` when it must not be made.
    pub fn write_epoch(self) -> Option<Option<Epoch>> {
        match self {
            Fence::Unfenced => Some(None),
            Fence::Epoch(e) => Some(Some(e)),
            Fence::NotHeld => None,
        }
    }
}

/// The current epoch of each deposit account this instance holds, shared by the keepers (who
/// set it) and the writers (the mirror, the withdrawal workers, who read it before each write).
/// Cheap to clone; reading never waits on a store call.
#[derive(Debug, Clone)]
pub struct Epochs {
    inner: Arc<EpochsInner>,
}

#[derive(Debug)]
struct EpochsInner {
    /// False: no leases in this process; every write is unfenced.
    leased: bool,
    /// Accounts held now and their epochs; an account absent is not held.
    held: RwLock<HashMap<UserId, Epoch>>,
}

impl Epochs {
    /// No leases: a single instance (the embedded store's file lock, or a deployment without
    /// several instances). Every write goes unfenced.
    pub fn unfenced() -> Self {
        Self::with(false)
    }

    /// Leases on: an account is written only while a keeper holds its lease.
    pub fn leased() -> Self {
        Self::with(true)
    }

    fn with(leased: bool) -> Self {
        Epochs {
            inner: Arc::new(EpochsInner {
                leased,
                held: RwLock::new(HashMap::new()),
            }),
        }
    }

    pub fn is_leased(&self) -> bool {
        self.inner.leased
    }

    /// Records that `account` is held at `epoch` (`None`: not held).
    pub fn set(&self, account: UserId, epoch: Option<Epoch>) {
        // A poisoned lock only means a panic elsewhere while the map was written; the map of
        // plain integers is still whole.
        let mut held = self.inner.held.write().unwrap_or_else(|e| e.into_inner());
        match epoch {
            Some(e) => held.insert(account, e),
            None => held.remove(&account),
        };
    }

    /// How a write for `account` is fenced now.
    pub fn fence(&self, account: UserId) -> Fence {
        if !self.inner.leased {
            return Fence::Unfenced;
        }
        let held = self.inner.held.read().unwrap_or_else(|e| e.into_inner());
        held.get(&account)
            .map_or(Fence::NotHeld, |&e| Fence::Epoch(e))
    }
}

/// A fresh instance id to hold leases with: the process id and a random part, so two
/// processes (on one host or two) never share one. Without a stable identity (tests, tools).
pub fn instance_id() -> String {
    format!("{}:{:08x}", std::process::id(), rand::random::<u32>())
}

/// When another holder's term `lease` was last renewed (unix ms, the database's clock), if it is
/// silent past its renewal period: a holder renews every [`LeaseTimes::renew_every`] (plus
/// [`LeaseTimes::take_every`] of room for a slow call), so a lease renewed longer ago than that
/// has a holder that stopped (killed, paused, cut off). Instances sharing a store share lease
/// times, so the last renewal is the expiry minus the TTL.
pub fn silent_since(lease: &Lease, times: LeaseTimes) -> Option<i64> {
    let last = lease.expires_at_ms - crate::store::lease::millis_of(times.ttl);
    let period = crate::store::lease::millis_of(times.renew_every + times.take_every);
    (lease.db_now_ms - last > period).then_some(last)
}

/// Takes and keeps one lease; [`Keeper::spawn`] starts its task.
#[derive(Debug)]
pub struct Keeper {
    store: Arc<dyn Store>,
    name: String,
    holder: String,
    times: LeaseTimes,
    /// For an account's lease: where its epoch is published.
    epochs: Option<(Epochs, UserId)>,
}

/// The running keeper: its state, and the way to end it.
#[derive(Debug)]
pub struct LeaseHandle {
    state: watch::Receiver<LeaseState>,
    /// The lease as the last refused take or renewal saw it (another holder's term), `None`
    /// while held or before any answer.
    other: watch::Receiver<Option<Lease>>,
    commands: mpsc::Sender<oneshot::Sender<Result<bool, StoreError>>>,
    name: String,
}

impl Keeper {
    /// A keeper of the lease `name` for `holder` (see [`instance_id`]).
    pub fn new(
        store: Arc<dyn Store>,
        name: impl Into<String>,
        holder: impl Into<String>,
        times: LeaseTimes,
    ) -> Self {
        Keeper {
            store,
            name: name.into(),
            holder: holder.into(),
            times,
            epochs: None,
        }
    }

    /// A keeper of the lease of deposit account `account` that publishes its epoch into
    /// `epochs` (set when held, cleared the moment it is not).
    pub fn for_account(
        store: Arc<dyn Store>,
        account: UserId,
        holder: impl Into<String>,
        times: LeaseTimes,
        epochs: &Epochs,
    ) -> Self {
        let mut k = Self::new(store, account_lease(account), holder, times);
        k.epochs = Some((epochs.clone(), account));
        k
    }

    /// Starts the task. It takes the lease (or waits for it) and renews it until
    /// [`LeaseHandle::release`] or until the handle is dropped (then without releasing: the
    /// lease expires after its TTL). `cancel` (the daemon's shutdown) stops it from taking a
    /// lease it does not hold; a held lease is still renewed until the caller, having flushed,
    /// releases it.
    pub fn spawn(self, cancel: CancellationToken) -> LeaseHandle {
        let (handle, task) = self.prepare(cancel);
        tokio::spawn(task);
        handle
    }

    /// [`Keeper::spawn`] on the daemon's `TaskTracker`. The task ends only at
    /// [`LeaseHandle::release`] or when the handle is dropped: do either before waiting on the
    /// tracker.
    pub fn spawn_on(
        self,
        tracker: &tokio_util::task::TaskTracker,
        cancel: CancellationToken,
    ) -> LeaseHandle {
        let (handle, task) = self.prepare(cancel);
        tracker.spawn(task);
        handle
    }

    fn prepare(
        self,
        cancel: CancellationToken,
    ) -> (LeaseHandle, impl std::future::Future<Output = ()> + Send) {
        let (state_tx, state_rx) = watch::channel(LeaseState::Standby);
        let (other_tx, other_rx) = watch::channel(None);
        let (commands_tx, commands_rx) = mpsc::channel(1);
        let handle = LeaseHandle {
            state: state_rx,
            other: other_rx,
            commands: commands_tx,
            name: self.name.clone(),
        };
        (handle, self.run(state_tx, other_tx, commands_rx, cancel))
    }

    fn publish(&self, tx: &watch::Sender<LeaseState>, state: LeaseState) {
        // Epochs first: writers must stop before anyone is told.
        if let Some((epochs, account)) = &self.epochs {
            epochs.set(*account, state.epoch());
        }
        let old = tx.send_replace(state);
        if old == state {
            return;
        }
        let (lease, holder) = (self.name.as_str(), self.holder.as_str());
        match state {
            LeaseState::Held { epoch } => tracing::info!(lease, holder, epoch, "lease held"),
            LeaseState::Lost { epoch } => tracing::warn!(
                lease,
                holder,
                epoch,
                "lease lost (renewal refused, or not renewed in time): this instance stops \
                 acting for it"
            ),
            LeaseState::Standby => tracing::info!(lease, holder, "lease not held (standby)"),
        }
    }

    async fn call(&self, call: Call) -> Result<LeaseAnswer, StoreError> {
        match call {
            Call::Take => {
                self.store
                    .take_lease(&self.name, &self.holder, self.times.ttl)
                    .await
            }
            Call::Renew { epoch } => {
                self.store
                    .renew_lease(&self.name, &self.holder, epoch, self.times.ttl)
                    .await
            }
        }
    }

    async fn run(
        self,
        tx: watch::Sender<LeaseState>,
        other: watch::Sender<Option<Lease>>,
        mut commands: mpsc::Receiver<oneshot::Sender<Result<bool, StoreError>>>,
        cancel: CancellationToken,
    ) {
        let mut m = Machine::new(self.times, Instant::now());
        let far = || Instant::now() + Duration::from_secs(86_400);
        loop {
            let (at, call) = m.next_call();
            // After shutdown began, a lease not held is not taken.
            let may_call = !(cancel.is_cancelled() && call == Call::Take);
            let deadline = m.deadline();
            tokio::select! {
                biased;
                command = commands.recv() => {
                    let result = match (command.is_some(), m.state()) {
                        (true, LeaseState::Held { epoch } | LeaseState::Lost { epoch }) => {
                            m.on_release();
                            self.publish(&tx, LeaseState::Standby);
                            self.store.release_lease(&self.name, &self.holder, epoch).await
                        }
                        _ => {
                            m.on_release();
                            self.publish(&tx, LeaseState::Standby);
                            Ok(false)
                        }
                    };
                    match &result {
                        Ok(true) => tracing::info!(lease = %self.name, "lease released"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(lease = %self.name, error = %e,
                            "could not release the lease; it expires by itself"),
                    }
                    if let Some(reply) = command {
                        let _ = reply.send(result);
                    }
                    return;
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(far)), if deadline.is_some() => {
                    let state = m.on_time(Instant::now());
                    self.publish(&tx, state);
                }
                () = cancel.cancelled(), if !cancel.is_cancelled() => {}
                () = tokio::time::sleep_until(at), if may_call => {
                    let started = Instant::now();
                    // A call still running at the deadline does not keep the term alive.
                    let answer = tokio::select! {
                        a = self.call(call) => Some(a),
                        () = tokio::time::sleep_until(deadline.unwrap_or_else(far)), if deadline.is_some() => None,
                    };
                    let state = match answer {
                        Some(answer) => {
                            match &answer {
                                Err(e) => tracing::warn!(lease = %self.name, error = %e, ?call,
                                    "lease call failed; trying again"),
                                Ok(LeaseAnswer::Refused(current)) => {
                                    other.send_replace(current.clone());
                                }
                                Ok(LeaseAnswer::Held(_)) => {
                                    other.send_replace(None);
                                }
                            }
                            m.on_answer(started, Instant::now(), &answer)
                        }
                        None => m.on_time(Instant::now()),
                    };
                    self.publish(&tx, state);
                }
            }
        }
    }
}

impl LeaseHandle {
    /// The lease's state, to watch for changes. A watch keeps only the latest value: a watcher
    /// that is slow may see `Held { e }` followed by `Held { e2 }` without the `Lost` between
    /// (the keeper waits `take_every` after stepping down before taking again, but a loaded
    /// machine can be slower). Compare epochs: any other epoch than the one acted on means the
    /// term that was acted on is over.
    pub fn watch(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }

    /// The lease as the last refused call saw it: another holder's term, to watch whether
    /// that holder still renews. `None` while held.
    pub fn other(&self) -> watch::Receiver<Option<Lease>> {
        self.other.clone()
    }

    /// The state now.
    pub fn state(&self) -> LeaseState {
        *self.state.borrow()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops acting (standby, epochs cleared), ends the term in the store so another instance
    /// takes over at once, and ends the task. Call it after flushing what this instance owes
    /// the store. Returns whether a held term was released.
    pub async fn release(self) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(reply).await.is_err() {
            return Ok(false); // the task is gone
        }
        answer.await.unwrap_or(Ok(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Lease;

    fn lease(epoch: Epoch, remaining_ms: i64) -> Lease {
        Lease {
            name: "account:1".into(),
            holder: "me".into(),
            epoch,
            expires_at_ms: 1_000 + remaining_ms,
            db_now_ms: 1_000,
        }
    }

    fn held(epoch: Epoch) -> Result<LeaseAnswer, StoreError> {
        Ok(LeaseAnswer::Held(lease(epoch, 15_000)))
    }

    fn refused(remaining_ms: i64) -> Result<LeaseAnswer, StoreError> {
        Ok(LeaseAnswer::Refused(Some(Lease {
            holder: "other".into(),
            ..lease(9, remaining_ms)
        })))
    }

    fn down() -> Result<LeaseAnswer, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn times_are_validated() {
        let d = LeaseTimes::default();
        assert_eq!(d.validated(), Ok(d));
        assert_eq!(
            (d.ttl, d.renew_every, d.take_every, d.margin),
            (15 * S, 5 * S, S, 3 * S)
        );
        assert_eq!(d.hold_for(), 12 * S);
        assert!(LeaseTimes::new(15 * S, 5 * S).is_ok());
        assert!(
            LeaseTimes::new(10 * S, 5 * S).is_err(),
            "renew must be < ttl/2"
        );
        assert!(LeaseTimes::new(10 * S, Duration::ZERO).is_err());
        assert!(LeaseTimes::new(Duration::from_millis(50), Duration::from_millis(10)).is_err());
        let no_room = LeaseTimes {
            margin: 10 * S,
            ..d
        };
        assert!(no_room.validated().is_err());
    }

    #[test]
    fn takes_renews_and_keeps_the_epoch() {
        let t0 = Instant::now();
        let mut m = Machine::new(LeaseTimes::default(), t0);
        assert_eq!(m.next_call(), (t0, Call::Take));
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(m.on_answer(t0, t1, &held(4)), LeaseState::Held { epoch: 4 });
        assert_eq!(m.deadline(), Some(t0 + 12 * S));
        assert_eq!(m.next_call(), (t0 + 5 * S, Call::Renew { epoch: 4 }));
        let t5 = t0 + 5 * S;
        assert_eq!(
            m.on_answer(t5, t5 + Duration::from_millis(20), &held(4)),
            LeaseState::Held { epoch: 4 }
        );
        assert_eq!(
            m.deadline(),
            Some(t5 + 12 * S),
            "counted from the call's start"
        );
        assert_eq!(m.on_time(t5 + 11 * S), LeaseState::Held { epoch: 4 });
    }

    #[test]
    fn steps_down_by_its_own_clock_when_renewals_fail() {
        let t0 = Instant::now();
        let mut m = Machine::new(LeaseTimes::default(), t0);
        m.on_answer(t0, t0, &held(2));
        // Renewals fail (database unreachable): held until the deadline, retried each second.
        let t5 = t0 + 5 * S;
        assert_eq!(
            m.on_answer(t5, t5 + S, &down()),
            LeaseState::Held { epoch: 2 }
        );
        assert_eq!(m.next_call(), (t5 + 2 * S, Call::Renew { epoch: 2 }));
        assert_eq!(
            m.on_time(t0 + 12 * S - Duration::from_millis(1)),
            LeaseState::Held { epoch: 2 }
        );
        assert_eq!(m.on_time(t0 + 12 * S), LeaseState::Lost { epoch: 2 });
        assert_eq!(m.deadline(), None);
        // Lost, it tries to take again a little later (a new term, or the same one if nobody
        // took it).
        assert_eq!(m.next_call(), (t0 + 13 * S, Call::Take));
        assert_eq!(
            m.on_answer(t0 + 13 * S, t0 + 13 * S, &held(3)),
            LeaseState::Held { epoch: 3 }
        );
    }

    #[test]
    fn a_paused_instance_never_acts_on_a_late_answer() {
        let t0 = Instant::now();
        let mut m = Machine::new(LeaseTimes::default(), t0);
        m.on_answer(t0, t0, &held(1));
        // The renewal started at 5 s; the process was stopped and its answer read at 30 s.
        let t5 = t0 + 5 * S;
        assert_eq!(
            m.on_answer(t5, t0 + 30 * S, &held(1)),
            LeaseState::Lost { epoch: 1 }
        );
        assert_eq!(m.deadline(), None);
        assert_eq!(
            m.next_call(),
            (t0 + 31 * S, Call::Take),
            "tried again a second later"
        );
    }

    #[test]
    fn a_refused_renewal_loses_at_once_and_standby_waits_for_the_expiry() {
        let t0 = Instant::now();
        let mut m = Machine::new(LeaseTimes::default(), t0);
        m.on_answer(t0, t0, &held(5));
        let t5 = t0 + 5 * S;
        assert_eq!(
            m.on_answer(t5, t5, &refused(8_000)),
            LeaseState::Lost { epoch: 5 }
        );
        assert_eq!(m.next_call(), (t5 + S, Call::Take), "at the taking pace");
        // Refused while another's term has 0.5 s left: try again just after it expires.
        let t6 = t5 + S;
        assert_eq!(
            m.on_answer(t6, t6, &refused(500)),
            LeaseState::Lost { epoch: 5 }
        );
        assert_eq!(m.next_call(), (t6 + Duration::from_millis(510), Call::Take));
        // A standby that never held stays standby when refused.
        let mut s = Machine::new(LeaseTimes::default(), t0);
        assert_eq!(s.on_answer(t0, t0, &refused(15_000)), LeaseState::Standby);
        assert_eq!(s.on_answer(t0, t0, &down()), LeaseState::Standby);
        assert_eq!(s.next_call(), (t0 + S, Call::Take));
    }

    #[test]
    fn a_holder_is_silent_past_its_renewal_period() {
        let t = LeaseTimes::default();
        // Renewed 4 s ago (11 s left of 15): renewing.
        assert_eq!(silent_since(&lease(1, 11_000), t), None);
        // Renewed 7 s ago: past 5 s + 1 s.
        assert_eq!(
            silent_since(&lease(1, 8_000), t),
            Some(1_000 + 8_000 - 15_000)
        );
        let expired = Lease {
            expires_at_ms: 900,
            ..lease(1, 0)
        };
        assert_eq!(silent_since(&expired, t), Some(900 - 15_000));
    }

    #[test]
    fn release_goes_to_standby() {
        let t0 = Instant::now();
        let mut m = Machine::new(LeaseTimes::default(), t0);
        m.on_answer(t0, t0, &held(7));
        assert_eq!(m.on_release(), LeaseState::Standby);
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn epochs_fence_writes() {
        let none = Epochs::unfenced();
        assert_eq!(none.fence(1), Fence::Unfenced);
        assert_eq!(Fence::Unfenced.write_epoch(), Some(None));
        let epochs = Epochs::leased();
        assert_eq!(epochs.fence(1), Fence::NotHeld);
        assert_eq!(Fence::NotHeld.write_epoch(), None);
        epochs.clone().set(1, Some(3));
        assert_eq!(epochs.fence(1), Fence::Epoch(3));
        assert_eq!(epochs.fence(2), Fence::NotHeld);
        epochs.set(1, None);
        assert_eq!(epochs.fence(1), Fence::NotHeld);
        assert_ne!(instance_id(), instance_id());
    }
}
