//! One deposit account's life inside the daemon: learning its Telegram id, keeping its lease,
//! standing by, connecting, loading and reconciling, running its intake paths, withdrawal worker
//! and self-check, and recovering from its failures with backoff, without touching the other
//! accounts. Must never serve an account without holding its lease (when leases are on).

use super::intake::*;
use super::*;

/// What every account's task shares with the daemon.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: Config,
    /// More than one account is configured: messages name `--account NAME`.
    pub(super) several: bool,
    pub(super) store: Arc<dyn store::Store>,
    pub(super) inventory: Arc<Inventory>,
    pub(super) health: Arc<Health>,
    pub(super) notices: broadcast::Sender<Notice>,
    /// One mirror for every account; it closes when the last task holding [`Shared`] ends.
    pub(super) mirror: MirrorHandle,
    pub(super) withdrawals_wake: Arc<Notify>,
    /// Gift titles as Telegram named them, for the bot.
    pub(super) titles: Arc<crate::bot::Titles>,
    /// Each account's Telegram identity once known, for the bot's texts.
    pub(super) deposit_accounts: Arc<DepositAccounts>,
    pub(super) events: mpsc::Sender<AccountEvent>,
    /// Lease times when leases are on (the Supabase store), `None` for the embedded store.
    pub(super) leases: Option<crate::term::LeaseTimes>,
    /// Each account's epoch while this instance holds it; the mirror and the workers read it.
    pub(super) epochs: Epochs,
    /// This instance's stable identity (with leases): a restart takes over its own leases.
    pub(super) identity: Option<String>,
    /// This process's name in the lease rows.
    pub(super) holder: String,
    /// Every keeper this instance runs, released at shutdown after the mirror's flush.
    pub(super) keepers: Arc<AsyncMutex<Vec<LeaseHandle>>>,
}

/// What an account's task tells the daemon.
#[derive(Debug)]
pub(super) enum AccountEvent {
    /// The account is served (after its start-up reconciliation).
    Up { name: String },
    /// Another instance holds the account's lease; this one waits.
    Standby { name: String },
    /// The account stopped being served; its task retries.
    Down { name: String, error: AppError },
    /// Something no account can work around (the host clock): the daemon stops.
    Fatal(AppError),
}

/// First wait before an account that failed is tried again; doubled up to [`RETRY_MAX`].
pub(super) const RETRY_MIN: Duration = Duration::from_secs(2);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(60);

/// Serves one deposit account until `cancel`, reconnecting with backoff after a failure; the
/// others are not affected by its failures. With leases it first learns the account's
/// Telegram id (its lease is named by it), keeps the account's lease, and serves only while
/// holding it: when the lease is lost the account's intake and worker stop at once (the epochs
/// the mirror and the worker write with are cleared first) and its items leave this instance's
/// inventory, so a later term starts again from the store.
pub(super) async fn run_account(
    shared: Arc<Shared>,
    account: AccountConfig,
    cancel: CancellationToken,
) {
    let mut keeper: Option<LeaseHandle> = None;
    account_loop(&shared, &account, &cancel, &mut keeper).await;
    // Released by the daemon after the mirror's flush, with the others.
    if let Some(keeper) = keeper {
        shared.keepers.lock().await.push(keeper);
    }
}

async fn account_loop(
    shared: &Arc<Shared>,
    account: &AccountConfig,
    cancel: &CancellationToken,
    keeper: &mut Option<LeaseHandle>,
) {
    let name = account.name.clone();
    let mut delay = RETRY_MIN;
    let mut id: Option<UserId> = None;
    let mut verified = false;
    loop {
        let mut lease: Option<(
            watch::Receiver<LeaseState>,
            watch::Receiver<Option<store::Lease>>,
            crate::term::LeaseTimes,
        )> = None;
        if let Some(times) = shared.leases {
            // Learned once, and checked again after a failure: an instance that cannot sign
            // in as the account does not compete for its lease (it stays down, not standby).
            let known = match id {
                Some(id) if verified => Ok(id),
                _ => account_id(shared, account, cancel).await,
            };
            let known = match known {
                Ok(known) => known,
                Err(e) => {
                    if account_failed(shared, &name, e, &mut delay, cancel).await {
                        return;
                    }
                    continue;
                }
            };
            if id.is_none() {
                shared.health.watch_account(known);
            }
            id = Some(known);
            verified = true;
            if keeper.is_none()
                && let Some(identity) = &shared.identity
                && let Err(twin) = crate::lease::take_over_predecessor(
                    shared.store.as_ref(),
                    &store::account_lease(known),
                    identity,
                    &shared.holder,
                    times,
                )
                .await
            {
                let _ = shared.events.send(AccountEvent::Fatal(twin.into())).await;
                return;
            }
            let handle = keeper.get_or_insert_with(|| {
                Keeper::for_account(
                    Arc::clone(&shared.store),
                    known,
                    shared.holder.clone(),
                    times,
                    &shared.epochs,
                )
                .spawn(cancel.clone())
            });
            let mut watch = handle.watch();
            // A new keeper's first answer is awaited, so a free lease is not reported as
            // standby for a moment.
            if watch.borrow().epoch().is_none() {
                let _ = tokio::time::timeout(times.ttl, watch.changed()).await;
            }
            lease = Some((watch, handle.other(), times));
        }
        // Standby until this instance holds the account's lease: healthy while the holder
        // renews, not ready once it is silent past its renewal period (nobody serves then).
        if let Some((watch, other, times)) = lease.as_mut()
            && watch.borrow().epoch().is_none()
        {
            let mut told = false;
            loop {
                let state = match other.borrow_and_update().as_ref() {
                    Some(l) => match crate::lease::silent_since(l, *times) {
                        Some(since_ms) => AccountState::HolderSilent {
                            holder: l.holder.clone(),
                            since_ms,
                        },
                        None => AccountState::Standby,
                    },
                    None => AccountState::Standby,
                };
                shared.health.set_account(&name, id, state);
                if !told {
                    told = true;
                    let _ = shared
                        .events
                        .send(AccountEvent::Standby { name: name.clone() })
                        .await;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    held = watch.wait_for(|s| s.epoch().is_some()) => {
                        if held.is_err() {
                            return; // the keeper ended: shutting down
                        }
                        break;
                    }
                    changed = other.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
            tracing::info!(account = name, "took the account's lease; serving it");
        }
        shared.health.set_account(&name, id, AccountState::Starting);
        let session = cancel.child_token();
        // The term this session serves: any other state (lost, standby, or already a later
        // term, which another instance may have held in between) ends the session.
        let lost = lease.clone().map(|(mut watch, _, _)| {
            let session = session.clone();
            let term = watch.borrow_and_update().epoch();
            tokio::spawn(async move {
                let _ = watch
                    .wait_for(|s| s.epoch() != term || term.is_none())
                    .await;
                session.cancel();
            })
        });
        let result = serve_account(shared, account, &session).await;
        if let Some(lost) = lost {
            lost.abort();
        }
        if cancel.is_cancelled() {
            return;
        }
        if session.is_cancelled() {
            // The lease went to another instance (or could not be renewed in time).
            let forgot = id.map_or(0, |id| shared.inventory.forget_account(id));
            tracing::warn!(
                account = name,
                items_forgotten = forgot,
                "lost the account's lease: stopped its intake and withdrawals; standing by"
            );
            delay = RETRY_MIN;
            continue;
        }
        let error = match result {
            Ok(()) => continue,
            Err(e) => e,
        };
        // This instance cannot serve the account now (its session revoked, Telegram
        // unreachable from here): it gives the lease up so another instance can, and asks for
        // it again after the backoff.
        verified = false;
        if let Some(handle) = keeper.take() {
            let _ = handle.release().await;
            if let Some(id) = id {
                shared.inventory.forget_account(id);
            }
            tracing::warn!(
                account = name,
                "released the account's lease: this instance cannot serve it now"
            );
        }
        if account_failed(shared, &name, error, &mut delay, cancel).await {
            return;
        }
    }
}

/// Records an account's failure (down, with what to do), tells the daemon, and waits before the
/// next try. Returns true when the task should end (shutdown, or a fatal error for the daemon).
pub(super) async fn account_failed(
    shared: &Shared,
    name: &str,
    error: AppError,
    delay: &mut Duration,
    cancel: &CancellationToken,
) -> bool {
    if cancel.is_cancelled() {
        return true;
    }
    if let AppError::Telegram(TelegramError::ClockAhead { .. }) = &error {
        let _ = shared.events.send(AccountEvent::Fatal(error)).await;
        return true;
    }
    let mut why = error.to_string();
    if shared.several {
        why = why.replace(
            "run `giftd login`",
            &format!("run `giftd login --account {name}`"),
        );
    }
    let why = format!("{why} (retrying in {} s)", delay.as_secs());
    shared
        .health
        .set_account(name, None, AccountState::Down(why));
    let _ = shared
        .events
        .send(AccountEvent::Down {
            name: name.to_owned(),
            error,
        })
        .await;
    tokio::select! {
        () = cancel.cancelled() => return true,
        () = tokio::time::sleep(*delay) => {}
    }
    *delay = (*delay * 2).min(RETRY_MAX);
    false
}

/// The account's Telegram user id, which names its lease: a short connection without the
/// update stream, closed at once (the holder connects for real when it takes the lease).
pub(super) async fn account_id(
    shared: &Shared,
    account: &AccountConfig,
    cancel: &CancellationToken,
) -> Result<UserId, AppError> {
    let opts = ConnectOptions {
        session_file: account.session_file.clone(),
        api_id: shared.config.telegram.api_id,
        api_hash: shared.config.telegram.api_hash.clone(),
        flood_wait_max: shared.config.telegram.flood_wait_max,
        updates: false,
        update_buffer: shared.config.telegram.update_buffer,
        health: Arc::clone(&shared.health),
    };
    let conn = Telegram::connect(&opts, cancel.child_token()).await?;
    let id = conn.telegram.self_id();
    shared.deposit_accounts.record(
        &account.name,
        crate::bot::DepositAccount {
            id,
            username: conn.telegram.username().map(str::to_owned),
        },
    );
    conn.telegram.disconnect();
    let mut runner = conn.runner;
    if tokio::time::timeout(Duration::from_secs(2), &mut runner)
        .await
        .is_err()
    {
        runner.abort();
    }
    Ok(id)
}

/// One connection's life for an account: connect, load, reconcile, serve until `cancel` (Ok)
/// or until the account fails (Err), then stop its tasks and close its session.
pub(super) async fn serve_account(
    shared: &Arc<Shared>,
    account: &AccountConfig,
    cancel: &CancellationToken,
) -> Result<(), AppError> {
    let config = &shared.config;
    let opts = ConnectOptions {
        session_file: account.session_file.clone(),
        api_id: config.telegram.api_id,
        api_hash: config.telegram.api_hash.clone(),
        flood_wait_max: config.telegram.flood_wait_max,
        updates: config.telegram.updates,
        update_buffer: config.telegram.update_buffer,
        health: Arc::clone(&shared.health),
    };
    let session = cancel.child_token();
    let conn = Telegram::connect(&opts, session.child_token()).await?;
    let telegram = conn.telegram.clone();
    let id = telegram.self_id();
    shared.health.watch_account(id);
    shared.deposit_accounts.record(
        &account.name,
        crate::bot::DepositAccount {
            id,
            username: telegram.username().map(str::to_owned),
        },
    );
    shared
        .health
        .set_account(&account.name, Some(id), AccountState::Starting);
    tracing::info!(
        account = account.name,
        id,
        "signed in as the deposit account"
    );

    let tracker = TaskTracker::new();
    let result = run_session(shared, account, &telegram, conn.updates, &session, &tracker).await;

    // The account's intake stops, its update state is saved (by the update loop), the
    // session closes. What it queued stays in the shared mirror.
    session.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(account = account.name, "intake tasks did not stop in time");
    }
    telegram.disconnect();
    let mut runner = conn.runner;
    if tokio::time::timeout(Duration::from_secs(2), &mut runner)
        .await
        .is_err()
    {
        runner.abort();
    }
    result
}

/// Loads the account's items, reconciles, then runs its intake paths and withdrawal worker
/// until `session` is cancelled (Ok) or the account fails (Err).
pub(super) async fn run_session(
    shared: &Arc<Shared>,
    account: &AccountConfig,
    telegram: &Telegram,
    updates: Option<GiftUpdates>,
    session: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), AppError> {
    let config = &shared.config;
    let id = telegram.self_id();
    for item in shared.store.load_items(id).await? {
        shared.inventory.insert(item);
    }
    tracing::info!(
        account = account.name,
        items = shared.inventory.len(),
        "inventory loaded"
    );
    let applier = Arc::new(Applier {
        detector: Detector::new(id),
        inventory: Arc::clone(&shared.inventory),
        mirror: shared.mirror.clone(),
        health: Arc::clone(&shared.health),
        notices: shared.notices.clone(),
        retired: std::sync::Mutex::new(Vec::new()),
        titles: Arc::clone(&shared.titles),
        last_poll_unix: std::sync::atomic::AtomicI64::new(now_unix()),
    });
    if !reconcile(telegram, &applier).await? {
        // The list moved under the first pass: one more, so departures are settled.
        reconcile(telegram, &applier).await?;
    }
    applier.mirror.flush().await.ok();
    applier.evict_retired();
    shared
        .health
        .set_account(&account.name, Some(id), AccountState::Serving);
    let _ = shared
        .events
        .send(AccountEvent::Up {
            name: account.name.clone(),
        })
        .await;

    let (fatal_tx, mut fatal_rx) = mpsc::channel::<AppError>(4);
    let reconcile_now = Arc::new(Notify::new());
    if let Some(updates) = updates {
        tracker.spawn(update_loop(
            updates,
            Arc::clone(&applier),
            Arc::clone(&reconcile_now),
            session.child_token(),
        ));
    }
    tracker.spawn(poll_loop(
        telegram.clone(),
        Arc::clone(&applier),
        config.telegram.poll_interval,
        session.child_token(),
        fatal_tx,
    ));
    tracker.spawn(reconcile_loop(
        telegram.clone(),
        Arc::clone(&applier),
        config.telegram.reconcile_interval,
        Arc::clone(&reconcile_now),
        session.child_token(),
    ));
    let worker = crate::withdraw::worker::Worker {
        store: Arc::clone(&shared.store),
        telegram: telegram.clone(),
        inventory: Arc::clone(&shared.inventory),
        config: config.withdraw.clone(),
        id: crate::withdraw::worker::Worker::id_for(id),
        wake: Arc::clone(&shared.withdrawals_wake),
        health: Arc::clone(&shared.health),
        epochs: shared.epochs.clone(),
    };
    tracker.spawn(worker.run(session.child_token()));
    tracker.spawn(account_check(
        Arc::clone(shared),
        account.name.clone(),
        id,
        Arc::clone(&applier),
        session.child_token(),
    ));

    tokio::select! {
        () = session.cancelled() => Ok(()),
        Some(e) = fatal_rx.recv() => Err(e),
    }
}

/// One account's half of the self-check: it is down while its polls of Telegram keep failing
/// (a long FLOOD_WAIT, a dropped connection), and serving again once one succeeds.
pub(super) async fn account_check(
    shared: Arc<Shared>,
    name: String,
    id: UserId,
    applier: Arc<Applier>,
    cancel: CancellationToken,
) {
    let poll_interval = shared.config.telegram.poll_interval;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SELF_CHECK_INTERVAL) => {}
        }
        let (ok, why) = verdict(SelfCheck {
            poll_age: now_unix() - applier.last_poll_unix.load(Ordering::Relaxed),
            poll_interval,
            backlog: 0,
            store_failing: false,
        });
        let state = if ok {
            AccountState::Serving
        } else {
            AccountState::Down(why)
        };
        shared.health.set_account(&name, Some(id), state);
    }
}
