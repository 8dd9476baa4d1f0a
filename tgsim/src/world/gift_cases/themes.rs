//! Chat themes set to a collectible the setter holds (`messageActionSetChatTheme`); the
//! collectible does not move.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use crate::tlb;
use crate::world::{RpcErr, World};

/// Input of [`World::set_chat_theme`]: `from` sets the theme of its chat with `to` to a
/// collectible `from` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatTheme {
    /// Who sets the theme.
    pub from: i64,
    /// The other side of the chat.
    pub to: i64,
    /// The collectible's saved-gift message id in `from`'s dialog.
    pub msg_id: i32,
}

/// Message ids of a chat-theme change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ThemeSet {
    /// `from`'s outgoing service message.
    pub from_msg_id: i32,
    /// `to`'s incoming service message.
    pub to_msg_id: i32,
}

impl World {
    /// `from` sets the theme of its chat with `to` to a collectible it holds
    /// (`messages.setChatWallPaper`-style `messages.setChatTheme` with
    /// `inputChatThemeUniqueGift`): both sides get `messageActionSetChatTheme` with
    /// `chatThemeUniqueGift` carrying the collectible; nothing changes hands.
    pub fn set_chat_theme(&mut self, t: ChatTheme) -> Result<ThemeSet, RpcErr> {
        self.acc(t.to)?;
        let s = self.saved_gift(t.from, t.msg_id)?;
        let u = self.unique_of(&s)?;
        let act = tl::enums::MessageAction::SetChatTheme(tl::types::MessageActionSetChatTheme {
            theme: tl::enums::ChatTheme::UniqueGift(tl::types::ChatThemeUniqueGift {
                gift: self.tl_unique(&u, t.from),
                theme_settings: Vec::new(),
            }),
        });
        let date = self.now32();
        let from_act = act.clone();
        let (from_msg_id, _) = self.deliver(
            t.from,
            |id| tlb::service_message(id, true, t.from, t.to, date, from_act),
            None,
        )?;
        let (to_msg_id, _) = self.deliver(
            t.to,
            |id| tlb::service_message(id, false, t.to, t.from, date, act),
            None,
        )?;
        Ok(ThemeSet {
            from_msg_id,
            to_msg_id,
        })
    }
}

#[cfg(test)]
mod tests {

    use grammers_tl_types as tl;

    use crate::world::gift_cases::ChatTheme;
    use crate::world::gift_cases::testkit::*;

    #[test]
    fn chat_themes_carry_a_collectible_without_moving_it() {
        let (mut w, dep, a, b) = world();
        let own = send_unique(&mut w, b, a);
        let t = w
            .set_chat_theme(ChatTheme {
                from: a,
                to: dep,
                msg_id: own.msg_id,
            })
            .expect("theme");
        match wire(&w, dep, t.to_msg_id).action {
            tl::enums::MessageAction::SetChatTheme(s) => {
                assert!(matches!(s.theme, tl::enums::ChatTheme::UniqueGift(_)))
            }
            other => panic!("{other:?}"),
        }
        assert!(w.saved_gifts(dep).expect("list").is_empty());
        assert_eq!(w.saved_gifts(a).expect("list").len(), 1);
    }
}
