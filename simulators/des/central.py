"""The backend's end of every in-process link.

Each charger gets a CSMS-role `Connection` over the real handler table of its OCPP version
(`chargeshare.ocpp.csms`: `csms_v16`, or `csms_v201` for 2.0.1 and 2.1), as the websocket server
gives it one, so every frame is encoded and
parsed on both ends and schema-checked by the end that receives it (both ends are ours, so neither
re-checks what it sends). What the services' events ask of chargers (stop at the energy limit,
reserve, cancel a reservation, smart charging settings, what a charger is owed when it connects) is
decided by the same `CommandPolicy` as `ChargerRegistry` uses, and its orders run one virtual
instant later rather than inside the handler that raised the event, as a task would on the socket.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

import simpy

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.ocpp import VERSIONS, OcppVersion, csms
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.command_policy import CommandPolicy
from chargeshare.ocpp.connection import Connection
from chargeshare.ocpp.frames import LocalProtocolError
from chargeshare.ocpp.scripts import Order, drive
from chargeshare.services.events import Event
from chargeshare.services.owed_commands import due_at_connect

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
        # The DES charger models no sampling settings to read or change: metering is left as is.
        self.policy = CommandPolicy(
            self,
            bookings=app.bookings,
            charging=app.charging,
            smart=app.smart,
            grid=app.grid,
            reports=app.reports,
            metering=None,
            exports=app.v2g,
            dues=partial(due_at_connect, app.store, app.bookings, app.charging, app.smart, app.v2g),
        )
        for kind in self.policy.events:
            app.bus.subscribe(kind, self._on_event)

    # ---- the link ------------------------------------------------------------------------------
    def attach(self, charger: ChargerEnd, version: OcppVersion) -> None:
        if version not in SUPPORTED_VERSIONS:
            raise NotSupportedInDes(f"the DES engine speaks OCPP {SUPPORTED_VERSIONS}, not {version}")
        handlers = csms.handlers(version, self.app.charging, charger.cp_id, self.app.reports)
        # The charger checks what we send. Its answers to our calls (in `send`) are signs of life, as
        # on the server.
        conn = Connection(version, handlers, id_prefix="cs-", check_own=False, answered=handlers.sign_of_life)
        self.links[charger.cp_id] = (conn, charger)
        for order in self.policy.connected(charger.cp_id):
            self._execute(order)

    def detach(self, cp_id: str) -> None:
        """The link dropped: the backend notices at once, as the server does on a closed socket."""
        if self.links.pop(cp_id, None) is not None:
            self.policy.disconnected(cp_id)
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

    # ---- what the services' events ask of chargers (chargeshare/ocpp/command_policy.py) ---------
    def reachable(self, cp_id: str) -> bool:
        return cp_id in self.links

    def linked_here(self, cp_id: str) -> bool:
        return cp_id in self.links

    def _on_event(self, event: Event) -> None:
        for order in self.policy.decide(event):
            self._execute(order)

    def _execute(self, order: Order) -> None:
        """Every order one virtual instant later: after the answer being made, as on the socket."""
        self.later(partial(self.run, order))

    def run(self, order: Order) -> None:
        """Run an order's script: its commands over the link, the services called inline."""
        drive(
            order.script,
            partial(self.send, order.charge_point_id),
            lambda effect: effect.fn(*effect.args),
            self._execute,
        )
