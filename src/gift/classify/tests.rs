//! One line per case of the table in `docs/deposits.md` ("Which gifts are deposits").

use super::*;

const ME: UserId = 1000;
const PLAYER: UserId = 42;
const OTHER: UserId = 43;

fn user(id: UserId) -> Peer {
    Peer::User(id)
}

/// An incoming private message from `chat`, without `from_id` (layer 119 and later).
fn incoming(chat: Peer) -> Envelope {
    Envelope {
        msg_id: 7,
        out: false,
        chat,
        from: None,
    }
}

fn outgoing(chat: Peer) -> Envelope {
    Envelope {
        msg_id: 7,
        out: true,
        chat,
        from: Some(user(ME)),
    }
}

fn gift(envelope: Envelope, flags: GiftFlags) -> Facts {
    Facts::Gift(GiftMessage {
        envelope,
        from_id: None,
        peer: None,
        to_id: None,
        flags,
        gift_is_unique: false,
    })
}

fn gift_with(envelope: Envelope, f: impl FnOnce(&mut GiftMessage)) -> Facts {
    let Facts::Gift(mut g) = gift(envelope, GiftFlags::default()) else {
        unreachable!()
    };
    f(&mut g);
    Facts::Gift(g)
}

fn unique(envelope: Envelope, flags: UniqueFlags) -> Facts {
    unique_with(envelope, |u| u.flags = flags)
}

fn unique_with(envelope: Envelope, f: impl FnOnce(&mut UniqueMessage)) -> Facts {
    let mut u = UniqueMessage {
        envelope,
        from_id: None,
        peer: None,
        flags: UniqueFlags {
            transferred: true,
            ..UniqueFlags::default()
        },
        collectible_id: Some(900),
        burned: false,
        hosted: false,
    };
    f(&mut u);
    Facts::Unique(u)
}

fn saved(from_id: Option<Peer>, f: impl FnOnce(&mut SavedGift)) -> Facts {
    let mut s = SavedGift {
        msg_id: Some(7),
        from_id,
        refunded: false,
        hosted: false,
        burned: false,
        crafted: false,
    };
    f(&mut s);
    Facts::Saved(s)
}

fn deposit(from: UserId) -> Decision {
    Decision::Deposit { from }
}

fn hold(reason: HoldReason) -> Decision {
    Decision::Hold { reason }
}

fn ignore(reason: IgnoreReason) -> Decision {
    Decision::Ignore { reason }
}

fn fate(item: ItemRef, fate: FateKind) -> Decision {
    Decision::Fate { item, fate }
}

#[track_caller]
fn check(facts: Facts, expected: Decision) {
    assert_eq!(classify(ME, &facts), expected, "{facts:?}");
}

#[test]
fn regular_gift_messages() {
    use GiftFlags as F;
    let none = F::default();
    // A gift in the private chat with its sender: the chat's peer is the sender.
    check(gift(incoming(user(PLAYER)), none), deposit(PLAYER));
    // Older layers name the sender on the message; the action's from_id comes first.
    check(
        gift(
            Envelope {
                from: Some(user(PLAYER)),
                ..incoming(user(PLAYER))
            },
            none,
        ),
        deposit(PLAYER),
    );
    check(
        gift_with(incoming(Peer::Chat(5)), |g| g.from_id = Some(user(OTHER))),
        deposit(OTHER),
    );
    // A gift sent with the upgrade paid (include_upgrade): prepaid_upgrade alone, a deposit.
    check(
        gift(
            incoming(user(PLAYER)),
            F {
                prepaid_upgrade: true,
                ..none
            },
        ),
        deposit(PLAYER),
    );
    // Delivered by the service account, or from a channel: held for an operator.
    check(
        gift(incoming(user(SERVICE_USER_ID)), none),
        hold(HoldReason::NoSender),
    );
    check(
        gift(incoming(Peer::Chat(5)), none),
        hold(HoldReason::SenderNotAUser),
    );
    check(
        gift_with(incoming(user(PLAYER)), |g| g.from_id = Some(Peer::Chat(5))),
        hold(HoldReason::SenderNotAUser),
    );
    // The prepaid-upgrade notice (gift_msg_id, with either flag TDLib or the docs name): a fate
    // of the held original, whoever paid.
    for (prepaid_upgrade, upgrade_separate) in [(true, false), (false, true), (true, true)] {
        check(
            gift(
                incoming(user(OTHER)),
                F {
                    prepaid_upgrade,
                    upgrade_separate,
                    gift_msg_id: Some(3),
                    ..none
                },
            ),
            fate(ItemRef::Message(3), FateKind::PrepaidUpgrade),
        );
    }
    // upgrade_separate on a new gift without gift_msg_id: sources disagree, hold.
    check(
        gift(
            incoming(user(PLAYER)),
            F {
                upgrade_separate: true,
                ..none
            },
        ),
        hold(HoldReason::UpgradeSeparate),
    );
    // A gift for someone else, or owned by a channel the account administers.
    check(
        gift_with(incoming(user(PLAYER)), |g| g.to_id = Some(user(OTHER))),
        ignore(IgnoreReason::ForSomeoneElse),
    );
    check(
        gift_with(incoming(user(PLAYER)), |g| g.peer = Some(Peer::Chat(5))),
        ignore(IgnoreReason::ForSomeoneElse),
    );
    check(
        gift_with(incoming(user(PLAYER)), |g| g.to_id = Some(user(ME))),
        deposit(PLAYER),
    );
    // The buyer's notice of an auction win, either direction.
    for envelope in [incoming(user(PLAYER)), outgoing(user(PLAYER))] {
        check(
            gift(
                envelope,
                F {
                    auction_acquired: true,
                    ..none
                },
            ),
            ignore(IgnoreReason::AuctionAcquired),
        );
    }
    // The account's own gifts (a withdrawal by buying the same gift, a prepaid upgrade it paid).
    check(
        gift(outgoing(user(PLAYER)), none),
        ignore(IgnoreReason::SentByAccount),
    );
    check(
        gift(
            outgoing(user(PLAYER)),
            F {
                gift_msg_id: Some(3),
                prepaid_upgrade: true,
                ..none
            },
        ),
        ignore(IgnoreReason::SentByAccount),
    );
    // The delivering message as it reads after the gift's fate.
    let this = ItemRef::Message(7);
    check(
        gift(
            incoming(user(PLAYER)),
            F {
                converted: true,
                ..none
            },
        ),
        fate(this, FateKind::Converted),
    );
    check(
        gift(
            incoming(user(PLAYER)),
            F {
                upgraded: true,
                upgrade_msg_id: Some(9),
                ..none
            },
        ),
        fate(this, FateKind::Upgraded { into: 9 }),
    );
    check(
        gift(
            incoming(user(PLAYER)),
            F {
                refunded: true,
                ..none
            },
        ),
        fate(this, FateKind::Refunded),
    );
    // A regular-gift action carrying a collectible is not a shape Telegram sends.
    check(
        gift_with(incoming(user(PLAYER)), |g| g.gift_is_unique = true),
        ignore(IgnoreReason::Unreadable),
    );
}

#[test]
fn collectible_messages() {
    use UniqueFlags as F;
    let transferred = F {
        transferred: true,
        ..F::default()
    };
    // Transferred to the account by a player.
    check(unique(incoming(user(PLAYER)), transferred), deposit(PLAYER));
    // Delivered by the service account (no sender Telegram tells): held.
    check(
        unique(incoming(user(SERVICE_USER_ID)), transferred),
        hold(HoldReason::NoSender),
    );
    // A player bought it on the resale market for the account: a deposit by the buyer.
    check(
        unique(
            incoming(user(PLAYER)),
            F {
                resale: true,
                ..F::default()
            },
        ),
        deposit(PLAYER),
    );
    // The other side upgraded a gift the account sent them (a resend withdrawal).
    for prepaid_upgrade in [false, true] {
        check(
            unique(
                incoming(user(PLAYER)),
                F {
                    upgrade: true,
                    prepaid_upgrade,
                    ..F::default()
                },
            ),
            ignore(IgnoreReason::UpgradedByOtherSide),
        );
    }
    // The account upgraded a gift it holds (also after a prepaid upgrade): a new item owned by
    // the gift's sender, named in the action.
    for prepaid_upgrade in [false, true] {
        check(
            unique_with(outgoing(user(PLAYER)), |u| {
                u.flags = F {
                    upgrade: true,
                    prepaid_upgrade,
                    ..F::default()
                };
                u.from_id = Some(user(PLAYER));
            }),
            deposit(PLAYER),
        );
    }
    check(
        unique(
            outgoing(user(SERVICE_USER_ID)),
            F {
                upgrade: true,
                ..F::default()
            },
        ),
        hold(HoldReason::NoSender),
    );
    // Blockchain-assigned, hosted, owned by another peer: not the account's.
    check(
        unique(
            incoming(user(PLAYER)),
            F {
                assigned: true,
                ..transferred
            },
        ),
        ignore(IgnoreReason::Assigned),
    );
    check(
        unique_with(incoming(user(PLAYER)), |u| u.hosted = true),
        ignore(IgnoreReason::Hosted),
    );
    check(
        unique_with(incoming(user(PLAYER)), |u| u.peer = Some(Peer::Chat(5))),
        ignore(IgnoreReason::ForSomeoneElse),
    );
    check(
        unique_with(incoming(user(PLAYER)), |u| u.peer = Some(user(ME))),
        deposit(PLAYER),
    );
    // The account sold it through an accepted offer, or transferred it out.
    check(
        unique(
            outgoing(user(PLAYER)),
            F {
                from_offer: true,
                ..F::default()
            },
        ),
        fate(ItemRef::Collectible(900), FateKind::Sold),
    );
    // Telegram's sale message also carries the price (`resale_amount`): still a sale, not a
    // market purchase the account made for someone.
    check(
        unique(
            outgoing(user(PLAYER)),
            F {
                from_offer: true,
                resale: true,
                ..F::default()
            },
        ),
        fate(ItemRef::Collectible(900), FateKind::Sold),
    );
    check(
        unique(outgoing(user(PLAYER)), transferred),
        fate(ItemRef::Collectible(900), FateKind::TransferredOut),
    );
    // The account bought one on the market for a player: not a deposit.
    check(
        unique(
            outgoing(user(PLAYER)),
            F {
                resale: true,
                ..F::default()
            },
        ),
        ignore(IgnoreReason::SentByAccount),
    );
    // The account bought one through its own offer: nobody deposited it.
    check(
        unique(
            incoming(user(PLAYER)),
            F {
                from_offer: true,
                resale: true,
                ..F::default()
            },
        ),
        hold(HoldReason::BoughtThroughOffer),
    );
    // Crafted: reuses an ingredient's id and number; held for an operator.
    check(
        unique(
            incoming(user(ME)),
            F {
                craft: true,
                ..F::default()
            },
        ),
        hold(HoldReason::Crafted),
    );
    // The delivering message after the collectible was refunded (it then carries the regular
    // gift) or burned.
    check(
        unique_with(incoming(user(PLAYER)), |u| {
            u.flags.refunded = true;
            u.collectible_id = None;
        }),
        fate(ItemRef::Message(7), FateKind::Refunded),
    );
    check(
        unique_with(incoming(user(PLAYER)), |u| u.burned = true),
        fate(ItemRef::Message(7), FateKind::Burned),
    );
    // A collectible action without a collectible (and not refunded): unreadable.
    check(
        unique_with(incoming(user(PLAYER)), |u| u.collectible_id = None),
        ignore(IgnoreReason::Unreadable),
    );
}

#[test]
fn other_gift_bearing_things() {
    check(Facts::Offer, ignore(IgnoreReason::Offer));
    check(Facts::ChatTheme, ignore(IgnoreReason::ChatTheme));
    check(Facts::Unreadable, ignore(IgnoreReason::Unreadable));
}

#[test]
fn saved_gifts() {
    check(saved(Some(user(PLAYER)), |_| {}), deposit(PLAYER));
    check(saved(None, |_| {}), hold(HoldReason::NoSender));
    check(
        saved(Some(user(SERVICE_USER_ID)), |_| {}),
        hold(HoldReason::NoSender),
    );
    check(
        saved(Some(Peer::Chat(5)), |_| {}),
        hold(HoldReason::SenderNotAUser),
    );
    check(
        saved(Some(user(ME)), |_| {}),
        ignore(IgnoreReason::SentByAccount),
    );
    check(
        saved(Some(user(PLAYER)), |s| s.hosted = true),
        ignore(IgnoreReason::Hosted),
    );
    check(
        saved(Some(user(PLAYER)), |s| s.msg_id = None),
        ignore(IgnoreReason::NoMessageId),
    );
    check(
        saved(Some(user(PLAYER)), |s| s.burned = true),
        fate(ItemRef::Message(7), FateKind::Burned),
    );
    check(
        saved(Some(user(PLAYER)), |s| s.crafted = true),
        hold(HoldReason::Crafted),
    );
    check(
        saved(Some(user(PLAYER)), |s| s.refunded = true),
        fate(ItemRef::Message(7), FateKind::Refunded),
    );
}

#[test]
fn reason_indices_match_their_tables() {
    for (i, r) in HoldReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    for (i, r) in IgnoreReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}
