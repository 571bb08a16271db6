"""OCPP over WebSockets: one sans-I/O Connection per charger, and the registry of who is connected.

Commands to chargers go through the registry, which knows each live link and awaits the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.websockets import WebSocket, WebSocketDisconnect

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.ocpp import SUPPORTED_SUBPROTOCOLS, VERSION_OF_SUBPROTOCOL, csms_v16, csms_v201
from chargeshare.ocpp.connection import Connection, Handler, Outcome
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.events import BookingEnded, EnergyLimitReached, ReservationDue

log = logging.getLogger(__name__)


def choose_subprotocol(offered: list[str]) -> str | None:
    """Our preference order, among what the charger offers."""
    return next((p for p in SUPPORTED_SUBPROTOCOLS if p in offered), None)


Direction = Literal["in", "out"]
FrameTap = Callable[[str, Direction, str], None]
"""Sees every frame on every link, as text: (charge point id, "in" from the charger | "out" to it, frame).
Certification's wire log and replay traces are taps; a tap must be quick and must not raise."""


@dataclass
class ChargerLink:
    cp_id: str
    version: str
    websocket: WebSocket
    connection: Connection
    waiting: dict[str, asyncio.Future[Outcome]] = field(default_factory=dict)


class ChargerRegistry:
    def __init__(self, app: App, *, call_timeout_s: float = 30.0) -> None:
        self.app = app
        self.call_timeout_s = call_timeout_s
        self.links: dict[str, ChargerLink] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stops_sent: set[tuple[str, int]] = set()
        self._taps: list[FrameTap] = []
        app.bus.subscribe(EnergyLimitReached, self._on_energy_limit)
        app.bus.subscribe(ReservationDue, self._on_reservation_due)
        app.bus.subscribe(BookingEnded, self._on_booking_ended)

    def add_tap(self, tap: FrameTap) -> Callable[[], None]:
        """Watch every frame; returns the function that stops watching."""
        self._taps.append(tap)
        return lambda: self._taps.remove(tap)

    def _tap(self, cp_id: str, direction: Direction, text: str) -> None:
        for tap in self._taps:
            try:
                tap(cp_id, direction, text)
            except Exception:
                log.exception("a frame tap failed; the frame itself is unaffected")

    def _handlers(self, cp_id: str, version: str) -> dict[str, Handler]:
        if version == "1.6":
            return csms_v16.handlers(self.app.charging, cp_id)
        return csms_v201.handlers(self.app.charging, cp_id)

    async def serve(self, ws: WebSocket, cp_id: str) -> None:
        subprotocol = choose_subprotocol(list(ws.scope.get("subprotocols", [])))
        if subprotocol is None:
            await ws.close(code=1002, reason="offer ocpp1.6 or ocpp2.0.1")
            return
        refused = self.app.marketplace.authenticate_charger(
            cp_id, ws.headers.get("authorization"), allow_unknown=self.app.charging.allow_unknown
        )
        if refused is not None:
            log.warning("refused charger %r: %s", cp_id, refused)
            await ws.close(code=1008, reason="not authorised")  # before accept: HTTP 403
            return
        self._loop = asyncio.get_running_loop()
        version = VERSION_OF_SUBPROTOCOL[subprotocol]
        await ws.accept(subprotocol=subprotocol)
        previous = self.links.get(cp_id)
        if previous is not None:  # a reconnect replaces a stale link
            await previous.websocket.close(code=1000, reason="replaced by a new connection")
        link = ChargerLink(
            cp_id, version, ws, Connection(version, self._handlers(cp_id, version), id_prefix="cs-")
        )
        self.links[cp_id] = link
        try:
            while True:
                text = await ws.receive_text()
                self._tap(cp_id, "in", text)
                received = link.connection.receive(text)
                if received.reply is not None:
                    self._tap(cp_id, "out", received.reply)
                    await ws.send_text(received.reply)
                for outcome in received.outcomes:
                    fut = link.waiting.pop(outcome.unique_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(outcome)
        except WebSocketDisconnect:
            pass
        finally:
            if self.links.get(cp_id) is link:
                del self.links[cp_id]
                for fut in link.waiting.values():
                    if not fut.done():
                        fut.set_result(Outcome("", "", error="Disconnected"))
                with contextlib.suppress(NotFound):
                    self.app.charging.disconnected(cp_id)

    async def call(self, cp_id: str, action: str, payload: dict[str, Any]) -> Outcome:
        """Send a command to a connected charger and wait (bounded) for its answer."""
        link = self.links.get(cp_id)
        if link is None:
            return Outcome("", action, error="NotConnected")
        loop = asyncio.get_running_loop()
        uid, text = link.connection.call(action, payload, loop.time())
        fut: asyncio.Future[Outcome] = loop.create_future()
        link.waiting[uid] = fut
        self._tap(cp_id, "out", text)
        await link.websocket.send_text(text)
        try:
            return await asyncio.wait_for(fut, self.call_timeout_s)
        except TimeoutError:
            link.waiting.pop(uid, None)
            link.connection.tick(loop.time() + self.call_timeout_s)
            return Outcome(uid, action, error="Timeout")

    def _on_energy_limit(self, event: EnergyLimitReached) -> None:
        link = self.links.get(event.charge_point_id)
        key = (event.charge_point_id, event.transaction_id)
        if link is None or self._loop is None or key in self._stops_sent:
            return
        self._stops_sent.add(key)
        if link.version == "1.6":
            coro = self.call(
                event.charge_point_id, "RemoteStopTransaction", {"transactionId": event.transaction_id}
            )
        else:
            charger_tx = self.app.charging.charger_tx_id(event.transaction_id)
            if charger_tx is None:
                log.warning("no 2.0.1 transaction id for session %s; cannot stop it", event.transaction_id)
                return
            coro = self.call(event.charge_point_id, "RequestStopTransaction", {"transactionId": charger_tx})
        self._loop.call_soon_threadsafe(self._spawn, coro)

    def _on_reservation_due(self, event: ReservationDue) -> None:
        link = self.links.get(event.charge_point_id)
        if link is None or self._loop is None:
            return  # offline: the booking stands, and the backend alone refuses other drivers
        if link.version == "1.6":
            payload: dict[str, Any] = {
                "connectorId": event.connector_no,
                "expiryDate": format_ts(event.expires_at),
                "idTag": event.id_tag,
                "reservationId": event.booking_id,
            }
        else:
            payload = {
                "id": event.booking_id,
                "expiryDateTime": format_ts(event.expires_at),
                "idToken": {"idToken": event.id_tag, "type": "ISO14443"},
                "evseId": event.connector_no,
            }
        self._loop.call_soon_threadsafe(
            self._spawn, self._reserve(event.charge_point_id, event.booking_id, payload)
        )

    async def _reserve(self, cp_id: str, booking_id: int, payload: dict[str, Any]) -> None:
        outcome = await self.call(cp_id, "ReserveNow", payload)
        if outcome.ok and outcome.payload is not None:
            self.app.bookings.reservation_answered(booking_id, str(outcome.payload.get("status")))
        else:
            log.warning("ReserveNow for booking %s to %s got no answer: %s", booking_id, cp_id, outcome.error)

    def _on_booking_ended(self, event: BookingEnded) -> None:
        link = self.links.get(event.charge_point_id)
        if link is None or self._loop is None or event.reservation not in ("sent", "accepted"):
            return
        coro = self.call(event.charge_point_id, "CancelReservation", {"reservationId": event.booking_id})
        self._loop.call_soon_threadsafe(self._spawn, coro)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
