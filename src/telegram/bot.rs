//! The companion bot's own MTProto session: signing in with the bot token, the stream of what
//! players send it (messages and button presses, as plain values), and the few calls the bot
//! makes (send, edit, answer a press, register commands, resolve a username).
//!
//! Like the deposit account's session, one task drives the connection and everything else holds
//! the cloneable [`BotApi`]. grammers retries nothing (`NoRetries`): a FLOOD_WAIT comes back as
//! [`BotError::FloodWait`] with Telegram's exact seconds, and the caller decides (the bot's
//! sender waits exactly that long before its next message).

use std::path::PathBuf;
use std::sync::Arc;

use dashmap::DashMap;
use grammers_client::client::ClientConfiguration;
use grammers_client::sender::{ConnectionParams, NoRetries, UpdatesConfiguration};
use grammers_client::session::Session as _;
use grammers_client::session::storages::SqliteSession;
use grammers_client::session::types::{PeerId, PeerInfo};
use grammers_client::{Client, InvocationError, SenderPool, tl};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::gift::UserId;
use crate::secret::Secret;

/// What the bot's session needs.
#[derive(Debug, Clone)]
pub struct BotOptions {
    pub session_file: PathBuf,
    pub api_id: i32,
    pub api_hash: Secret,
    pub token: Secret,
}

/// Something a user did, as the bot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotEvent {
    /// A text message in the private chat with the bot.
    Message {
        from: UserId,
        /// The user's app language (`user.lang_code`), when Telegram sent it.
        lang: Option<String>,
        text: String,
    },
    /// A press of an inline button under the bot's message `msg_id`.
    Callback {
        query_id: i64,
        from: UserId,
        lang: Option<String>,
        msg_id: i32,
        data: Vec<u8>,
    },
}

/// An inline keyboard: rows of (label, callback data).
pub type Keyboard = Vec<Vec<(String, Vec<u8>)>>;

/// Failures of a bot call. The caller branches on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    #[error("telegram asked the bot to wait {seconds} s (FLOOD_WAIT)")]
    FloodWait { seconds: u32 },
    #[error("the user {user} cannot be messaged (blocked the bot, deleted, or never started it)")]
    Unreachable { user: UserId },
    #[error("telegram refused {method}: {name} (code {code})")]
    Rpc {
        method: &'static str,
        code: i32,
        name: String,
    },
    #[error("could not reach telegram for {method}: {detail}; whether it took effect is unknown")]
    Network {
        method: &'static str,
        detail: String,
    },
    #[error("bot session {path}: {detail}")]
    Session { path: PathBuf, detail: String },
    #[error("the bot token was refused by telegram ({name}): check bot.token (from @BotFather)")]
    BadToken { name: String },
}

impl BotError {
    fn from_invocation(method: &'static str, user: Option<UserId>, err: InvocationError) -> Self {
        match err {
            InvocationError::Rpc(rpc) if rpc.code == 420 || rpc.name == "FLOOD_WAIT" => {
                BotError::FloodWait {
                    seconds: rpc.value.unwrap_or(1),
                }
            }
            InvocationError::Rpc(rpc)
                if matches!(
                    rpc.name.as_str(),
                    "USER_IS_BLOCKED"
                        | "INPUT_USER_DEACTIVATED"
                        | "PEER_ID_INVALID"
                        | "USER_DEACTIVATED"
                ) && user.is_some() =>
            {
                BotError::Unreachable {
                    user: user.unwrap_or_default(),
                }
            }
            InvocationError::Rpc(rpc) => BotError::Rpc {
                method,
                code: rpc.code,
                name: rpc.name,
            },
            other => BotError::Network {
                method,
                detail: other.to_string(),
            },
        }
    }
}

/// The cloneable handle to the bot's connection.
#[derive(Clone)]
pub struct BotApi {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    pool: grammers_client::sender::SenderPoolHandle,
    session: Arc<SqliteSession>,
    session_file: PathBuf,
    self_id: UserId,
    username: String,
    /// Access hashes of the users seen in updates (the session file keeps them too, for users
    /// seen before a restart).
    hashes: DashMap<UserId, i64>,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("self_id", &self.inner.self_id)
            .field("username", &self.inner.username)
            .finish_non_exhaustive()
    }
}

/// A live bot connection: the handle, the events, and the task driving the connection.
pub struct BotConnection {
    pub api: BotApi,
    pub events: mpsc::Receiver<BotEvent>,
    pub runner: JoinHandle<()>,
}

impl std::fmt::Debug for BotConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotConnection")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// How many events may wait for the bot's loop.
const EVENT_BUFFER: usize = 4096;

impl BotApi {
    /// Opens (or creates) the bot's session file, signs in with the token when the session is
    /// not signed in yet, and starts the event stream.
    pub async fn connect(
        opts: &BotOptions,
        cancel: CancellationToken,
    ) -> Result<BotConnection, BotError> {
        let path = opts.session_file.clone();
        let session_err = |detail: String| BotError::Session {
            path: path.clone(),
            detail,
        };
        let existed = path.exists();
        if existed {
            super::check_session_permissions(&path).map_err(|e| session_err(e.to_string()))?;
        }
        let session = SqliteSession::open(&path)
            .await
            .map_err(|e| session_err(format!("cannot be opened as a grammers session: {e}")))?;
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| session_err(format!("cannot be made private (chmod 600): {e}")))?;
        }
        let session = Arc::new(session);
        let params = ConnectionParams {
            retry_policy: Box::new(NoRetries),
            updates_channel_capacity: std::num::NonZeroUsize::new(EVENT_BUFFER)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            ..Default::default()
        };
        let pool = SenderPool::with_configuration(Arc::clone(&session), opts.api_id, params);
        // The bot's traffic is small: let grammers keep the access hash of every user it sees
        // in the session file, so a notification after a restart can address them.
        let client = Client::with_configuration(
            pool.handle.clone(),
            ClientConfiguration {
                auto_cache_peers: true,
            },
        );
        let handle = pool.handle.thin.clone();
        let runner = tokio::spawn(pool.runner.run());
        let quit = |e: BotError| {
            handle.quit();
            e
        };

        let me = match self_user(&client).await {
            Ok(me) => me,
            Err(InvocationError::Rpc(rpc)) if rpc.code == 401 => {
                match client
                    .bot_sign_in(opts.token.expose(), opts.api_hash.expose())
                    .await
                {
                    Ok(_) => self_user(&client)
                        .await
                        .map_err(|e| quit(BotError::from_invocation("users.getUsers", None, e)))?,
                    Err(InvocationError::Rpc(rpc)) if rpc.code == 400 || rpc.code == 401 => {
                        return Err(quit(BotError::BadToken { name: rpc.name }));
                    }
                    Err(e) => {
                        return Err(quit(BotError::from_invocation(
                            "auth.importBotAuthorization",
                            None,
                            e,
                        )));
                    }
                }
            }
            Err(e) if super::is_unknown_auth_key(&e) => {
                return Err(quit(session_err(super::UNKNOWN_KEY.to_owned())));
            }
            Err(e) => return Err(quit(BotError::from_invocation("users.getUsers", None, e))),
        };
        if !me.bot {
            return Err(quit(session_err(
                "is signed in as a user, not a bot: give the bot its own session file \
                 (bot.session_file)"
                    .to_owned(),
            )));
        }
        // grammers asks for the update state lazily, at the stream's first `next()`: a message
        // sent between now and then would fall before that state and be dropped as already
        // seen. A session without state gets it here, before anyone is told the bot answers.
        let pinned = pin_update_state(&client, &session)
            .await
            .map_err(|e| quit(session_err(format!("cannot read the update state: {e}"))))?;
        let stream = client
            .stream_updates(pool.updates, UpdatesConfiguration { catch_up: true })
            .await
            .map_err(|e| quit(session_err(format!("cannot start the update stream: {e}"))))?;
        let api = BotApi {
            inner: Arc::new(Inner {
                client,
                pool: handle.clone(),
                session,
                session_file: path.clone(),
                self_id: me.id,
                username: me.username.clone().unwrap_or_default(),
                hashes: DashMap::new(),
            }),
        };
        let (tx, events) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(pump(stream, api.clone(), tx, cancel));
        if pinned == Pinned::Unpinnable {
            await_stream_state(&api.inner.session).await;
        }
        Ok(BotConnection {
            api,
            events,
            runner,
        })
    }

    pub fn self_id(&self) -> UserId {
        self.inner.self_id
    }

    /// The bot's @username, without the `@`.
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// Closes the connection.
    pub fn disconnect(&self) {
        self.inner.pool.quit();
    }

    async fn input_peer(&self, user: UserId) -> Result<tl::enums::InputPeer, BotError> {
        if let Some(hash) = self.inner.hashes.get(&user) {
            return Ok(input_user_peer(user, *hash));
        }
        let id = PeerId::user(user).ok_or(BotError::Unreachable { user })?;
        match self.inner.session.peer(id).await {
            Ok(Some(PeerInfo::User {
                auth: Some(auth), ..
            })) => {
                self.inner.hashes.insert(user, auth.hash());
                Ok(input_user_peer(user, auth.hash()))
            }
            Ok(_) => Err(BotError::Unreachable { user }),
            Err(e) => Err(BotError::Session {
                path: self.inner.session_file.clone(),
                detail: format!("cannot read cached users: {e}"),
            }),
        }
    }

    /// Sends a message to `user`; returns its id in the bot's dialog. Called once: a network
    /// failure is returned, not retried (the message may have arrived).
    pub async fn send(
        &self,
        user: UserId,
        text: &str,
        keyboard: &Keyboard,
    ) -> Result<i32, BotError> {
        let peer = self.input_peer(user).await?;
        let request = tl::functions::messages::SendMessage {
            no_webpage: true,
            silent: false,
            background: false,
            clear_draft: false,
            noforwards: false,
            update_stickersets_order: false,
            invert_media: false,
            allow_paid_floodskip: false,
            peer,
            reply_to: None,
            message: text.to_owned(),
            random_id: rand::random(),
            reply_markup: markup(keyboard),
            entities: None,
            rich_message: None,
            schedule_date: None,
            send_as: None,
            quick_reply_shortcut: None,
            effect: None,
            allow_paid_stars: None,
            suggested_post: None,
            schedule_repeat_period: None,
        };
        let answer = self
            .inner
            .client
            .invoke(&request)
            .await
            .map_err(|e| BotError::from_invocation("messages.sendMessage", Some(user), e))?;
        Ok(sent_id(&answer).unwrap_or_default())
    }

    /// Replaces the text and keyboard of the bot's message `msg_id` to `user`. Editing a message
    /// to what it already shows (`MESSAGE_NOT_MODIFIED`) is success.
    pub async fn edit(
        &self,
        user: UserId,
        msg_id: i32,
        text: &str,
        keyboard: &Keyboard,
    ) -> Result<(), BotError> {
        let peer = self.input_peer(user).await?;
        let request = tl::functions::messages::EditMessage {
            no_webpage: true,
            invert_media: false,
            peer,
            id: msg_id,
            message: Some(text.to_owned()),
            media: None,
            reply_markup: markup(keyboard),
            entities: None,
            rich_message: None,
            schedule_date: None,
            schedule_repeat_period: None,
            quick_reply_shortcut_id: None,
        };
        match self.inner.client.invoke(&request).await {
            Ok(_) => Ok(()),
            Err(InvocationError::Rpc(rpc)) if rpc.name == "MESSAGE_NOT_MODIFIED" => Ok(()),
            Err(e) => Err(BotError::from_invocation(
                "messages.editMessage",
                Some(user),
                e,
            )),
        }
    }

    /// Answers a button press (stops the client's spinner), with a toast or an alert.
    pub async fn answer(
        &self,
        query_id: i64,
        text: Option<&str>,
        alert: bool,
    ) -> Result<(), BotError> {
        let request = tl::functions::messages::SetBotCallbackAnswer {
            alert,
            query_id,
            message: text.map(str::to_owned),
            url: None,
            cache_time: 0,
        };
        self.inner
            .client
            .invoke(&request)
            .await
            .map(drop)
            .map_err(|e| BotError::from_invocation("messages.setBotCallbackAnswer", None, e))
    }

    /// Registers the command list users of `lang_code` see (empty: everyone else).
    pub async fn set_commands(
        &self,
        lang_code: &str,
        commands: &[(String, String)],
    ) -> Result<(), BotError> {
        let request = tl::functions::bots::SetBotCommands {
            scope: tl::enums::BotCommandScope::Default,
            lang_code: lang_code.to_owned(),
            commands: commands
                .iter()
                .map(|(command, description)| {
                    tl::enums::BotCommand::Command(tl::types::BotCommand {
                        ephemeral: false,
                        command: command.clone(),
                        description: description.clone(),
                    })
                })
                .collect(),
        };
        self.inner
            .client
            .invoke(&request)
            .await
            .map(drop)
            .map_err(|e| BotError::from_invocation("bots.setBotCommands", None, e))
    }

    /// The user id behind a public @username, if there is one.
    pub async fn resolve_username(&self, username: &str) -> Result<Option<UserId>, BotError> {
        let request = tl::functions::contacts::ResolveUsername {
            username: username.trim_start_matches('@').to_owned(),
            referer: None,
        };
        match self.inner.client.invoke(&request).await {
            Ok(tl::enums::contacts::ResolvedPeer::Peer(r)) => Ok(match r.peer {
                tl::enums::Peer::User(u) => Some(u.user_id),
                _ => None,
            }),
            Err(InvocationError::Rpc(rpc))
                if matches!(
                    rpc.name.as_str(),
                    "USERNAME_NOT_OCCUPIED" | "USERNAME_INVALID"
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(BotError::from_invocation(
                "contacts.resolveUsername",
                None,
                e,
            )),
        }
    }
}

fn input_user_peer(user: UserId, access_hash: i64) -> tl::enums::InputPeer {
    tl::enums::InputPeer::User(tl::types::InputPeerUser {
        user_id: user,
        access_hash,
    })
}

fn markup(keyboard: &Keyboard) -> Option<tl::enums::ReplyMarkup> {
    if keyboard.is_empty() {
        return None;
    }
    let button = |(text, data): &(String, Vec<u8>)| {
        tl::enums::KeyboardInlineButton::Button(tl::types::KeyboardInlineButton {
            style: None,
            text: text.clone(),
            r#type: tl::enums::InlineButtonType::Callback(tl::types::InlineButtonTypeCallback {
                requires_password: false,
                data: data.clone(),
            }),
        })
    };
    let rows = keyboard
        .iter()
        .map(|row| {
            tl::enums::KeyboardInlineButtonRow::Row(tl::types::KeyboardInlineButtonRow {
                buttons: row.iter().map(button).collect(),
            })
        })
        .collect();
    Some(tl::enums::ReplyMarkup::ReplyInlineMarkup(
        tl::types::ReplyInlineMarkup {
            force_reply: false,
            rows,
        },
    ))
}

/// The id of the message a sendMessage answer reports.
fn sent_id(updates: &tl::enums::Updates) -> Option<i32> {
    match updates {
        tl::enums::Updates::UpdateShortSentMessage(u) => Some(u.id),
        tl::enums::Updates::Updates(u) => u.updates.iter().find_map(|u| match u {
            tl::enums::Update::MessageId(m) => Some(m.id),
            tl::enums::Update::NewMessage(m) => match &m.message {
                tl::enums::Message::Message(m) => Some(m.id),
                _ => None,
            },
            _ => None,
        }),
        _ => None,
    }
}

struct Me {
    id: UserId,
    username: Option<String>,
    bot: bool,
}

async fn self_user(client: &Client) -> Result<Me, InvocationError> {
    let users = client
        .invoke(&tl::functions::users::GetUsers {
            id: vec![tl::enums::InputUser::UserSelf],
        })
        .await?;
    match users.into_iter().next() {
        Some(tl::enums::User::User(u)) => Ok(Me {
            id: u.id,
            username: u.username,
            bot: u.bot,
        }),
        _ => Err(InvocationError::Dropped(
            "users.getUsers gave no user for inputUserSelf",
        )),
    }
}

/// Reads the update stream and hands the bot its events; the access hashes of the users in
/// each update are kept for addressing them.
///
/// Never twice after a restart: each player's message is handed to the bot only after its id
/// (the bot's message ids only grow) is recorded in [`Handed`], and one at or below the record
/// (replayed by `updates.getDifference` after a restart) is skipped. The position in the update
/// sequence (`pts`) is saved to the session once every update at it has been handed over: the
/// updates of one `getDifference` answer all carry its final `pts`, so saving it with the first
/// would lose the rest at a stop; saved when the next position arrives, a restart replays at
/// most the last one, and the record skips what was already handed. At a clean stop the bot
/// answers everything handed to it; a command being answered at the moment of a crash may go
/// unanswered, never doubled.
async fn pump(
    mut stream: grammers_client::client::UpdateStream,
    api: BotApi,
    tx: mpsc::Sender<BotEvent>,
    cancel: CancellationToken,
) {
    let mut handed = Handed::load(&api.inner.session_file, api.inner.self_id);
    // The position of the updates handed over last, not yet saved.
    let mut unsaved: Option<grammers_client::session::updates::State> = None;
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => break,
            next = stream.next_raw() => next,
        };
        let (update, state, peers) = match next {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "bot update stream failed; reading on");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(done) = unsaved.take_if(|u| position(u) != position(&state)) {
            save_position(&api.inner.session, &done).await;
        }
        if position(&state).is_some() {
            unsaved = Some(state);
        }
        let user_info = |id: UserId| -> Option<String> {
            let peer = peers.get(PeerId::user(id)?)?;
            if let Some(PeerInfo::User {
                auth: Some(auth), ..
            }) = Some(PeerInfo::from(peer.clone()))
            {
                api.inner.hashes.insert(id, auth.hash());
            }
            match peer {
                grammers_client::peer::Peer::User(u) => u.lang_code().map(str::to_owned),
                _ => None,
            }
        };
        let event = match update {
            tl::enums::Update::NewMessage(u) => match u.message {
                tl::enums::Message::Message(m) if !m.out => match m.peer_id {
                    tl::enums::Peer::User(p) if handed.is_new(m.id) => {
                        handed.record(m.id);
                        Some(BotEvent::Message {
                            from: p.user_id,
                            lang: user_info(p.user_id),
                            text: m.message,
                        })
                    }
                    tl::enums::Peer::User(p) => {
                        tracing::info!(
                            msg_id = m.id,
                            user = p.user_id,
                            "a message handed to the bot before a restart came again; not answered twice"
                        );
                        None
                    }
                    _ => None,
                },
                _ => None,
            },
            tl::enums::Update::BotCallbackQuery(q) => Some(BotEvent::Callback {
                query_id: q.query_id,
                from: q.user_id,
                lang: user_info(q.user_id),
                msg_id: q.msg_id,
                data: q.data.unwrap_or_default(),
            }),
            _ => None,
        };
        if let Some(event) = event
            && tx.send(event).await.is_err()
        {
            break;
        }
    }
}

/// The account-wide `pts` an update's state is at, when it is in that sequence.
fn position(state: &grammers_client::session::updates::State) -> Option<i32> {
    match state.message_box {
        Some(grammers_client::session::updates::MessageBox::Common { pts }) => Some(pts),
        _ => None,
    }
}

/// The highest id of the players' messages handed to the bot, kept in `<session file>.handed`
/// as `<bot id> <message id>` (written before each message is handed over, replaced
/// atomically), so a message Telegram delivers again after a restart is not answered twice. A
/// record of another bot (the token changed) counts as none: message ids are per account.
#[derive(Debug)]
struct Handed {
    path: PathBuf,
    bot: UserId,
    last: i32,
}

impl Handed {
    fn load(session_file: &std::path::Path, bot: UserId) -> Handed {
        let mut path = session_file.as_os_str().to_owned();
        path.push(".handed");
        let path = PathBuf::from(path);
        let parse = |s: &str| -> Option<(UserId, i32)> {
            let (b, m) = s.trim().split_once(' ')?;
            Some((b.parse().ok()?, m.parse().ok()?))
        };
        let last = match std::fs::read_to_string(&path) {
            Ok(s) => match parse(&s) {
                Some((b, m)) if b == bot => m,
                Some(_) => 0,
                None => {
                    tracing::warn!(path = %path.display(), "unreadable record of the bot's handled messages; starting afresh");
                    0
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the record of the bot's handled messages");
                0
            }
        };
        Handed { path, bot, last }
    }

    fn is_new(&self, msg_id: i32) -> bool {
        msg_id > self.last
    }

    /// Records `msg_id` as handed over. A record that cannot be written is logged: answering
    /// the message beats dropping it.
    fn record(&mut self, msg_id: i32) {
        self.last = msg_id;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let written = std::fs::write(&tmp, format!("{} {msg_id}\n", self.bot))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, msg_id,
                "cannot record a handled message; after a restart it could be answered again");
        }
    }
}

/// Saves the bot's position in the account-wide update sequence (`pts`, with the date and seq
/// of that point) to its session, so the next connection's `updates.getDifference` starts
/// after it. Updates outside that sequence (button presses) are never replayed and leave the
/// position as it is.
async fn save_position(session: &SqliteSession, state: &grammers_client::session::updates::State) {
    use grammers_client::session::types::UpdateState;
    use grammers_client::session::updates::MessageBox;
    let Some(MessageBox::Common { pts }) = state.message_box else {
        return;
    };
    let saved = session
        .set_update_state(UpdateState::Primary {
            pts,
            date: state.date,
            seq: state.seq,
        })
        .await;
    if let Err(e) = saved {
        tracing::warn!(error = %e, pts, "could not save the bot's update position");
    }
}

/// What [`pin_update_state`] could do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pinned {
    /// The session holds a position the update stream starts from.
    Pinned,
    /// Telegram's state has no position yet (`pts` 0: the bot never received an update), which
    /// grammers reads as "no state": the stream fetches its own at its first `next()`. The
    /// session holds a marker (`date` 0) that stream overwrites when it has its state.
    Unpinnable,
}

/// Stores Telegram's current update state in a session that has none (a bot signed in for the
/// first time), so the update stream starts from a known point instead of fetching it later.
async fn pin_update_state(
    client: &Client,
    session: &SqliteSession,
) -> Result<Pinned, Box<dyn std::error::Error + Send + Sync>> {
    use grammers_client::session::types::{UpdateState, UpdatesState};
    if session.updates_state().await?.pts != 0 {
        return Ok(Pinned::Pinned);
    }
    let tl::enums::updates::State::State(state) =
        client.invoke(&tl::functions::updates::GetState {}).await?;
    let unpinnable = state.pts == 0;
    session
        .set_update_state(UpdateState::All(UpdatesState {
            pts: state.pts,
            qts: state.qts,
            date: if unpinnable { 0 } else { state.date },
            seq: state.seq,
            channels: Vec::new(),
        }))
        .await?;
    Ok(if unpinnable {
        Pinned::Unpinnable
    } else {
        Pinned::Pinned
    })
}

/// Waits until the update stream fetched its own state (it overwrites the `date` 0 marker
/// [`pin_update_state`] left), so a message sent once the bot says it answers falls after that
/// state. Gives up after 10 s with a warning: the stream still runs, only a message sent in that
/// window may be missed.
async fn await_stream_state(session: &SqliteSession) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match session.updates_state().await {
            Ok(state) if state.date != 0 => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the bot's update state");
                return;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "the bot's update stream has not fetched its state after 10 s; a message sent \
                 meanwhile may be missed"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_messages_are_remembered_per_bot() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("bot.session");
        let mut h = Handed::load(&session, 7);
        assert!(h.is_new(1));
        h.record(5);
        assert!(!h.is_new(5) && !h.is_new(3) && h.is_new(6));
        let again = Handed::load(&session, 7);
        assert!(!again.is_new(5) && again.is_new(6), "kept across a restart");
        let other = Handed::load(&session, 8);
        assert!(other.is_new(1), "another bot's record counts as none");
        std::fs::write(dir.path().join("bot.session.handed"), "garbage").unwrap();
        assert!(Handed::load(&session, 7).is_new(1));
    }
}
