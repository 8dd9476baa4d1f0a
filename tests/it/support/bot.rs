//! The companion bot as its players reach it through tgsim: the bot account with its token and
//! a session not yet signed in (the `[bot]` section giftd reads), and what a player does with
//! it: type a command and read the reply, press a button (or forge a press), read the bot's
//! messages.

use std::path::PathBuf;
use std::time::Duration;

use tgsim::{BotMessage, CallbackAnswer, Sim};

use super::wait::until;
use super::world::World;

/// A bot created in a world's simulator.
pub(crate) struct Bot {
    sim: Sim,
    /// The bot's Telegram user id.
    pub(crate) id: i64,
    pub(crate) token: String,
    /// Where its session is written (not signed in: giftd signs in with the token).
    pub(crate) session: PathBuf,
    /// How long a reply, an answer to a press, and the bot's start are awaited, and how often
    /// they are looked for.
    pub(crate) patience: Patience,
}

/// How long the bot's replies are awaited.
#[derive(Clone, Copy)]
pub(crate) struct Patience {
    pub(crate) reply: Duration,
    pub(crate) answer: Duration,
    pub(crate) every: Duration,
}

impl Patience {
    /// `giftd`'s `Daemon` in this process.
    pub(crate) const IN_PROCESS: Patience = Patience {
        reply: Duration::from_secs(40),
        answer: Duration::from_secs(20),
        every: Duration::from_millis(20),
    };
    /// `giftd run` processes of a cluster.
    pub(crate) const CLUSTER: Patience = Patience {
        reply: Duration::from_secs(30),
        answer: Duration::from_secs(30),
        every: Duration::from_millis(50),
    };
}

impl Bot {
    /// Creates the bot `name` in `w`'s simulator and writes its new session at
    /// `w.dir/session_file`.
    pub(crate) async fn create(w: &World, name: &str, session_file: &str) -> Bot {
        let bot = w.sim.create_bot(name).expect("bot created");
        let session = w.dir.path().join(session_file);
        w.write_new_session(&session).await;
        Bot {
            sim: w.sim.clone(),
            id: bot.account.id,
            token: bot.token,
            session,
            patience: Patience::IN_PROCESS,
        }
    }

    /// The `[bot]` section with `token` (the bot's own unless given) and its session file.
    pub(crate) fn section(&self, token: Option<&str>) -> String {
        format!(
            "[bot]\ntoken = \"{}\"\nsession_file = \"{}\"\n",
            token.unwrap_or(&self.token),
            self.session.display()
        )
    }

    /// Whether the bot registered its commands (giftd's bot is answering).
    pub(crate) fn started(&self) -> bool {
        !self.sim.bot_commands(self.id).unwrap().is_empty()
    }

    /// Waits (`within`) until the bot registered its commands; `context` says why not.
    pub(crate) async fn wait_started(&self, within: Duration, context: impl Fn() -> String) {
        until(within, self.patience.every, || {
            self.started().then_some(()).ok_or_else(&context)
        })
        .await;
    }

    pub(crate) fn messages(&self, player: i64) -> Vec<BotMessage> {
        self.sim.bot_messages_to(self.id, player).unwrap()
    }

    /// The bot's messages to `player` until `pred` holds for them.
    pub(crate) async fn wait_messages(
        &self,
        player: i64,
        what: &str,
        pred: impl Fn(&[BotMessage]) -> bool,
    ) -> Vec<BotMessage> {
        until(self.patience.reply, self.patience.every, || {
            let m = self.messages(player);
            if pred(&m) {
                Ok(m)
            } else {
                Err(format!(
                    "{what}: the bot's messages to {player} are {:#?}",
                    m.iter().map(|m| &m.text).collect::<Vec<_>>()
                ))
            }
        })
        .await
    }

    /// `player` types `text` to the bot.
    pub(crate) fn send(&self, player: i64, text: &str) {
        self.sim
            .send_text_to_bot(player, self.id, text)
            .expect("text sent");
    }

    /// Sends `text` and returns the bot's reply (the first message after it that contains
    /// `expect`; notifications may come between).
    pub(crate) async fn ask(&self, player: i64, text: &str, expect: &str) -> BotMessage {
        let before = self.messages(player).len();
        self.send(player, text);
        let m = self
            .wait_messages(player, &format!("reply to {text:?} with {expect:?}"), |m| {
                m[before.min(m.len())..]
                    .iter()
                    .any(|m| m.text.contains(expect))
            })
            .await;
        m[before..]
            .iter()
            .find(|m| m.text.contains(expect))
            .unwrap()
            .clone()
    }

    /// The answer to press `query`, once the bot gave it.
    pub(crate) async fn answer(&self, query: i64) -> CallbackAnswer {
        until(self.patience.answer, self.patience.every, || {
            self.sim
                .callback_answer(query)
                .ok_or_else(|| format!("press {query} never answered"))
        })
        .await
    }

    /// Presses the button labelled `label` under `msg` and returns the answer and the message
    /// as it now reads.
    pub(crate) async fn press(
        &self,
        player: i64,
        msg: &BotMessage,
        label: &str,
    ) -> (CallbackAnswer, BotMessage) {
        let data = button(msg, label);
        let q = self
            .sim
            .press_button(player, self.id, msg.msg_id, &data)
            .expect("pressed");
        let a = self.answer(q).await;
        (a, self.message(player, msg.msg_id))
    }

    /// A press with `data` no button of the bot's carries.
    pub(crate) async fn forge(&self, player: i64, msg_id: i32, data: &str) -> CallbackAnswer {
        let q = self
            .sim
            .press_forged(player, self.id, msg_id, data.as_bytes())
            .expect("forged press delivered");
        self.answer(q).await
    }

    /// The bot's message `msg_id` to `player` as it reads now.
    pub(crate) fn message(&self, player: i64, msg_id: i32) -> BotMessage {
        self.messages(player)
            .into_iter()
            .find(|m| m.msg_id == msg_id)
            .expect("the message exists")
    }
}

/// The data of the first button whose label starts with `label`.
pub(crate) fn button(msg: &BotMessage, label: &str) -> Vec<u8> {
    msg.buttons
        .iter()
        .flatten()
        .find(|b| b.text.starts_with(label))
        .and_then(|b| b.data.clone())
        .unwrap_or_else(|| {
            panic!(
                "no button {label:?} under {:?}: {:?}",
                msg.text, msg.buttons
            )
        })
}
