//! The Telegram side: the deposit account's user session over MTProto (grammers).
//!
//! This is the only module that imports grammers; the rest of giftd sees `detector` and `gift`
//! values. It opens the session file, owns the sender pool (one task drives the connection;
//! everything else holds the cloneable [`Telegram`] handle), calls the few methods giftd needs
//! with an explicit retry policy (`payments.getSavedStarGifts` page by page, the fates of items
//! that left), and turns TL objects into domain values ([`convert`], pure) before anything else
//! sees them.
//!
//! Retries are decided here, not inside grammers: grammers is given `NoRetries`, FLOOD_WAIT is
//! slept exactly as long as Telegram asks up to `telegram.flood_wait_max` (and counted), and
//! network failures are retried with an exponential backoff (backon).
//!
//! Who sent a gift is decided by `gift::classify` on the facts [`convert`] reads, the way
//! Telegram names it: the action's `from_id`, else the message's `from_id`, else, for an
//! incoming message in a private chat, the chat's peer (Telegram puts no `from_id` on incoming
//! private messages since layer 119; grammers' `Message::sender_id` and Telethon read the peer
//! too). A "hide my name" gift is in the chat with its sender and is credited to them;
//! Telegram's service account 777000 is never a sender. `tgsim/FIDELITY.md` gives the source of
//! every Telegram behaviour giftd relies on.
//!
//! Updates pass through giftd's own buffer (`telegram.update_buffer`, `updates.rs`) between
//! grammers' channel and the update stream: it empties grammers' channel (which drops silently
//! when full, and is sized four times giftd's buffer because grammers pushes a whole socket
//! read at once) and counts every update received and dropped (`giftd_updates_*_total`). A
//! dropped update is not a lost gift: getDifference and polling find it. The client does not
//! write the peers of every update to the session file (`auto_cache_peers` off: one SQLite
//! commit per update would bound the stream); [`GiftUpdates`] caches the senders of gifts in one
//! commit every 2 s and at shutdown. It yields a [`GiftUpdate`]: a gift for the detector, or the
//! sale of a collectible (the account's own outgoing `from_offer` message), which ends the held
//! item at once.
//!
//! [`bot`] is the companion bot's own session (its own session file, signed in with the bot
//! token on the first start): the events players cause (messages and presses, as plain values
//! with the user's `lang_code`), and the few calls the bot makes (send, edit, answer a press,
//! `bots.setBotCommands` per language, resolve a username), with no retry inside grammers. A bot
//! session without update state gets Telegram's (`updates.getState`) before its update stream
//! starts: grammers would fetch it lazily at the stream's first read, and a message sent in
//! between would fall before it and be dropped as already seen. A player's message is handed to
//! the bot only after its id is recorded in `<session file>.handed` (the bot account's message
//! ids only grow; the record names the bot), and one at or below the record, which
//! `updates.getDifference` delivers again after a restart, is skipped: no command is answered
//! twice, clean stop or kill -9. The position in the account-wide update sequence (`pts`) is
//! saved to the session once every update at it was handed over (the updates of one
//! `getDifference` answer all carry its final `pts`, so saving it with the first would lose the
//! rest), so a restart replays at most the last position. The daemon's bot task answers every
//! event handed to it before it exits at a clean stop (at a crash, a command being answered may
//! go unanswered, never doubled). The bot connects only once the daemon has loaded the
//! inventory and gift titles.
//!
//! Files: `mod.rs` (the [`Telegram`] handle: connecting, calls with their retry policy, the
//! saved gift list and fates), `error.rs` ([`TelegramError`]), `updates.rs` (the update buffer
//! and [`GiftUpdates`]), `convert.rs` (TL to domain values), `login.rs` (the login flow),
//! `clock.rs` (the clock-skew watch), `transfer.rs` (the calls that move gifts out or spend
//! Stars, and the reads of what happened), `stars.rs` (the account's Stars history),
//! `catalogue.rs` (the purchase rules of a catalogue gift), `bot.rs` (the bot session).

pub mod bot;
pub mod catalogue;
pub mod clock;
pub mod convert;
mod error;
pub mod login;
pub mod stars;
pub mod transfer;
mod updates;

pub use error::TelegramError;
pub(crate) use error::{UNKNOWN_KEY, is_unknown_auth_key};
pub use updates::{GiftUpdate, GiftUpdates};
use updates::{buffer_updates, grammers_update_channel};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use grammers_client::client::ClientConfiguration;
use grammers_client::sender::{ConnectionParams, NoRetries, UpdatesConfiguration};
use grammers_client::session::storages::SqliteSession;
use grammers_client::{Client, InvocationError, SenderPool, tl};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::detector::{Fate, ObservedGift};
use crate::gift::classify::Decision;
use crate::gift::{MsgId, UserId, UserInfo};
use crate::health::Health;
use crate::secret::Secret;

/// Page size of `payments.getSavedStarGifts`: what every client uses; no documented maximum.
pub const PAGE_SIZE: i32 = 100;

/// Everything needed to open the deposit account's session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub session_file: PathBuf,
    pub api_id: i32,
    /// Only needed for sign-in; kept so a future re-login path has it.
    pub api_hash: Secret,
    /// The longest FLOOD_WAIT giftd sleeps through; a longer one is returned as an error.
    pub flood_wait_max: Duration,
    /// Whether to open the real-time update stream.
    pub updates: bool,
    /// How many updates may wait for the update loop before new ones are dropped (see
    /// `updates::buffer_updates`).
    pub update_buffer: usize,
    /// Where the update counters go (`giftd_updates_received_total`, `..._dropped_total`).
    pub health: Arc<Health>,
}

/// Counters an operator reads in logs and metrics.
#[derive(Debug, Default)]
pub struct TelegramStats {
    pub requests: AtomicU64,
    pub flood_waits: AtomicU64,
    pub flood_wait_seconds: AtomicU64,
    pub network_retries: AtomicU64,
}

/// One page of the saved gift list, already in domain values.
#[derive(Debug, Clone)]
pub struct SavedPage {
    pub count: i32,
    pub gifts: Vec<ObservedGift>,
    /// Entries Telegram listed that are not items the account holds (hosted, burned, without
    /// `msg_id`, sent by the account): counted so the walk still matches Telegram's `count`.
    pub skipped: usize,
    pub users: Vec<UserInfo>,
    pub next_offset: Option<String>,
}

/// Every page of the saved gift list, read in one walk.
#[derive(Debug, Clone)]
pub struct SavedList {
    /// Each gift once, newest first.
    pub gifts: Vec<ObservedGift>,
    pub users: Vec<UserInfo>,
    /// The total Telegram reported.
    pub count: i32,
    /// Listed entries that are not held items ([`SavedPage::skipped`]).
    pub skipped: usize,
    /// The list did not change during the walk (see [`Telegram::all_saved_gifts`]).
    pub consistent: bool,
}

/// The cloneable handle to the deposit account's connection.
#[derive(Clone)]
pub struct Telegram {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The pool's handle, to stop it.
    pool: grammers_client::sender::SenderPoolHandle,
    /// Aborts the task that drives the pool: the way to stop a connection stuck resending,
    /// which `quit` would wait on for ever.
    runner: tokio::task::AbortHandle,
    self_id: UserId,
    /// The account has Telegram Premium (some catalogue gifts can be bought only with it).
    premium: bool,
    /// The account's public @username (without `@`), which players send gifts to.
    username: Option<String>,
    session_file: PathBuf,
    flood_wait_max: Duration,
    /// Per method, the instant before which Telegram asked not to be called again (a
    /// FLOOD_WAIT longer than `flood_wait_max`): calls before then fail without a request.
    flood_gates: std::sync::Mutex<HashMap<&'static str, tokio::time::Instant>>,
    cancel: CancellationToken,
    stats: TelegramStats,
    /// The session file, where the access hashes of users are cached.
    session: Arc<SqliteSession>,
    /// Users whose access hash this process already cached (saves a commit per poll).
    known_users: std::sync::Mutex<std::collections::HashSet<UserId>>,
    /// Where gift decisions and undecodable answers are counted.
    health: Arc<Health>,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("self_id", &self.inner.self_id)
            .field("session_file", &self.inner.session_file)
            .finish_non_exhaustive()
    }
}

/// A live connection: the handle, the update stream when asked for, and the task that drives
/// the sender pool.
pub struct Connection {
    pub telegram: Telegram,
    pub updates: Option<GiftUpdates>,
    pub runner: JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("telegram", &self.telegram)
            .field("updates", &self.updates.is_some())
            .finish_non_exhaustive()
    }
}

/// Starts the sender pool for `session` with giftd's retry policy (none inside grammers: giftd
/// decides, see [`Telegram::call`]). Returns the client, the pool's handle and its task.
///
/// The client does not cache the peers of every answer and update in the session file
/// (`auto_cache_peers`): that would be one SQLite commit per update batch on the update path,
/// about 13 ms each on a busy machine, bounding the stream to some 30 gifts/s. giftd caches the
/// senders of the gifts it sees itself, in batches ([`GiftUpdates`]); sign-in still caches the
/// account itself, which the update stream needs.
pub(crate) fn start_pool(
    session: Arc<SqliteSession>,
    api_id: i32,
    update_buffer: usize,
) -> (
    Client,
    grammers_client::sender::SenderPoolHandle,
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::Receiver<grammers_client::session::updates::UpdatesLike>,
) {
    let params = ConnectionParams {
        retry_policy: Box::new(NoRetries),
        updates_channel_capacity: std::num::NonZeroUsize::new(grammers_update_channel(
            update_buffer,
        ))
        .unwrap_or(std::num::NonZeroUsize::MIN),
        ..Default::default()
    };
    let pool = SenderPool::with_configuration(session, api_id, params);
    let client = Client::with_configuration(
        pool.handle.clone(),
        ClientConfiguration {
            auto_cache_peers: false,
        },
    );
    let runner = tokio::spawn(pool.runner.run());
    (client, pool.handle.thin, runner, pool.updates)
}

/// Refuses a session file that other users can read: it holds the account's auth key.
pub fn check_session_permissions(path: &Path) -> Result<(), TelegramError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| TelegramError::Session {
        path: path.to_owned(),
        detail: if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist: run `giftd login` to create it".to_owned()
        } else {
            format!("cannot be read: {e}")
        },
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TelegramError::Session {
            path: path.to_owned(),
            detail: format!(
                "is readable by other users (mode {mode:o}); it holds the account's auth key: \
                 run `chmod 600 {}`",
                path.display()
            ),
        });
    }
    Ok(())
}

impl Telegram {
    /// Opens the session, starts the task that drives the connection, and checks that the
    /// session is signed in (learning the deposit account's id on the way).
    pub async fn connect(
        opts: &ConnectOptions,
        cancel: CancellationToken,
    ) -> Result<Connection, TelegramError> {
        check_session_permissions(&opts.session_file)?;
        let session =
            SqliteSession::open(&opts.session_file)
                .await
                .map_err(|e| TelegramError::Session {
                    path: opts.session_file.clone(),
                    detail: format!("cannot be opened as a grammers session: {e}"),
                })?;
        let session = Arc::new(session);
        let (client, pool, runner, updates) =
            start_pool(Arc::clone(&session), opts.api_id, opts.update_buffer);

        // The first call is where a host clock far ahead shows: grammers would resend it
        // forever, so it races the storm detector.
        let get_me = tl::functions::users::GetUsers {
            id: vec![tl::enums::InputUser::UserSelf],
        };
        let me = tokio::select! {
            me = client.invoke(&get_me) => me,
            count = clock::storm() => {
                // `quit` would wait for the connection task, which never finishes a resend
                // loop: abort the pool's task, which drops every connection.
                runner.abort();
                return Err(TelegramError::ClockAhead { count });
            }
        };
        let (self_id, username, premium) = match me {
            Ok(users) => match users.first() {
                Some(tl::enums::User::User(u)) => (u.id, u.username.clone(), u.premium),
                _ => {
                    pool.quit();
                    return Err(TelegramError::NotAuthorised {
                        path: opts.session_file.clone(),
                        detail: "no user for inputUserSelf".into(),
                    });
                }
            },
            Err(InvocationError::Rpc(rpc)) if rpc.code == 401 => {
                pool.quit();
                return Err(TelegramError::NotAuthorised {
                    path: opts.session_file.clone(),
                    detail: rpc.name,
                });
            }
            Err(e) if is_unknown_auth_key(&e) => {
                pool.quit();
                return Err(TelegramError::Session {
                    path: opts.session_file.clone(),
                    detail: UNKNOWN_KEY.to_owned(),
                });
            }
            Err(e) => {
                pool.quit();
                return Err(TelegramError::from_invocation("users.getUsers", e));
            }
        };

        let updates = if opts.updates {
            let updates = buffer_updates(updates, opts.update_buffer, Arc::clone(&opts.health));
            let stream = client
                .stream_updates(updates, UpdatesConfiguration { catch_up: true })
                .await
                .map_err(|e| TelegramError::Session {
                    path: opts.session_file.clone(),
                    detail: format!("cannot start the update stream: {e}"),
                })?;
            Some(GiftUpdates {
                stream,
                self_id,
                health: Arc::clone(&opts.health),
                session: Arc::clone(&session),
                senders: HashMap::new(),
                cached_at: tokio::time::Instant::now(),
            })
        } else {
            None
        };

        let telegram = Telegram {
            inner: Arc::new(Inner {
                client,
                pool: pool.clone(),
                runner: runner.abort_handle(),
                self_id,
                premium,
                username,
                session_file: opts.session_file.clone(),
                flood_wait_max: opts.flood_wait_max,
                flood_gates: std::sync::Mutex::new(HashMap::new()),
                cancel,
                stats: TelegramStats::default(),
                session: Arc::clone(&session),
                known_users: std::sync::Mutex::new(std::collections::HashSet::new()),
                health: Arc::clone(&opts.health),
            }),
        };
        Ok(Connection {
            telegram,
            updates,
            runner,
        })
    }

    /// The deposit account's user id.
    /// The deposit account's @username without `@`, when it has one.
    pub fn username(&self) -> Option<&str> {
        self.inner.username.as_deref()
    }

    pub fn self_id(&self) -> UserId {
        self.inner.self_id
    }

    pub fn stats(&self) -> &TelegramStats {
        &self.inner.stats
    }

    /// Asks the connection task to close every connection and stop.
    pub fn disconnect(&self) {
        self.inner.pool.quit();
    }

    /// Stops the connection task at once, dropping its connections: for a connection stuck
    /// resending (see [`clock`]), which would never let [`Telegram::disconnect`] finish.
    pub fn kill(&self) {
        self.inner.runner.abort();
    }

    /// Calls `request`, sleeping exactly through FLOOD_WAIT and retrying network failures and
    /// Telegram's internal errors with an exponential backoff.
    pub async fn call<R: tl::RemoteCall>(
        &self,
        method: &'static str,
        request: &R,
    ) -> Result<R::Return, TelegramError> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(8)
            .with_jitter()
            .build();
        loop {
            if self.inner.cancel.is_cancelled() {
                return Err(TelegramError::Cancelled);
            }
            let max = self.inner.flood_wait_max.as_secs();
            if let Some(left) = self.flood_gate_left(method) {
                // Still inside a long FLOOD_WAIT: never call before Telegram allows it.
                return Err(TelegramError::FloodWait {
                    method,
                    seconds: left,
                    max,
                });
            }
            let stats = &self.inner.stats;
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let err = match self.inner.client.invoke(request).await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let wait = match &err {
                InvocationError::Rpc(rpc) if rpc.code == 420 => {
                    let seconds = rpc.value.unwrap_or(1);
                    if u64::from(seconds) > max {
                        let until =
                            tokio::time::Instant::now() + Duration::from_secs(u64::from(seconds));
                        self.inner
                            .flood_gates
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(method, until);
                        stats.flood_waits.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            method,
                            seconds,
                            max,
                            "telegram asked to wait longer than flood_wait_max; not calling it until then"
                        );
                        return Err(TelegramError::FloodWait {
                            method,
                            seconds,
                            max,
                        });
                    }
                    stats.flood_waits.fetch_add(1, Ordering::Relaxed);
                    stats
                        .flood_wait_seconds
                        .fetch_add(u64::from(seconds), Ordering::Relaxed);
                    tracing::warn!(
                        method,
                        seconds,
                        "telegram asked to slow down (FLOOD_WAIT); waiting exactly that long"
                    );
                    Duration::from_secs(u64::from(seconds))
                }
                // Signed out (from another device, or the account's sessions were reset): no
                // call can succeed until someone logs in again.
                InvocationError::Rpc(rpc) if rpc.code == 401 => {
                    return Err(TelegramError::NotAuthorised {
                        path: self.inner.session_file.clone(),
                        detail: rpc.name.clone(),
                    });
                }
                _ if is_unknown_auth_key(&err) => {
                    return Err(TelegramError::Session {
                        path: self.inner.session_file.clone(),
                        detail: UNKNOWN_KEY.to_owned(),
                    });
                }
                // An answer grammers cannot decode (newer than layer 230): asking again gets
                // the same answer.
                InvocationError::Deserialize(_) => {
                    self.inner
                        .health
                        .metrics
                        .unreadable
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(TelegramError::from_invocation(method, err));
                }
                InvocationError::Rpc(rpc) if rpc.code < 500 => {
                    return Err(TelegramError::from_invocation(method, err));
                }
                // Telegram's internal errors and network failures: retried with backoff.
                _ => match backoff.next() {
                    Some(d) => {
                        stats.network_retries.fetch_add(1, Ordering::Relaxed);
                        let what = if matches!(err, InvocationError::Rpc(_)) {
                            "telegram internal error; retrying"
                        } else {
                            "telegram connection failed; retrying"
                        };
                        tracing::warn!(method, error = %err, retry_in_ms = d.as_millis() as u64, "{what}");
                        d
                    }
                    None => return Err(TelegramError::from_invocation(method, err)),
                },
            };
            tokio::select! {
                () = self.inner.cancel.cancelled() => return Err(TelegramError::Cancelled),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Seconds left of a long FLOOD_WAIT on `method`, if one is running.
    fn flood_gate_left(&self, method: &'static str) -> Option<u32> {
        let mut gates = self
            .inner
            .flood_gates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let until = *gates.get(method)?;
        let now = tokio::time::Instant::now();
        if until <= now {
            gates.remove(method);
            return None;
        }
        Some((until - now).as_secs_f64().ceil() as u32)
    }

    /// One page of `payments.getSavedStarGifts` (saved and unsaved gifts alike), as the poll
    /// reads it: entries that are not deposits are skipped without being counted (the poll
    /// reads the same newest page every few seconds; reconciliations count them).
    pub async fn saved_gifts_page(&self, offset: &str) -> Result<SavedPage, TelegramError> {
        self.saved_page(offset, false).await
    }

    async fn saved_page(&self, offset: &str, count: bool) -> Result<SavedPage, TelegramError> {
        let request = tl::functions::payments::GetSavedStarGifts {
            exclude_unsaved: false,
            exclude_saved: false,
            exclude_unlimited: false,
            exclude_unique: false,
            sort_by_value: false,
            exclude_upgradable: false,
            exclude_unupgradable: false,
            peer_color_available: false,
            // Hosted collectibles are shown, not owned (TDLib getReceivedGifts
            // `exclude_hosted`); any that are listed anyway are skipped by classify.
            exclude_hosted: true,
            peer: tl::enums::InputPeer::PeerSelf,
            collection_id: None,
            offset: offset.to_owned(),
            limit: PAGE_SIZE,
        };
        let tl::enums::payments::SavedStarGifts::Gifts(page) =
            self.call("payments.getSavedStarGifts", &request).await?;
        let me = self.inner.self_id;
        let mut gifts = Vec::with_capacity(page.gifts.len());
        let mut skipped = 0;
        for entry in &page.gifts {
            let seen = convert::saved_gift(me, entry);
            if count {
                log_decision("saved", &seen.decision);
                self.inner.health.metrics.count_decision(&seen.decision);
            }
            match seen.gift {
                Some(gift) => gifts.push(gift),
                None => skipped += 1,
            }
        }
        self.remember_users(&page.users).await;
        Ok(SavedPage {
            count: page.count,
            gifts,
            skipped,
            users: convert::users(&page.users),
            next_offset: page.next_offset.filter(|o| !o.is_empty()),
        })
    }

    /// Every gift the account holds: all pages.
    ///
    /// Offsets are positions in a list that changes while it is read: a gift arriving between
    /// two pages repeats an item (harmless, deduplicated here), a gift leaving skips one. So
    /// the listing says whether it is [`SavedList::consistent`]: every page reported the same
    /// total and the walk saw exactly that many gifts. Only a consistent listing may be used
    /// to decide that something left the account. An empty page ends the walk even when
    /// `count` says more exist (Telethon#4534); a repeated offset is an error, not a loop.
    pub async fn all_saved_gifts(&self) -> Result<SavedList, TelegramError> {
        let mut list = SavedList {
            gifts: Vec::new(),
            users: Vec::new(),
            count: 0,
            skipped: 0,
            consistent: true,
        };
        let mut seen = std::collections::HashSet::new();
        let mut offset = String::new();
        let mut first = true;
        loop {
            let page = self.saved_page(&offset, true).await?;
            if first {
                list.count = page.count;
                first = false;
            } else if page.count != list.count {
                list.consistent = false;
            }
            let empty = page.gifts.is_empty() && page.skipped == 0;
            list.skipped += page.skipped;
            list.gifts
                .extend(page.gifts.into_iter().filter(|g| seen.insert(g.msg_id)));
            list.users.extend(page.users);
            match page.next_offset {
                Some(next) if !empty => {
                    if next == offset {
                        return Err(TelegramError::Unexpected {
                            method: "payments.getSavedStarGifts",
                            detail: format!("next_offset {next:?} repeats the current offset"),
                        });
                    }
                    offset = next;
                }
                _ => break,
            }
        }
        if list.gifts.len() + list.skipped != list.count.max(0) as usize {
            tracing::warn!(
                count = list.count,
                listed = list.gifts.len(),
                "telegram's pages listed a different number of gifts than its count"
            );
            list.consistent = false;
        }
        Ok(list)
    }

    /// What became of gifts that left the saved list, read from their service messages.
    pub async fn fates(&self, msg_ids: &[MsgId]) -> Result<HashMap<MsgId, Fate>, TelegramError> {
        let mut out = HashMap::new();
        for chunk in msg_ids.chunks(100) {
            let request = tl::functions::messages::GetMessages {
                id: chunk
                    .iter()
                    .map(|&id| tl::types::InputMessageId { id }.into())
                    .collect(),
            };
            let answer = match self.call("messages.getMessages", &request).await {
                Ok(a) => a,
                Err(TelegramError::Rpc { .. }) => {
                    // Without the messages every missing gift is simply "gone".
                    continue;
                }
                Err(e) => return Err(e),
            };
            let messages = match answer {
                tl::enums::messages::Messages::Messages(m) => m.messages,
                tl::enums::messages::Messages::Slice(m) => m.messages,
                tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
                tl::enums::messages::Messages::NotModified(_) => Vec::new(),
            };
            let me = self.inner.self_id;
            out.extend(messages.iter().filter_map(|m| convert::fate(me, m)));
        }
        Ok(out)
    }
}

impl Telegram {
    /// What Telegram tells of held collectibles that left the saved list while their delivering
    /// messages tell nothing, as `(msg_id, collectible id, slug)`: the collectible as it is now
    /// (`payments.getUniqueStarGift`) says it was burned by crafting, or names its new owner,
    /// whose chat with the account (`messages.getHistory`, the newest 100 messages) may hold the
    /// account's own outgoing `from_offer` message for it: a sale. Anything else tells nothing
    /// (the item ends `gone`); a refused call is the same.
    pub async fn collectible_fates(
        &self,
        missing: &[(MsgId, i64, String)],
    ) -> Result<HashMap<MsgId, Fate>, TelegramError> {
        let me = self.inner.self_id;
        let mut out = HashMap::new();
        for (msg_id, collectible_id, slug) in missing {
            let request = tl::functions::payments::GetUniqueStarGift { slug: slug.clone() };
            let answer = match self.call("payments.getUniqueStarGift", &request).await {
                Ok(a) => a,
                Err(TelegramError::Rpc { .. }) => continue,
                Err(e) => return Err(e),
            };
            let (user, access_hash) = match convert::collectible_now(me, &answer) {
                convert::CollectibleNow::Burned => {
                    out.insert(*msg_id, Fate::Burned);
                    continue;
                }
                convert::CollectibleNow::OwnedBy { user, access_hash } => (user, access_hash),
                convert::CollectibleNow::Unknown => continue,
            };
            let request = tl::functions::messages::GetHistory {
                peer: tl::enums::InputPeer::User(tl::types::InputPeerUser {
                    user_id: user,
                    access_hash,
                }),
                offset_id: 0,
                offset_date: 0,
                add_offset: 0,
                limit: 100,
                max_id: 0,
                min_id: 0,
                hash: 0,
            };
            let messages = match self.call("messages.getHistory", &request).await {
                Ok(
                    tl::enums::messages::Messages::Messages(tl::types::messages::Messages {
                        messages,
                        ..
                    })
                    | tl::enums::messages::Messages::Slice(tl::types::messages::MessagesSlice {
                        messages,
                        ..
                    }),
                ) => messages,
                Ok(_) | Err(TelegramError::Rpc { .. }) => continue,
                Err(e) => return Err(e),
            };
            if messages
                .iter()
                .any(|m| convert::is_sale_of(me, m, *collectible_id))
            {
                out.insert(*msg_id, Fate::Sold);
            }
        }
        Ok(out)
    }
}

/// Logs what classify decided for a gift-bearing message or saved gift that is not a plain
/// deposit: a hold (an operator must assign the owner) as a warning, the rest for the record.
fn log_decision(path: &'static str, decision: &Decision) {
    match decision {
        Decision::Deposit { .. } => {}
        Decision::Hold { reason } => tracing::warn!(
            path,
            reason = reason.as_str(),
            "a new gift is held without an owner for an operator: telegram does not tell who deposited it"
        ),
        Decision::Fate { .. } => {
            tracing::info!(path, %decision, "news of a gift the account may hold")
        }
        Decision::Ignore { reason } => tracing::info!(
            path,
            reason = reason.as_str(),
            "a gift-bearing message that is not a deposit"
        ),
    }
}
