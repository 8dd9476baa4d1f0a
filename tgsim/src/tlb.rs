//! Builders for the layer-230 TL objects the simulator sends.
//!
//! grammers-tl-types structs have no `Default`; objects with dozens of optional fields are made by
//! deserializing a minimal bare encoding (all flags clear) and then setting the fields that
//! matter, which keeps every builder short and the flags consistent. Nothing here touches state.

use grammers_tl_types::{self as tl, Deserializable, Identifiable, Serializable};

/// Little TL writer for the blank encodings.
struct W(Vec<u8>);

impl W {
    fn new() -> Self {
        Self(Vec::new())
    }
    fn u32(mut self, v: u32) -> Self {
        v.serialize(&mut self.0);
        self
    }
    fn i32(mut self, v: i32) -> Self {
        v.serialize(&mut self.0);
        self
    }
    fn i64(mut self, v: i64) -> Self {
        v.serialize(&mut self.0);
        self
    }
    fn str(mut self, v: &str) -> Self {
        v.to_owned().serialize(&mut self.0);
        self
    }
    fn raw(mut self, v: &impl Serializable) -> Self {
        v.serialize(&mut self.0);
        self
    }
    fn build<T: Deserializable>(self) -> T {
        // The encodings in this module are written to match the generated layer-230 decoders
        // field by field; the unit tests below decode every one of them.
        T::from_bytes(&self.0).unwrap_or_else(|e| {
            panic!(
                "blank {} does not match layer 230: {e}",
                std::any::type_name::<T>()
            )
        })
    }
}

/// `peerUser`.
pub fn peer_user(id: i64) -> tl::enums::Peer {
    tl::enums::Peer::User(tl::types::PeerUser { user_id: id })
}

/// A user as seen by `viewer` (`is_self` when they are the same).
#[allow(clippy::too_many_arguments)]
pub fn user(
    id: i64,
    access_hash: i64,
    first_name: &str,
    username: &str,
    phone: Option<&str>,
    bot: bool,
    is_self: bool,
) -> tl::enums::User {
    let mut u: tl::types::User = W::new().u32(0).u32(0).i64(id).build();
    u.access_hash = Some(access_hash);
    u.first_name = Some(first_name.to_owned());
    if !username.is_empty() {
        u.username = Some(username.to_owned());
    }
    u.phone = phone.map(str::to_owned);
    u.bot = bot;
    if bot {
        u.bot_info_version = Some(1);
    }
    u.is_self = is_self;
    tl::enums::User::User(u)
}

/// `userFull` with empty settings.
pub fn user_full(id: i64, about: Option<String>) -> tl::enums::UserFull {
    let mut f: tl::types::UserFull = W::new()
        .u32(0)
        .u32(0)
        .i64(id)
        .u32(tl::types::PeerSettings::CONSTRUCTOR_ID)
        .u32(0)
        .u32(tl::types::PeerNotifySettings::CONSTRUCTOR_ID)
        .u32(0)
        .i32(0)
        .build();
    f.about = about;
    tl::enums::UserFull::Full(f)
}

/// A text message in `me`'s private chat with `peer`.
///
/// The sender rule of private chats (since layer 119): an incoming message carries no `from_id`
/// (its sender is the chat's peer), an outgoing one (`out`) carries `from_id` = `me`. Sources:
/// grammers-client 0.11 `Message::sender_id`, Telethon 1.45 `Message.__init__`, TDLib
/// `MessagesManager::parse_telegram_api_message` (no `from_id` means the peer) and
/// `create_message` ("Receive wrong out flag" when an `out` message is not from self). See
/// tgsim/FIDELITY.md.
#[allow(clippy::too_many_arguments)]
pub fn text_message(
    id: i32,
    out: bool,
    me: i64,
    peer: i64,
    date: i32,
    text: &str,
    markup: Option<tl::enums::ReplyMarkup>,
    edit_date: Option<i32>,
) -> tl::enums::Message {
    let mut m: tl::types::Message = W::new()
        .u32(0)
        .u32(0)
        .i32(id)
        .raw(&peer_user(peer))
        .i32(date)
        .str(text)
        .build();
    m.out = out;
    m.from_id = private_from_id(out, me);
    m.reply_markup = markup;
    m.edit_date = edit_date;
    tl::enums::Message::Message(m)
}

/// `from_id` of a message in a private chat of `me`: set (to `me`) on outgoing messages only.
fn private_from_id(out: bool, me: i64) -> Option<tl::enums::Peer> {
    out.then(|| peer_user(me))
}

/// A service message carrying `action` in `me`'s private chat with `peer`; `from_id` follows
/// the same rule as [`text_message`] (set on outgoing copies only).
pub fn service_message(
    id: i32,
    out: bool,
    me: i64,
    peer: i64,
    date: i32,
    action: tl::enums::MessageAction,
) -> tl::enums::Message {
    tl::enums::Message::Service(tl::types::MessageService {
        out,
        mentioned: false,
        media_unread: false,
        reactions_are_possible: false,
        silent: false,
        post: false,
        legacy: false,
        id,
        from_id: private_from_id(out, me),
        peer_id: peer_user(peer),
        saved_peer_id: None,
        reply_to: None,
        date,
        action,
        reactions: None,
        ttl_period: None,
    })
}

/// `config` whose DC options all point back at the simulator.
pub fn config(date: i32, this_dc: i32, ip: &str, port: u16) -> tl::enums::Config {
    let mut w = W::new()
        .u32(0)
        .i32(date)
        .i32(date + 3600)
        .raw(&false)
        .i32(this_dc)
        .raw(&Vec::<tl::enums::DcOption>::new())
        .str("tgsim.invalid");
    // chat_size_max .. channels_read_media_period: 17 ints.
    for v in [
        200, 200000, 100, 120000, 5000, 30000, 300000, 25000, 1500, 60000, 2, 172800, 172800,
        2147483647, 172800, 20, 2419200,
    ] {
        w = w.i32(v);
    }
    // call_* timeouts: 4 ints, then me_url_prefix.
    for v in [20000, 90000, 30000, 10000] {
        w = w.i32(v);
    }
    w = w.str("https://t.me/");
    for v in [4096, 4096, this_dc] {
        w = w.i32(v);
    }
    let mut c: tl::types::Config = w.build();
    c.dc_options = (1..=5)
        .map(|id| {
            tl::enums::DcOption::Option(tl::types::DcOption {
                ipv6: false,
                media_only: false,
                tcpo_only: false,
                cdn: false,
                r#static: false,
                this_port_only: false,
                id,
                ip_address: ip.to_owned(),
                port: port as i32,
                secret: None,
            })
        })
        .collect();
    tl::enums::Config::Config(c)
}

/// An empty document standing in for a gift sticker.
pub fn sticker(id: i64) -> tl::enums::Document {
    tl::enums::Document::Empty(tl::types::DocumentEmpty { id })
}

/// Formatted text without entities.
pub fn text(t: &str) -> tl::enums::TextWithEntities {
    tl::enums::TextWithEntities::Entities(tl::types::TextWithEntities {
        text: t.to_owned(),
        entities: Vec::new(),
    })
}

/// `updates` wrapper with `seq = 0`, as pushed to a client.
pub fn updates(
    updates: Vec<tl::enums::Update>,
    users: Vec<tl::enums::User>,
    date: i32,
) -> tl::enums::Updates {
    tl::enums::Updates::Updates(tl::types::Updates {
        updates,
        users,
        chats: Vec::new(),
        date,
        seq: 0,
    })
}

/// `updates.state`.
pub fn state(pts: i32, date: i32) -> tl::enums::updates::State {
    tl::enums::updates::State::State(tl::types::updates::State {
        pts,
        qts: 0,
        date,
        seq: 0,
        unread_count: 0,
    })
}

/// Serializes a value through its boxed (enum) form.
pub fn bytes(v: &impl Serializable) -> Vec<u8> {
    v.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_encodings_decode_and_roundtrip() {
        let u = user(5, 6, "A", "alice", Some("+1"), false, true);
        let back = tl::enums::User::from_bytes(&u.to_bytes()).expect("roundtrip");
        assert_eq!(u, back);
        let f = user_full(5, None);
        assert_eq!(
            tl::enums::UserFull::from_bytes(&f.to_bytes()).expect("rt"),
            f
        );
        let m = text_message(1, true, 2, 3, 4, "hi", None, None);
        assert_eq!(
            tl::enums::Message::from_bytes(&m.to_bytes()).expect("rt"),
            m
        );
        // Sender rule: outgoing copies carry from_id = self, incoming ones none.
        let tl::enums::Message::Message(out) = &m else {
            panic!("message");
        };
        assert_eq!(out.from_id, Some(peer_user(2)));
        let tl::enums::Message::Message(inc) = text_message(1, false, 2, 3, 4, "hi", None, None)
        else {
            panic!("message");
        };
        assert_eq!((inc.from_id, inc.peer_id), (None, peer_user(3)));
        let c = config(100, 2, "127.0.0.1", 4000);
        let tl::enums::Config::Config(cc) =
            tl::enums::Config::from_bytes(&c.to_bytes()).expect("rt");
        assert_eq!(cc.this_dc, 2);
        assert_eq!(cc.webfile_dc_id, 2);
        assert_eq!(cc.dc_options.len(), 5);
    }
}
