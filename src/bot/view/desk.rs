//! The operator's desk (`/admin`): each deposit account (items, Stars, balance, who serves it,
//! its queue), the requests that need an operator or are stuck, and the unattributed gifts, with
//! the buttons that act on them.

use super::{Button, ItemView, View, s};
use crate::bot::i18n::{Key, Lang, tr};
use crate::bot::intent::Action;
use crate::gift::UserId;
use crate::withdrawal::{RequestState, WaitReason};

/// One deposit account on the operator's desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub account: UserId,
    pub items: u64,
    pub stars: i64,
    /// The Stars balance the worker last read.
    pub balance: Option<i64>,
    /// The instance serving it (its lease's holder), `None` when none does now.
    pub served_by: Option<String>,
    /// Its open requests: queued (requested, claimed, sending), waiting, awaiting approval,
    /// unknown.
    pub queue: [u64; 4],
}

/// One request on the operator's desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub id: i64,
    pub title: String,
    pub owner: UserId,
    pub state: RequestState,
    pub wait: Option<WaitReason>,
    /// The fee or price Telegram last asked (Stars): the Approve button approves this much.
    pub fee: i64,
}

/// `/admin`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminView {
    pub accounts: Vec<AccountView>,
    /// Requests that need an operator or are stuck: approval, waiting on Stars, unknown.
    pub requests: Vec<RequestView>,
    pub unattributed: Vec<ItemView>,
}

/// How many requests and unattributed items the desk lists (buttons fit one message).
pub const ADMIN_LIST: usize = 8;

pub fn admin(lang: Lang, a: &AdminView) -> View {
    let mut lines = vec![s(lang, Key::AdminHeader)];
    for acc in &a.accounts {
        lines.push(tr(
            lang,
            Key::AdminAccount,
            &[
                ("account", acc.account.into()),
                ("items", acc.items.into()),
                ("stars", acc.stars.into()),
                (
                    "balance",
                    acc.balance
                        .map_or_else(|| s(lang, Key::AdminBalanceUnknown), |b| b.to_string())
                        .into(),
                ),
            ],
        ));
        lines.push(tr(
            lang,
            Key::AdminAccountDesk,
            &[
                (
                    "holder",
                    acc.served_by
                        .clone()
                        .unwrap_or_else(|| s(lang, Key::AdminHolderNone))
                        .into(),
                ),
                ("queued", acc.queue[0].into()),
                ("waiting", acc.queue[1].into()),
                ("approval", acc.queue[2].into()),
                ("unknown", acc.queue[3].into()),
            ],
        ));
    }
    let count = |st: RequestState, reason: Option<WaitReason>| {
        a.requests
            .iter()
            .filter(|r| r.state == st && (reason.is_none() || r.wait == reason))
            .count()
    };
    lines.push(tr(
        lang,
        Key::AdminQueue,
        &[
            ("approval", count(RequestState::Approval, None).into()),
            (
                "stars",
                count(RequestState::Waiting, Some(WaitReason::Stars)).into(),
            ),
            ("unknown", count(RequestState::Unknown, None).into()),
        ],
    ));
    let mut buttons = Vec::new();
    for r in a.requests.iter().take(ADMIN_LIST) {
        lines.push(tr(
            lang,
            Key::AdminRequest,
            &[
                ("id", r.id.into()),
                ("title", r.title.as_str().into()),
                ("owner", r.owner.into()),
                ("state", r.state.as_str().into()),
            ],
        ));
        let mut row = Vec::new();
        if r.state == RequestState::Approval {
            row.push(Button {
                text: tr(
                    lang,
                    Key::BtnApprove,
                    &[("id", r.id.into()), ("fee", r.fee.into())],
                ),
                action: Action::AdminApprove {
                    id: r.id,
                    fee: r.fee,
                },
            });
        }
        if matches!(
            r.state,
            RequestState::Requested | RequestState::Approval | RequestState::Waiting
        ) {
            row.push(Button {
                text: tr(lang, Key::BtnAdminCancel, &[("id", r.id.into())]),
                action: Action::AdminCancel(r.id),
            });
        }
        if !row.is_empty() {
            buttons.push(row);
        }
    }
    lines.push(tr(
        lang,
        Key::AdminUnattributed,
        &[("count", a.unattributed.len().into())],
    ));
    let mut assign = Vec::new();
    for (i, item) in a.unattributed.iter().take(ADMIN_LIST).enumerate() {
        lines.push(tr(
            lang,
            Key::AdminUnattributedLine,
            &[
                ("n", (i + 1).into()),
                ("title", item.title.as_str().into()),
                ("stars", item.stars.into()),
                ("key", item.key.to_string().into()),
            ],
        ));
        assign.push(Button {
            text: tr(lang, Key::BtnAssign, &[("n", (i + 1).into())]),
            action: Action::AdminAssign(item.key),
        });
    }
    buttons.extend(assign.chunks(4).map(<[Button]>::to_vec));
    buttons.push(vec![Button {
        text: s(lang, Key::BtnRefresh),
        action: Action::AdminRefresh,
    }]);
    View {
        text: lines.join("\n"),
        buttons,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, item};
    use super::*;

    #[test]
    fn admin_desk() {
        let a = AdminView {
            accounts: vec![AccountView {
                account: 100,
                items: 4,
                stars: 400,
                balance: None,
                served_by: Some("4242:0badcafe".into()),
                queue: [2, 0, 1, 1],
            }],
            requests: vec![
                RequestView {
                    id: 7,
                    title: "Cake".into(),
                    owner: 5,
                    state: RequestState::Approval,
                    wait: Some(WaitReason::FeeCap),
                    fee: 120,
                },
                RequestView {
                    id: 8,
                    title: "Pepe".into(),
                    owner: 6,
                    state: RequestState::Unknown,
                    wait: None,
                    fee: 0,
                },
            ],
            unattributed: vec![item(9, None, false)],
        };
        check(
            admin(Lang::En, &a),
            "Operator's desk\n\
             Account 100: 4 gifts worth 400 ⭐, Stars balance not read yet\n\
             · served by 4242:0badcafe; queue: 2 queued, 0 waiting, 1 awaiting approval, 1 unknown\n\
             Queue: 1 awaiting approval, 0 blocked on Stars, 1 unknown.\n\
             #7 Cake for 5: approval\n\
             #8 Pepe for 6: unknown\n\
             Unattributed gifts: 1\n\
             1. Gift9 · 90 ⭐ (100/9)\n\
             [Approve #7 · 120 ⭐](1:aa:7:120) [Cancel #7](1:ac:7)\n\
             [Assign 1](1:as:100:9)\n\
             [Refresh](1:ar)",
        );
    }
}
