//! What the bot shows: plain values in, text and inline buttons out. Pure: no IO, no clock, no
//! store; every word comes from the catalogues ([`super::i18n`]).
//!
//! This file holds what a player asks to see (start, help, language, inventory pages,
//! withdrawal confirmations, `/stats`); the operator's desk is in `desk.rs`, what players are
//! told without asking in `notice.rs`.

use super::i18n::{Arg, Key, Lang, tr};
use super::intent::Action;
use crate::gift::{CollectibleValue, ItemKey, Price};

mod desk;
mod notice;

pub use desk::{ADMIN_LIST, AccountView, AdminView, RequestView, admin};
pub use notice::{Notification, notification};

/// Items per page of `/inventory` and `/withdraw`.
pub const PAGE_SIZE: usize = 10;

/// A message: its text and its inline keyboard (rows of buttons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub text: String,
    pub buttons: Vec<Vec<Button>>,
}

impl View {
    pub fn text(text: String) -> View {
        View {
            text,
            buttons: Vec::new(),
        }
    }
}

/// An inline button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub text: String,
    pub action: Action,
}

/// One item as the player sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView {
    pub key: ItemKey,
    pub title: String,
    /// Collectible number.
    pub number: Option<i32>,
    pub stars: i64,
    /// A collectible's worth as Telegram gives it (empty for regular gifts).
    pub value: CollectibleValue,
    /// A withdrawal is requested or in progress.
    pub withdrawing: bool,
}

/// What confirming a withdrawal would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// A collectible moves: free or for a fee the desk pays; maybe not before `locked_until`.
    Transfer {
        fee: Option<i64>,
        locked_until: Option<i64>,
    },
    /// A regular gift: the same one is bought again for the player.
    Resend,
    /// A regular gift, and the operator set `withdraw.regular = "refuse"`.
    Refuse,
    /// A withdrawal of it is already open.
    Busy,
    /// Not (or no longer) the presser's held item.
    Gone,
}

fn s(lang: Lang, key: Key) -> String {
    tr(lang, key, &[])
}

fn number_arg(n: Option<i32>) -> Arg {
    n.map_or(Arg::from("none"), |n| Arg::from(n.to_string()))
}

/// The line after a list of credited gifts: what the player holds now.
pub fn holding(lang: Lang, count: u64, total: i64) -> String {
    // Numbers reach Fluent as text (see `i18n::format`), so the plural category is chosen
    // here: French counts 0 and 1 as singular, English only 1.
    let one = match lang {
        Lang::En => count == 1,
        Lang::Fr => count <= 1,
    };
    tr(
        lang,
        Key::NHolding,
        &[
            ("count", count.into()),
            ("total", total.into()),
            ("plural", if one { "one" } else { "other" }.into()),
        ],
    )
}

/// `/language`: a button per language, each in its own name.
pub fn language(lang: Lang) -> View {
    View {
        text: s(lang, Key::LanguageAsk),
        buttons: vec![
            Lang::ALL
                .iter()
                .map(|l| Button {
                    text: l.name().to_owned(),
                    action: Action::SetLanguage(*l),
                })
                .collect(),
        ],
    }
}

/// `/start`: who the bot is, how to deposit, the commands.
pub fn start(lang: Lang, accounts: &str, admin: bool) -> View {
    let intro = tr(lang, Key::Start, &[("accounts", accounts.into())]);
    View::text(format!("{intro}\n\n{}", help(lang, admin).text))
}

/// `/help`.
pub fn help(lang: Lang, admin: bool) -> View {
    let mut text = s(lang, Key::Help);
    if admin {
        text.push('\n');
        text.push_str(&s(lang, Key::HelpAdmin));
    }
    View::text(text)
}

/// `/start <token>`: which web account the token links, with Link / Cancel. `replaces`: the
/// web account the player is linked to now (then the question says it will be replaced and
/// the button is Replace).
pub fn link_ask(lang: Lang, label: &str, replaces: Option<&str>, nonce: u32) -> View {
    let (text, confirm) = match replaces {
        None => (
            tr(lang, Key::LinkAsk, &[("label", label.into())]),
            Button {
                text: s(lang, Key::BtnLink),
                action: Action::LinkConfirm(nonce),
            },
        ),
        Some(old) => (
            tr(
                lang,
                Key::LinkAskReplace,
                &[("label", label.into()), ("old", old.into())],
            ),
            Button {
                text: s(lang, Key::BtnReplace),
                action: Action::LinkReplace(nonce),
            },
        ),
    };
    View {
        text,
        buttons: vec![vec![
            confirm,
            Button {
                text: s(lang, Key::BtnCancel),
                action: Action::LinkCancel(nonce),
            },
        ]],
    }
}

/// A one-line answer.
pub fn say(lang: Lang, key: Key) -> View {
    View::text(s(lang, key))
}

fn item_line(lang: Lang, n: usize, item: &ItemView) -> String {
    tr(
        lang,
        Key::ItemLine,
        &[
            ("n", n.into()),
            ("title", item.title.as_str().into()),
            ("number", number_arg(item.number)),
            ("stars", item.stars.into()),
            ("value", worth(&item.value).into()),
            (
                "state",
                if item.withdrawing {
                    "withdrawing"
                } else {
                    "held"
                }
                .into(),
            ),
        ],
    )
}

/// A collectible's worth as a suffix of its line (` · $12.34 · 1.5 TON`), each figure in the
/// unit Telegram gave: US cents as dollars, a fiat value in its currency, a resale price in
/// Stars or TON. Empty when Telegram gave none.
pub fn worth(value: &CollectibleValue) -> String {
    let mut out = String::new();
    if let Some(cents) = value.usd_cents {
        out.push_str(&format!(" · ${}", decimal(cents, 2)));
    }
    if let Some(m) = &value.fiat
        && !(m.currency == "USD" && value.usd_cents.is_some())
    {
        out.push_str(&format!(
            " · {} {}",
            decimal(m.amount, minor_digits(&m.currency)),
            m.currency
        ));
    }
    match value.paid {
        Some(Price::Stars(stars)) => out.push_str(&format!(" · {stars} ⭐")),
        Some(Price::TonNano(nano)) => out.push_str(&format!(" · {} TON", decimal(nano, 9))),
        None => {}
    }
    out
}

/// Digits after the decimal point of an ISO 4217 currency's smallest unit (ISO 4217's minor
/// unit column: 0 and 3 for the currencies listed, 2 for the rest).
fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `amount` in units of 10^-`digits`, written with its decimals (trailing zeros dropped).
fn decimal(amount: i64, digits: u32) -> String {
    let scale = 10i64.pow(digits);
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let scale = scale.unsigned_abs();
    let (whole, frac) = (abs / scale, abs % scale);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}

/// The page count and the page actually shown (a page past the end shows the last one).
fn paging(len: usize, page: u32) -> (usize, usize) {
    let pages = len.div_ceil(PAGE_SIZE).max(1);
    (pages, (page as usize).min(pages - 1))
}

fn nav_row(lang: Lang, page: usize, pages: usize, to: fn(u32) -> Action) -> Vec<Button> {
    let mut row = Vec::new();
    if page > 0 {
        row.push(Button {
            text: s(lang, Key::BtnPrev),
            action: to((page - 1) as u32),
        });
    }
    if page + 1 < pages {
        row.push(Button {
            text: s(lang, Key::BtnNext),
            action: to((page + 1) as u32),
        });
    }
    row
}

/// A list page with a Withdraw button per withdrawable item (five to a row) and the paging row.
fn list(
    lang: Lang,
    header: String,
    items: &[ItemView],
    page: usize,
    nav: fn(u32) -> Action,
    pages: usize,
) -> View {
    let start = page * PAGE_SIZE;
    let mut text = header;
    let mut withdraw = Vec::new();
    for (i, item) in items.iter().enumerate().skip(start).take(PAGE_SIZE) {
        text.push('\n');
        text.push_str(&item_line(lang, i + 1, item));
        if !item.withdrawing {
            withdraw.push(Button {
                text: tr(lang, Key::BtnWithdraw, &[("n", (i + 1).into())]),
                action: Action::WithdrawAsk(item.key),
            });
        }
    }
    let mut buttons: Vec<Vec<Button>> = withdraw.chunks(5).map(<[Button]>::to_vec).collect();
    let row = nav_row(lang, page, pages, nav);
    if !row.is_empty() {
        buttons.push(row);
    }
    View { text, buttons }
}

/// `/inventory`: `items` newest first; withdrawing items shown as such, without a button.
pub fn inventory(lang: Lang, items: &[ItemView], page: u32, accounts: &str) -> View {
    if items.is_empty() {
        return View::text(tr(lang, Key::InvEmpty, &[("accounts", accounts.into())]));
    }
    let (pages, page) = paging(items.len(), page);
    let stars: i64 = items.iter().map(|i| i.stars).sum();
    let header = tr(
        lang,
        Key::InvHeader,
        &[
            ("count", items.len().into()),
            ("stars", stars.into()),
            ("page", (page + 1).into()),
            ("pages", pages.into()),
        ],
    );
    list(lang, header, items, page, Action::InventoryPage, pages)
}

/// `/withdraw`: the withdrawable items (held, no open request), newest first.
pub fn withdraw_list(lang: Lang, items: &[ItemView], page: u32) -> View {
    if items.is_empty() {
        return say(lang, Key::WdEmpty);
    }
    let (pages, page) = paging(items.len(), page);
    let header = tr(
        lang,
        Key::WdHeader,
        &[("page", (page + 1).into()), ("pages", pages.into())],
    );
    list(lang, header, items, page, Action::WithdrawPage, pages)
}

/// The confirmation of a withdrawal: what would happen, and Confirm / Cancel when it can.
pub fn confirm(lang: Lang, item: &ItemView, plan: Plan) -> View {
    let title = tr(
        lang,
        Key::ConfirmTitle,
        &[
            ("title", item.title.as_str().into()),
            ("number", number_arg(item.number)),
            ("stars", item.stars.into()),
        ],
    );
    let mut lines = vec![title];
    let can = match plan {
        Plan::Transfer { fee, locked_until } => {
            lines.push(match fee {
                None => s(lang, Key::PlanFree),
                Some(fee) => tr(lang, Key::PlanFee, &[("fee", fee.into())]),
            });
            if let Some(until) = locked_until {
                lines.push(tr(
                    lang,
                    Key::PlanWait,
                    &[("until", crate::utc::utc(until).into())],
                ));
            }
            true
        }
        Plan::Resend => {
            lines.push(s(lang, Key::PlanResend));
            true
        }
        Plan::Refuse => {
            lines.push(s(lang, Key::PlanRefuse));
            false
        }
        Plan::Busy => {
            lines.push(s(lang, Key::PlanBusy));
            false
        }
        Plan::Gone => return say(lang, Key::PlanGone),
    };
    let buttons = if can {
        vec![vec![
            Button {
                text: s(lang, Key::BtnConfirm),
                action: Action::WithdrawConfirm(item.key),
            },
            Button {
                text: s(lang, Key::BtnCancel),
                action: Action::Dismiss,
            },
        ]]
    } else {
        Vec::new()
    };
    View {
        text: lines.join("\n"),
        buttons,
    }
}

/// A request was created: its id, and a Cancel button while nothing is being sent.
pub fn requested(lang: Lang, id: i64, item: &ItemView) -> View {
    View {
        text: tr(
            lang,
            Key::WdRequested,
            &[("id", id.into()), ("title", item.title.as_str().into())],
        ),
        buttons: vec![vec![Button {
            text: s(lang, Key::BtnCancelRequest),
            action: Action::WithdrawCancel(id),
        }]],
    }
}

/// `/stats` figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsView {
    pub held: u64,
    pub stars: i64,
    pub deposited: u64,
    pub withdrawn: u64,
    pub pending: u64,
}

pub fn stats(lang: Lang, st: StatsView) -> View {
    View::text(tr(
        lang,
        Key::Stats,
        &[
            ("held", st.held.into()),
            ("stars", st.stars.into()),
            ("deposited", st.deposited.into()),
            ("withdrawn", st.withdrawn.into()),
            ("pending", st.pending.into()),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::withdrawal::WaitReason;

    pub(super) fn item(msg: i32, number: Option<i32>, withdrawing: bool) -> ItemView {
        ItemView {
            key: ItemKey::new(100, msg),
            title: format!("Gift{msg}"),
            number,
            stars: 10 * i64::from(msg),
            value: CollectibleValue::default(),
            withdrawing,
        }
    }

    #[test]
    fn collectible_values_keep_their_units() {
        use crate::gift::Money;
        let check = |value: CollectibleValue, expected: &str| assert_eq!(worth(&value), expected);
        check(CollectibleValue::default(), "");
        check(
            CollectibleValue {
                usd_cents: Some(1234),
                fiat: Some(Money {
                    amount: 1234,
                    currency: "USD".into(),
                }),
                paid: None,
            },
            " · $12.34",
        );
        check(
            CollectibleValue {
                usd_cents: Some(1200),
                fiat: Some(Money {
                    amount: 1100,
                    currency: "EUR".into(),
                }),
                paid: Some(Price::Stars(2500)),
            },
            " · $12 · 11 EUR · 2500 ⭐",
        );
        check(
            CollectibleValue {
                fiat: Some(Money {
                    amount: 1500,
                    currency: "JPY".into(),
                }),
                paid: Some(Price::TonNano(1_500_000_000)),
                ..CollectibleValue::default()
            },
            " · 1500 JPY · 1.5 TON",
        );
        check(
            CollectibleValue {
                paid: Some(Price::TonNano(1)),
                ..CollectibleValue::default()
            },
            " · 0.000000001 TON",
        );
    }

    /// The view as one string: text, then each row of buttons as `[label](data)`.
    pub(super) fn show(v: &View) -> String {
        let mut out = v.text.clone();
        for row in &v.buttons {
            out.push('\n');
            let cells: Vec<String> = row
                .iter()
                .map(|b| format!("[{}]({})", b.text, b.action.encode()))
                .collect();
            out.push_str(&cells.join(" "));
        }
        out
    }

    pub(super) fn check(v: View, expected: &str) {
        assert_eq!(show(&v), expected);
    }

    #[test]
    fn start_and_help() {
        check(
            start(Lang::En, "@desk", false),
            "Hello! I am the gift desk: I keep the Star Gifts you deposit and send them back when you ask.\n\
             To deposit, send a Star Gift to @desk: it is credited to you within seconds and I tell you.\n\n\
             /inventory - your gifts, newest first\n\
             /withdraw - get a gift back\n\
             /stats - what you hold, deposited and withdrew\n\
             /language - the language I speak\n\
             /help - this list",
        );
        assert!(
            help(Lang::Fr, true)
                .text
                .ends_with("/admin - le guichet de l'opérateur")
        );
        assert!(!help(Lang::Fr, false).text.contains("/admin"));
    }

    #[test]
    fn inventory_pages() {
        let items: Vec<ItemView> = (1..=12).rev().map(|m| item(m, None, m == 11)).collect();
        check(
            inventory(Lang::En, &[], 0, "@desk"),
            "You hold no gifts yet. Send a Star Gift to @desk to deposit one.",
        );
        let first = inventory(Lang::En, &items, 0, "@desk");
        assert_eq!(
            first.text.lines().next().unwrap(),
            "Your gifts: 12 worth 780 ⭐ (page 1 of 2)"
        );
        assert_eq!(first.text.lines().nth(1).unwrap(), "1. Gift12 · 120 ⭐");
        assert_eq!(
            first.text.lines().nth(2).unwrap(),
            "2. Gift11 · 110 ⭐ (being withdrawn)"
        );
        assert_eq!(
            first.buttons.len(),
            3,
            "9 withdraw buttons in two rows, then the pager"
        );
        assert_eq!(
            first.buttons[0][0].action,
            Action::WithdrawAsk(ItemKey::new(100, 12))
        );
        assert_eq!(
            first.buttons[0][1].text, "Withdraw 3",
            "item 2 is being withdrawn"
        );
        check(
            View {
                text: String::new(),
                buttons: vec![first.buttons[2].clone()],
            },
            "\n[Next ▶](1:ip:1)",
        );
        check(
            inventory(Lang::Fr, &items, 1, "@desk"),
            "Vos cadeaux : 12 pour 780 ⭐ (page 2 sur 2)\n\
             11. Gift2 · 20 ⭐\n\
             12. Gift1 · 10 ⭐\n\
             [Retirer 11](1:wa:100:2) [Retirer 12](1:wa:100:1)\n\
             [◀ Précédent](1:ip:0)",
        );
        // A page past the end (an old button after items left) shows the last page.
        assert_eq!(
            inventory(Lang::En, &items, 7, "@desk"),
            inventory(Lang::En, &items, 1, "@desk")
        );
    }

    #[test]
    fn confirmations() {
        let it = item(5, Some(77), false);
        check(
            confirm(
                Lang::En,
                &it,
                Plan::Transfer {
                    fee: None,
                    locked_until: None,
                },
            ),
            "Withdraw Gift5 #77 (50 ⭐)?\nIt is transferred to your account for free.\n\
             [✅ Confirm](1:wc:100:5) [Cancel](1:no)",
        );
        check(
            confirm(
                Lang::En,
                &it,
                Plan::Transfer {
                    fee: Some(25),
                    locked_until: Some(1_700_000_000),
                },
            ),
            "Withdraw Gift5 #77 (50 ⭐)?\nTelegram charges 25 ⭐ to transfer it; the desk pays.\n\
             Telegram locks this gift until 2023-11-14 22:13 UTC: it is sent then.\n\
             [✅ Confirm](1:wc:100:5) [Cancel](1:no)",
        );
        check(
            confirm(Lang::Fr, &item(5, None, false), Plan::Refuse),
            "Retirer Gift5 (50 ⭐) ?\nLes cadeaux ordinaires ne peuvent pas être retirés ici, seulement les objets de collection.",
        );
        check(
            confirm(Lang::En, &item(5, None, false), Plan::Resend),
            "Withdraw Gift5 (50 ⭐)?\nA regular gift cannot be moved: the same gift is bought again and sent to you.\n\
             [✅ Confirm](1:wc:100:5) [Cancel](1:no)",
        );
        check(
            confirm(Lang::En, &it, Plan::Busy),
            "Withdraw Gift5 #77 (50 ⭐)?\nThis gift is already being withdrawn.",
        );
        check(
            confirm(Lang::Fr, &it, Plan::Gone),
            "Ce cadeau n'est plus dans votre inventaire.",
        );
        check(
            requested(Lang::En, 42, &it),
            "Withdrawal 42 queued: Gift5. I will tell you when it is sent.\n[Cancel the withdrawal](1:wx:42)",
        );
    }

    #[test]
    fn stats_and_notifications() {
        check(
            stats(
                Lang::En,
                StatsView {
                    held: 3,
                    stars: 300,
                    deposited: 5,
                    withdrawn: 1,
                    pending: 1,
                },
            ),
            "You hold 3 gifts worth 300 ⭐.\nDeposited so far: 5. Withdrawn so far: 1.\nWithdrawals pending: 1.",
        );
        let n = |n: Notification, lang| notification(lang, &n);
        assert_eq!(
            n(
                Notification::Deposit {
                    title: "Cake".into(),
                    stars: 50,
                },
                Lang::En
            ),
            "Received Cake (50 ⭐)."
        );
        assert_eq!(
            holding(Lang::En, 2, 75),
            "You now hold 2 gifts worth 75 ⭐."
        );
        assert_eq!(holding(Lang::En, 1, 15), "You now hold 1 gift worth 15 ⭐.");
        assert_eq!(
            holding(Lang::Fr, 2, 75),
            "Vous détenez maintenant 2 cadeaux pour 75 ⭐."
        );
        check(
            language(Lang::Fr),
            "Dans quelle langue dois-je vous parler ?\n[English](1:lg:en) [Français](1:lg:fr)",
        );
        assert_eq!(
            n(
                Notification::Waiting {
                    title: "Cake".into(),
                    reason: WaitReason::TooEarly,
                    until: Some(0)
                },
                Lang::Fr
            ),
            "Cake attend jusqu'au 1970-01-01 00:00 UTC : Telegram bloque le cadeau jusque-là"
        );
        assert_eq!(
            n(
                Notification::Waiting {
                    title: "Cake".into(),
                    reason: WaitReason::FeeCap,
                    until: None
                },
                Lang::En
            ),
            "Cake waits for an operator: an operator must approve the fee"
        );
        assert_eq!(
            n(
                Notification::Failed {
                    title: "Cake".into(),
                    reason: "STARGIFT_USAGE_LIMITED".into()
                },
                Lang::En
            ),
            "Cake could not be sent (STARGIFT_USAGE_LIMITED); it is in your inventory again."
        );
    }

    #[test]
    fn every_button_fits_telegram() {
        let items: Vec<ItemView> = (1..=30)
            .map(|m| item(i32::MAX - m, Some(m), false))
            .collect();
        for lang in Lang::ALL {
            for v in [
                inventory(lang, &items, 1, "@d"),
                withdraw_list(lang, &items, 2),
            ] {
                for b in v.buttons.iter().flatten() {
                    assert!(b.action.encode().len() <= super::super::intent::MAX_CALLBACK_DATA);
                }
            }
        }
    }
}
