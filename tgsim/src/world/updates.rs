//! The update stream: each account's pts and update log, storing a new message in an account's
//! dialog with its `updateNewMessage`, pushing updates to the account's connected sessions, and
//! `updates.getState` / `updates.getDifference` answered from the log.

use grammers_tl_types as tl;
use tokio::sync::mpsc;

use super::dialogs::message_peer;
use super::{DIFFERENCE_SLICE, Fault, RpcErr, Subscriber, World};
use crate::tlb;

fn collect_update_users(u: &tl::enums::Update, ids: &mut Vec<i64>) {
    let m = match u {
        tl::enums::Update::NewMessage(m) => &m.message,
        tl::enums::Update::EditMessage(m) => &m.message,
        tl::enums::Update::BotCallbackQuery(q) => {
            ids.push(q.user_id);
            return;
        }
        _ => return,
    };
    ids.extend(message_peer(m));
    let from = match m {
        tl::enums::Message::Message(m) => m.from_id.as_ref(),
        tl::enums::Message::Service(m) => m.from_id.as_ref(),
        tl::enums::Message::Empty(_) => None,
    };
    if let Some(tl::enums::Peer::User(u)) = from {
        ids.push(u.user_id);
    }
}

impl World {
    /// Subscribes a connection to its account's updates.
    pub fn subscribe(&mut self, account: i64, conn: u64, tx: mpsc::UnboundedSender<Vec<u8>>) {
        let subs = self.subscribers.entry(account).or_default();
        if !subs.iter().any(|s| s.conn == conn) {
            subs.push(Subscriber { conn, tx });
        }
    }

    /// Removes a connection from every account's subscribers.
    pub fn unsubscribe(&mut self, conn: u64) {
        for subs in self.subscribers.values_mut() {
            subs.retain(|s| s.conn != conn);
        }
    }

    fn withheld(&self) -> Option<bool> {
        self.faults.iter().find_map(|f| match f {
            Fault::WithholdUpdates { honest_difference } => Some(*honest_difference),
            _ => None,
        })
    }

    /// Appends a pts-carrying update to `account`'s log and returns it with its pts.
    pub(super) fn log_update(
        &mut self,
        account: i64,
        make: impl FnOnce(i32) -> tl::enums::Update,
    ) -> Result<tl::enums::Update, RpcErr> {
        let a = self.acc_mut(account)?;
        a.pts += 1;
        let upd = make(a.pts);
        a.log.push(upd.clone());
        Ok(upd)
    }

    /// Pushes `updates` to every session of `account` except `skip_conn`.
    pub(super) fn push(
        &mut self,
        account: i64,
        upd: Vec<tl::enums::Update>,
        skip_conn: Option<u64>,
    ) {
        if self.withheld().is_some() {
            return;
        }
        let mut ids = vec![account];
        for u in &upd {
            collect_update_users(u, &mut ids);
        }
        let users = self.tl_users(&ids, account);
        let body = if self.faults.contains(&Fault::UpdatesTooLong) {
            tlb::bytes(&tl::enums::Updates::TooLong)
        } else {
            tlb::bytes(&tlb::updates(upd, users, self.now32()))
        };
        let mut pushed = 0;
        if let Some(subs) = self.subscribers.get_mut(&account) {
            subs.retain(|s| {
                if Some(s.conn) == skip_conn {
                    return true;
                }
                pushed += 1;
                s.tx.send(body.clone()).is_ok()
            });
        }
        self.stats.updates_pushed += pushed;
    }

    /// Stores a new message in `account`'s dialog, logs and pushes updateNewMessage.
    /// Returns the update (for answering the caller's own request).
    pub(super) fn deliver(
        &mut self,
        account: i64,
        make: impl FnOnce(i32) -> tl::enums::Message,
        skip_conn: Option<u64>,
    ) -> Result<(i32, tl::enums::Update), RpcErr> {
        let a = self.acc_mut(account)?;
        let id = a.next_msg_id;
        a.next_msg_id += 1;
        let msg = make(id);
        a.messages.insert(id, msg.clone());
        let upd = self.log_update(account, |pts| {
            tl::enums::Update::NewMessage(tl::types::UpdateNewMessage {
                message: msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(account, vec![upd.clone()], skip_conn);
        Ok((id, upd))
    }

    /// Current pts of `account`.
    pub fn pts(&self, account: i64) -> Result<i32, RpcErr> {
        Ok(self.acc(account)?.pts)
    }

    /// `updates.getState` for `account`.
    pub fn get_state(&self, account: i64) -> Result<tl::enums::updates::State, RpcErr> {
        let a = self.acc(account)?;
        Ok(tlb::state(a.pts, self.now32()))
    }

    /// `updates.getDifference` from `pts` for `account`.
    pub fn get_difference(
        &self,
        account: i64,
        pts: i32,
        limit: Option<i32>,
    ) -> Result<tl::enums::updates::Difference, RpcErr> {
        let a = self.acc(account)?;
        let now = self.now32();
        if pts > a.pts {
            // The client's state is from another world (say, a session file reused across
            // simulator runs): move it to the present, as Telegram does after differenceTooLong.
            return Ok(tl::enums::updates::Difference::TooLong(
                tl::types::updates::DifferenceTooLong { pts: a.pts },
            ));
        }
        if pts == a.pts {
            return Ok(tl::enums::updates::Difference::Empty(
                tl::types::updates::DifferenceEmpty { date: now, seq: 0 },
            ));
        }
        if self.withheld() == Some(false) {
            // The dishonest mode: claim nothing happened but move the client to the present.
            return Ok(tl::enums::updates::Difference::Difference(
                tl::types::updates::Difference {
                    new_messages: Vec::new(),
                    new_encrypted_messages: Vec::new(),
                    other_updates: Vec::new(),
                    chats: Vec::new(),
                    users: Vec::new(),
                    state: tlb::state(a.pts, now),
                },
            ));
        }
        let start = pts.max(0) as usize;
        let max = limit
            .filter(|l| *l > 0)
            .map(|l| l as usize)
            .unwrap_or(DIFFERENCE_SLICE)
            .min(DIFFERENCE_SLICE);
        let end = (start + max).min(a.log.len());
        let mut new_messages = Vec::new();
        let mut other = Vec::new();
        let mut ids = vec![account];
        for u in &a.log[start..end] {
            collect_update_users(u, &mut ids);
            match u {
                tl::enums::Update::NewMessage(m) => new_messages.push(m.message.clone()),
                other_u => other.push(other_u.clone()),
            }
        }
        let users = self.tl_users(&ids, account);
        let state = tlb::state(end as i32, now);
        Ok(if end < a.log.len() {
            tl::enums::updates::Difference::Slice(tl::types::updates::DifferenceSlice {
                new_messages,
                new_encrypted_messages: Vec::new(),
                other_updates: other,
                chats: Vec::new(),
                users,
                intermediate_state: state,
            })
        } else {
            tl::enums::updates::Difference::Difference(tl::types::updates::Difference {
                new_messages,
                new_encrypted_messages: Vec::new(),
                other_updates: other,
                chats: Vec::new(),
                users,
                state,
            })
        })
    }
}
