//! Dialogs and text messages: sending and editing text, and `messages.getMessages`,
//! `messages.getHistory` and `messages.getDialogs` over each account's private chats.

use std::collections::BTreeMap;

use grammers_tl_types as tl;

use super::{RpcErr, TextMsg, World};
use crate::tlb;

pub(super) fn message_peer(m: &tl::enums::Message) -> Option<i64> {
    let peer = match m {
        tl::enums::Message::Message(m) => &m.peer_id,
        tl::enums::Message::Service(m) => &m.peer_id,
        tl::enums::Message::Empty(_) => return None,
    };
    match peer {
        tl::enums::Peer::User(u) => Some(u.user_id),
        _ => None,
    }
}

fn message_id(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(m) => m.id,
        tl::enums::Message::Service(m) => m.id,
        tl::enums::Message::Empty(m) => m.id,
    }
}

fn message_date(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(m) => m.date,
        tl::enums::Message::Service(m) => m.date,
        tl::enums::Message::Empty(_) => 0,
    }
}

impl World {
    /// A text message from `from` to `to` (player to bot, bot to player...). Returns the
    /// sender-side message id and the sender's own update.
    pub fn send_text(
        &mut self,
        from: i64,
        to: i64,
        text: &str,
        markup: Option<tl::enums::ReplyMarkup>,
        caller_conn: Option<u64>,
    ) -> Result<(i32, i32, tl::enums::Update), RpcErr> {
        self.acc(from)?;
        self.acc(to)?;
        if text.is_empty() {
            return Err(RpcErr::bad("MESSAGE_EMPTY"));
        }
        let date = self.now32();
        let m2 = markup.clone();
        let (peer_msg_id, _) = self.deliver(
            to,
            |id| tlb::text_message(id, false, to, from, date, text, m2, None),
            None,
        )?;
        let m3 = markup.clone();
        let (msg_id, own) = self.deliver(
            from,
            |id| tlb::text_message(id, true, from, to, date, text, m3, None),
            caller_conn,
        )?;
        self.acc_mut(from)?.texts.insert(
            msg_id,
            TextMsg {
                peer: to,
                peer_msg_id,
                text: text.into(),
                markup,
                edited: false,
                date,
            },
        );
        Ok((msg_id, peer_msg_id, own))
    }

    /// `messages.editMessage` of a text message the caller sent.
    pub fn edit_text(
        &mut self,
        from: i64,
        msg_id: i32,
        text: Option<&str>,
        markup: Option<tl::enums::ReplyMarkup>,
        caller_conn: Option<u64>,
    ) -> Result<tl::enums::Update, RpcErr> {
        let now = self.now32();
        let t = {
            let a = self.acc_mut(from)?;
            let t = a
                .texts
                .get_mut(&msg_id)
                .ok_or_else(|| RpcErr::bad("MESSAGE_ID_INVALID"))?;
            // messages.editMessage replaces the reply markup with the one sent, and an absent
            // `reply_markup` leaves the message without one (TDLib EditMessageQuery sets the flag
            // only for a non-null markup; td_api editMessageText: "pass null if none"). An edit
            // that changes neither the text nor the markup is MESSAGE_NOT_MODIFIED; a change of
            // the markup alone is a real edit.
            let new_text = text.unwrap_or(&t.text).to_owned();
            if new_text == t.text && markup == t.markup {
                return Err(RpcErr::bad("MESSAGE_NOT_MODIFIED"));
            }
            t.text = new_text;
            t.markup = markup;
            t.edited = true;
            t.clone()
        };
        let peer_msg = tlb::text_message(
            t.peer_msg_id,
            false,
            t.peer,
            from,
            t.date,
            &t.text,
            t.markup.clone(),
            Some(now),
        );
        let own_msg = tlb::text_message(
            msg_id,
            true,
            from,
            t.peer,
            t.date,
            &t.text,
            t.markup.clone(),
            Some(now),
        );
        self.acc_mut(t.peer)?
            .messages
            .insert(t.peer_msg_id, peer_msg.clone());
        self.acc_mut(from)?.messages.insert(msg_id, own_msg.clone());
        let upd = self.log_update(t.peer, |pts| {
            tl::enums::Update::EditMessage(tl::types::UpdateEditMessage {
                message: peer_msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(t.peer, vec![upd], None);
        let own = self.log_update(from, |pts| {
            tl::enums::Update::EditMessage(tl::types::UpdateEditMessage {
                message: own_msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(from, vec![own.clone()], caller_conn);
        Ok(own)
    }

    /// `messages.getMessages`: messages of the caller's private dialogs by id (missing ones
    /// come back as `messageEmpty`, as Telegram does).
    pub fn get_messages(
        &self,
        caller: i64,
        ids: &[tl::enums::InputMessage],
    ) -> Result<tl::enums::messages::Messages, RpcErr> {
        let a = self.acc(caller)?;
        let mut messages = Vec::with_capacity(ids.len());
        let mut users = vec![caller];
        for i in ids {
            let tl::enums::InputMessage::Id(i) = i else {
                continue;
            };
            match a.messages.get(&i.id) {
                Some(m) => {
                    users.extend(message_peer(m));
                    messages.push(m.clone());
                }
                None => messages.push(tl::enums::Message::Empty(tl::types::MessageEmpty {
                    id: i.id,
                    peer_id: None,
                })),
            }
        }
        Ok(tl::enums::messages::Messages::Messages(
            tl::types::messages::Messages {
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users: self.tl_users(&users, caller),
            },
        ))
    }

    /// `messages.getHistory` of the caller's private chat with `peer`, newest first, paged as
    /// core.telegram.org/api/offsets says: the list is sliced at
    /// `offsetFromID(offset_id) + add_offset` (the number of messages from the newest down to
    /// `offset_id`, inclusive; with `offset_id` 0, down to the first message older than
    /// `offset_date`, or none), `limit` long (0 means 20, at most 100); then `max_id` and
    /// `min_id` (when positive) filter the slice. `hash` is ignored (the full answer is always
    /// sent, as for hash 0). The whole history in one answer is `messages.messages`, a part of
    /// it `messages.messagesSlice` with the dialog's total `count`.
    #[allow(clippy::too_many_arguments)]
    pub fn get_history(
        &self,
        caller: i64,
        peer: i64,
        offset_id: i32,
        offset_date: i32,
        add_offset: i32,
        limit: i32,
        max_id: i32,
        min_id: i32,
    ) -> Result<tl::enums::messages::Messages, RpcErr> {
        if limit < 0 {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        let a = self.acc(caller)?;
        let all: Vec<&tl::enums::Message> = a
            .messages
            .values()
            .rev()
            .filter(|m| message_peer(m) == Some(peer))
            .collect();
        let base = if offset_id != 0 {
            all.iter()
                .take_while(|m| message_id(m) >= offset_id)
                .count()
        } else if offset_date != 0 {
            all.iter()
                .take_while(|m| message_date(m) >= offset_date)
                .count()
        } else {
            0
        } as i64;
        let limit = if limit == 0 { 20 } else { limit.min(100) } as i64;
        let total = all.len() as i64;
        let start = (base + add_offset as i64).clamp(0, total);
        let end = (base + add_offset as i64 + limit).clamp(0, total);
        let messages: Vec<tl::enums::Message> = all[start as usize..end.max(start) as usize]
            .iter()
            .filter(|m| max_id <= 0 || message_id(m) < max_id)
            .filter(|m| min_id <= 0 || message_id(m) > min_id)
            .map(|m| (*m).clone())
            .collect();
        let mut ids = vec![caller, peer];
        for m in &messages {
            if let tl::enums::Message::Service(s) = m
                && let Some(tl::enums::Peer::User(u)) = &s.from_id
            {
                ids.push(u.user_id);
            }
        }
        let users = self.tl_users(&ids, caller);
        if start == 0 && end == total {
            return Ok(tl::enums::messages::Messages::Messages(
                tl::types::messages::Messages {
                    messages,
                    topics: Vec::new(),
                    chats: Vec::new(),
                    users,
                },
            ));
        }
        Ok(tl::enums::messages::Messages::Slice(
            tl::types::messages::MessagesSlice {
                inexact: false,
                count: total as i32,
                next_rate: None,
                offset_id_offset: None,
                search_flood: None,
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users,
            },
        ))
    }

    /// `messages.getDialogs` (minimal: every peer with its top message).
    pub fn dialogs(&self, caller: i64) -> Result<tl::enums::messages::Dialogs, RpcErr> {
        let a = self.acc(caller)?;
        let mut top: BTreeMap<i64, i32> = BTreeMap::new();
        for (id, m) in &a.messages {
            let peer = message_peer(m).unwrap_or(0);
            top.insert(peer, *id);
        }
        let mut tops: Vec<(i64, i32)> = top.into_iter().collect();
        tops.sort_by_key(|(_, id)| std::cmp::Reverse(*id));
        let dialogs = tops
            .iter()
            .map(|(peer, id)| {
                tl::enums::Dialog::Dialog(tl::types::Dialog {
                    pinned: false,
                    unread_mark: false,
                    view_forum_as_messages: false,
                    peer: tlb::peer_user(*peer),
                    top_message: *id,
                    read_inbox_max_id: *id,
                    read_outbox_max_id: *id,
                    unread_count: 0,
                    unread_mentions_count: 0,
                    unread_reactions_count: 0,
                    unread_poll_votes_count: 0,
                    notify_settings: tl::enums::PeerNotifySettings::Settings(
                        tl::types::PeerNotifySettings {
                            show_previews: None,
                            silent: None,
                            mute_until: None,
                            ios_sound: None,
                            android_sound: None,
                            other_sound: None,
                            stories_muted: None,
                            stories_hide_sender: None,
                            stories_ios_sound: None,
                            stories_android_sound: None,
                            stories_other_sound: None,
                        },
                    ),
                    pts: None,
                    draft: None,
                    folder_id: None,
                    ttl_period: None,
                })
            })
            .collect();
        let messages = tops
            .iter()
            .filter_map(|(_, id)| a.messages.get(id).cloned())
            .collect();
        let mut ids: Vec<i64> = tops.iter().map(|(p, _)| *p).collect();
        ids.push(caller);
        Ok(tl::enums::messages::Dialogs::Dialogs(
            tl::types::messages::Dialogs {
                dialogs,
                messages,
                chats: Vec::new(),
                users: self.tl_users(&ids, caller),
            },
        ))
    }
}
