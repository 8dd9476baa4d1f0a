//! The companion bot's life inside the daemon: it runs only while this instance may run it
//! ([`Daemon::bot_active`]: it holds the `bot` lease, or leases are off), connects its own
//! session with backoff once the inventory and gift titles are loaded (never answering from a
//! half-loaded inventory), tells `/readyz` whether it is connected, and stops when the lease
//! goes. A bot that cannot start never stops detection. The bot itself is [`crate::bot`].

use super::*;

impl Daemon {
    /// Runs the bot whenever [`Daemon::bot_active`] says so, until `cancel`.
    pub(super) fn run_bot(
        &self,
        config: &Config,
        bot: crate::config::BotConfig,
        store: &Arc<dyn store::Store>,
        epochs: Epochs,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let opts = crate::telegram::bot::BotOptions {
            session_file: bot.session_file.clone(),
            api_id: config.telegram.api_id,
            api_hash: config.telegram.api_hash.clone(),
            token: bot.token.clone(),
        };
        let parts = BotWiring {
            store: Arc::clone(store),
            inventory: Arc::clone(&self.inventory),
            titles: Arc::clone(&self.titles),
            health: Arc::clone(&self.health),
            regular: config.withdraw.regular,
            admins: bot.admins.clone(),
            accounts: Arc::clone(&self.deposit_accounts),
            epochs,
            wake: Arc::clone(&self.withdrawals_wake),
            stats: Arc::clone(&self.bot_stats),
            commits: self.commits.clone(),
            loaded: self.loaded.subscribe(),
            chat_burst: bot.chat_burst,
            undelivered_max_age: bot.undelivered_max_age,
        };
        let mut active = self.bot_active();
        async move {
            loop {
                // Wait for this instance's turn.
                tokio::select! {
                    () = cancel.cancelled() => return,
                    held = active.wait_for(|a| *a) => if held.is_err() { return },
                }
                let term = cancel.child_token();
                let mut watch = active.clone();
                let stop = term.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = watch.wait_for(|a| !*a) => {
                            tracing::info!("the bot lease went to another instance: the bot stops here");
                            stop.cancel();
                        }
                    }
                });
                let fatal = run_bot_term(&opts, &parts, &term).await;
                term.cancel();
                if fatal || cancel.is_cancelled() {
                    return;
                }
            }
        }
    }
}

/// What the bot is built from, cloned for each term.
struct BotWiring {
    store: Arc<dyn store::Store>,
    inventory: Arc<Inventory>,
    titles: Arc<crate::bot::Titles>,
    health: Arc<Health>,
    regular: crate::config::RegularPolicy,
    admins: Vec<UserId>,
    accounts: Arc<DepositAccounts>,
    epochs: Epochs,
    wake: Arc<Notify>,
    stats: Arc<crate::bot::BotStats>,
    commits: broadcast::Sender<mirror::Committed>,
    /// Turns true once the inventory and gift titles are loaded: the bot connects only then.
    loaded: watch::Receiver<bool>,
    chat_burst: u32,
    undelivered_max_age: Duration,
}

/// One term of the bot: connects (retrying while Telegram cannot be reached) and answers until
/// `term` ends. Returns true when the bot can never start (bad token or session): logged, with
/// what to do, and detection goes on.
async fn run_bot_term(
    opts: &crate::telegram::bot::BotOptions,
    parts: &BotWiring,
    term: &CancellationToken,
) -> bool {
    use crate::health::BotLink;
    use crate::telegram::bot::{BotApi, BotError};
    parts.health.set_bot_link(Some(BotLink::Connecting));
    // Not before the inventory and the gift titles are loaded: players' messages wait in
    // Telegram meanwhile (the session's saved position), and none is answered from a
    // half-loaded inventory.
    let mut loaded = parts.loaded.clone();
    tokio::select! {
        () = term.cancelled() => {
            parts.health.set_bot_link(None);
            return false;
        }
        l = loaded.wait_for(|l| *l) => if l.is_err() { return false },
    }
    let mut delay = Duration::from_secs(1);
    let conn = loop {
        match BotApi::connect(opts, term.child_token()).await {
            Ok(conn) => break conn,
            Err(e @ (BotError::BadToken { .. } | BotError::Session { .. })) => {
                tracing::error!(error = %e, "the companion bot cannot start; deposits are still detected");
                parts
                    .health
                    .set_bot_link(Some(BotLink::Failed(e.to_string())));
                return true;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "the companion bot cannot connect yet");
                tokio::select! {
                    () = term.cancelled() => {
                        parts.health.set_bot_link(None);
                        return false;
                    }
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    };
    parts.health.set_bot_link(Some(BotLink::Connected));
    let runner = conn.runner;
    let bot = Arc::new(crate::bot::Bot::new(crate::bot::BotParts {
        api: conn.api,
        store: Arc::clone(&parts.store),
        inventory: Arc::clone(&parts.inventory),
        titles: Arc::clone(&parts.titles),
        health: Arc::clone(&parts.health),
        regular: parts.regular,
        admins: parts.admins.clone(),
        accounts: Arc::clone(&parts.accounts),
        epochs: parts.epochs.clone(),
        withdrawals_wake: Arc::clone(&parts.wake),
        stats: Arc::clone(&parts.stats),
        chat_burst: parts.chat_burst,
        undelivered_max_age: parts.undelivered_max_age,
    }));
    crate::bot::BotTask {
        bot,
        events: conn.events,
        commits: parts.commits.subscribe(),
        poll: Duration::from_secs(2),
    }
    .run(term.clone())
    .await;
    parts.health.set_bot_link(None);
    if tokio::time::timeout(Duration::from_secs(2), runner)
        .await
        .is_err()
    {
        tracing::debug!("bot connection task did not stop in time");
    }
    false
}
