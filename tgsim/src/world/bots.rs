//! Bots: the messages a bot sent and their inline buttons, button presses and callback answers,
//! bot commands per language, and Telegram's limits on a bot's sends.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::{Query, RpcErr, World, rnd_i64};
use crate::tlb;

/// A message a bot sent to a player, as the simulator saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BotMessage {
    /// Message id in the bot's dialog.
    pub msg_id: i32,
    /// Current text (after edits).
    pub text: String,
    /// Inline keyboard rows: (button text, callback data).
    pub buttons: Vec<Vec<Button>>,
    /// Edited at least once.
    pub edited: bool,
    /// Date sent.
    pub date: i32,
}

/// An inline button.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Button {
    /// Label.
    pub text: String,
    /// Callback data (None for URL and other kinds).
    pub data: Option<Vec<u8>>,
}

/// The answer a bot gave to a button press.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// Toast/alert text.
    pub message: Option<String>,
    /// Shown as an alert.
    pub alert: bool,
}

fn markup_buttons(m: Option<&tl::enums::ReplyMarkup>) -> Vec<Vec<Button>> {
    let Some(tl::enums::ReplyMarkup::ReplyInlineMarkup(m)) = m else {
        return Vec::new();
    };
    m.rows
        .iter()
        .map(|tl::enums::KeyboardInlineButtonRow::Row(r)| {
            r.buttons
                .iter()
                .map(|tl::enums::KeyboardInlineButton::Button(b)| Button {
                    text: b.text.clone(),
                    data: match &b.r#type {
                        tl::enums::InlineButtonType::Callback(c) => Some(c.data.clone()),
                        _ => None,
                    },
                })
                .collect()
        })
        .collect()
}

impl World {
    /// Messages `bot` sent to `player`, oldest first.
    pub fn bot_messages_to(&self, bot: i64, player: i64) -> Result<Vec<BotMessage>, RpcErr> {
        Ok(self
            .acc(bot)?
            .texts
            .iter()
            .filter(|(_, t)| t.peer == player)
            .map(|(id, t)| BotMessage {
                msg_id: *id,
                text: t.text.clone(),
                buttons: markup_buttons(t.markup.as_ref()),
                edited: t.edited,
                date: t.date,
            })
            .collect())
    }

    /// A player presses an inline button under `bot`'s message `msg_id`; returns the query id.
    ///
    /// `forged`: the data need not be one of the message's buttons, as a modified client can
    /// send (Bot API `CallbackQuery.data`: "Be aware that the message originated the query can
    /// contain no callback buttons with this data").
    pub fn press_button(
        &mut self,
        player: i64,
        bot: i64,
        msg_id: i32,
        data: &[u8],
        forged: bool,
    ) -> Result<i64, RpcErr> {
        let t = self
            .acc(bot)?
            .texts
            .get(&msg_id)
            .filter(|t| t.peer == player)
            .cloned()
            .ok_or_else(|| RpcErr::bad("MESSAGE_ID_INVALID"))?;
        let has = markup_buttons(t.markup.as_ref())
            .iter()
            .flatten()
            .any(|b| b.data.as_deref() == Some(data));
        if !has && !forged {
            return Err(RpcErr::bad("DATA_INVALID"));
        }
        let query_id = rnd_i64();
        self.queries.insert(query_id, Query { bot, answer: None });
        let upd = tl::enums::Update::BotCallbackQuery(tl::types::UpdateBotCallbackQuery {
            query_id,
            user_id: player,
            peer: tlb::peer_user(player),
            msg_id,
            chat_instance: player ^ bot,
            data: Some(data.to_vec()),
            game_short_name: None,
        });
        self.push(bot, vec![upd], None);
        Ok(query_id)
    }

    /// `messages.setBotCallbackAnswer`.
    pub fn answer_callback(
        &mut self,
        bot: i64,
        query_id: i64,
        answer: CallbackAnswer,
    ) -> Result<(), RpcErr> {
        match self.queries.get_mut(&query_id) {
            Some(q) if q.bot == bot => {
                q.answer = Some(answer);
                Ok(())
            }
            _ => Err(RpcErr::bad("QUERY_ID_INVALID")),
        }
    }

    /// The answer to a button press, once the bot gave one.
    pub fn callback_answer(&self, query_id: i64) -> Option<CallbackAnswer> {
        self.queries.get(&query_id).and_then(|q| q.answer.clone())
    }

    /// `bots.setBotCommands`.
    /// `lang_code` empty: the commands of every user without dedicated ones for their
    /// language; otherwise the commands of users of that language (core.telegram.org/method/
    /// bots.setBotCommands). Only the default scope is simulated.
    pub fn set_bot_commands(
        &mut self,
        bot: i64,
        lang_code: &str,
        cmds: Vec<(String, String)>,
    ) -> Result<(), RpcErr> {
        let a = self.acc_mut(bot)?;
        if !a.bot {
            return Err(RpcErr::bad("USER_BOT_REQUIRED"));
        }
        if lang_code.is_empty() {
            a.commands = cmds;
        } else {
            a.lang_commands.insert(lang_code.to_owned(), cmds);
        }
        Ok(())
    }

    /// Commands a bot registered for every language.
    pub fn bot_commands(&self, bot: i64) -> Result<Vec<(String, String)>, RpcErr> {
        Ok(self.acc(bot)?.commands.clone())
    }

    /// Commands a user whose app is in `lang` sees: the ones registered for that language,
    /// else the ones for every language.
    pub fn bot_commands_for(&self, bot: i64, lang: &str) -> Result<Vec<(String, String)>, RpcErr> {
        let a = self.acc(bot)?;
        Ok(a.lang_commands
            .get(lang)
            .cloned()
            .unwrap_or_else(|| a.commands.clone()))
    }

    /// Telegram's limits on a bot's messages ([`crate::bot_limits`]): a short burst then one
    /// a second in one chat, 30 a second overall; refused with FLOOD_WAIT_X (X the seconds,
    /// rounded up, until a send would pass). Sends by users are not limited here.
    pub fn check_bot_send(&mut self, from: i64, to: i64) -> Result<(), RpcErr> {
        let now = self.now_ms();
        let a = self.acc_mut(from)?;
        if !a.bot {
            return Ok(());
        }
        a.sends.check(to, now).map_err(|wait_ms| RpcErr {
            code: 420,
            message: format!("FLOOD_WAIT_{}", (wait_ms + 999) / 1000),
        })
    }
}
