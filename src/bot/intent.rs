//! What a player or an operator asked for: a text message or the data of a pressed inline
//! button, turned into an [`Intent`] or an [`Action`]. Pure: no IO, no state.
//!
//! Button data comes from the client and can be forged: [`Action::decode`] accepts only the
//! exact versioned encoding [`Action::encode`] writes (at most 64 bytes, Telegram's limit), and
//! a parsed action is a request, never a permission: the bot re-checks every press against who
//! owns what.

use super::i18n::Lang;
use crate::gift::ItemKey;

/// Telegram's limit on callback data.
pub const MAX_CALLBACK_DATA: usize = 64;

/// The longest deep-link start parameter Telegram accepts (`t.me/<bot>?start=<param>`:
/// `A-Z`, `a-z`, `0-9`, `_` and `-`, up to 64 characters).
pub const MAX_START_PARAM: usize = 64;

/// A text message's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// `/start` without a parameter.
    Start,
    /// `/start <token>` from a deep link.
    Link(String),
    /// `/start` with a parameter no link token can be (wrong characters or length).
    BadLink,
    Help,
    Inventory,
    Withdraw,
    Stats,
    /// `/language`: choose the language the bot speaks.
    Language,
    Admin,
    /// Anything else that starts with `/`.
    UnknownCommand,
    /// Text that is not a command (an operator's answer to an Assign prompt, or chatter).
    Text(String),
}

/// Reads a text message. `bot_username` (without `@`) lets `/cmd@this_bot` through and turns
/// `/cmd@other_bot` into an unknown command.
pub fn parse_text(text: &str, bot_username: &str) -> Intent {
    let text = text.trim();
    let Some(rest) = text.strip_prefix('/') else {
        return Intent::Text(text.to_owned());
    };
    let (head, arg) = match rest.split_once(char::is_whitespace) {
        Some((h, a)) => (h, a.trim()),
        None => (rest, ""),
    };
    let command = match head.split_once('@') {
        Some((c, to)) if to.eq_ignore_ascii_case(bot_username) => c,
        Some(_) => return Intent::UnknownCommand,
        None => head,
    };
    match command.to_ascii_lowercase().as_str() {
        "start" if arg.is_empty() => Intent::Start,
        "start" if is_start_param(arg) => Intent::Link(arg.to_owned()),
        "start" => Intent::BadLink,
        "help" => Intent::Help,
        "inventory" => Intent::Inventory,
        "withdraw" => Intent::Withdraw,
        "stats" => Intent::Stats,
        "language" => Intent::Language,
        "admin" => Intent::Admin,
        _ => Intent::UnknownCommand,
    }
}

fn is_start_param(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_START_PARAM
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What an inline button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Show page `n` (0-based) of `/inventory`, editing the message.
    InventoryPage(u32),
    /// Show page `n` of `/withdraw`.
    WithdrawPage(u32),
    /// Ask to withdraw this item: show what would happen, with Confirm / Cancel.
    WithdrawAsk(ItemKey),
    /// Confirmed: create the request.
    WithdrawConfirm(ItemKey),
    /// Cancel this withdrawal request (the presser's own, not yet sending).
    WithdrawCancel(i64),
    /// Leave the confirmation without doing anything.
    Dismiss,
    /// Operator: approve request `id` at the fee the desk showed (Stars): refused when the
    /// request's fee is another by the time of the press.
    AdminApprove { id: i64, fee: i64 },
    /// Operator: cancel request `id`.
    AdminCancel(i64),
    /// Operator: credit this unattributed item (asks for the user next).
    AdminAssign(ItemKey),
    /// Operator: redraw the desk.
    AdminRefresh,
    /// Link the web account `/start <token>` named (the presser's own pending link, `nonce`
    /// naming which prompt).
    LinkConfirm(u32),
    /// Link it although the presser is linked to another web account (replacing that link).
    LinkReplace(u32),
    /// Do not link.
    LinkCancel(u32),
    /// Speak this language to the presser from now on.
    SetLanguage(Lang),
}

/// Why button data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("callback data longer than 64 bytes")]
    TooLong,
    #[error("callback data is not UTF-8")]
    NotText,
    #[error("callback data of an unknown version")]
    Version,
    #[error("callback data with an unknown action")]
    UnknownAction,
    #[error("callback data with missing, extra or malformed fields")]
    Fields,
}

/// The encoding version; a change of format gets a new one, and old buttons are refused as out
/// of date instead of being misread.
const VERSION: &str = "1";
/// The largest page number accepted (a 250-item inventory has 25 pages).
const MAX_PAGE: u32 = 100_000;

impl Action {
    /// `1:<op>[:<field>...]`, ASCII, at most 45 bytes for the largest ids.
    pub fn encode(&self) -> String {
        match self {
            Action::InventoryPage(n) => format!("{VERSION}:ip:{n}"),
            Action::WithdrawPage(n) => format!("{VERSION}:wp:{n}"),
            Action::WithdrawAsk(k) => format!("{VERSION}:wa:{}:{}", k.account_id, k.msg_id),
            Action::WithdrawConfirm(k) => format!("{VERSION}:wc:{}:{}", k.account_id, k.msg_id),
            Action::WithdrawCancel(id) => format!("{VERSION}:wx:{id}"),
            Action::Dismiss => format!("{VERSION}:no"),
            Action::AdminApprove { id, fee } => format!("{VERSION}:aa:{id}:{fee}"),
            Action::AdminCancel(id) => format!("{VERSION}:ac:{id}"),
            Action::AdminAssign(k) => format!("{VERSION}:as:{}:{}", k.account_id, k.msg_id),
            Action::AdminRefresh => format!("{VERSION}:ar"),
            Action::LinkConfirm(n) => format!("{VERSION}:lc:{n}"),
            Action::LinkReplace(n) => format!("{VERSION}:lr:{n}"),
            Action::LinkCancel(n) => format!("{VERSION}:lx:{n}"),
            Action::SetLanguage(l) => format!("{VERSION}:lg:{}", l.code()),
        }
    }

    /// Parses what [`Action::encode`] wrote, and nothing else.
    pub fn decode(data: &[u8]) -> Result<Action, DataError> {
        if data.len() > MAX_CALLBACK_DATA {
            return Err(DataError::TooLong);
        }
        let text = std::str::from_utf8(data).map_err(|_| DataError::NotText)?;
        let mut parts = text.split(':');
        if parts.next() != Some(VERSION) {
            return Err(DataError::Version);
        }
        let op = parts.next().ok_or(DataError::UnknownAction)?;
        let fields: Vec<&str> = parts.collect();
        let action = match (op, fields.as_slice()) {
            ("ip", [n]) => Action::InventoryPage(page(n)?),
            ("wp", [n]) => Action::WithdrawPage(page(n)?),
            ("wa", [a, m]) => Action::WithdrawAsk(key(a, m)?),
            ("wc", [a, m]) => Action::WithdrawConfirm(key(a, m)?),
            ("wx", [id]) => Action::WithdrawCancel(request_id(id)?),
            ("no", []) => Action::Dismiss,
            ("aa", [id, fee]) => Action::AdminApprove {
                id: request_id(id)?,
                fee: stars(fee)?,
            },
            ("ac", [id]) => Action::AdminCancel(request_id(id)?),
            ("as", [a, m]) => Action::AdminAssign(key(a, m)?),
            ("ar", []) => Action::AdminRefresh,
            ("lc", [n]) => Action::LinkConfirm(nonce(n)?),
            ("lr", [n]) => Action::LinkReplace(nonce(n)?),
            ("lx", [n]) => Action::LinkCancel(nonce(n)?),
            ("lg", [code]) => Action::SetLanguage(Lang::parse(code).ok_or(DataError::Fields)?),
            (
                "ip" | "wp" | "wa" | "wc" | "wx" | "no" | "aa" | "ac" | "as" | "ar" | "lc" | "lr"
                | "lx" | "lg",
                _,
            ) => {
                return Err(DataError::Fields);
            }
            _ => return Err(DataError::UnknownAction),
        };
        // One spelling per action: "+1", "01" and the like are refused, so forged variants of a
        // button never parse.
        if action.encode() != text {
            return Err(DataError::Fields);
        }
        Ok(action)
    }

    /// Whether only an operator may press it.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Action::AdminApprove { .. }
                | Action::AdminCancel(_)
                | Action::AdminAssign(_)
                | Action::AdminRefresh
        )
    }
}

fn page(s: &str) -> Result<u32, DataError> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n <= MAX_PAGE)
        .ok_or(DataError::Fields)
}

fn stars(s: &str) -> Result<i64, DataError> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or(DataError::Fields)
}

fn nonce(s: &str) -> Result<u32, DataError> {
    s.parse::<u32>().map_err(|_| DataError::Fields)
}

fn request_id(s: &str) -> Result<i64, DataError> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(DataError::Fields)
}

fn key(account: &str, msg: &str) -> Result<ItemKey, DataError> {
    let account_id = account.parse::<i64>().map_err(|_| DataError::Fields)?;
    let msg_id = msg.parse::<i32>().map_err(|_| DataError::Fields)?;
    Ok(ItemKey::new(account_id, msg_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Intent) {
        assert_eq!(parse_text(text, "GiftDeskBot"), expected, "{text:?}");
    }

    #[test]
    fn commands() {
        check("/start", Intent::Start);
        check("  /start  ", Intent::Start);
        check("/START", Intent::Start);
        check("/start@GiftDeskBot", Intent::Start);
        check("/start@giftdeskbot", Intent::Start);
        check("/start abc_DEF-123", Intent::Link("abc_DEF-123".into()));
        check("/start@GiftDeskBot tok", Intent::Link("tok".into()));
        check("/start a b", Intent::BadLink);
        check("/start é", Intent::BadLink);
        check(
            &format!("/start {}", "a".repeat(64)),
            Intent::Link("a".repeat(64)),
        );
        check(&format!("/start {}", "a".repeat(65)), Intent::BadLink);
        check("/help", Intent::Help);
        check("/inventory", Intent::Inventory);
        check("/inventory extra words", Intent::Inventory);
        check("/withdraw", Intent::Withdraw);
        check("/stats", Intent::Stats);
        check("/admin", Intent::Admin);
        check("/inventory@OtherBot", Intent::UnknownCommand);
        check("/nope", Intent::UnknownCommand);
        check("/", Intent::UnknownCommand);
        check("hello", Intent::Text("hello".into()));
        check(" @player ", Intent::Text("@player".into()));
        check("", Intent::Text(String::new()));
    }

    fn check_data(data: &[u8], expected: Result<Action, DataError>) {
        assert_eq!(
            Action::decode(data),
            expected,
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }

    #[test]
    fn callback_data() {
        let k = ItemKey::new(777, 42);
        check_data(b"1:ip:0", Ok(Action::InventoryPage(0)));
        check_data(b"1:ip:24", Ok(Action::InventoryPage(24)));
        check_data(b"1:wp:3", Ok(Action::WithdrawPage(3)));
        check_data(b"1:wa:777:42", Ok(Action::WithdrawAsk(k)));
        check_data(b"1:wc:777:42", Ok(Action::WithdrawConfirm(k)));
        check_data(b"1:wx:9", Ok(Action::WithdrawCancel(9)));
        check_data(b"1:no", Ok(Action::Dismiss));
        check_data(b"1:aa:5:120", Ok(Action::AdminApprove { id: 5, fee: 120 }));
        check_data(b"1:aa:5", Err(DataError::Fields));
        check_data(b"1:aa:5:-1", Err(DataError::Fields));
        check_data(b"1:lc:7", Ok(Action::LinkConfirm(7)));
        check_data(b"1:lr:7", Ok(Action::LinkReplace(7)));
        check_data(b"1:lx:4294967295", Ok(Action::LinkCancel(u32::MAX)));
        check_data(b"1:lc:4294967296", Err(DataError::Fields));
        check_data(b"1:lc", Err(DataError::Fields));
        check_data(b"1:ac:5", Ok(Action::AdminCancel(5)));
        check_data(b"1:as:777:42", Ok(Action::AdminAssign(k)));
        check_data(b"1:ar", Ok(Action::AdminRefresh));
        check_data(b"1:wa:-5:-7", Ok(Action::WithdrawAsk(ItemKey::new(-5, -7))));
        check_data(b"2:ip:0", Err(DataError::Version));
        check_data(b"", Err(DataError::Version));
        check_data(b"1", Err(DataError::UnknownAction));
        check_data(b"1:zz", Err(DataError::UnknownAction));
        check_data(b"1:ip", Err(DataError::Fields));
        check_data(b"1:ip:1:2", Err(DataError::Fields));
        check_data(b"1:ip:-1", Err(DataError::Fields));
        check_data(b"1:ip:01", Err(DataError::Fields));
        check_data(b"1:ip:+1", Err(DataError::Fields));
        check_data(b"1:ip:100001", Err(DataError::Fields));
        check_data(b"1:wx:0", Err(DataError::Fields));
        check_data(b"1:wx:-3", Err(DataError::Fields));
        check_data(b"1:wa:777:2147483648", Err(DataError::Fields));
        check_data(b"1:wa:777:x", Err(DataError::Fields));
        check_data(b"1:no:", Err(DataError::Fields));
        check_data(&[0xff, 0xfe], Err(DataError::NotText));
        check_data(&[b'1'; 65], Err(DataError::TooLong));
    }

    #[test]
    fn every_action_round_trips_within_64_bytes() {
        let big = ItemKey::new(i64::MIN, i32::MIN);
        for a in [
            Action::InventoryPage(MAX_PAGE),
            Action::WithdrawPage(0),
            Action::WithdrawAsk(big),
            Action::WithdrawConfirm(big),
            Action::WithdrawCancel(i64::MAX),
            Action::Dismiss,
            Action::AdminApprove {
                id: i64::MAX,
                fee: i64::MAX,
            },
            Action::LinkConfirm(u32::MAX),
            Action::LinkReplace(0),
            Action::LinkCancel(1),
            Action::AdminCancel(1),
            Action::AdminAssign(big),
            Action::AdminRefresh,
        ] {
            let data = a.encode();
            assert!(data.len() <= MAX_CALLBACK_DATA, "{data}");
            assert_eq!(Action::decode(data.as_bytes()), Ok(a));
        }
    }

    proptest::proptest! {
        #[test]
        fn random_text_never_panics(text in ".{0,300}") {
            let _ = parse_text(&text, "GiftDeskBot");
        }

        #[test]
        fn random_data_never_panics_and_only_canonical_data_parses(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..100)
        ) {
            if let Ok(a) = Action::decode(&data) {
                let encoded = a.encode();
                proptest::prop_assert_eq!(encoded.as_bytes(), &data[..]);
            }
        }

        #[test]
        fn random_data_shaped_like_ours_never_panics(
            data in "[0-9]:(ip|wp|wa|wc|wx|no|aa|ac|as|ar|lc|lr|lx|zz)(:-?[0-9+]{0,22}){0,3}"
        ) {
            if let Ok(a) = Action::decode(data.as_bytes()) {
                proptest::prop_assert_eq!(a.encode(), data);
            }
        }
    }
}
