"""The backend's end of every in-process link.

Each charger gets a CSMS-role `Connection` over the real handler table of its OCPP version
(`chargeshare.ocpp.csms`: `csms_v16`, or `csms_v201` for 2.0.1 and 2.1), as the websocket server
gives it one, so every frame is encoded and
parsed on both ends and schema-checked by the end that receives it (both ends are ours, so neither
re-checks what it sends). Commands the services' events ask for (stop at the energy
limit, reserve, cancel a reservation) are the registry's typed commands (`chargeshare.ocpp.commands`)
sent as `ChargerRegistry` sends them, but one virtual instant later rather than inside the handler
that raised the event, as a task would on the socket.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, TypeVar

import simpy

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.ocpp import VERSIONS, csms
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import grid_limits as ocpp_grid
from chargeshare.ocpp import smart_charging as ocpp_smart
from chargeshare.ocpp.connection import Connection
from chargeshare.ocpp.frames import LocalProtocolError
from chargeshare.services.events import (
    BookingEnded,
    ChargerBooted,
    EnergyLimitReached,
    GridLimitsDue,
    OverrideDue,
    ReservationDue,
    SmartSettingsChanged,
)

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = VERSIONS
T = TypeVar("T")


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
        # The smart charging regulations: the owner's settings on boot and on change, a driver's
        # override once the start is answered (as the live registry sends them).
        app.bus.subscribe(ChargerBooted, self._on_booted)
        app.bus.subscribe(SmartSettingsChanged, self._on_smart_settings_changed)
        app.bus.subscribe(OverrideDue, self._on_override_due)
        app.bus.subscribe(GridLimitsDue, self._on_grid_limits_due)

    # ---- the link ------------------------------------------------------------------------------
    def attach(self, charger: ChargerEnd, version: str) -> None:
        if version not in SUPPORTED_VERSIONS:
            raise NotSupportedInDes(f"the DES engine speaks OCPP {SUPPORTED_VERSIONS}, not {version}")
        handlers = csms.handlers(version, self.app.charging, charger.cp_id, self.app.reports)
        conn = Connection(version, handlers, id_prefix="cs-", check_own=False)  # the charger checks
        self.links[charger.cp_id] = (conn, charger)
        with contextlib.suppress(NotFound):  # site and feeder limits, as last decided, again
            self._on_grid_limits_due(self.app.grid.limits_due(charger.cp_id))

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

    def send(self, cp_id: str, command: cmd.Command[T]) -> cmd.CommandResult[T]:
        """A typed command in the charger's own version; its answer comes back in the same instant."""
        link = self.links.get(cp_id)
        if link is None:
            return cmd.NotConnected()
        conn, charger = link
        try:
            payload = command.payload(conn.version, self.app.charging.charger_tx_id)
        except cmd.CannotSay as exc:
            return cmd.NotApplicable(str(exc))
        try:
            _uid, text = conn.call(command.action(conn.version), payload, self.env.now)
        except LocalProtocolError as exc:  # breaks the version's schema: not sent, as the server does
            return cmd.Invalid(f"not sent: {exc}")
        self.frames += 1
        reply = charger.receive(text)
        if reply is None:
            conn.tick(self.env.now + conn.call_timeout_s)
            return cmd.Timeout(conn.call_timeout_s)
        self.frames += 1
        outcomes = conn.receive(reply).outcomes
        answer = outcomes[0] if outcomes else None
        if answer is None or answer.error is not None or answer.payload is None:
            return cmd.CallError((answer and answer.error) or "GenericError")
        return command.result(conn.version, answer.payload)

    def later(self, fn: Callable[[], object]) -> None:
        """Run `fn` one virtual instant from now, after whatever is running finishes."""
        event = self.env.timeout(0)

        def run(_event: simpy.Event) -> None:
            fn()

        event.callbacks.append(run)

    # ---- what the services' events ask of chargers ---------------------------------------------
    def _logged(self, cp_id: str, command: cmd.Command[Any]) -> None:
        result = self.send(cp_id, command)
        if not isinstance(result, cmd.Done):
            log.info("%s to %s: %s", type(command).__name__, cp_id, result)

    def _on_energy_limit(self, event: EnergyLimitReached) -> None:
        key = (event.charge_point_id, event.transaction_id)
        if event.charge_point_id not in self.links or key in self._stops_sent:
            return
        self._stops_sent.add(key)
        self.later(partial(self._logged, event.charge_point_id, cmd.StopCharging(event.transaction_id)))

    def _on_reservation_due(self, event: ReservationDue) -> None:
        if event.charge_point_id not in self.links:
            return  # offline: the booking stands, and the backend alone refuses other drivers
        command = cmd.Reserve(event.booking_id, event.connector_no, event.id_tag, event.expires_at)

        def reserve() -> None:
            result = self.send(event.charge_point_id, command)
            if isinstance(result, cmd.Done | cmd.Rejected):
                self.app.bookings.reservation_answered(command.reservation_id, result.status.value)

        self.later(reserve)

    def _on_booking_ended(self, event: BookingEnded) -> None:
        if event.charge_point_id not in self.links or event.reservation not in ("sent", "accepted"):
            return
        command = cmd.CancelReservation(event.booking_id)

        def cancel() -> None:
            result = self.send(event.charge_point_id, command)
            # As the live registry: once the charger holds it no more, that is recorded.
            if isinstance(result, cmd.Done | cmd.Rejected):
                self.app.bookings.reservation_cancelled(event.booking_id)

        self.later(cancel)

    def _on_booted(self, event: ChargerBooted) -> None:
        cp_id = event.charge_point_id
        if cp_id not in self.links:
            return

        def configure() -> None:
            with contextlib.suppress(NotFound):
                settings = self.app.smart.settings_due(cp_id)
                if settings is not None:
                    self._send_settings(cp_id, settings)

        self.later(configure)

    def _on_smart_settings_changed(self, event: SmartSettingsChanged) -> None:
        if event.charge_point_id in self.links:
            self.later(partial(self._send_settings, event.charge_point_id, event.settings))

    def _send_settings(self, cp_id: str, settings: SmartSettings) -> None:
        for command in ocpp_smart.settings_commands(settings):
            self._logged(cp_id, command)

    def _on_override_due(self, event: OverrideDue) -> None:
        if event.charge_point_id not in self.links:
            return  # offline: a charger that lost its link keeps running without the override
        command = ocpp_smart.override_command(event.connector_no, event.session_id, event.rating_w)
        self.later(partial(self._logged, event.charge_point_id, command))

    # ---- site and feeder limits (chargeshare/ocpp/grid_limits.py) -------------------------------
    def _on_grid_limits_due(self, event: GridLimitsDue | None) -> None:
        if event is None or event.charge_point_id not in self.links:
            return  # offline: told on connecting
        for command in ocpp_grid.limit_commands(event.limits_w, event.at):
            self.later(partial(self._logged, event.charge_point_id, command))
