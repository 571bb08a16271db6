"""WS /ws/events?token=...: state changes pushed to a signed-in driver's or host's app as they happen
(booking confirmed or ended, charging started, meter ticks with kWh, kW and cost, stopped, receipt
ready, charger offline or back), so apps never poll.

The first message is `{"type": "hello", ...}`; a bad or lapsed token gets `{"type": "error", ...}`
and close code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from chargeshare.domain.errors import Unauthorized
from chargeshare.entrypoints.api.deps import AppDep, HubDep
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute

CLOSE_UNAUTHORIZED = 4401  # 4000-4999: application codes; 401 as in HTTP


router = APIRouter(tags=["live push"], route_class=StrictJsonRoute)


@router.websocket("/ws/events")
async def events(app: AppDep, hub: HubDep, ws: WebSocket, token: str = "") -> None:
    await ws.accept()
    try:
        principal = app.auth.verify(token)
    except Unauthorized as exc:
        await _refuse(ws, str(exc))
        return
    with hub.listen(principal) as listener:
        await ws.send_json(
            {
                "type": "hello",
                "role": principal.role.value,
                "account_id": principal.account_id,
                "driver_id": principal.driver_id,
                "host_id": principal.host_id,
            }
        )
        closed = asyncio.create_task(_until_closed(ws))
        try:
            while not closed.done():
                getter = asyncio.create_task(listener.queue.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                try:
                    app.auth.verify(token)  # a token that lapsed while connected ends the stream
                except Unauthorized as exc:
                    await _refuse(ws, str(exc))
                    break
                await ws.send_json(getter.result())
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await closed


async def _until_closed(ws: WebSocket) -> None:
    """Apps send nothing; reading is how we notice they went away. Whatever they do send, text or
    binary, is read and dropped."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass


async def _refuse(ws: WebSocket, detail: str) -> None:
    await ws.send_json({"type": "error", "error": "unauthorized", "detail": detail})
    await ws.close(CLOSE_UNAUTHORIZED, reason=detail[:120])
