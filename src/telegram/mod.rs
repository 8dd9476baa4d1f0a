//! The Telegram side: the deposit account's user session over MTProto (grammers).
//!
//! This is the only module that imports grammers. It opens the session file, owns the sender
//! pool (one task drives the connection; everything else holds the cloneable [`Telegram`]
//! handle), calls the few methods giftd needs with an explicit retry policy, and turns TL objects
//! into domain values ([`convert`]) before anything else sees them.
//!
//! Retries are decided here, not inside grammers: grammers is given `NoRetries`, FLOOD_WAIT is
//! slept exactly as long as Telegram asks (and counted), and network failures are retried with
//! an exponential backoff (backon).

pub mod bot;
pub mod catalogue;
pub mod clock;
pub mod convert;
pub mod login;
pub mod stars;
pub mod transfer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use grammers_client::client::ClientConfiguration;
use grammers_client::client::UpdateStream;
use grammers_client::sender::{ConnectionParams, NoRetries, UpdatesConfiguration};
use grammers_client::session::Session as _;
use grammers_client::session::storages::SqliteSession;
use grammers_client::session::types::{PeerId, PeerInfo};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::{Client, InvocationError, SenderPool, tl};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::detector::{Fate, ObservedGift};
use crate::gift::classify::{Decision, FateKind, ItemRef};
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
    /// [`buffer_updates`]).
    pub update_buffer: usize,
    /// Where the update counters go (`giftd_updates_received_total`, `..._dropped_total`).
    pub health: Arc<Health>,
}

/// Failures of the Telegram side. Callers branch on the variant; [`TelegramError::is_retryable`]
/// says whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error(
        "session file {path} is not authorised (Telegram answered {detail}): run `giftd login`"
    )]
    NotAuthorised { path: PathBuf, detail: String },
    #[error("session file {path}: {detail}")]
    Session { path: PathBuf, detail: String },
    #[error(
        "telegram asked giftd to wait {seconds} s before calling {method} again (FLOOD_WAIT), \
         more than the configured maximum of {max} s"
    )]
    FloodWait {
        method: &'static str,
        seconds: u32,
        max: u64,
    },
    #[error("telegram refused {method}: {name} (code {code})")]
    Rpc {
        method: &'static str,
        code: i32,
        name: String,
        value: Option<u32>,
    },
    #[error("could not reach telegram for {method}: {detail}")]
    Network {
        method: &'static str,
        detail: String,
    },
    #[error(
        "the host clock is ahead of Telegram's: the server rejected {count} requests as \
         'msg_id too high' within seconds; fix the system clock (timedatectl, NTP) and restart"
    )]
    ClockAhead { count: u64 },
    #[error("unexpected answer to {method}: {detail}")]
    Unexpected {
        method: &'static str,
        detail: String,
    },
    #[error("telegram did not answer {method} within {after:?}; whether it took effect is unknown")]
    Timeout {
        method: &'static str,
        after: Duration,
    },
    #[error(
        "giftd cannot address user {user}: the deposit account's session has no access hash for \
         them (it learns one from a gift they send or the saved gift list); ask the player to \
         send a message or a gift to the deposit account first"
    )]
    Unaddressable { user: UserId },
    #[error(
        "telegram sent {method} an object giftd cannot decode ({detail}): it is newer than \
         giftd's TL layer; nothing was credited from it, and polling carries on (update giftd \
         when this repeats)"
    )]
    Unreadable {
        method: &'static str,
        detail: String,
    },
    #[error("stopped")]
    Cancelled,
}

impl TelegramError {
    pub fn is_retryable(&self) -> bool {
        match self {
            TelegramError::Network { .. }
            | TelegramError::FloodWait { .. }
            | TelegramError::Timeout { .. } => true,
            TelegramError::Rpc { code, .. } => *code >= 500,
            _ => false,
        }
    }

    fn from_invocation(method: &'static str, err: InvocationError) -> Self {
        match err {
            InvocationError::Rpc(rpc) => TelegramError::Rpc {
                method,
                code: rpc.code,
                name: rpc.name,
                value: rpc.value,
            },
            InvocationError::Deserialize(e) => TelegramError::Unreadable {
                method,
                detail: e.to_string(),
            },
            other => TelegramError::Network {
                method,
                detail: other.to_string(),
            },
        }
    }
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
/// (`auto_cache_peers`): that is one SQLite commit per update batch on the update path, about
/// 13 ms each on a busy machine, which bounded the stream to some 30 gifts/s. giftd caches the
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

/// Capacity of grammers' own update channel for a giftd buffer of `update_buffer`.
///
/// grammers drops what does not fit, and counts it only in a warning it logs at most once per
/// cooldown. [`buffer_updates`] empties the channel as fast as updates arrive, but grammers
/// pushes every update of one read of the socket in one go without yielding: a burst read at
/// once (2,000 gifts fit in a few reads) overflowed a channel of 1,024, silently, and the lost
/// tail showed no gap to trigger getDifference (found by `cargo bench --bench update_path`).
/// Four times giftd's buffer leaves room for any read, so giftd's buffer is the one that
/// decides, and counts, what is dropped.
fn grammers_update_channel(update_buffer: usize) -> usize {
    update_buffer.saturating_mul(4).max(4096)
}

/// Moves updates from grammers' channel into a buffer of `capacity` that the update stream
/// reads, and counts every update received and every one dropped because the buffer was full.
///
/// A dropped update is not a lost gift: the next update's pts shows the gap and grammers asks
/// Telegram for the difference, and polling lists the gift anyway. Only batches of updates are
/// ever dropped; connection notices (`ConnectionClosed` and the like) always pass, since the
/// stream needs them to resynchronise.
fn buffer_updates(
    mut from: tokio::sync::mpsc::Receiver<UpdatesLike>,
    capacity: usize,
    health: Arc<Health>,
) -> tokio::sync::mpsc::Receiver<UpdatesLike> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let metrics = &health.metrics;
        let mut buffer: std::collections::VecDeque<UpdatesLike> = std::collections::VecDeque::new();
        let mut logged_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                // Taking from grammers first keeps its channel empty under a flood.
                biased;
                next = from.recv() => {
                    let Some(update) = next else { break };
                    if !matches!(update, UpdatesLike::Updates(_)) {
                        buffer.push_back(update);
                        continue;
                    }
                    metrics.updates_received.fetch_add(1, Ordering::Relaxed);
                    if buffer.len() < capacity {
                        buffer.push_back(update);
                        continue;
                    }
                    let dropped = metrics.updates_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if logged_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        logged_at = Some(tokio::time::Instant::now());
                        tracing::warn!(
                            capacity,
                            dropped_total = dropped,
                            "telegram update buffer full: updates dropped (getDifference and \
                             polling find their gifts); raise telegram.update_buffer if this \
                             repeats"
                        );
                    }
                }
                permit = tx.reserve(), if !buffer.is_empty() => {
                    let Ok(permit) = permit else { break };
                    // Checked non-empty by the branch's condition.
                    if let Some(update) = buffer.pop_front() {
                        permit.send(update);
                    }
                }
            }
        }
        // grammers stopped: hand over what is left, then close the stream's channel.
        while let Some(update) = buffer.pop_front() {
            if tx.send(update).await.is_err() {
                break;
            }
        }
    });
    rx
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

/// What to do about a session whose auth key Telegram does not know.
pub(crate) const UNKNOWN_KEY: &str = "holds an auth key Telegram does not know (transport error \
                                      -404): delete the file and run `giftd login`";

/// Whether `err` is MTProto's transport error -404: the data centre does not know the auth key
/// (it was never registered there, or Telegram dropped it), so no retry can help. grammers 0.11
/// keeps the status in grammers-mtproto's `transport::Error`, a crate giftd does not depend on,
/// and prints it as `bad status (negative length -404)`.
pub(crate) fn is_unknown_auth_key(err: &InvocationError) -> bool {
    matches!(err, InvocationError::Transport(t) if t.to_string().ends_with("negative length -404)"))
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

/// How often the senders seen on the update path are written to the session file.
const PEER_CACHE_INTERVAL: Duration = Duration::from_secs(2);

/// What one update says about the account's gifts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiftUpdate {
    /// A gift for the detector: a deposit, a held item without owner, a refund. Boxed: one
    /// update at a time, and the sale is small.
    Gift(Box<ObservedGift>),
    /// The account sold this collectible through an accepted purchase offer.
    Sold { collectible_id: i64 },
}

/// The real-time gift stream.
pub struct GiftUpdates {
    stream: UpdateStream,
    /// The deposit account, for [`convert::gift_message`].
    self_id: UserId,
    /// Where decisions that are not deposits are counted.
    health: Arc<Health>,
    /// The session file, where the senders of gifts are cached (their access hashes address
    /// them later) in batches instead of one commit per update.
    session: Arc<SqliteSession>,
    /// Senders seen since the last write, by user id.
    senders: HashMap<UserId, PeerInfo>,
    cached_at: tokio::time::Instant,
}

impl std::fmt::Debug for GiftUpdates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiftUpdates")
            .field("senders_pending", &self.senders.len())
            .finish_non_exhaustive()
    }
}

impl GiftUpdates {
    /// Waits for the next update and returns what it says about the account's gifts, if
    /// anything giftd acts on.
    pub async fn next(&mut self) -> Result<Option<GiftUpdate>, TelegramError> {
        let (update, _state, peers) = self.stream.next_raw().await.map_err(|e| {
            if matches!(e, InvocationError::Deserialize(_)) {
                self.health
                    .metrics
                    .unreadable
                    .fetch_add(1, Ordering::Relaxed);
            }
            TelegramError::from_invocation("updates", e)
        })?;
        let seen = match update {
            tl::enums::Update::NewMessage(u) => convert::gift_message(self.self_id, &u.message),
            _ => None,
        };
        let mut sale = None;
        let gift = seen.and_then(|seen| {
            log_decision("update", &seen.decision);
            self.health.metrics.count_decision(&seen.decision);
            if let Decision::Fate {
                item: ItemRef::Collectible(collectible_id),
                fate: FateKind::Sold,
            } = seen.decision
            {
                // The account's own outgoing `from_offer` message: Telegram's record of the
                // sale, which no player can send.
                sale = Some(GiftUpdate::Sold { collectible_id });
            }
            seen.gift
        });
        if let Some(from) = gift.as_ref().and_then(|g| g.from)
            && let Some(peer) = PeerId::user(from).and_then(|id| peers.get(id))
        {
            self.senders.insert(from, PeerInfo::from(peer.clone()));
        }
        if !self.senders.is_empty() && self.cached_at.elapsed() >= PEER_CACHE_INTERVAL {
            self.cache_senders().await;
        }
        Ok(gift.map(|g| GiftUpdate::Gift(Box::new(g))).or(sale))
    }

    /// Writes the senders seen since the last write to the session file, in one commit. A crash
    /// loses at most the last interval's: nothing that matters, since every gift's sender comes
    /// back with the saved list the reconciliation at start reads.
    async fn cache_senders(&mut self) {
        self.cached_at = tokio::time::Instant::now();
        let peers: Vec<PeerInfo> = self.senders.drain().map(|(_, p)| p).collect();
        let count = peers.len();
        if let Err(e) = self.session.cache_peers(peers).await {
            tracing::warn!(error = %e, count, "could not cache gift senders in the session file");
        }
    }

    /// Persists the update state and the senders not yet written to the session, so a restart
    /// catches up from here.
    pub async fn save_state(&mut self) -> Result<(), TelegramError> {
        self.cache_senders().await;
        self.stream
            .sync_update_state()
            .await
            .map_err(|e| TelegramError::Session {
                path: PathBuf::new(),
                detail: format!("cannot save the update state: {e}"),
            })
    }
}
