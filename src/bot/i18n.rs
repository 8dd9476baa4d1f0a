//! The bot's words: Project Fluent catalogues for English and French (`locales/*.ftl`,
//! embedded at compile time), and the [`Lang`] a user reads, chosen from Telegram's
//! `lang_code` with English as the fallback.
//!
//! No user-facing text lives in code: every message is a [`Key`], and the tests fail when a key
//! is missing from a catalogue, when a catalogue has a message no key names, or when a message
//! does not parse. Pure: no IO.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// A language the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Fr];

    /// The language for Telegram's `lang_code` (an IETF tag such as `fr`, `fr-CA`): French for
    /// any French tag, English otherwise (and when Telegram sends none).
    pub fn from_code(code: Option<&str>) -> Lang {
        let primary = code
            .unwrap_or("")
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "fr" => Lang::Fr,
            _ => Lang::En,
        }
    }

    /// The language whose [`Lang::code`] is exactly `code` (a stored choice, a button).
    pub fn parse(code: &str) -> Option<Lang> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language's own name, for the buttons of `/language`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Fr => "Français",
        }
    }

    /// The `lang_code` bots.setBotCommands registers this language's commands under.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("locales/en.ftl"),
            Lang::Fr => include_str!("locales/fr.ftl"),
        }
    }
}

macro_rules! keys {
    ($($variant:ident = $id:literal,)*) => {
        /// Every message the bot can say; the only way code names a text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Key { $($variant,)* }

        impl Key {
            pub const ALL: &'static [Key] = &[$(Key::$variant,)*];

            /// The message id in the catalogues.
            pub fn id(self) -> &'static str {
                match self { $(Key::$variant => $id,)* }
            }
        }
    };
}

keys! {
    CmdStart = "cmd-start",
    CmdInventory = "cmd-inventory",
    CmdWithdraw = "cmd-withdraw",
    CmdStats = "cmd-stats",
    CmdHelp = "cmd-help",
    CmdLanguage = "cmd-language",
    LanguageAsk = "language-ask",
    LanguageSet = "language-set",
    LanguageUnsaved = "language-unsaved",
    Start = "start",
    Help = "help",
    HelpAdmin = "help-admin",
    ShortHelp = "short-help",
    SlowDown = "slow-down",
    LinkLinked = "link-linked",
    LinkExpired = "link-expired",
    LinkUsed = "link-used",
    LinkUnknown = "link-unknown",
    LinkUnavailable = "link-unavailable",
    AdminFeeChanged = "admin-fee-changed",
    LinkAsk = "link-ask",
    LinkAskReplace = "link-ask-replace",
    LinkCancelled = "link-cancelled",
    LinkStale = "link-stale",
    BtnLink = "btn-link",
    BtnReplace = "btn-replace",
    GiftUntitled = "gift-untitled",
    ItemLine = "item-line",
    BtnPrev = "btn-prev",
    BtnNext = "btn-next",
    BtnWithdraw = "btn-withdraw",
    InvEmpty = "inv-empty",
    InvHeader = "inv-header",
    WdEmpty = "wd-empty",
    WdHeader = "wd-header",
    ConfirmTitle = "confirm-title",
    PlanFree = "plan-free",
    PlanFee = "plan-fee",
    PlanWait = "plan-wait",
    PlanResend = "plan-resend",
    PlanRefuse = "plan-refuse",
    PlanBusy = "plan-busy",
    PlanGone = "plan-gone",
    BtnConfirm = "btn-confirm",
    BtnCancel = "btn-cancel",
    BtnCancelRequest = "btn-cancel-request",
    WdRequested = "wd-requested",
    WdCancelled = "wd-cancelled",
    WdDismissed = "wd-dismissed",
    WdTooLate = "wd-too-late",
    WdError = "wd-error",
    ToastNotYours = "toast-not-yours",
    ToastStale = "toast-stale",
    ToastDone = "toast-done",
    Stats = "stats",
    StatsUnavailable = "stats-unavailable",
    AdminHeader = "admin-header",
    AdminAccount = "admin-account",
    AdminBalanceUnknown = "admin-balance-unknown",
    AdminQueue = "admin-queue",
    AdminRequest = "admin-request",
    AdminUnattributed = "admin-unattributed",
    AdminUnattributedLine = "admin-unattributed-line",
    BtnApprove = "btn-approve",
    BtnAdminCancel = "btn-admin-cancel",
    BtnAssign = "btn-assign",
    BtnRefresh = "btn-refresh",
    AssignPrompt = "assign-prompt",
    AssignDone = "assign-done",
    AssignBad = "assign-bad",
    AssignUnknownUser = "assign-unknown-user",
    AssignRefused = "assign-refused",
    AdminMoved = "admin-moved",
    AdminRefused = "admin-refused",
    AdminError = "admin-error",
    AdminAccountDesk = "admin-account-desk",
    AdminHolderNone = "admin-holder-none",
    AdminHolderHere = "admin-holder-here",
    NDeposit = "n-deposit",
    NHolding = "n-holding",
    NQueued = "n-queued",
    NSent = "n-sent",
    NWaiting = "n-waiting",
    NFailed = "n-failed",
    NCancelled = "n-cancelled",
    ReasonTooEarly = "reason-too-early",
    ReasonStars = "reason-stars",
    ReasonApproval = "reason-approval",
    ReasonRetry = "reason-retry",
}

/// An argument value: text or a number.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String),
    Num(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Str(s.to_owned())
    }
}
impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Str(s)
    }
}
impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Num(n)
    }
}
impl From<usize> for Arg {
    fn from(n: usize) -> Self {
        Arg::Num(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<u64> for Arg {
    fn from(n: u64) -> Self {
        Arg::Num(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<i32> for Arg {
    fn from(n: i32) -> Self {
        Arg::Num(n.into())
    }
}
impl From<u32> for Arg {
    fn from(n: u32) -> Self {
        Arg::Num(n.into())
    }
}

/// Both catalogues, parsed once.
struct Catalogues {
    en: FluentBundle<FluentResource>,
    fr: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Catalogues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalogues")
    }
}

fn bundle(lang: Lang) -> Result<FluentBundle<FluentResource>, String> {
    let resource = FluentResource::try_new(lang.source().to_owned())
        .map_err(|(_, errors)| format!("{}.ftl does not parse: {errors:?}", lang.code()))?;
    let id: unic_langid::LanguageIdentifier = lang
        .code()
        .parse()
        .map_err(|e| format!("language tag {}: {e}", lang.code()))?;
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around arguments: Telegram shows plain text.
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .map_err(|errors| format!("{}.ftl has duplicate messages: {errors:?}", lang.code()))?;
    Ok(bundle)
}

fn catalogues() -> &'static Catalogues {
    static CATALOGUES: OnceLock<Catalogues> = OnceLock::new();
    CATALOGUES.get_or_init(|| Catalogues {
        // The catalogues are compiled in and a unit test parses both: a broken catalogue never
        // reaches a build that passed its tests.
        en: bundle(Lang::En).expect("en.ftl is checked by the i18n tests"),
        fr: bundle(Lang::Fr).expect("fr.ftl is checked by the i18n tests"),
    })
}

/// The text of `key` in `lang` with `args`. A message missing in `lang` falls back to
/// English, then to its id (the tests make both impossible).
pub fn tr(lang: Lang, key: Key, args: &[(&str, Arg)]) -> String {
    let c = catalogues();
    let bundle = match lang {
        Lang::En => &c.en,
        Lang::Fr => &c.fr,
    };
    format(bundle, key, args)
        .or_else(|| format(&c.en, key, args))
        .unwrap_or_else(|| key.id().to_owned())
}

fn format(bundle: &FluentBundle<FluentResource>, key: Key, args: &[(&str, Arg)]) -> Option<String> {
    let pattern = bundle.get_message(key.id())?.value()?;
    let mut fargs = FluentArgs::new();
    for (name, value) in args {
        match value {
            Arg::Str(s) => fargs.set(*name, FluentValue::from(s.as_str())),
            // As a string: Fluent's number formatting would group digits per locale, and ids
            // (user ids, request ids) must read exactly.
            Arg::Num(n) => fargs.set(*name, FluentValue::from(n.to_string())),
        }
    }
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
    if !errors.is_empty() {
        tracing::warn!(key = key.id(), ?errors, "message formatted with errors");
    }
    Some(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_ids(lang: Lang) -> Vec<String> {
        let resource = FluentResource::try_new(lang.source().to_owned()).expect("parses");
        resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn both_catalogues_parse() {
        for lang in Lang::ALL {
            bundle(lang).unwrap();
        }
    }

    #[test]
    fn every_key_is_in_every_catalogue() {
        for lang in Lang::ALL {
            let ids = message_ids(lang);
            let missing: Vec<&str> = Key::ALL
                .iter()
                .map(|k| k.id())
                .filter(|id| !ids.iter().any(|m| m == id))
                .collect();
            assert!(missing.is_empty(), "{}.ftl lacks {missing:?}", lang.code());
        }
    }

    #[test]
    fn every_catalogue_message_is_a_key() {
        for lang in Lang::ALL {
            let extra: Vec<String> = message_ids(lang)
                .into_iter()
                .filter(|id| !Key::ALL.iter().any(|k| k.id() == id))
                .collect();
            assert!(extra.is_empty(), "{}.ftl has unused {extra:?}", lang.code());
        }
    }

    #[test]
    fn the_catalogues_have_the_same_keys() {
        let mut en = message_ids(Lang::En);
        let mut fr = message_ids(Lang::Fr);
        en.sort();
        fr.sort();
        assert_eq!(en, fr);
    }

    #[test]
    fn every_message_formats_without_errors_given_its_arguments() {
        // Every variable a message uses, with a value of the right kind.
        let args: Vec<(&str, Arg)> = [
            "accounts",
            "id",
            "title",
            "number",
            "stars",
            "state",
            "n",
            "count",
            "page",
            "pages",
            "fee",
            "until",
            "held",
            "deposited",
            "withdrawn",
            "pending",
            "account",
            "items",
            "balance",
            "approval",
            "unknown",
            "owner",
            "key",
            "user",
            "name",
            "total",
            "reason",
            "label",
            "old",
            "holder",
            "queued",
            "waiting",
            "plural",
            "value",
        ]
        .into_iter()
        .map(|name| (name, Arg::from("1")))
        .collect();
        for lang in Lang::ALL {
            let c = bundle(lang).unwrap();
            for key in Key::ALL {
                let pattern = c.get_message(key.id()).unwrap().value().unwrap();
                let mut fargs = FluentArgs::new();
                for (n, v) in &args {
                    if let Arg::Str(s) = v {
                        fargs.set(*n, FluentValue::from(s.as_str()));
                    }
                }
                let mut errors = Vec::new();
                c.format_pattern(pattern, Some(&fargs), &mut errors);
                assert!(
                    errors.is_empty(),
                    "{} {}: {errors:?}",
                    lang.code(),
                    key.id()
                );
            }
        }
    }

    fn check_lang(code: Option<&str>, expected: Lang) {
        assert_eq!(Lang::from_code(code), expected, "{code:?}");
    }

    #[test]
    fn language_from_lang_code() {
        check_lang(Some("fr"), Lang::Fr);
        check_lang(Some("fr-CA"), Lang::Fr);
        check_lang(Some("FR_be"), Lang::Fr);
        check_lang(Some("en"), Lang::En);
        check_lang(Some("en-GB"), Lang::En);
        check_lang(Some("de"), Lang::En);
        check_lang(Some(""), Lang::En);
        check_lang(Some("frx"), Lang::En);
        check_lang(None, Lang::En);
    }

    fn check(lang: Lang, key: Key, args: &[(&str, Arg)], expected: &str) {
        assert_eq!(tr(lang, key, args), expected);
    }

    #[test]
    fn texts_with_arguments() {
        let item = |number: &str, state: &str| {
            vec![
                ("n", Arg::Num(3)),
                ("title", Arg::from("Plush Pepe")),
                ("number", Arg::from(number)),
                ("stars", Arg::Num(1500)),
                ("value", Arg::from("")),
                ("state", Arg::from(state)),
            ]
        };
        check(
            Lang::En,
            Key::ItemLine,
            &item("12", "held"),
            "3. Plush Pepe #12 · 1500 ⭐",
        );
        check(
            Lang::En,
            Key::ItemLine,
            &item("none", "withdrawing"),
            "3. Plush Pepe · 1500 ⭐ (being withdrawn)",
        );
        check(
            Lang::Fr,
            Key::ItemLine,
            &item("12", "withdrawing"),
            "3. Plush Pepe n° 12 · 1500 ⭐ (retrait en cours)",
        );
        check(
            Lang::Fr,
            Key::AdminRequest,
            &[
                ("id", Arg::Num(1234567)),
                ("title", Arg::from("x")),
                ("owner", Arg::Num(7)),
                ("state", Arg::from("waiting")),
            ],
            "n° 1234567 x pour 7 : waiting",
        );
    }
}
