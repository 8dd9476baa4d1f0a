//! Collectibles that leave the deposit account while giftd cannot see them go: sold through an
//! accepted purchase offer, or burned as crafting ingredients. Updates are withheld (and
//! `getDifference` says nothing) from the moment they leave, so only the start-up
//! reconciliation of the restarted daemon can tell what happened, from Telegram's evidence (the
//! collectible as `payments.getUniqueStarGift` shows it now, the account's own `from_offer`
//! message in the buyer's chat, the crafted collectible reusing the first ingredient's id).
//! Each must end with its own fate, never as an unexplained `gone`.

use std::time::{Duration, Instant};

use giftd::gift::{ItemKey, LedgerKind};
use tgsim::{Craft, Fault, Price, ResolveOffer, SendOffer};

use crate::support::{Backend, World};

const WITHIN: Duration = Duration::from_secs(20);

/// Waits until the ledger of `msg_id` ends with something other than its deposit.
async fn last_entry(w: &World, msg_id: i32, deposited: bool) -> Option<LedgerKind> {
    let store = w.store().await;
    let deadline = Instant::now() + WITHIN;
    loop {
        let history = store
            .item_history(ItemKey::new(w.deposit.id, msg_id))
            .await
            .expect("history readable");
        let last = history.last().map(|e| e.kind);
        let settled = if deposited {
            last.is_some_and(|k| k != LedgerKind::Deposit)
        } else {
            last.is_some()
        };
        if settled || Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reconciliation_ends_sold_and_burned_collectibles_with_their_fate(backend: Backend) {
    let mut w = World::new(backend, 3).await;
    let (depositor, buyer) = (w.player(0), w.player(1));
    let sold = w.send_unique(depositor);
    let first = w.send_unique(depositor);
    let second = w.send_unique(depositor);
    let running = w.start().await;
    for msg in [sold.msg_id, first.msg_id, second.msg_id] {
        assert_eq!(
            last_entry(&w, msg, false).await,
            Some(LedgerKind::Deposit),
            "msg {msg} credited"
        );
    }
    running.stop().await;

    w.sim.inject(Fault::WithholdUpdates {
        honest_difference: false,
    });
    let offer = w
        .sim
        .send_offer(SendOffer {
            buyer,
            owner: w.deposit.id,
            msg_id: sold.msg_id,
            price: Price::Stars(700),
            duration_secs: 6 * 3600,
        })
        .expect("offer");
    w.sim
        .resolve_offer(ResolveOffer {
            owner: w.deposit.id,
            offer_msg_id: offer.offer_msg_id,
            decline: false,
        })
        .expect("accepted");
    w.sim
        .craft(Craft {
            owner: w.deposit.id,
            msg_ids: vec![first.msg_id, second.msg_id],
        })
        .expect("crafted");

    let running = w.start().await;
    assert_eq!(
        last_entry(&w, sold.msg_id, true).await,
        Some(LedgerKind::Sold),
        "the account's own from_offer message in the buyer's chat tells the sale"
    );
    assert_eq!(
        last_entry(&w, first.msg_id, true).await,
        Some(LedgerKind::Burned),
        "the crafted collectible reuses the first ingredient's id"
    );
    assert_eq!(
        last_entry(&w, second.msg_id, true).await,
        Some(LedgerKind::Burned),
        "Telegram shows the second ingredient burned"
    );
    running.stop().await;
}

contract!(reconciliation_ends_sold_and_burned_collectibles_with_their_fate);
