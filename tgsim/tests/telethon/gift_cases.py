"""Telethon (PyPI 1.45, TL layer 229) decodes tgsim's gift cases since 2025 as TDLib reads them.

Usage: python3 gift_cases.py CONTROL_URL

Creates a deposit account and two players through the control API, connects Telethon as the
deposit account, produces each case with the control routes, reads the deposit account's service
messages back with messages.getMessages, and applies TDLib's rules to what Telethon decoded
(td/telegram/MessageContent.cpp at 022d602: `messageGift` receiver and received-gift id,
MC:11712-11746; `messageUpgradedGift` receiver, origin and received-gift id, MC:11748-11808).
Prints one JSON object; exits non-zero on any failure.

Every constructor used here has the same id in Telethon's layer 229 and tgsim's layer 230
(messageActionStarGift#ea2c31d3, messageActionStarGiftUnique#7e1c1187,
messageActionStarGiftPurchaseOffer#774278d4, messageActionSetChatTheme#b91bbd3a,
chatThemeUniqueGift#3458f9c8, starsAmount#bbb6b4a3, starsTonAmount#74aee3e0).
"""

import asyncio
import json
import sys

from telethon import TelegramClient, functions, types
from telethon.sessions import StringSession

from fidelity import API_HASH, API_ID, control, session_string

SERVICE = 777000


def chat(m):
    return m.peer_id.user_id


def gift_view(m, me):
    """TDLib's messageGift for a messageActionStarGift (MC:11712-11746)."""
    a = m.action
    if a.to_id is not None:
        receiver = a.to_id.user_id
    elif a.peer is not None:
        receiver = a.peer.user_id
    else:
        receiver = chat(m) if m.out else me
    received_gift_id = None
    gift_msg = a.gift_msg_id or m.id
    if not m.out and chat(m) != SERVICE:
        received_gift_id = gift_msg
    if a.auction_acquired:
        received_gift_id, sender = None, me
    elif a.from_id is not None:
        sender = a.from_id.user_id
    elif a.prepaid_upgrade and m.out:
        sender = None
    else:
        sender = me if m.out else chat(m)
    return {
        "msg_id": m.id,
        "out": m.out,
        "sender": sender,
        "receiver": receiver,
        "received_gift_id": received_gift_id,
        "prepaid_upgrade": bool(a.prepaid_upgrade),
        "upgrade_separate": bool(a.upgrade_separate),
        "gift_msg_id": a.gift_msg_id,
        "auction_acquired": bool(a.auction_acquired),
    }


def price(p):
    if isinstance(p, types.StarsTonAmount):
        return {"ton": p.amount}
    if isinstance(p, types.StarsAmount):
        return {"stars": p.amount}
    return None


def unique_view(m, me):
    """TDLib's messageUpgradedGift for a messageActionStarGiftUnique (MC:11748-11808)."""
    a = m.action
    if a.peer is not None:
        receiver = a.peer.user_id
    else:
        receiver = chat(m) if bool(a.upgrade) != bool(m.out) else me
    if a.craft:
        origin = "craft"
    elif a.from_offer:
        origin = "offer"
    elif a.assigned:
        origin = "blockchain"
    elif a.prepaid_upgrade:
        origin = "prepaid_upgrade"
    elif a.resale_amount is not None:
        origin = "resale"
    elif a.upgrade:
        origin = "upgrade"
    else:
        origin = "transfer"
    received_gift_id = None
    if bool(a.upgrade) == bool(m.out) and (chat(m) != SERVICE or a.upgrade):
        received_gift_id = m.id
    return {
        "msg_id": m.id,
        "out": m.out,
        "upgrade": bool(a.upgrade),
        "receiver": receiver,
        "origin": origin,
        "received_gift_id": received_gift_id,
        "resale_amount": price(a.resale_amount),
    }


async def main(base):
    dep = control(base, "POST", "/accounts", {"username": "dep_cases", "first_name": "Deposit"})
    alice = control(base, "POST", "/accounts", {"username": "alice_cases", "stars": 1000000})
    bob = control(base, "POST", "/accounts", {"username": "bob_cases", "stars": 1000000})
    control(base, "POST", "/accounts/dep_cases/stars", {"stars": 1000000})
    gift = control(base, "GET", "/catalogue")[0]["id"]

    host, port = dep["addr"].rsplit(":", 1)
    session = session_string(dep["dc_id"], host, int(port), bytes.fromhex(dep["auth_key"]))
    client = TelegramClient(StringSession(session), API_ID, API_HASH)
    await client.connect()
    assert await client.is_user_authorized()
    me = dep["id"]

    async def service(msg_id):
        r = await client(functions.messages.GetMessagesRequest(id=[types.InputMessageID(msg_id)]))
        m = r.messages[0]
        assert isinstance(m, types.MessageService), m
        return m

    out = {"me": me, "alice": alice["id"], "bob": bob["id"]}

    # Prepaid upgrade by a third user.
    original = control(base, "POST", "/gifts", {"from": alice["id"], "to": me, "gift_id": gift})["msg_id"]
    notice = control(
        base, "POST", "/gifts/prepaid_upgrade", {"payer": bob["id"], "owner": me, "msg_id": original}
    )
    m = await service(notice["notice_msg_id"])
    assert isinstance(m.action, types.MessageActionStarGift), m.action
    out["prepaid_notice"] = gift_view(m, me)
    out["prepaid_original"] = original

    # The other side upgrades a gift the account sent.
    sent = control(base, "POST", "/gifts", {"from": me, "to": alice["id"], "gift_id": gift})
    last = (await client.get_messages(types.PeerUser(alice["id"]), limit=1))[0].id
    control(base, "POST", "/gifts/upgrade", {"owner": alice["id"], "msg_id": sent["msg_id"]})
    m = await service(last + 1)
    assert isinstance(m.action, types.MessageActionStarGiftUnique), m.action
    out["other_side_upgrade"] = unique_view(m, me)

    # The account upgrades a gift it holds (the prepaid one): its own outgoing message.
    up = control(base, "POST", "/gifts/upgrade", {"owner": me, "msg_id": original})
    out["own_upgrade"] = unique_view(await service(up["msg_id"]), me)

    # A player buys a collectible on the resale market for the account, in TON.
    bought = control(
        base,
        "POST",
        "/gifts/resale_buy",
        {"buyer": alice["id"], "to": me, "gift_id": gift, "price": {"ton": 3500000000}},
    )
    out["resale"] = unique_view(await service(bought["msg_id"]), me)

    # An offer carrying the account's own collectible, accepted: the sale leaves as outgoing.
    offer = control(
        base,
        "POST",
        "/gifts/offers",
        {"buyer": bob["id"], "owner": me, "msg_id": bought["msg_id"], "price": {"stars": 700}},
    )
    m = await service(offer["offer_msg_id"])
    assert isinstance(m.action, types.MessageActionStarGiftPurchaseOffer), m.action
    out["offer_gift_id"] = m.action.gift.id
    out["resale_unique_id"] = bought["unique_id"]
    control(base, "POST", "/gifts/offers/resolve", {"owner": me, "offer_msg_id": offer["offer_msg_id"]})
    m = await service(offer["offer_msg_id"])
    out["offer_accepted"] = bool(m.action.accepted)
    m = await service(offer["offer_msg_id"] + 1)
    out["sale"] = unique_view(m, me)

    # Auction won by the account for a player: the account's notice.
    won = control(
        base,
        "POST",
        "/gifts/auction_win",
        {"winner": me, "to": bob["id"], "gift_id": gift, "bid_stars": 100},
    )
    out["auction_notice"] = gift_view(await service(won["winner_msg_id"]), me)

    # A hosted collectible and a chat theme.
    hosted = control(base, "POST", "/gifts/hosted", {"host": me, "gift_id": gift})
    out["hosted"] = unique_view(await service(hosted["msg_id"]), me)
    saved = await client(
        functions.payments.GetSavedStarGiftsRequest(
            peer=types.InputPeerSelf(), offset="", limit=100, exclude_hosted=True
        )
    )
    out["exclude_hosted_lists_hosted"] = any(g.msg_id == hosted["msg_id"] for g in saved.gifts)
    theirs = control(
        base, "POST", "/gifts/resale_buy", {"buyer": alice["id"], "to": alice["id"], "gift_id": gift, "price": {"stars": 5}}
    )
    theme = control(base, "POST", "/chat_theme", {"from": alice["id"], "to": me, "msg_id": theirs["msg_id"]})
    m = await service(theme["to_msg_id"])
    out["theme_is_unique_gift"] = isinstance(m.action, types.MessageActionSetChatTheme) and isinstance(
        m.action.theme, types.ChatThemeUniqueGift
    )

    await client.disconnect()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
