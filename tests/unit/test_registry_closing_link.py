"""A link this process has closed (an eviction: the charger connected through another process) stays
in the registry until the charger's own close arrives. Meanwhile a command for it is a typed "not
connected", not an exception, and the charger connecting here again replaces it."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket

from chargeshare.bootstrap import App
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import commands as cmd
from tests.conftest import add_charger
from tests.waiting import eventually


class Peer:
    """The charger's end of one ASGI WebSocket: what it will send, and what it was sent."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self.inbox.put_nowait({"type": "websocket.connect"})
        scope: dict[str, Any] = {
            "type": "websocket",
            "path": "/ocpp/CP1",
            "headers": [],
            "subprotocols": ["ocpp1.6"],
        }
        self.websocket = WebSocket(scope, self.inbox.get, self._send)

    async def _send(self, message: Message) -> None:
        self.sent.append(message)

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


async def test_a_closed_link_still_listed_answers_not_connected_and_yields_to_a_reconnect(app: App) -> None:
    add_charger(app, "CP1")
    registry = ChargerRegistry(app, call_timeout_s=1)
    await registry.start()
    old = Peer()
    serving_old = asyncio.create_task(registry.serve(old.websocket, "CP1"))
    await eventually(lambda: "CP1" in registry.links, "the first link served")
    await old.websocket.close(code=1000, reason="connected through another server")  # as `evict` does

    result = await registry.send("CP1", cmd.Reset(False))
    assert isinstance(result, cmd.NotConnected)

    new = Peer()
    serving_new = asyncio.create_task(registry.serve(new.websocket, "CP1"))
    await eventually(lambda: "websocket.accept" in new.types(), "the reconnect accepted")
    await eventually(lambda: registry.links["CP1"].websocket is new.websocket, "the new link listed")
    assert not serving_new.done()

    for peer in (old, new):
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(asyncio.gather(serving_old, serving_new), 5)
    await registry.stop()
