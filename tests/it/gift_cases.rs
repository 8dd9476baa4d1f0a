//! Every gift message Telegram sends since 2025, end to end: tgsim produces each case the way
//! Telegram does (tgsim/FIDELITY.md, "Gift cases since 2025"), giftd runs against it on both
//! stores, and the store must hold exactly the real deposits, each credited once to the right
//! player, with the right fate for what left.
//!
//! Each test plays its case three times, once per path that can see it first:
//! - before giftd starts (the start-up poll and reconciliation see it);
//! - with the poll failing (`payments.getSavedStarGifts` answers 500), so only the update path
//!   sees it;
//! - with updates withheld and `getDifference` saying nothing, so only the poll sees it.
//!
//! After each phase a marker gift is sent; once it is credited, and (outside the update-only
//! phase) two more polls have run, every path has had its look at the case: every deposit must
//! be held by its depositor and nothing else held (items that left may still be, until a
//! reconciliation). Then giftd restarts, and after its start-up reconciliation the whole store
//! must be exactly what should be there, one deposit entry per item.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use giftd::gift::{Item, ItemKey, LedgerKind, Money, Price as GiftPrice};
use giftd::store::RequestState;
use tgsim::{
    AuctionWin, ChatTheme, Craft, Fault, GiftRules, HostUnique, PrepayUpgrade, Price, ResaleBuy,
    ResolveOffer, SendGift, SendOffer, SendUniqueGift, SentGift, UniqueValue,
};

use crate::support::{Backend, Running, World, withdrawal_in};

/// Which path a phase leaves giftd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// giftd is not running yet: its start-up poll and reconciliation see the case.
    BeforeStart,
    /// The poll fails; only updates reach giftd.
    UpdateOnly,
    /// Updates are withheld and getDifference lies; only the poll reaches giftd.
    PollOnly,
}

const SETTLE: Duration = Duration::from_secs(20);

fn saved_gifts_calls(w: &World) -> u64 {
    w.calls("payments.getSavedStarGifts")
}

/// Makes only the phase's path able to see what happens next.
fn enter(w: &World, phase: Phase) {
    w.sim.clear_faults();
    match phase {
        Phase::BeforeStart => {}
        Phase::UpdateOnly => w.sim.inject(Fault::RpcError {
            method: "payments.getSavedStarGifts".into(),
            code: 500,
            message: "INTERNAL".into(),
            count: u32::MAX,
        }),
        Phase::PollOnly => w.sim.inject(Fault::WithholdUpdates {
            honest_difference: false,
        }),
    }
}

/// Sends a marker gift and waits until giftd has credited it and (when the poll works) polled
/// twice more: by then every path that can see what came before it has. Then every expected
/// item must be held by its depositor and nothing else may be held, except items that have
/// left (`departed`): the paths of a phase may not see a departure, a later reconciliation does.
async fn settle(w: &mut World, phase: Phase, departed: &BTreeSet<i32>) {
    let marker = w.send(w.player(2), false);
    let store = w.store().await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let held = store
            .load_items(w.deposit.id)
            .await
            .expect("store readable");
        if held.iter().any(|i| i.key.msg_id == marker) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "marker {marker} not credited in {phase:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if phase != Phase::UpdateOnly {
        let polls = saved_gifts_calls(w);
        while saved_gifts_calls(w) < polls + 2 {
            assert!(
                Instant::now() < deadline,
                "giftd stopped polling in {phase:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let held: BTreeMap<i32, Option<i64>> = store
        .load_items(w.deposit.id)
        .await
        .expect("store readable")
        .iter()
        .map(|i| (i.key.msg_id, i.owner.user_id()))
        .collect();
    for (msg, owner) in &w.expected {
        assert_eq!(
            held.get(msg),
            Some(owner),
            "{phase:?}: msg {msg} must be held by {owner:?}; store: {held:?}"
        );
    }
    let phantoms: Vec<_> = held
        .keys()
        .filter(|m| !w.expected.contains_key(m) && !departed.contains(m))
        .collect();
    assert!(
        phantoms.is_empty(),
        "{phase:?}: held but never deposited: {phantoms:?}; store: {held:?}"
    );
}

/// Runs `case` once per phase on one world (it returns the msg ids of held items that left),
/// then restarts giftd, whose start-up reconciliation must leave the store exactly as expected,
/// one deposit entry per item.
async fn run<F>(backend: Backend, mut case: F) -> (World, Running)
where
    F: FnMut(&mut World, Phase) -> Vec<i32>,
{
    let mut w = World::new(backend, 4).await;
    let mut departed = BTreeSet::new();
    departed.extend(case(&mut w, Phase::BeforeStart));
    let running = w.start().await;
    settle(&mut w, Phase::BeforeStart, &departed).await;
    for phase in [Phase::UpdateOnly, Phase::PollOnly] {
        enter(&w, phase);
        departed.extend(case(&mut w, phase));
        settle(&mut w, phase, &departed).await;
    }
    w.sim.clear_faults();
    running.stop().await;
    let running = w.start().await;
    settle(&mut w, Phase::BeforeStart, &BTreeSet::new()).await;
    w.assert_exactly_once(Duration::from_secs(5)).await;
    w.assert_one_deposit_entry_each().await;
    (w, running)
}

async fn history(w: &World, msg_id: i32) -> Vec<LedgerKind> {
    w.store()
        .await
        .item_history(ItemKey::new(w.deposit.id, msg_id))
        .await
        .expect("history readable")
        .iter()
        .map(|e| e.kind)
        .collect()
}

/// A collectible `from` holds (given to it by another player), for cases that need one.
fn player_collectible(w: &World, from: i64) -> SentGift {
    let giver = w.players.iter().map(|p| p.id).find(|&p| p != from).unwrap();
    w.sim
        .send_unique_gift(SendUniqueGift {
            from: giver,
            to: from,
            gift_id: w.regular_gift(),
            ..SendUniqueGift::default()
        })
        .expect("collectible given")
}

// ----- prepaid upgrade paid by a third user ------------------------------------------------

/// A third user pays the upgrade of a gift a player deposited: the notice (a new
/// messageActionStarGift with `gift_msg_id`) is not a deposit, the original keeps its
/// depositor, and the (free) upgrade carries that depositor to the collectible.
async fn prepaid_upgrade_is_a_fate_of_the_held_gift(backend: Backend) {
    let mut upgrades = Vec::new();
    let (w, running) = run(backend, |w, phase| {
        let (depositor, payer) = (w.player(0), w.player(1));
        let original = w.send(depositor, false);
        let notice = w
            .sim
            .prepay_upgrade(PrepayUpgrade {
                payer,
                owner: w.deposit.id,
                msg_id: original,
            })
            .expect("prepaid");
        assert_eq!(notice.gift_msg_id, original);
        if phase != Phase::BeforeStart {
            let up = w.sim.upgrade_gift(w.deposit.id, original).expect("upgrade");
            w.expected.remove(&original);
            w.expected.insert(up.msg_id, Some(depositor));
            upgrades.push(original);
            return vec![original];
        }
        Vec::new()
    })
    .await;
    for original in upgrades {
        // An original upgraded before any path saw it (the poll-only phase) was never held.
        let h = history(&w, original).await;
        assert!(
            h.is_empty() || h.last() == Some(&LedgerKind::Upgraded),
            "msg {original}: a credited original ends upgraded: {h:?}"
        );
    }
    running.stop().await;
}

// ----- the other side upgrades a gift the account sent -------------------------------------

/// The account bought a regular gift for a player (as a withdrawal by purchase does); the
/// player upgrades it: the account's incoming messageActionStarGiftUnique with `upgrade` is not
/// a deposit.
async fn upgrade_by_the_receiver_of_a_sent_gift_is_no_deposit(backend: Backend) {
    let (_w, running) = run(backend, |w, _| {
        let player = w.player(0);
        let sent = w
            .sim
            .send_gift(SendGift {
                from: w.deposit.id,
                to: player,
                gift_id: w.regular_gift(),
                hide_name: false,
                message: None,
            })
            .expect("gift bought for the player");
        w.sim.upgrade_gift(player, sent.msg_id).expect("upgrade");
        Vec::new()
    })
    .await;
    running.stop().await;
}

// ----- resale purchase for the account -----------------------------------------------------

/// A player buys a collectible on the resale market for the account, in Stars or in TON: a
/// deposit by the buyer.
async fn resale_purchase_for_the_account_credits_the_buyer(backend: Backend) {
    let mut bought = Vec::new();
    let (w, running) = run(backend, |w, phase| {
        let buyer = w.player(1);
        let price = match phase {
            Phase::UpdateOnly => Price::Ton(3_500_000_000),
            _ => Price::Stars(900),
        };
        let sent = w
            .sim
            .resale_buy(ResaleBuy {
                buyer,
                to: w.deposit.id,
                gift_id: w.regular_gift(),
                price,
                message: None,
                transfer_lock_secs: Some(86_400),
            })
            .expect("bought");
        w.expected.insert(sent.msg_id, Some(buyer));
        bought.push((sent.msg_id, price, phase));
        Vec::new()
    })
    .await;
    // The price paid is known to the path that saw the purchase message; never misread.
    let held = w
        .store()
        .await
        .load_items(w.deposit.id)
        .await
        .expect("store readable");
    for (msg, price, phase) in bought {
        let item = held.iter().find(|i| i.key.msg_id == msg).expect("held");
        let paid = item.unique.as_ref().expect("a collectible").value.paid;
        let want = match price {
            Price::Stars(s) => GiftPrice::Stars(s),
            Price::Ton(n) => GiftPrice::TonNano(n),
        };
        // The update-only phase's purchase was seen by its message: its price is known.
        let known = phase == Phase::UpdateOnly;
        assert!(
            paid == Some(want) || !known && paid.is_none(),
            "msg {msg} ({phase:?}): paid {paid:?}, the buyer paid {want:?}"
        );
    }
    running.stop().await;
}

// ----- purchase offers ---------------------------------------------------------------------

/// Offers to buy a held collectible carry the account's own gift: never a deposit. A declined
/// offer leaves the item held; an accepted one makes it leave as a sale, not as a withdrawal
/// nor as an unexplained loss.
async fn purchase_offers_are_no_deposit_and_a_sale_is_a_fate(backend: Backend) {
    let mut sold = Vec::new();
    let (w, running) = run(backend, |w, phase| {
        let (depositor, buyer) = (w.player(0), w.player(1));
        let held = w.send_unique(depositor);
        let offer = |w: &World| {
            w.sim
                .send_offer(SendOffer {
                    buyer,
                    owner: w.deposit.id,
                    msg_id: held.msg_id,
                    price: Price::Stars(700),
                    duration_secs: 6 * 3600,
                })
                .expect("offer")
        };
        let declined = offer(w);
        w.sim
            .resolve_offer(ResolveOffer {
                owner: w.deposit.id,
                offer_msg_id: declined.offer_msg_id,
                decline: true,
            })
            .expect("declined");
        if phase != Phase::BeforeStart {
            let accepted = offer(w);
            w.sim
                .resolve_offer(ResolveOffer {
                    owner: w.deposit.id,
                    offer_msg_id: accepted.offer_msg_id,
                    decline: false,
                })
                .expect("accepted");
            w.expected.remove(&held.msg_id);
            sold.push((held.msg_id, phase));
            return vec![held.msg_id];
        }
        Vec::new()
    })
    .await;
    for (msg, phase) in sold {
        // Deposited and sold while only the poll could look (poll-only phase): never held.
        let h = history(&w, msg).await;
        assert!(
            h.last() == Some(&LedgerKind::Sold) || (phase == Phase::PollOnly && h.is_empty()),
            "msg {msg} ({phase:?}): a sale through an accepted offer is its own fate: {h:?}"
        );
    }
    running.stop().await;
}

// ----- auctions ----------------------------------------------------------------------------

/// A player who wins an auction for the account deposits the gift; the account's own
/// `auction_acquired` notice (had it bid for a player) is not a deposit.
async fn auction_wins_credit_the_winner_only_for_the_account(backend: Backend) {
    let (_w, running) = run(backend, |w, _| {
        let (winner, other) = (w.player(0), w.player(1));
        let won = w
            .sim
            .auction_win(AuctionWin {
                winner,
                to: w.deposit.id,
                gift_id: w.regular_gift(),
                bid_stars: 1_000,
            })
            .expect("won for the account");
        let gift = won.gift.expect("a gift for the account");
        w.expected.insert(gift.msg_id, Some(winner));
        w.sim
            .auction_win(AuctionWin {
                winner: w.deposit.id,
                to: other,
                gift_id: w.regular_gift(),
                bid_stars: 1_000,
            })
            .expect("the account won for a player");
        Vec::new()
    })
    .await;
    running.stop().await;
}

// ----- hosted and assigned collectibles ----------------------------------------------------

/// A collectible owned by a TON wallet and only hosted on the account's profile (`assigned`
/// message, `host_id`) is never credited: it can never be withdrawn.
async fn hosted_collectibles_are_never_credited(backend: Backend) {
    let (w, running) = run(backend, |w, _| {
        w.sim
            .host_unique(HostUnique {
                host: w.deposit.id,
                gift_id: w.regular_gift(),
                owner_address: "UQAhostedWalletOfSomeoneElse000000000000000000000".into(),
            })
            .expect("hosted");
        Vec::new()
    })
    .await;
    assert!(
        running.daemon.inventory().unattributed().is_empty(),
        "a hosted collectible is not waiting for an operator to credit it"
    );
    drop(w);
    running.stop().await;
}

// ----- crafting ----------------------------------------------------------------------------

/// The account crafts two collectibles a player deposited: both ingredients leave (burned), and
/// the result, which reuses the first ingredient's id and number under a new message, is held
/// once, for an operator (its ingredients may have had different owners), never credited twice
/// nor merged with the first ingredient.
async fn crafting_burns_ingredients_and_holds_the_result(backend: Backend) {
    let mut burned = Vec::new();
    let (w, running) = run(backend, |w, _| {
        let depositor = w.player(0);
        let a = w.send_unique(depositor);
        let b = w.send_unique(depositor);
        let crafted = w
            .sim
            .craft(Craft {
                owner: w.deposit.id,
                msg_ids: vec![a.msg_id, b.msg_id],
            })
            .expect("crafted");
        assert_eq!(crafted.unique_id, a.unique_id);
        assert_eq!(crafted.num, a.num);
        w.expected.remove(&a.msg_id);
        w.expected.remove(&b.msg_id);
        w.expected.insert(crafted.msg_id, None);
        burned.extend([a.msg_id, b.msg_id]);
        vec![a.msg_id, b.msg_id]
    })
    .await;
    for msg in burned {
        // An ingredient crafted before any path saw it (giftd not yet running) was never held.
        let h = history(&w, msg).await;
        assert!(
            h.is_empty() || h.last() == Some(&LedgerKind::Burned),
            "msg {msg}: a burned ingredient ends burned, not as an unexplained loss: {h:?}"
        );
    }
    running.stop().await;
}

// ----- chat themes -------------------------------------------------------------------------

/// A player sets the theme of its chat with the account to its own collectible: the service
/// message carries a collectible, but nothing changed hands.
async fn chat_theme_of_a_collectible_is_no_deposit(backend: Backend) {
    let (_w, running) = run(backend, |w, _| {
        let player = w.player(0);
        let own = player_collectible(w, player);
        w.sim
            .set_chat_theme(ChatTheme {
                from: player,
                to: w.deposit.id,
                msg_id: own.msg_id,
            })
            .expect("theme set");
        Vec::new()
    })
    .await;
    running.stop().await;
}

// ----- values ------------------------------------------------------------------------------

/// A collectible with a value in US dollars and a TON resale price is credited to its sender;
/// neither figure is taken for Stars.
async fn collectible_values_are_never_read_as_stars(backend: Backend) {
    let mut deposited = Vec::new();
    let (w, running) = run(backend, |w, _| {
        let player = w.player(0);
        let own = player_collectible(w, player);
        w.sim
            .set_unique_value(
                player,
                own.msg_id,
                UniqueValue {
                    value_amount: Some(12_345),
                    value_currency: Some("USD".into()),
                    value_usd_amount: Some(12_345),
                    resell: vec![Price::Ton(2_000_000_000)],
                    resale_ton_only: true,
                },
            )
            .expect("valued");
        let sent = w
            .sim
            .transfer_gift(player, own.msg_id, w.deposit.id)
            .expect("deposited");
        w.expected.insert(sent.msg_id, Some(player));
        deposited.push(sent.msg_id);
        Vec::new()
    })
    .await;
    let held: BTreeMap<i32, Item> = w
        .store()
        .await
        .load_items(w.deposit.id)
        .await
        .expect("store readable")
        .into_iter()
        .map(|i| (i.key.msg_id, i))
        .collect();
    for msg in deposited {
        let item = &held[&msg];
        assert!(
            item.stars != 12_345 && item.stars != 2_000_000_000,
            "msg {msg}: a USD value or a TON price read as {} Stars",
            item.stars
        );
        let value = &item.unique.as_ref().expect("a collectible").value;
        assert_eq!(
            value.fiat,
            Some(Money {
                amount: 12_345,
                currency: "USD".into()
            }),
            "msg {msg}: the value kept in its currency"
        );
        assert_eq!(value.usd_cents, Some(12_345), "msg {msg}");
    }
    running.stop().await;
}

// ----- purchase rules of regular gifts (withdrawal by buying the gift again) ---------------

/// Waits until withdrawal `id` is in `state`; returns its reason.
async fn request_reaches(w: &World, id: i64, state: RequestState) -> Option<String> {
    let store = w.store().await;
    withdrawal_in(&store, id, &[state], SETTLE).await.reason
}

/// A regular gift is returned by buying the same gift for the player. When Telegram would not
/// sell it to the deposit account (auction only, Premium only, the per-user limit reached), the
/// request fails with the reason before any Star is spent; when it is locked until a date, the
/// request waits.
async fn purchase_rules_refuse_a_resend_before_any_star_is_spent(backend: Backend) {
    let mut w = World::new(backend, 2).await;
    w.extra_sections = "[withdraw]\nregular = \"resend\"\ncall_timeout = \"2s\"\n\
                        settle_delay = \"3s\"\nlease = \"4s\"\npoll_interval = \"100ms\"\n"
        .into();
    let (player, other) = (w.player(0), w.player(1));
    let gift_id = w.regular_gift();
    let held: Vec<i32> = (0..4).map(|_| w.send(player, false)).collect();
    // The deposit account already bought one of this gift (for someone else).
    w.sim
        .send_gift(SendGift {
            from: w.deposit.id,
            to: other,
            gift_id,
            hide_name: false,
            message: None,
        })
        .expect("bought once");
    let running = w.start().await;
    w.assert_exactly_once(SETTLE).await;
    let store = w.store().await;
    let stars = w.sim.stars(w.deposit.id).expect("stars");
    let cases = [
        (
            GiftRules {
                auction: true,
                ..GiftRules::default()
            },
            RequestState::Failed,
            "auction",
        ),
        (
            GiftRules {
                require_premium: true,
                ..GiftRules::default()
            },
            RequestState::Failed,
            "Premium",
        ),
        (
            GiftRules {
                per_user_total: Some(1),
                ..GiftRules::default()
            },
            RequestState::Failed,
            "as many",
        ),
        (
            GiftRules {
                locked_until_date: Some(
                    i32::try_from(w.sim.now_unix() + 3_600).expect("a 32-bit date"),
                ),
                ..GiftRules::default()
            },
            RequestState::Waiting,
            "later",
        ),
    ];
    for ((rules, state, why), msg) in cases.into_iter().zip(held) {
        w.sim.set_gift_rules(gift_id, rules).expect("rules");
        let id = store
            .create_withdrawal(player, ItemKey::new(w.deposit.id, msg))
            .await
            .expect("requested");
        let reason = request_reaches(&w, id, state).await.unwrap_or_default();
        assert!(reason.contains(why), "{rules:?}: reason {reason:?}");
        assert_eq!(
            w.sim.stars(w.deposit.id).expect("stars"),
            stars,
            "{rules:?}: no Star spent"
        );
    }
    running.stop().await;
}

contract!(
    prepaid_upgrade_is_a_fate_of_the_held_gift,
    upgrade_by_the_receiver_of_a_sent_gift_is_no_deposit,
    resale_purchase_for_the_account_credits_the_buyer,
    purchase_offers_are_no_deposit_and_a_sale_is_a_fate,
    auction_wins_credit_the_winner_only_for_the_account,
    hosted_collectibles_are_never_credited,
    crafting_burns_ingredients_and_holds_the_result,
    chat_theme_of_a_collectible_is_no_deposit,
    collectible_values_are_never_read_as_stars,
    purchase_rules_refuse_a_resend_before_any_star_is_spent,
);
