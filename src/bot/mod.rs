//! The companion bot: players see, withdraw and link their gifts in Telegram; operators run the
//! deposit desk from it.
//!
//! A pure core, tested with plain values: [`intent`] turns a text message into an
//! [`intent::Intent`] (`/start [token]`, `/inventory`, `/withdraw`, `/stats`, `/language`,
//! `/help`, `/admin`, other) and button data into an [`intent::Action`] (a versioned encoding,
//! `1:<op>:<fields>`, at most 45 bytes of Telegram's 64, parsed defensively: only the exact
//! spelling `encode` writes is accepted, and a proptest feeds it random bytes); [`view`] renders
//! state (plain structs) to text and inline buttons; [`limit`] holds the token bucket per user
//! (20 at once, 2 a second; one "slow down" a minute); [`pace`] the [`pace::Pacer`] of outgoing
//! messages: a bucket per chat (`bot.chat_burst` at once, 3 by default, then one per 1.05 s) and
//! one over all chats (2 at once, 27 a second: under Telegram's 30 in any second), where a
//! notification takes a token only when one stays for a reply (and at most 20 a second, one per
//! 3 s per chat); a send waits only for its own chat's bucket and the overall one, and a
//! FLOOD_WAIT holds every send exactly as long as Telegram said; [`i18n`] holds the Fluent
//! catalogues `locales/{en,fr}.ftl`, compiled in, and the [`i18n::Key`] enum, the only way code
//! names a text (tests fail when a key is missing from a catalogue or a catalogue has a message
//! no key names).
//!
//! The thin part: [`BotTask`] reads the events of the bot session (`telegram::bot`, the only
//! module that imports grammers), applies the per-user limit and hands each event to
//! [`handler`] in its own task (which first settles the player's language: cached, else the
//! store's, else the app's); a press's callback answer goes out beside the edit, not after it.
//! [`notify`] drains the store's outbox (claim a few rows, group them per player: the gifts
//! credited, then the player's totals once; send, report), woken by each mirror commit, by a
//! player starting the bot (their undelivered rows are pending again) and every 2 s. The
//! withdrawal worker tells players nothing itself: every step reaches them through the outbox,
//! whoever moved the request. An operator's Approve carries the fee the desk showed and is
//! refused when the request's fee is another by then.
//!
//! **Invariant:** never trust a button. Every press checks again, against the live inventory
//! and then in the store's own transaction, that the item exists, is the presser's and is in a
//! state that allows the action; operator buttons check the presser is in `bot.admins`. A
//! forged press changes nothing. Every press is answered; editing a message to what it already
//! shows (`MESSAGE_NOT_MODIFIED`) is success.
//!
//! **Invariant:** answers read the live inventory and never wait on the store for what it knows
//! (`/stats`' history and the operator's queue are the store's, read with a deadline); writes go
//! through the store. No user-facing text is in code. The bot never blocks detection: its sends,
//! waits and store calls run in its own tasks, and it never sends faster than Telegram allows.

pub mod handler;
pub mod i18n;
pub mod intent;
pub mod limit;
pub mod notify;
pub mod pace;
pub mod view;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::i18n::Lang;
use self::limit::{BucketConfig, Limiter, Verdict};
use self::pace::{Class, PaceConfig, Pacer};
use self::view::View;
use crate::config::RegularPolicy;
use crate::gift::{GiftType, UserId};
use crate::health::Health;
use crate::inventory::Inventory;
use crate::mirror::Committed;
use crate::store::Store;
use crate::telegram::bot::{BotApi, BotError, BotEvent, Keyboard};

/// Gift titles by catalogue id, as Telegram named them when the gifts were seen; shared by the
/// daemon (which records them) and the bot (which shows them).
#[derive(Debug, Default)]
pub struct Titles {
    map: DashMap<i64, String>,
}

impl Titles {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, gift: &GiftType) {
        if let Some(title) = gift.title.as_deref().filter(|t| !t.is_empty())
            && !self.map.contains_key(&gift.gift_id)
        {
            self.map.insert(gift.gift_id, title.to_owned());
        }
    }

    pub fn get(&self, gift_id: i64) -> Option<String> {
        self.map.get(&gift_id).map(|t| t.clone())
    }
}

/// A deposit account as players are told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositAccount {
    pub id: UserId,
    pub username: Option<String>,
}

/// The deposit accounts whose Telegram identity is known, by configured name: each account's
/// task records its own when it signs in, the bot reads them when it answers.
#[derive(Debug, Default)]
pub struct DepositAccounts {
    by_name: std::sync::RwLock<std::collections::BTreeMap<String, DepositAccount>>,
}

impl DepositAccounts {
    /// What the bot is told at start: these accounts, known already.
    pub fn from_list(accounts: impl IntoIterator<Item = (String, DepositAccount)>) -> Self {
        DepositAccounts {
            by_name: std::sync::RwLock::new(accounts.into_iter().collect()),
        }
    }

    /// Records (or updates) account `name`'s identity.
    pub fn record(&self, name: &str, account: DepositAccount) {
        // A poisoned lock only means a writer panicked mid-insert of a plain map: the map is
        // still usable, so take it.
        let mut map = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        map.insert(name.to_owned(), account);
    }

    /// The known accounts, in the order of their names.
    pub fn list(&self) -> Vec<DepositAccount> {
        let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }
}

/// Counters for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct BotStats {
    pub messages: AtomicU64,
    pub presses: AtomicU64,
    /// Messages and presses over a user's limit (each answered at most once).
    pub limited: AtomicU64,
    pub replies: AtomicU64,
    pub flood_waits: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub notifications_failed: AtomicU64,
}

/// Everything the bot needs, built by the daemon.
#[derive(Debug)]
pub struct BotParts {
    pub api: BotApi,
    pub store: Arc<dyn Store>,
    pub inventory: Arc<Inventory>,
    pub titles: Arc<Titles>,
    pub health: Arc<Health>,
    pub regular: RegularPolicy,
    pub admins: Vec<UserId>,
    pub accounts: Arc<DepositAccounts>,
    /// Which deposit accounts this instance serves (with leases on, the others are read from
    /// the store).
    pub epochs: crate::lease::Epochs,
    /// Wakes the withdrawal worker when the bot creates or approves a request.
    pub withdrawals_wake: Arc<Notify>,
    pub stats: Arc<BotStats>,
    /// Messages one chat may get at once (`bot.chat_burst`).
    pub chat_burst: u32,
    /// How old an undelivered notification may be and still be sent when the player starts
    /// the bot (`bot.undelivered_max_age`).
    pub undelivered_max_age: Duration,
}

/// The language the bot speaks to a player, as this process knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KnownLang {
    lang: Lang,
    /// Chosen with /language: Telegram's code does not replace it.
    chosen: bool,
}

/// The bot's shared state: one per process, behind an `Arc` in every handler task.
#[derive(Debug)]
pub struct Bot {
    pub(crate) api: BotApi,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) titles: Arc<Titles>,
    pub(crate) health: Arc<Health>,
    pub(crate) regular: RegularPolicy,
    pub(crate) admins: HashSet<UserId>,
    pub(crate) accounts: Arc<DepositAccounts>,
    pub(crate) epochs: crate::lease::Epochs,
    pub(crate) withdrawals_wake: Arc<Notify>,
    pub(crate) stats: Arc<BotStats>,
    limiter: std::sync::Mutex<Limiter>,
    pacer: std::sync::Mutex<Pacer>,
    /// Replies waiting for a slot: notifications wait while there are any.
    replies_waiting: AtomicU64,
    /// The language of each player heard from or notified since the start (the store keeps
    /// it across restarts).
    langs: DashMap<UserId, KnownLang>,
    /// Wakes the notification sender (a player started the bot: their undelivered
    /// notifications are pending again).
    pub(crate) notices_wake: Notify,
    pub(crate) undelivered_max_age: Duration,
    /// Operators who pressed Assign and whose next text names the user.
    pub(crate) assigning: DashMap<UserId, crate::gift::ItemKey>,
    /// Link tokens players opened and were asked about (`/start <token>`), by player: only
    /// that player's Confirm, within [`LINK_CONFIRM_TTL`], spends it.
    pub(crate) linking: DashMap<UserId, PendingLink>,
}

/// A `/start <token>` the bot asked its player about.
#[derive(Debug)]
pub(crate) struct PendingLink {
    pub token: crate::secret::Secret,
    /// Names the prompt: a button of an older prompt does nothing.
    pub nonce: u32,
    pub asked_at: std::time::Instant,
}

/// How long a player has to confirm a link.
pub const LINK_CONFIRM_TTL: Duration = Duration::from_secs(120);

/// How long a store call made while answering may take before the player is told to retry.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(5);

impl Bot {
    pub fn new(parts: BotParts) -> Self {
        Bot {
            api: parts.api,
            store: parts.store,
            inventory: parts.inventory,
            titles: parts.titles,
            health: parts.health,
            regular: parts.regular,
            admins: parts.admins.into_iter().collect(),
            accounts: parts.accounts,
            epochs: parts.epochs,
            withdrawals_wake: parts.withdrawals_wake,
            stats: parts.stats,
            limiter: std::sync::Mutex::new(Limiter::new(BucketConfig::default())),
            pacer: std::sync::Mutex::new(Pacer::new(
                PaceConfig::telegram(parts.chat_burst),
                Instant::now(),
            )),
            replies_waiting: AtomicU64::new(0),
            langs: DashMap::new(),
            notices_wake: Notify::new(),
            undelivered_max_age: parts.undelivered_max_age,
            assigning: DashMap::new(),
            linking: DashMap::new(),
        }
    }

    pub fn is_admin(&self, user: UserId) -> bool {
        self.admins.contains(&user)
    }

    /// The language to speak to `user` as this process knows it, else English.
    pub fn lang(&self, user: UserId) -> Lang {
        self.langs.get(&user).map_or(Lang::En, |l| l.lang)
    }

    /// The language to answer `user` in, whose app reports `code`: the one they chose with
    /// /language, else their app's. The first time this process hears from them it asks the
    /// store (a choice made before a restart stands); a change of the app's language is
    /// recorded without waiting.
    pub async fn speak(&self, user: UserId, code: Option<&str>) -> Lang {
        let known = self.langs.get(&user).map(|k| *k);
        match known {
            Some(k) if k.chosen => k.lang,
            Some(k) => {
                let Some(code) = code.filter(|c| Lang::from_code(Some(c)) != k.lang) else {
                    return k.lang;
                };
                let lang = Lang::from_code(Some(code));
                self.langs.insert(
                    user,
                    KnownLang {
                        lang,
                        chosen: false,
                    },
                );
                let store = Arc::clone(&self.store);
                let code = code.to_owned();
                tokio::spawn(async move {
                    if let Err(e) = store.note_language(user, &code, false).await {
                        tracing::debug!(user, error = %e, "player's language not recorded");
                    }
                });
                lang
            }
            None => {
                let stored = tokio::time::timeout(STORE_TIMEOUT, async {
                    match code {
                        Some(code) => self.store.note_language(user, code, false).await.map(Some),
                        None => self.store.language(user).await,
                    }
                })
                .await;
                match stored {
                    Ok(Ok(stored)) => {
                        let known = stored.map_or(
                            KnownLang {
                                lang: Lang::from_code(code),
                                chosen: false,
                            },
                            |s| KnownLang {
                                lang: Lang::from_code(Some(&s.code)),
                                chosen: s.chosen,
                            },
                        );
                        self.langs.insert(user, known);
                        known.lang
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(user, error = %e, "player's language not read");
                        Lang::from_code(code)
                    }
                    Err(_) => Lang::from_code(code),
                }
            }
        }
    }

    /// `user` chose `lang` with /language: spoken from now on, notifications included. Returns
    /// whether the store kept it (it is spoken in this process either way).
    pub async fn choose_lang(&self, user: UserId, lang: Lang) -> bool {
        self.langs.insert(user, KnownLang { lang, chosen: true });
        match tokio::time::timeout(
            STORE_TIMEOUT,
            self.store.note_language(user, lang.code(), true),
        )
        .await
        {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(user, error = %e, "player's language choice not recorded");
                false
            }
            Err(_) => false,
        }
    }

    /// Whether another instance serves `account` (leases on and this one does not hold it): its
    /// items are then read from the store, not from this instance's live inventory.
    pub fn served_elsewhere(&self, account: UserId) -> bool {
        matches!(self.epochs.fence(account), crate::lease::Fence::NotHeld)
    }

    /// `@deposit` (or several, comma-separated), as players are told to send gifts to.
    pub fn accounts_text(&self) -> String {
        self.accounts
            .list()
            .iter()
            .map(|a| match &a.username {
                Some(u) => format!("@{u}"),
                None => a.id.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn keyboard(view: &View) -> Keyboard {
        view.buttons
            .iter()
            .map(|row| {
                row.iter()
                    .map(|b| (b.text.clone(), b.action.encode().into_bytes()))
                    .collect()
            })
            .collect()
    }

    /// Sends a new message at Telegram's pace: at most one a second in the chat, 30 a second
    /// overall; a FLOOD_WAIT holds every send for exactly the seconds Telegram gave, then the
    /// message is sent (FLOOD_WAIT means it was not).
    pub async fn send(&self, chat: UserId, view: &View) -> Result<i32, BotError> {
        self.send_as(chat, view, Class::Reply).await
    }

    /// [`Bot::send`] for a message of `class` (notifications leave room for replies).
    pub async fn send_as(&self, chat: UserId, view: &View, class: Class) -> Result<i32, BotError> {
        let never = CancellationToken::new();
        let sent = self
            .send_unless_cancelled(chat, view, class, &never)
            .await?;
        // `never` is never cancelled, so the message was always handed to Telegram.
        Ok(sent.expect("a send that cannot be cancelled always runs"))
    }

    /// [`Bot::send_as`], giving up (`Ok(None)`, nothing sent) when `cancel` fires while the
    /// message still waits for its turn. Once the message is handed to Telegram, its answer is
    /// always awaited: a send cut short there could have reached the player, and whoever
    /// releases it would send it twice.
    pub async fn send_unless_cancelled(
        &self,
        chat: UserId,
        view: &View,
        class: Class,
        cancel: &CancellationToken,
    ) -> Result<Option<i32>, BotError> {
        let keyboard = Self::keyboard(view);
        loop {
            // Counted while this reply waits, whatever ends the wait (a dropped future too).
            let _waiting = (class == Class::Reply).then(|| Waiting::new(&self.replies_waiting));
            loop {
                let now = Instant::now();
                let wait =
                    if class == Class::Notice && self.replies_waiting.load(Ordering::Relaxed) > 0 {
                        // Replies first: a player waiting for an answer beats a notification.
                        now + Duration::from_millis(20)
                    } else {
                        let slot = self
                            .pacer
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .try_acquire(chat, class, now);
                        match slot {
                            Ok(()) => break,
                            Err(at) => at,
                        }
                    };
                tokio::select! {
                    () = cancel.cancelled() => return Ok(None),
                    () = tokio::time::sleep_until(wait.into()) => {}
                }
            }
            drop(_waiting);
            match self.api.send(chat, &view.text, &keyboard).await {
                Err(BotError::FloodWait { seconds }) => self.flood_wait(seconds),
                other => return other.map(Some),
            }
        }
    }

    fn flood_wait(&self, seconds: u32) {
        self.stats.flood_waits.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(seconds, "telegram asked the bot to wait (FLOOD_WAIT)");
        self.pacer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hold_until(Instant::now() + Duration::from_secs(seconds.into()));
    }

    /// Edits the bot's message in place (paging, confirmations). Showing what it already shows
    /// is success; a FLOOD_WAIT is waited out exactly.
    pub async fn edit(&self, chat: UserId, msg_id: i32, view: &View) -> Result<(), BotError> {
        let keyboard = Self::keyboard(view);
        for _ in 0..3 {
            match self.api.edit(chat, msg_id, &view.text, &keyboard).await {
                Err(BotError::FloodWait { seconds }) => {
                    self.flood_wait(seconds);
                    tokio::time::sleep(Duration::from_secs(seconds.into())).await;
                }
                other => return other,
            }
        }
        Err(BotError::FloodWait { seconds: 0 })
    }

    /// Answers a press (every press is answered, so no button keeps spinning).
    pub async fn answer(&self, query_id: i64, text: Option<String>) {
        for _ in 0..3 {
            match self.api.answer(query_id, text.as_deref(), false).await {
                Err(BotError::FloodWait { seconds }) => {
                    tokio::time::sleep(Duration::from_secs(seconds.into())).await;
                }
                Err(e) => {
                    tracing::warn!(query_id, error = %e, "could not answer a button press");
                    return;
                }
                Ok(()) => return,
            }
        }
    }

    /// Registers the command list in each language (and English for everyone else).
    pub async fn register_commands(&self) -> Result<(), BotError> {
        use self::i18n::{Key, tr};
        let list = |lang: Lang| -> Vec<(String, String)> {
            [
                ("start", Key::CmdStart),
                ("inventory", Key::CmdInventory),
                ("withdraw", Key::CmdWithdraw),
                ("stats", Key::CmdStats),
                ("language", Key::CmdLanguage),
                ("help", Key::CmdHelp),
            ]
            .into_iter()
            .map(|(c, k)| (c.to_owned(), tr(lang, k, &[])))
            .collect()
        };
        self.api.set_commands("", &list(Lang::En)).await?;
        for lang in Lang::ALL {
            self.api.set_commands(lang.code(), &list(lang)).await?;
        }
        Ok(())
    }
}

/// Counts one waiting reply while it lives.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicU64) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The bot's event loop, run by the daemon while it runs.
#[derive(Debug)]
pub struct BotTask {
    pub bot: Arc<Bot>,
    pub events: mpsc::Receiver<BotEvent>,
    pub commits: broadcast::Receiver<Committed>,
    /// How often the outbox is read when no commit wakes it.
    pub poll: Duration,
}

impl BotTask {
    /// Answers events until `cancel`; the notification sender runs beside it.
    pub async fn run(mut self, cancel: CancellationToken) {
        let bot = Arc::clone(&self.bot);
        if let Err(e) = bot.register_commands().await {
            tracing::warn!(error = %e, "could not register the bot's commands; players still can type them");
        }
        tracing::info!(bot = bot.api.username(), "companion bot running");
        let tracker = TaskTracker::new();
        tracker.spawn(notify::run(
            Arc::clone(&bot),
            self.commits,
            self.poll,
            cancel.child_token(),
        ));
        let mut pruned = Instant::now();
        // At `cancel` the update reader stops and closes the channel; every event it handed
        // over (its position already saved) is still answered before the bot exits.
        let mut draining = false;
        loop {
            let event = if draining {
                match self.events.recv().await {
                    Some(e) => e,
                    None => break,
                }
            } else {
                tokio::select! {
                    () = cancel.cancelled() => {
                        draining = true;
                        continue;
                    }
                    e = self.events.recv() => match e {
                        Some(e) => e,
                        None => break,
                    },
                }
            };
            let received = Instant::now();
            let (user, query, code) = match &event {
                BotEvent::Message { from, lang, .. } => {
                    bot.stats.messages.fetch_add(1, Ordering::Relaxed);
                    (*from, None, lang.clone())
                }
                BotEvent::Callback {
                    from,
                    query_id,
                    lang,
                    ..
                } => {
                    bot.stats.presses.fetch_add(1, Ordering::Relaxed);
                    (*from, Some(*query_id), lang.clone())
                }
            };
            let verdict = {
                let mut limiter = bot.limiter.lock().unwrap_or_else(|e| e.into_inner());
                if pruned.elapsed() > Duration::from_secs(60) {
                    limiter.prune(received);
                    bot.pacer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .prune(received);
                    pruned = received;
                }
                limiter.check(user, received)
            };
            if verdict != Verdict::Allow {
                bot.stats.limited.fetch_add(1, Ordering::Relaxed);
                let bot = Arc::clone(&bot);
                tracker.spawn(async move {
                    let lang = bot.speak(user, code.as_deref()).await;
                    let slow = (verdict == Verdict::SlowDown)
                        .then(|| i18n::tr(lang, i18n::Key::SlowDown, &[]));
                    match query {
                        // A press over the limit still stops its spinner.
                        Some(q) => bot.answer(q, slow).await,
                        None => {
                            if let Some(text) = slow
                                && let Err(e) = bot.send(user, &View::text(text)).await
                            {
                                tracing::debug!(user, error = %e, "slow-down answer not sent");
                            }
                        }
                    }
                });
                continue;
            }
            let bot = Arc::clone(&bot);
            tracker.spawn(async move {
                let lang = bot.speak(user, code.as_deref()).await;
                handler::handle(&bot, event, lang).await;
                bot.health
                    .latency
                    .bot_reply
                    .observe(received.elapsed().as_secs_f64());
            });
        }
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("bot tasks did not stop in time");
        }
        bot.api.disconnect();
    }
}
