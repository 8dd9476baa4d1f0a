"""Telethon (PyPI, TL layer 229) against tgsim: an independent MTProto client.

Usage: python3 fidelity.py CONTROL_URL [full|intermediate|abridged|obfuscated]

Creates a deposit account and a player through the control API, connects Telethon with a
StringSession carrying DC id, address, port and auth key, then checks help.getConfig, get_me,
payments.getSavedStarGifts, a pushed gift update, Telegram's sender rule read the way Telethon
reads it (an incoming private message has no from_id; Telethon's sender_id is the chat's peer),
a hide-my-name gift, a free collectible transfer and the paid transfer flow (PAYMENT_REQUIRED ->
inputInvoiceStarGiftTransfer -> payments.getPaymentForm -> payments.sendStarsForm, then the same
form again: FORM_SUBMIT_DUPLICATE). Prints one JSON object; exits non-zero on any failure.

Every constructor used here has the same id in Telethon's layer 229 and tgsim's layer 230
(checked against telethon.tl.alltlobjects; see tgsim/FIDELITY.md).
"""

import asyncio
import base64
import ipaddress
import json
import struct
import sys
import urllib.request

from telethon import TelegramClient, connection, errors, events, functions, types
from telethon.sessions import StringSession

TRANSPORTS = {
    "full": connection.ConnectionTcpFull,
    "intermediate": connection.ConnectionTcpIntermediate,
    "abridged": connection.ConnectionTcpAbridged,
    "obfuscated": connection.ConnectionTcpObfuscated,
}

API_ID = 611335
API_HASH = "d524b414d21f4d37f08684c1df41ac9c"


def session_string(dc_id, host, port, key):
    ip = ipaddress.ip_address(host).packed
    data = struct.pack(">B{}sH256s".format(len(ip)), dc_id, ip, port, key)
    return "1" + base64.urlsafe_b64encode(data).decode("ascii")


def control(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path, method=method, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


async def main(base, transport):
    dep = control(base, "POST", "/accounts", {"username": "dep_" + transport, "first_name": "Deposit"})
    player = control(base, "POST", "/accounts", {"username": "player_" + transport, "first_name": "Player"})
    catalogue = control(base, "GET", "/catalogue")
    before = [
        control(base, "POST", "/gifts", {"from": player["id"], "to": dep["id"], "gift_id": g["id"], "message": "hi"})
        for g in catalogue[:2]
    ]

    host, port = dep["addr"].rsplit(":", 1)
    session = session_string(dep["dc_id"], host, int(port), bytes.fromhex(dep["auth_key"]))
    client = TelegramClient(
        StringSession(session), API_ID, API_HASH, connection=TRANSPORTS[transport]
    )
    got = asyncio.get_running_loop().create_future()

    @client.on(events.Raw(types.UpdateNewMessage))
    async def on_new(update):
        m = update.message
        if (
            isinstance(m, types.MessageService)
            and isinstance(m.action, types.MessageActionStarGift)
            and not got.done()
        ):
            # Telethon reads the sender as Message.sender_id: from_id, else the peer of an
            # incoming private message (telethon/tl/custom/message.py, "layer 119+").
            got.set_result((m.id, m.action.gift.id, m.from_id, m.out, m.sender_id))

    await client.connect()
    assert await client.is_user_authorized(), "the provisioned key must be signed in"
    cfg = await client(functions.help.GetConfigRequest())
    dcs = {(o.id, o.ip_address, o.port) for o in cfg.dc_options}
    assert (dep["dc_id"], host, int(port)) in dcs, dcs

    me = await client.get_me()
    assert me.id == dep["id"], (me.id, dep["id"])
    assert me.username == "dep_" + transport

    saved = await client(
        functions.payments.GetSavedStarGiftsRequest(peer=types.InputPeerSelf(), offset="", limit=100)
    )
    saved_ids = [g.msg_id for g in saved.gifts]
    assert saved.count == 2 and saved_ids == [before[1]["msg_id"], before[0]["msg_id"]], saved_ids
    assert all(g.from_id.user_id == player["id"] for g in saved.gifts)
    assert all(g.message.text == "hi" for g in saved.gifts)

    # Let Telethon's update loop fetch its state, then push a gift.
    await asyncio.sleep(1.0)
    sent = control(
        base, "POST", "/gifts", {"from": player["id"], "to": dep["id"], "gift_id": catalogue[3]["id"]}
    )
    msg_id, gift_id, raw_from_id, out, sender_id = await asyncio.wait_for(got, 20)
    assert (msg_id, gift_id) == (sent["msg_id"], catalogue[3]["id"])
    # The sender rule: an incoming private message carries no from_id; Telethon names the peer.
    assert raw_from_id is None, raw_from_id
    assert out is False
    assert sender_id == player["id"], (sender_id, player["id"])

    # "Hide my name": still in the chat with the sender, name_hidden set, and the receiver's
    # savedStarGift.from_id names the sender.
    hidden = control(
        base,
        "POST",
        "/gifts",
        {"from": player["id"], "to": dep["id"], "gift_id": catalogue[0]["id"], "hide_name": True},
    )
    r = await client(functions.messages.GetMessagesRequest(id=[types.InputMessageID(hidden["msg_id"])]))
    hm = r.messages[0]
    assert isinstance(hm, types.MessageService) and isinstance(hm.action, types.MessageActionStarGift), hm
    assert hm.action.name_hidden is True
    assert hm.from_id is None and hm.peer_id == types.PeerUser(player["id"]), (hm.from_id, hm.peer_id)
    assert hm.sender_id == player["id"]
    r = await client(
        functions.payments.GetSavedStarGiftRequest(stargift=[types.InputSavedStarGiftUser(hidden["msg_id"])])
    )
    hs = r.gifts[0]
    assert hs.name_hidden is True and hs.from_id == types.PeerUser(player["id"]), hs

    # A free collectible transfer by the deposit account.
    player_peer = await client.get_input_entity(types.PeerUser(player["id"]))
    free = control(
        base, "POST", "/gifts/unique", {"from": player["id"], "to": dep["id"], "gift_id": catalogue[0]["id"]}
    )
    stargift = types.InputSavedStarGiftUser(free["msg_id"])
    no_payment = None
    try:
        await client(
            functions.payments.GetPaymentFormRequest(
                invoice=types.InputInvoiceStarGiftTransfer(stargift=stargift, to_id=player_peer)
            )
        )
    except errors.RPCError as e:
        no_payment = e.message
    assert no_payment == "NO_PAYMENT_NEEDED", no_payment
    upd = await client(functions.payments.TransferStarGiftRequest(stargift=stargift, to_id=player_peer))
    own = [u.message for u in upd.updates if isinstance(u, types.UpdateNewMessage)]
    assert own and own[0].out and isinstance(own[0].action, types.MessageActionStarGiftUnique), own
    assert own[0].action.transferred is True
    assert own[0].sender_id == dep["id"] and own[0].from_id == types.PeerUser(dep["id"]), own[0]
    player_gifts = control(base, "GET", "/accounts/player_" + transport + "/gifts")
    assert any(g["unique"] and g["unique"]["id"] == free["unique_id"] for g in player_gifts), player_gifts

    # The paid transfer flow, then the same form again.
    paid = control(
        base,
        "POST",
        "/gifts/unique",
        {"from": player["id"], "to": dep["id"], "gift_id": catalogue[0]["id"], "transfer_stars": 25},
    )
    stargift = types.InputSavedStarGiftUser(paid["msg_id"])
    required = None
    try:
        await client(functions.payments.TransferStarGiftRequest(stargift=stargift, to_id=player_peer))
    except errors.RPCError as e:
        required = e.message
    assert required == "PAYMENT_REQUIRED", required
    invoice = types.InputInvoiceStarGiftTransfer(stargift=stargift, to_id=player_peer)
    form = await client(functions.payments.GetPaymentFormRequest(invoice=invoice))
    assert isinstance(form, types.payments.PaymentFormStarGift), form
    assert form.invoice.currency == "XTR" and form.invoice.prices[0].amount == 25, form.invoice
    stars_before = control(base, "GET", "/accounts/dep_" + transport + "/stars")["stars"]
    result = await client(functions.payments.SendStarsFormRequest(form_id=form.form_id, invoice=invoice))
    assert isinstance(result, types.payments.PaymentResult), result
    stars_after = control(base, "GET", "/accounts/dep_" + transport + "/stars")["stars"]
    assert stars_before - stars_after == 25, (stars_before, stars_after)
    duplicate = None
    try:
        await client(functions.payments.SendStarsFormRequest(form_id=form.form_id, invoice=invoice))
    except errors.RPCError as e:
        duplicate = e.message
    assert duplicate == "FORM_SUBMIT_DUPLICATE", duplicate
    assert control(base, "GET", "/accounts/dep_" + transport + "/stars")["stars"] == stars_after

    stats = control(base, "GET", "/stats")
    await client.disconnect()
    print(json.dumps({
        "transport": transport,
        "this_dc": cfg.this_dc,
        "me": me.id,
        "saved_count": saved.count,
        "pushed_msg_id": msg_id,
        "pushed_from_id": raw_from_id,
        "pushed_sender_id": sender_id,
        "player": player["id"],
        "hidden_name_hidden": hs.name_hidden,
        "hidden_saved_from_id": hs.from_id.user_id,
        "hidden_sender_id": hm.sender_id,
        "free_transfer_out": own[0].out,
        "no_payment_needed": no_payment,
        "payment_required": required,
        "paid_stars": stars_before - stars_after,
        "second_submit": duplicate,
        "bad_server_salt": stats["bad_server_salt"],
        "calls": stats["calls"],
    }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "full"))
