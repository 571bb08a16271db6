"""The backend's end of every in-process link.

Each charger gets a CSMS-role `Connection` over the real handler table (`csms_v16`), exactly as the
websocket server gives it one, so every frame is encoded, schema-checked and parsed on both ends.
Commands the services' events ask for (RemoteStopTransaction, ReserveNow, CancelReservation) go out
as `ChargerRegistry` sends them, but one virtual instant later rather than inside the handler that
raised the event, as a task would on the socket.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import simpy

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.ocpp import csms_v16
from chargeshare.ocpp.connection import Connection, Outcome
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.events import BookingEnded, EnergyLimitReached, ReservationDue

SUPPORTED_VERSIONS = ("1.6",)


class NotSupportedInDes(ValueError):
    """Something a run asks for that the discrete-event engine cannot model; the message says what."""


class ChargerEnd(Protocol):
    """What the central system needs of the charger on the other end of a link."""

    cp_id: str

    def receive(self, text: str) -> str | None: ...


class DesCentral:
    def __init__(self, env: simpy.Environment, app: App) -> None:
        self.env = env
        self.app = app
        self.links: dict[str, tuple[Connection, ChargerEnd]] = {}
        self.frames = 0  # every frame either way, replies included
        self._stops_sent: set[tuple[str, int]] = set()
        app.bus.subscribe(EnergyLimitReached, self._on_energy_limit)
        app.bus.subscribe(ReservationDue, self._on_reservation_due)
        app.bus.subscribe(BookingEnded, self._on_booking_ended)

    # ---- the link ------------------------------------------------------------------------------
    def attach(self, charger: ChargerEnd, version: str) -> None:
        if version not in SUPPORTED_VERSIONS:
            raise NotSupportedInDes(
                f"the DES engine speaks OCPP {', '.join(SUPPORTED_VERSIONS)}, not {version}"
            )
        conn = Connection(version, csms_v16.handlers(self.app.charging, charger.cp_id), id_prefix="cs-")
        self.links[charger.cp_id] = (conn, charger)

    def detach(self, cp_id: str) -> None:
        """The link dropped: the backend notices at once, as the server does on a closed socket."""
        if self.links.pop(cp_id, None) is not None:
            with contextlib.suppress(NotFound):
                self.app.charging.disconnected(cp_id)

    def deliver(self, cp_id: str, text: str) -> str | None:
        """A frame from the charger; returns our reply frame (None for a response to our own call)."""
        link = self.links.get(cp_id)
        if link is None:
            return None
        self.frames += 1
        received = link[0].receive(text)
        if received.reply is not None:
            self.frames += 1
        return received.reply

    def command(self, cp_id: str, action: str, payload: dict[str, Any]) -> Outcome:
        """Send a command to a linked charger; the answer comes back in the same instant."""
        link = self.links.get(cp_id)
        if link is None:
            return Outcome("", action, error="NotConnected")
        conn, charger = link
        uid, text = conn.call(action, payload, self.env.now)
        self.frames += 1
        reply = charger.receive(text)
        if reply is None:
            conn.tick(self.env.now + conn.call_timeout_s)
            return Outcome(uid, action, error="Timeout")
        self.frames += 1
        outcomes = conn.receive(reply).outcomes
        return outcomes[0] if outcomes else Outcome(uid, action, error="NoAnswer")

    def later(self, fn: Callable[[], object]) -> None:
        """Run `fn` one virtual instant from now, after whatever is running finishes."""
        event = self.env.timeout(0)

        def run(_event: simpy.Event) -> None:
            fn()

        event.callbacks.append(run)

    # ---- what the services' events ask of chargers ---------------------------------------------
    def _on_energy_limit(self, event: EnergyLimitReached) -> None:
        key = (event.charge_point_id, event.transaction_id)
        if event.charge_point_id not in self.links or key in self._stops_sent:
            return
        self._stops_sent.add(key)
        payload = {"transactionId": event.transaction_id}
        self.later(partial(self.command, event.charge_point_id, "RemoteStopTransaction", payload))

    def _on_reservation_due(self, event: ReservationDue) -> None:
        if event.charge_point_id not in self.links:
            return  # offline: the booking stands, and the backend alone refuses other drivers
        payload = {
            "connectorId": event.connector_no,
            "expiryDate": format_ts(event.expires_at),
            "idTag": event.id_tag,
            "reservationId": event.booking_id,
        }

        def reserve() -> None:
            outcome = self.command(event.charge_point_id, "ReserveNow", payload)
            if outcome.ok and outcome.payload is not None:
                self.app.bookings.reservation_answered(event.booking_id, str(outcome.payload.get("status")))

        self.later(reserve)

    def _on_booking_ended(self, event: BookingEnded) -> None:
        if event.charge_point_id not in self.links or event.reservation not in ("sent", "accepted"):
            return
        payload = {"reservationId": event.booking_id}
        self.later(partial(self.command, event.charge_point_id, "CancelReservation", payload))
