"""Telethon (PyPI, TL layer 229) against tgsim: an independent MTProto client.

Usage: python3 fidelity.py CONTROL_URL [full|intermediate|abridged|obfuscated]

Creates a deposit account and a player through the control API, connects Telethon with a
StringSession carrying DC id, address, port and auth key, then checks help.getConfig, get_me,
payments.getSavedStarGifts and a pushed gift update. Prints one JSON object; exits non-zero on
any failure.
"""

import asyncio
import base64
import ipaddress
import json
import struct
import sys
import urllib.request

from telethon import TelegramClient, connection, events, functions, types
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
            got.set_result((m.id, m.action.gift.id, m.from_id.user_id if m.from_id else None))

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
    msg_id, gift_id, from_id = await asyncio.wait_for(got, 20)
    assert (msg_id, gift_id, from_id) == (sent["msg_id"], catalogue[3]["id"], player["id"])

    stats = control(base, "GET", "/stats")
    await client.disconnect()
    print(json.dumps({
        "transport": transport,
        "this_dc": cfg.this_dc,
        "me": me.id,
        "saved_count": saved.count,
        "pushed_msg_id": msg_id,
        "bad_server_salt": stats["bad_server_salt"],
        "calls": stats["calls"],
    }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "full"))
