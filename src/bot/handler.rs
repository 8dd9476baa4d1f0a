//! Answers one message or one button press. Reads the live inventory for everything it shows;
//! writes (withdrawal requests, cancellations, link tokens, assignments) go through the store,
//! which re-checks ownership and state in its own transaction.
//!
//! Never trusts a button: before acting, every press checks again that the item exists, belongs
//! to the presser and is in a state that allows the action, and operator buttons check that the
//! presser is an operator. Every press is answered.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::i18n::{Arg, Key, Lang, tr};
use super::intent::{Action, Intent, parse_text};
use super::view::{self, ItemView, Plan, View};
use super::{Bot, LINK_CONFIRM_TTL, PendingLink, STORE_TIMEOUT};
use crate::config::RegularPolicy;
use crate::gift::{Item, ItemKey, Owner, Status, UserId};
use crate::health::AccountLabel;
use crate::secret::Secret;
use crate::store::{
    Canceller, LinkOutcome, RequestState, StoreError, WebUserId, WithdrawalFilter, WithdrawalMove,
};
use crate::telegram::bot::BotEvent;

/// Handles one event that passed the rate limit.
pub async fn handle(bot: &Bot, event: BotEvent, lang: Lang) {
    match event {
        BotEvent::Message { from, text, .. } => {
            let reply = message(bot, from, &text, lang).await;
            bot.stats.replies.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = bot.send(from, &reply).await {
                tracing::warn!(user = from, error = %e, "bot reply not sent");
            }
            if starts_the_bot(bot, &text) {
                super::notify::player_started(bot, from).await;
            }
        }
        BotEvent::Callback {
            query_id,
            from,
            msg_id,
            data,
            ..
        } => {
            let (edit, toast) = press(bot, from, &data, lang).await;
            // The answer goes at once, beside the edit: it is not a chat message (no chat
            // pace), and the player's spinner stops without waiting for the edit's round trip.
            // Both are always attempted.
            let edit = async {
                if let Some(view) = edit
                    && let Err(e) = bot.edit(from, msg_id, &view).await
                {
                    tracing::warn!(user = from, msg_id, error = %e, "bot message not edited");
                }
            };
            tokio::join!(bot.answer(query_id, toast), edit);
        }
    }
}

/// Whether `text` is the player starting the bot (`/start`, with a link token or not): from
/// then on Telegram lets the bot write to them.
fn starts_the_bot(bot: &Bot, text: &str) -> bool {
    matches!(
        parse_text(text, bot.api.username()),
        Intent::Start | Intent::Link(_) | Intent::BadLink
    )
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The reply to a text message.
pub async fn message(bot: &Bot, from: UserId, text: &str, lang: Lang) -> View {
    let admin = bot.is_admin(from);
    let intent = parse_text(text, bot.api.username());
    if admin
        && let Intent::Text(answer) = &intent
        && let Some((_, key)) = bot.assigning.remove(&from)
    {
        return assign(bot, key, answer, lang).await;
    }
    match intent {
        Intent::Start => view::start(lang, &bot.accounts_text(), admin),
        Intent::Link(token) => link(bot, from, &token, lang).await,
        Intent::BadLink => view::say(lang, Key::LinkUnknown),
        Intent::Help => view::help(lang, admin),
        Intent::Inventory => view::inventory(
            lang,
            &items(bot, from, false).await,
            0,
            &bot.accounts_text(),
        ),
        Intent::Withdraw => view::withdraw_list(lang, &items(bot, from, true).await, 0),
        Intent::Stats => stats(bot, from, lang).await,
        Intent::Language => view::language(lang),
        Intent::Admin if admin => admin_view(bot, lang).await,
        Intent::Admin | Intent::UnknownCommand | Intent::Text(_) => view::say(lang, Key::ShortHelp),
    }
}

/// `/start <token>`: only asks. Nothing is written until the same player presses Link (and,
/// to replace their link to another web account, Replace) within [`LINK_CONFIRM_TTL`].
async fn link(bot: &Bot, from: UserId, token: &str, lang: Lang) -> View {
    let outcome = tokio::time::timeout(STORE_TIMEOUT, bot.store.peek_link_token(token, from)).await;
    match outcome {
        Ok(Ok(LinkOutcome::Ask {
            web_user,
            label,
            replaces,
        })) => {
            let nonce = rand::random::<u32>();
            // Questions nobody answered in time are forgotten (the map stays small).
            bot.linking
                .retain(|_, p| p.asked_at.elapsed() <= LINK_CONFIRM_TTL);
            bot.linking.insert(
                from,
                PendingLink {
                    token: Secret::new(token.to_owned()),
                    nonce,
                    asked_at: Instant::now(),
                },
            );
            tracing::info!(user = from, %web_user, replaces = replaces.is_some(), "link asked");
            let old = replaces.map(|r| shown_label(&r.label, r.web_user));
            view::link_ask(lang, &shown_label(&label, web_user), old.as_deref(), nonce)
        }
        Ok(Ok(other)) => link_answer(lang, other),
        Ok(Err(e)) => {
            tracing::warn!(user = from, error = %e, "link token not read");
            view::say(lang, Key::LinkUnavailable)
        }
        Err(_) => view::say(lang, Key::LinkUnavailable),
    }
}

/// The presser's Link, Replace or Cancel: only for their own pending link, the prompt the button
/// belongs to, within [`LINK_CONFIRM_TTL`].
async fn link_press(
    bot: &Bot,
    from: UserId,
    nonce: u32,
    choice: Option<bool>,
    lang: Lang,
) -> (Option<View>, Option<String>) {
    let pending = bot
        .linking
        .remove_if(&from, |_, p| p.nonce == nonce)
        .map(|(_, p)| p);
    let Some(pending) = pending else {
        tracing::warn!(
            user = from,
            "link button without a pending link of the presser"
        );
        return (None, Some(tr(lang, Key::LinkStale, &[])));
    };
    if pending.asked_at.elapsed() > LINK_CONFIRM_TTL {
        return (Some(view::say(lang, Key::LinkStale)), None);
    }
    let Some(replace) = choice else {
        tracing::info!(user = from, "link cancelled by the player");
        return (Some(view::say(lang, Key::LinkCancelled)), None);
    };
    let token = pending.token.expose();
    match tokio::time::timeout(
        STORE_TIMEOUT,
        bot.store.consume_link_token(token, from, replace),
    )
    .await
    {
        Ok(Ok(LinkOutcome::NeedsReplace {
            web_user,
            label,
            replaces,
        })) => {
            // Linked meanwhile to another web account: ask again, about the replacement.
            let nonce = rand::random::<u32>();
            bot.linking.insert(
                from,
                PendingLink {
                    token: pending.token,
                    nonce,
                    asked_at: Instant::now(),
                },
            );
            let old = shown_label(&replaces.label, replaces.web_user);
            (
                Some(view::link_ask(
                    lang,
                    &shown_label(&label, web_user),
                    Some(&old),
                    nonce,
                )),
                None,
            )
        }
        Ok(Ok(outcome)) => {
            if let LinkOutcome::Linked { web_user, .. } = &outcome {
                tracing::info!(user = from, %web_user, replace, "linked by the player's confirmation");
            }
            (Some(link_answer(lang, outcome)), None)
        }
        Ok(Err(e)) => {
            tracing::warn!(user = from, error = %e, "link token not spent");
            (Some(view::say(lang, Key::LinkUnavailable)), None)
        }
        Err(_) => (Some(view::say(lang, Key::LinkUnavailable)), None),
    }
}

/// What the player reads for a link token that is not (or no longer) a question.
fn link_answer(lang: Lang, outcome: LinkOutcome) -> View {
    match outcome {
        LinkOutcome::Linked { web_user, label } => View::text(tr(
            lang,
            Key::LinkLinked,
            &[("label", shown_label(&label, web_user).into())],
        )),
        LinkOutcome::Expired => view::say(lang, Key::LinkExpired),
        LinkOutcome::Used => view::say(lang, Key::LinkUsed),
        LinkOutcome::Unknown => view::say(lang, Key::LinkUnknown),
        LinkOutcome::Ask { .. } | LinkOutcome::NeedsReplace { .. } => {
            view::say(lang, Key::LinkUnavailable)
        }
    }
}

/// A web account as the player is shown it: its label, or its id when it has none (tokens
/// minted before labels existed).
fn shown_label(label: &str, web_user: WebUserId) -> String {
    if label.is_empty() {
        web_user.to_string()
    } else {
        label.to_owned()
    }
}

/// How an item is named: its catalogue title, a collectible's slug without its number, or
/// `"Gift <id>"`.
pub fn title(bot: &Bot, item: &Item, lang: Lang) -> String {
    if let Some(t) = bot.titles.get(item.gift_id) {
        return t;
    }
    if let Some(u) = &item.unique {
        let base = u.slug.rsplit_once('-').map_or(u.slug.as_str(), |(b, _)| b);
        if !base.is_empty() {
            return base.to_owned();
        }
    }
    tr(lang, Key::GiftUntitled, &[("id", Arg::Num(item.gift_id))])
}

fn item_view(bot: &Bot, item: &Item, lang: Lang) -> ItemView {
    ItemView {
        key: item.key,
        title: title(bot, item, lang),
        number: item.unique.as_ref().map(|u| u.number),
        stars: item.stars,
        value: item
            .unique
            .as_ref()
            .map(|u| u.value.clone())
            .unwrap_or_default(),
        withdrawing: item.status != Status::Held,
    }
}

/// The user's items from the live inventory, newest first; only withdrawable ones when asked.
pub async fn items(bot: &Bot, user: UserId, withdrawable: bool) -> Vec<ItemView> {
    let lang = bot.lang(user);
    let mut list = player_items(bot, user).await;
    if withdrawable {
        list.retain(|i| i.status == Status::Held);
    }
    list.sort_by(|a, b| {
        (b.received_at, b.key.msg_id, b.key.account_id).cmp(&(
            a.received_at,
            a.key.msg_id,
            a.key.account_id,
        ))
    });
    list.iter().map(|i| item_view(bot, i, lang)).collect()
}

async fn stats(bot: &Bot, from: UserId, lang: Lang) -> View {
    let live = bot.inventory.owner_stats(Owner::User(from));
    match tokio::time::timeout(STORE_TIMEOUT, bot.store.owner_stats(from)).await {
        Ok(Ok(s)) => view::stats(
            lang,
            view::StatsView {
                held: live.items as u64,
                stars: live.stars,
                deposited: s.deposited,
                withdrawn: s.withdrawn,
                pending: s.withdraw_pending,
            },
        ),
        Ok(Err(e)) => {
            tracing::warn!(user = from, error = %e, "stats not read");
            view::say(lang, Key::StatsUnavailable)
        }
        Err(_) => view::say(lang, Key::StatsUnavailable),
    }
}

/// What a press does: the new content of the pressed message (if it changes) and the toast.
pub async fn press(
    bot: &Bot,
    from: UserId,
    data: &[u8],
    lang: Lang,
) -> (Option<View>, Option<String>) {
    let toast = |k: Key| Some(tr(lang, k, &[]));
    let action = match Action::decode(data) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(user = from, error = %e, "button data refused");
            return (None, toast(Key::ToastStale));
        }
    };
    if action.is_admin() && !bot.is_admin(from) {
        tracing::warn!(
            user = from,
            ?action,
            "operator button pressed by a non-operator"
        );
        return (None, toast(Key::ToastNotYours));
    }
    match action {
        Action::InventoryPage(p) => (
            Some(view::inventory(
                lang,
                &items(bot, from, false).await,
                p,
                &bot.accounts_text(),
            )),
            None,
        ),
        Action::WithdrawPage(p) => (
            Some(view::withdraw_list(lang, &items(bot, from, true).await, p)),
            None,
        ),
        Action::WithdrawAsk(key) => match own_item(bot, from, key).await {
            Some(item) => {
                let v = item_view(bot, &item, lang);
                (Some(view::confirm(lang, &v, plan(bot, &item))), None)
            }
            None => (None, toast(Key::ToastNotYours)),
        },
        Action::WithdrawConfirm(key) => confirm(bot, from, key, lang).await,
        Action::WithdrawCancel(id) => cancel(bot, from, id, lang).await,
        Action::Dismiss => (Some(view::say(lang, Key::WdDismissed)), None),
        Action::AdminApprove { id, .. } | Action::AdminCancel(id) => {
            let toast = admin_move(bot, action, id, lang).await;
            (Some(admin_view(bot, lang).await), Some(toast))
        }
        Action::AdminAssign(key) => match bot.inventory.get(key) {
            Some(item) if item.owner == Owner::Unattributed && item.status.is_held() => {
                bot.assigning.insert(from, key);
                let prompt = tr(
                    lang,
                    Key::AssignPrompt,
                    &[
                        ("title", title(bot, &item, lang).into()),
                        ("key", key.to_string().into()),
                    ],
                );
                (None, Some(prompt))
            }
            _ => (
                None,
                Some(tr(
                    lang,
                    Key::AssignRefused,
                    &[("key", key.to_string().into())],
                )),
            ),
        },
        Action::AdminRefresh => (Some(admin_view(bot, lang).await), None),
        Action::LinkConfirm(n) => link_press(bot, from, n, Some(false), lang).await,
        Action::LinkReplace(n) => link_press(bot, from, n, Some(true), lang).await,
        Action::LinkCancel(n) => link_press(bot, from, n, None, lang).await,
        Action::SetLanguage(chosen) => {
            let key = if bot.choose_lang(from, chosen).await {
                Key::LanguageSet
            } else {
                Key::LanguageUnsaved
            };
            (Some(view::say(chosen, key)), None)
        }
    }
}

/// The item if it is credited to `user` and still in the account: from the live inventory
/// when this instance serves the item's account, else from the store (another instance serves
/// it; see [`player_items`]).
async fn own_item(bot: &Bot, user: UserId, key: ItemKey) -> Option<Item> {
    let mine = |i: &Item| i.owner == Owner::User(user) && i.status.is_held();
    if !bot.served_elsewhere(key.account_id) {
        return bot.inventory.get(key).filter(mine);
    }
    stored_items(bot, user)
        .await
        .into_iter()
        .find(|i| i.key == key && mine(i))
}

/// The player's items in the deposit accounts: the live inventory's for the accounts this
/// instance serves, the store's for the accounts other instances serve (leases on, accounts
/// spread over instances: the live inventory holds only this instance's accounts).
async fn player_items(bot: &Bot, user: UserId) -> Vec<Item> {
    let mut list: Vec<Item> = bot
        .inventory
        .owner_items(Owner::User(user))
        .into_iter()
        .filter(|i| !bot.served_elsewhere(i.key.account_id))
        .collect();
    if bot.epochs.is_leased() {
        list.extend(
            stored_items(bot, user)
                .await
                .into_iter()
                .filter(|i| bot.served_elsewhere(i.key.account_id) && i.status.is_held()),
        );
    }
    list
}

/// The player's items as the store holds them; empty (logged) when the store does not answer in
/// time, so the answer shows what this instance knows.
async fn stored_items(bot: &Bot, user: UserId) -> Vec<Item> {
    match tokio::time::timeout(STORE_TIMEOUT, bot.store.list_owner(Owner::User(user))).await {
        Ok(Ok(items)) => items,
        Ok(Err(e)) => {
            tracing::warn!(user, error = %e, "items of accounts served elsewhere not read");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(user, "items of accounts served elsewhere not read in time");
            Vec::new()
        }
    }
}

fn plan(bot: &Bot, item: &Item) -> Plan {
    if item.status != Status::Held {
        return Plan::Busy;
    }
    if item.unique.is_some() {
        Plan::Transfer {
            fee: item.transfer_stars.filter(|f| *f > 0),
            locked_until: item.can_transfer_at.filter(|t| *t > now_s()),
        }
    } else {
        match bot.regular {
            RegularPolicy::Resend => Plan::Resend,
            RegularPolicy::Refuse => Plan::Refuse,
        }
    }
}

async fn confirm(
    bot: &Bot,
    from: UserId,
    key: ItemKey,
    lang: Lang,
) -> (Option<View>, Option<String>) {
    let Some(item) = own_item(bot, from, key).await else {
        return (None, Some(tr(lang, Key::ToastNotYours, &[])));
    };
    let v = item_view(bot, &item, lang);
    match plan(bot, &item) {
        p @ (Plan::Refuse | Plan::Busy | Plan::Gone) => {
            return (Some(view::confirm(lang, &v, p)), None);
        }
        Plan::Transfer { .. } | Plan::Resend => {}
    }
    // The store checks again, in its transaction, that the item is held and the presser's.
    match tokio::time::timeout(STORE_TIMEOUT, bot.store.create_withdrawal(from, key)).await {
        Ok(Ok(id)) => {
            if !bot.served_elsewhere(key.account_id)
                && let Err(e) = bot.inventory.apply(key, Status::WithdrawRequested, now_s())
            {
                tracing::debug!(%key, error = %e, "live inventory already follows the request");
            }
            bot.withdrawals_wake.notify_one();
            tracing::info!(user = from, %key, id, "withdrawal requested through the bot");
            (
                Some(view::requested(lang, id, &v)),
                Some(tr(lang, Key::ToastDone, &[])),
            )
        }
        Ok(Err(StoreError::NotOwner { .. } | StoreError::ItemNotFound(_))) => {
            (Some(view::confirm(lang, &v, Plan::Gone)), None)
        }
        Ok(Err(StoreError::NotHeld { .. })) => (Some(view::confirm(lang, &v, Plan::Busy)), None),
        Ok(Err(e)) => {
            tracing::warn!(user = from, %key, error = %e, "withdrawal not requested");
            (None, Some(tr(lang, Key::WdError, &[])))
        }
        Err(_) => (None, Some(tr(lang, Key::WdError, &[]))),
    }
}

async fn cancel(bot: &Bot, from: UserId, id: i64, lang: Lang) -> (Option<View>, Option<String>) {
    let w = match tokio::time::timeout(STORE_TIMEOUT, bot.store.withdrawal(id)).await {
        Ok(Ok(Some(w))) => w,
        Ok(Ok(None)) => return (None, Some(tr(lang, Key::ToastNotYours, &[]))),
        _ => return (None, Some(tr(lang, Key::WdError, &[]))),
    };
    if w.owner != from {
        tracing::warn!(user = from, id, "cancel pressed for someone else's request");
        return (None, Some(tr(lang, Key::ToastNotYours, &[])));
    }
    let mv = WithdrawalMove::cancel(&w, Canceller::Player(from));
    match tokio::time::timeout(STORE_TIMEOUT, bot.store.move_withdrawal(&mv)).await {
        Ok(Ok(moved)) if moved.state == RequestState::Cancelled => {
            follow(bot, w.key, Status::Held);
            (Some(view::say(lang, Key::WdCancelled)), None)
        }
        Ok(Ok(_)) | Ok(Err(StoreError::WithdrawalMoveRefused { .. })) => {
            (Some(view::say(lang, Key::WdTooLate)), None)
        }
        Ok(Err(e)) => {
            tracing::warn!(user = from, id, error = %e, "withdrawal not cancelled");
            (None, Some(tr(lang, Key::WdError, &[])))
        }
        Err(_) => (None, Some(tr(lang, Key::WdError, &[]))),
    }
}

/// Keeps the live inventory following a move the store made.
fn follow(bot: &Bot, key: ItemKey, to: Status) {
    if bot.inventory.get(key).is_some_and(|i| i.status != to)
        && let Err(e) = bot.inventory.apply(key, to, now_s())
    {
        tracing::debug!(%key, error = %e, "live inventory did not follow");
    }
}

async fn admin_move(bot: &Bot, action: Action, id: i64, lang: Lang) -> String {
    let w = match tokio::time::timeout(STORE_TIMEOUT, bot.store.withdrawal(id)).await {
        Ok(Ok(Some(w))) => w,
        _ => return tr(lang, Key::AdminError, &[]),
    };
    let mv = match action {
        // The fee the desk showed is the fee approved; a request whose fee changed since is
        // refused (the operator redraws the desk and decides again).
        Action::AdminApprove { fee, .. } if w.fee_stars.unwrap_or(0) != fee => {
            tracing::warn!(id, shown = fee, now = ?w.fee_stars, "stale approve refused");
            return tr(
                lang,
                Key::AdminFeeChanged,
                &[("id", id.into()), ("fee", w.fee_stars.unwrap_or(0).into())],
            );
        }
        Action::AdminApprove { fee, .. } => WithdrawalMove::approve(&w, Some(fee)),
        _ => WithdrawalMove::cancel(&w, Canceller::Operator),
    };
    match tokio::time::timeout(STORE_TIMEOUT, bot.store.move_withdrawal(&mv)).await {
        Ok(Ok(moved)) => {
            if moved.state == RequestState::Cancelled {
                follow(bot, w.key, Status::Held);
            } else {
                bot.withdrawals_wake.notify_one();
            }
            tr(
                lang,
                Key::AdminMoved,
                &[("id", id.into()), ("state", moved.state.as_str().into())],
            )
        }
        Ok(Err(StoreError::WithdrawalMoveRefused { state, .. })) => tr(
            lang,
            Key::AdminRefused,
            &[("id", id.into()), ("state", state.as_str().into())],
        ),
        _ => tr(lang, Key::AdminError, &[]),
    }
}

async fn assign(bot: &Bot, key: ItemKey, answer: &str, lang: Lang) -> View {
    let answer = answer.trim();
    let user = if let Ok(id) = answer.parse::<i64>() {
        Some(id).filter(|id| *id > 0)
    } else if let Some(name) = answer.strip_prefix('@').filter(|n| !n.is_empty()) {
        match bot.api.resolve_username(name).await {
            Ok(Some(id)) => Some(id),
            Ok(None) => {
                return View::text(tr(lang, Key::AssignUnknownUser, &[("name", answer.into())]));
            }
            Err(e) => {
                tracing::warn!(error = %e, "username not resolved");
                return view::say(lang, Key::AdminError);
            }
        }
    } else {
        None
    };
    let Some(user) = user else {
        return view::say(lang, Key::AssignBad);
    };
    match bot.inventory.get(key) {
        Some(i) if i.owner == Owner::Unattributed && i.status.is_held() => {}
        _ => {
            return View::text(tr(
                lang,
                Key::AssignRefused,
                &[("key", key.to_string().into())],
            ));
        }
    }
    match tokio::time::timeout(STORE_TIMEOUT, bot.store.assign_owner(key, user)).await {
        Ok(Ok(_)) => {
            if let Err(e) = bot.inventory.assign_owner(key, user) {
                tracing::debug!(%key, error = %e, "live inventory did not follow the assignment");
            }
            tracing::info!(%key, user, "unattributed gift assigned through the bot");
            View::text(tr(
                lang,
                Key::AssignDone,
                &[("key", key.to_string().into()), ("user", user.into())],
            ))
        }
        Ok(Err(e)) => {
            tracing::warn!(%key, user, error = %e, "assignment refused");
            View::text(tr(
                lang,
                Key::AssignRefused,
                &[("key", key.to_string().into())],
            ))
        }
        Err(_) => view::say(lang, Key::AdminError),
    }
}

/// Who serves `account`, as the desk says it: this instance (with its lease's holder id when
/// leases are on), another instance by its id, or none.
fn served_by(bot: &Bot, account: UserId, holder: Option<&str>, lang: Lang) -> Option<String> {
    if bot.served_elsewhere(account) {
        return holder.map(str::to_owned);
    }
    let here = tr(lang, Key::AdminHolderHere, &[]);
    Some(match holder {
        Some(h) => format!("{here} ({h})"),
        None => here,
    })
}

/// The operator's desk: every deposit account in the store whichever instance serves it (its
/// items, lease holder, Stars balance and queue, from the store; an account this instance
/// knows that the store has nothing of yet is listed too), the requests that need an
/// operator, the unattributed gifts.
pub async fn admin_view(bot: &Bot, lang: Lang) -> View {
    let desk = match tokio::time::timeout(STORE_TIMEOUT, bot.store.desk()).await {
        Ok(Ok(desk)) => desk,
        _ => return view::say(lang, Key::AdminError),
    };
    let mut accounts: Vec<view::AccountView> = desk
        .iter()
        .map(|d| {
            // The balance this instance's worker read, when it serves the account.
            let local = bot
                .health
                .withdrawals
                .stars_balance
                .get_or_create(&AccountLabel {
                    account: d.account_id.to_string(),
                })
                .get();
            let queued = d.queued(RequestState::Requested)
                + d.queued(RequestState::Claimed)
                + d.queued(RequestState::Sending);
            view::AccountView {
                account: d.account_id,
                items: d.items,
                stars: d.stars,
                balance: (local != 0).then_some(local).or(d.balance.map(|(b, _)| b)),
                served_by: served_by(bot, d.account_id, d.holder(), lang),
                queue: [
                    queued,
                    d.queued(RequestState::Waiting),
                    d.queued(RequestState::Approval),
                    d.queued(RequestState::Unknown),
                ],
            }
        })
        .collect();
    for a in bot.accounts.list() {
        if !accounts.iter().any(|v| v.account == a.id) {
            accounts.push(view::AccountView {
                account: a.id,
                items: 0,
                stars: 0,
                balance: None,
                served_by: served_by(bot, a.id, None, lang),
                queue: [0; 4],
            });
        }
    }
    let requests = match tokio::time::timeout(
        STORE_TIMEOUT,
        bot.store.list_withdrawals(&WithdrawalFilter {
            states: vec![
                RequestState::Approval,
                RequestState::Waiting,
                RequestState::Unknown,
            ],
            limit: 50,
            ..WithdrawalFilter::default()
        }),
    )
    .await
    {
        Ok(Ok(list)) => list,
        _ => return view::say(lang, Key::AdminError),
    };
    let requests = requests
        .iter()
        .map(|w| view::RequestView {
            id: w.id,
            title: bot
                .inventory
                .get(w.key)
                .map_or_else(|| w.key.to_string(), |i| title(bot, &i, lang)),
            owner: w.owner,
            state: w.state,
            wait: w.wait_reason,
            fee: w.fee_stars.unwrap_or(0),
        })
        .collect();
    let unattributed = bot
        .inventory
        .unattributed()
        .iter()
        .map(|i| item_view(bot, i, lang))
        .collect();
    view::admin(
        lang,
        &view::AdminView {
            accounts,
            requests,
            unattributed,
        },
    )
}
