"""OCPP over WebSockets: one sans-I/O Connection per charger, and the registry of who is connected.

Commands to chargers go through the registry, which knows each live link (and its OCPP version) and
awaits the answer: typed commands (`send`, or the named methods such as `remote_start`, `reset`,
`get_settings`) return a typed result; `call` sends a raw action and returns the raw outcome. With a
`CommandRouter` (several server processes sharing Redis), a command for a charger whose link another
process holds is carried there and answered from there (adapters/command_routing.py). What the
backend sends by itself, on domain events and as a charger connects, is decided by the command
policy (chargeshare/ocpp/command_policy.py); the registry runs its orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from chargeshare.adapters.charger_ownership import Owner
from chargeshare.adapters.command_routing import MOVED, NOT_CONNECTED, UNREACHABLE, CommandRouter, Superseded
from chargeshare.bootstrap import App
from chargeshare.domain.errors import Busy, NotFound
from chargeshare.entrypoints.tls_scope import client_certificate
from chargeshare.ocpp import SUPPORTED_SUBPROTOCOLS, VERSION_OF_SUBPROTOCOL, OcppVersion, csms
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.boot_gate import GatedHandlers
from chargeshare.ocpp.command_policy import DISCONNECTED_BEFORE_ANSWER, CommandPolicy
from chargeshare.ocpp.connection import CALL_TIMEOUT_S, CallRejected, Connection, Handler, Outcome
from chargeshare.ocpp.frames import CALL, LocalProtocolError, RemoteProtocolError, check_payload
from chargeshare.ocpp.metering import MeteringPolicy
from chargeshare.ocpp.scripts import Effect, Order, Send
from chargeshare.services.events import ChargerOffline, Event
from chargeshare.services.owed_commands import OwedSince, commands_owed, due_at_connect

if TYPE_CHECKING:
    from chargeshare.entrypoints.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
# However fast a simulation's clock runs, a round of `resend_owed` is one query at most this often.
MIN_RESEND_ROUND_REAL_S = 0.05


def choose_subprotocol(offered: list[str]) -> str | None:
    """Our preference order (the newest version first), among what the charger offers, whatever
    order it offers them in."""
    return next((p for p in SUPPORTED_SUBPROTOCOLS if p in offered), None)


# RFC 6455 7.4.1: the close code for "a type of data it cannot accept (e.g., an endpoint that
# understands only text data MAY send this if it receives a binary message)".
UNSUPPORTED_DATA = 1003


def _arrived_later(epoch: int | None, than: int | None) -> bool:
    return epoch is not None and than is not None and epoch > than


async def _refuse_credentials(ws: WebSocket) -> None:
    """HTTP 401 with a Basic challenge, as OCPP's security profiles prescribe for a charger whose
    credentials (or id) are not accepted; a server without the ASGI denial-response extension can
    only refuse the upgrade with 403."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        challenge = {"WWW-Authenticate": 'Basic realm="chargeshare", charset="UTF-8"'}
        await ws.send_denial_response(Response(status_code=401, headers=challenge))
    else:
        await ws.close(code=1008, reason="not authorised")


async def _receive_text(ws: WebSocket) -> str | None:
    """The next text frame; None for a binary one. OCPP-J messages are JSON text, so a charger sending
    binary speaks something else: its link is closed with 1003 rather than its bytes guessed at (or
    ignored, leaving it waiting for answers that never come). Raises WebSocketDisconnect once the
    charger has gone."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text: str | None = message.get("text")
    return text


Direction = Literal["in", "out"]
FrameTap = Callable[[str, Direction, str], None]
"""Sees every frame on every link, as text: (charge point id, "in" from the charger | "out" to it, frame).
Certification's wire log and replay traces are taps; a tap must be quick and must not raise."""


@dataclass
class ChargerLink:
    cp_id: str
    version: OcppVersion
    websocket: WebSocket
    connection: Connection
    waiting: dict[str, asyncio.Future[Outcome]] = field(default_factory=dict)
    owner: Owner | None = None  # this link's ownership record, when processes share Redis
    arrived_epoch: int | None = None  # drawn as the connection arrived (see `ChargerOwnership`)
    superseded: bool = False  # a connection made after this one held the charger when it claimed
    # Orders a frame's handling decided, run once its answer has left (and dropped with the link).
    after_reply: list[Order] = field(default_factory=list)


# What sending on a link raises once it is closing: Starlette's RuntimeError after our own close,
# WebSocketDisconnect (or the server's OSError) once the charger has gone.
SEND_FAILURES = (RuntimeError, WebSocketDisconnect, OSError)

ROUTER_READY_S = 10.0  # a process serves only once it hears commands routed to it
ROUTE_ATTEMPTS = 2  # a charger may move once while a command is on its way
OLDEST_EPOCH = 1  # below every epoch drawn (those are at least Redis's clock in microseconds)
# An Outcome error: the call's payload broke the schema on our side, so it was never sent.
NOT_SENT_INVALID = "NotSentInvalid"


class ChargerRegistry:
    def __init__(
        self, app: App, *, call_timeout_s: float = CALL_TIMEOUT_S, router: CommandRouter | None = None
    ) -> None:
        self.app = app
        self.call_timeout_s = call_timeout_s
        self.router = router
        self.links: dict[str, ChargerLink] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._router_task: asyncio.Task[None] | None = None
        self._resend_task: asyncio.Task[None] | None = None
        self._evictions: dict[str, int] = {}  # evictions heard for links still claiming
        self._taps: list[FrameTap] = []
        self.metrics: Metrics | None = None  # `serve`'s Prometheus metrics, when set
        # The process is stopping (a restart, a deploy, a scale-in): the links it closes now are
        # handed over, not lost. See `drain`.
        self.draining = False
        self._owed = OwedSince(timedelta(seconds=app.config.rules.command_resend_after_s))
        rules = app.config.rules
        self.policy = CommandPolicy(
            self,
            bookings=app.bookings,
            charging=app.charging,
            smart=app.smart,
            grid=app.grid,
            reports=app.reports,
            metering=MeteringPolicy(
                rules.meter_sample_interval_s,
                rules.meter_quarter_interval_s,
                # Retries over well before the lost-stop sweep would close the session without them.
                retry_within_s=rules.lost_stop_grace_s * 2 // 3,
            )
            if rules.configure_metering
            else None,
            exports=app.v2g,
            dues=partial(due_at_connect, app.store, app.bookings, app.charging, app.smart, app.v2g),
        )
        for kind in self.policy.events:
            app.bus.subscribe(kind, self._on_event)
        app.bus.subscribe(ChargerOffline, self._on_charger_offline)

    async def start(self) -> None:
        """Send from this loop what is decided on other threads (a booking's ReserveNow) even before
        any charger connects; with a router, listen for commands from other processes (returns once
        subscribed)."""
        self._loop = asyncio.get_running_loop()
        if self._resend_task is None:
            self._resend_task = asyncio.create_task(self._resend_owed_rounds())
        if self.router is not None and self._router_task is None:
            ready = asyncio.Event()
            self._router_task = asyncio.create_task(self.router.run(self, ready))
            await asyncio.wait_for(ready.wait(), timeout=ROUTER_READY_S)

    def drain(self) -> None:
        """From now on a link that closes is not the charger going offline: the process is stopping
        and its chargers reconnect (to another process, or to this one restarted). Their ownership
        records are released so commands wait for the new link; the host is told nothing, and a
        charger that never comes back is marked offline by the watchdog once it has been silent."""
        self.draining = True

    async def stop(self) -> None:
        if self._resend_task is not None:
            self._resend_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resend_task
            self._resend_task = None
        if self._router_task is not None:
            self._router_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._router_task
            self._router_task = None

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

    def _handlers(self, cp_id: str, version: OcppVersion, credentials: str) -> dict[str, Handler]:
        return csms.handlers(version, self.app.charging, cp_id, self.app.reports, credentials=credentials)

    def _certificate_problem(self, ws: WebSocket, cp_id: str) -> tuple[str | None, bool]:
        """Security profile 3: a client certificate the TLS stack verified against our CA must name
        this charger and not be revoked; then it stands in for the password. (reason refused, certified)"""
        der = client_certificate(ws.scope)
        if der is None:
            return None, False
        if self.app.ca is None:
            return "a client certificate, but no certificate authority is configured", False
        check = self.app.ca.check_client(cp_id, der)
        return (None, True) if check.ok else (check.reason, False)

    async def serve(self, ws: WebSocket, cp_id: str) -> None:
        subprotocol = choose_subprotocol(list(ws.scope.get("subprotocols", [])))
        if subprotocol is None:
            await ws.close(code=1002, reason="offer ocpp1.6, ocpp2.0.1 or ocpp2.1")
            return
        # Drawn first: the order of epochs is the order connections arrived in, whatever the time
        # each then takes to be authenticated and claimed.
        arrived_epoch = None if self.router is None else await self.router.arrived(cp_id)
        # Off the event loop: checking a password is deliberately slow (PBKDF2), and a fleet
        # reconnecting at once must not stall every other charger's frames behind it.
        refused, certified = self._certificate_problem(ws, cp_id)
        credentials = ""
        if refused is None:
            admission = await asyncio.to_thread(
                self.app.marketplace.admit_charger,
                cp_id,
                ws.headers.get("authorization"),
                allow_unknown=self.app.charging.allow_unknown,
                certified=certified,
            )
            refused, credentials = admission.refused, admission.credentials
        if refused is not None:
            log.warning("refused charger %.64r: %s", cp_id, refused)  # the id is anyone's URL: cut short
            await _refuse_credentials(ws)
            return
        self._loop = asyncio.get_running_loop()
        version = VERSION_OF_SUBPROTOCOL[subprotocol]
        await ws.accept(subprotocol=subprotocol)
        previous = self.links.get(cp_id)
        if previous is not None and _arrived_later(previous.arrived_epoch, arrived_epoch):
            # Our link was overtaken here: the charger's later connection got in first.
            await ws.close(code=1000, reason="connected again since")
            return
        if previous is not None:  # a reconnect replaces a stale link
            # It may be closing already (evicted, its charger's close not yet heard).
            with contextlib.suppress(*SEND_FAILURES):
                await previous.websocket.close(code=1000, reason="replaced by a new connection")
        handlers = self._handlers(cp_id, version, credentials)
        # Its answers to our calls are signs of life as its own frames are, judged by its link's boot
        # gate (a certification bench's table has none).
        answered = handlers.sign_of_life if isinstance(handlers, GatedHandlers) else None
        link = ChargerLink(
            cp_id,
            version,
            ws,
            Connection(version, handlers, id_prefix="cs-", answered=answered),
            arrived_epoch=arrived_epoch,
        )
        self.links[cp_id] = link
        if self.router is not None:
            await self._claim(link)
        for order in self.policy.connected(cp_id):
            self._spawn(self.run(order))
        try:
            while True:
                text = await _receive_text(ws)
                if text is None:
                    log.warning("closed %r's link: it sent a binary frame", cp_id)
                    await ws.close(code=UNSUPPORTED_DATA, reason="OCPP-J frames are text")
                    return
                self._tap(cp_id, "in", text)
                began = time.perf_counter()
                # Handlers commit without waiting for the disk; one shared fsync covers every reply
                # waiting at the time, and no reply leaves before it (see adapters/durability.py).
                with self.app.durability.deferred():
                    received = link.connection.receive(text)
                if received.reply is not None:
                    await self.app.durability.flushed()
                    self._tap(cp_id, "out", received.reply)
                    await ws.send_text(received.reply)
                    if self.metrics is not None:
                        self.metrics.answered(received.action or "(unreadable)", received.reply, began)
                    due, link.after_reply = link.after_reply, []
                    for order in due:
                        self._spawn(self.run(order))
                for outcome in received.outcomes:
                    fut = link.waiting.pop(outcome.unique_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(outcome)
        except WebSocketDisconnect:
            pass
        finally:
            if self.links.get(cp_id) is link:
                del self.links[cp_id]
                self.policy.disconnected(cp_id)
                for fut in link.waiting.values():
                    if not fut.done():
                        fut.set_result(Outcome("", "", error="Disconnected"))
                await self._closed(cp_id, link)

    async def _claim(self, link: ChargerLink, epoch: int | None = None) -> None:
        """Record this process as holding the charger (through the router), with the epoch drawn as
        the link arrived (`epoch` if none was)."""
        assert self.router is not None
        cp_id = link.cp_id
        if link.arrived_epoch is not None:
            epoch = link.arrived_epoch
        try:
            link.owner = await self.router.claimed(cp_id, link.version, epoch)
        except Superseded as exc:
            # The charger connected again (here or elsewhere) after this link arrived, and that
            # connection was claimed first: this one is stale. Closing it changes nothing.
            log.info("closing a stale link of %r: %s", cp_id, exc)
            link.superseded = True
            self._spawn(link.websocket.close(code=1000, reason="connected again since"))
            return
        # Another process may have marked it offline while this one remembers it online.
        self.app.last_seen.forget(cp_id)
        replaced = self._evictions.pop(cp_id, None)
        if replaced is not None and link.owner is not None and link.owner.epoch <= replaced:
            self.evict(cp_id, replaced)  # a newer connection was made before our claim returned

    async def _closed(self, cp_id: str, link: ChargerLink) -> None:
        """The charger goes offline with its newest link: a stale link closing after it connected
        through another process changes nothing (the ownership epoch says which is newer)."""
        if link.superseded:
            return
        newest = self.router is None or link.owner is None or await self.router.released(cp_id, link.owner)
        if not newest or self.draining:
            return
        # Like a frame's effect: committed without its own fsync, then one shared flush. A fleet
        # dropping at once (a restart) would otherwise stall the loop on a disk flush per charger.
        try:
            with contextlib.suppress(NotFound), self.app.durability.deferred():
                self.app.charging.disconnected(cp_id)
        except Busy as exc:  # the watchdog marks it offline once its silence is long enough
            log.warning("could not mark %r offline as it left: %s", cp_id, exc)
        await self.app.durability.flushed()
        if self.router is not None:
            await self.router.marked_offline(cp_id, self)

    async def call(
        self, cp_id: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> Outcome:
        """Send a raw action to a connected charger and wait (bounded) for its answer. The typed
        commands below are the usual way; this stays for anything they do not cover."""
        wait_s = self.call_timeout_s if timeout_s is None else timeout_s
        for _ in range(ROUTE_ATTEMPTS):
            route = await self._route(cp_id)
            if route is None:
                break
            outcome = await self._deliver(cp_id, route[1], action, payload, wait_s)
            if outcome.error != MOVED:
                return outcome
        return Outcome("", action, error=NOT_CONNECTED)

    async def _route(self, cp_id: str) -> tuple[OcppVersion, Owner | None] | None:
        """How to reach the charger: (its OCPP version, None) over our own link, (version, owner)
        through the process holding it, or None when no process does."""
        link = self.links.get(cp_id)
        if link is not None:
            return link.version, None
        if self.router is None:
            return None
        owner = await self.router.owner_of(cp_id)
        if owner is None or owner.node == self.router.node:  # ours, but the link has just closed
            return None
        return owner.version, owner

    async def _deliver(
        self, cp_id: str, owner: Owner | None, action: str, payload: dict[str, Any], wait_s: float
    ) -> Outcome:
        if owner is not None and self.router is not None:
            return await self.router.call(owner, cp_id, action, payload, wait_s)
        link = self.links.get(cp_id)
        if link is None:
            return Outcome("", action, error=NOT_CONNECTED)
        return await self._call_link(link, action, payload, wait_s)

    async def _call_link(
        self, link: ChargerLink, action: str, payload: dict[str, Any], wait_s: float
    ) -> Outcome:
        cp_id = link.cp_id
        loop = asyncio.get_running_loop()
        try:
            uid, text = link.connection.call(action, payload, loop.time())
        except LocalProtocolError as exc:  # a raw call, or one routed here: answer, never raise
            log.warning("not sending %s to %s: %s", action, cp_id, exc)
            return Outcome("", action, error=NOT_SENT_INVALID)
        fut: asyncio.Future[Outcome] = loop.create_future()
        link.waiting[uid] = fut
        self._tap(cp_id, "out", text)
        try:
            await link.websocket.send_text(text)
        except SEND_FAILURES:  # closed by us (an eviction) or gone, but not yet out of `links`
            link.waiting.pop(uid, None)
            link.connection.forget(uid)
            return Outcome(uid, action, error="Disconnected")
        try:
            return await asyncio.wait_for(fut, wait_s)
        except TimeoutError:
            link.waiting.pop(uid, None)
            link.connection.forget(uid)
            return Outcome(uid, action, error="Timeout")

    # ---- who is connected ----------------------------------------------------------------------
    def connected(self) -> dict[str, OcppVersion]:
        """Charge point id -> OCPP version ("1.6", "2.0.1" or "2.1") of every live link."""
        return {cp_id: link.version for cp_id, link in self.links.items()}

    def version_of(self, cp_id: str) -> OcppVersion | None:
        link = self.links.get(cp_id)
        return None if link is None else link.version

    # ---- typed commands (chargeshare.ocpp.commands) ----------------------------------------------
    async def send(
        self, cp_id: str, command: cmd.Command[T], *, timeout_s: float | None = None
    ) -> cmd.CommandResult[T]:
        """Send one typed command in the charger's own version and read its answer. Never raises
        for the charger's behaviour: every ending is a typed result (see chargeshare.ocpp.commands)."""
        wait_s = self.call_timeout_s if timeout_s is None else timeout_s
        for _ in range(ROUTE_ATTEMPTS):
            route = await self._route(cp_id)
            if route is None:
                return cmd.NotConnected()
            version, owner = route
            if isinstance(command, cmd.InParts):
                try:
                    parts = command.parts(version)
                except cmd.CannotSay as exc:
                    return cmd.NotApplicable(str(exc))
                if len(parts) > 1:
                    return await self._send_parts(cp_id, command, parts, timeout_s)
            try:
                payload = command.payload(version, self.app.charging.charger_tx_id)
            except cmd.CannotSay as exc:
                return cmd.NotApplicable(str(exc))
            action = command.action(version)
            try:
                # Here, before any link or process is asked, so a bad one never reaches the charger.
                check_payload(action, payload, version, CALL, "")
            except RemoteProtocolError as exc:
                return cmd.Invalid(f"not sent: in OCPP {version}, {exc.description}")
            outcome = await self._deliver(cp_id, owner, action, payload, wait_s)
            if outcome.error != MOVED:
                result = self._result(cp_id, command, version, outcome, wait_s)
                if (
                    isinstance(command, cmd.InParts)
                    and result == cmd.CallError(cmd.TOO_MANY_ITEMS)
                    and command.items() > 1
                ):
                    # It takes fewer per request than we sent: ask in halves until it answers.
                    return await self.send(
                        cp_id, command.at_most((command.items() + 1) // 2), timeout_s=timeout_s
                    )
                return result
        return cmd.NotConnected("it connected elsewhere while the command was on its way")

    async def _send_parts(
        self, cp_id: str, whole: cmd.InParts, parts: Sequence[cmd.Command[Any]], timeout_s: float | None
    ) -> cmd.CommandResult[Any]:
        """One request after another; the first that fails ends it (those before it took effect)."""
        done: list[cmd.Done[Any]] = []
        for part in parts:
            result = await self.send(cp_id, part, timeout_s=timeout_s)
            if not isinstance(result, cmd.Done):
                return result
            done.append(result)
        return whole.joined(done)

    def _result(
        self, cp_id: str, command: cmd.Command[T], version: OcppVersion, outcome: Outcome, wait_s: float
    ) -> cmd.CommandResult[T]:
        if outcome.error == "Timeout":
            return cmd.Timeout(wait_s)
        if outcome.error == NOT_CONNECTED:
            return cmd.NotConnected()
        if outcome.error == "Disconnected":
            return cmd.NotConnected(DISCONNECTED_BEFORE_ANSWER)
        if outcome.error == UNREACHABLE:
            return cmd.NotConnected("the process holding its link could not be reached")
        if outcome.error == NOT_SENT_INVALID:
            return cmd.Invalid(f"not sent: {command.action(version)} breaks OCPP {version}'s schema")
        if outcome.malformed and outcome.error is not None:
            return cmd.Malformed(outcome.error)
        if outcome.error is not None or outcome.payload is None:
            return cmd.CallError(outcome.error or "GenericError")
        try:
            return command.result(version, outcome.payload)
        # Valid by schema, yet not what we asked for, or holding a time we cannot read.
        except (KeyError, ValueError, TypeError, CallRejected):
            log.warning("%s answered %s with %r", cp_id, command.action(version), outcome.payload)
            return cmd.Malformed("FormatViolation")

    async def remote_start(
        self, cp_id: str, id_tag: str, connector_no: int | None = None, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[str | None]:
        """RemoteStartTransaction / RequestStartTransaction. Done.details: a 2.0.1 transactionId."""
        return await self.send(cp_id, cmd.StartCharging(id_tag, connector_no), timeout_s=timeout_s)

    async def remote_stop(
        self, cp_id: str, transaction: cmd.TransactionRef, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """RemoteStopTransaction / RequestStopTransaction. `transaction`: our session id (int) or a
        2.0.1 charger's own transactionId (str)."""
        return await self.send(cp_id, cmd.StopCharging(transaction), timeout_s=timeout_s)

    async def reserve(
        self,
        cp_id: str,
        reservation_id: int,
        connector_no: int,
        id_tag: str,
        expires_at: datetime,
        *,
        timeout_s: float | None = None,
    ) -> cmd.CommandResult[None]:
        """ReserveNow."""
        command = cmd.Reserve(reservation_id, connector_no, id_tag, expires_at)
        return await self.send(cp_id, command, timeout_s=timeout_s)

    async def cancel_reservation(
        self, cp_id: str, reservation_id: int, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """CancelReservation."""
        return await self.send(cp_id, cmd.CancelReservation(reservation_id), timeout_s=timeout_s)

    async def change_availability(
        self, cp_id: str, connector_no: int, operative: bool, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """ChangeAvailability; connector 0 is the whole charger."""
        return await self.send(cp_id, cmd.ChangeAvailability(connector_no, operative), timeout_s=timeout_s)

    async def reset(
        self, cp_id: str, *, hard: bool = False, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """Reset: hard is 1.6 Hard / 2.0.1 Immediate, otherwise Soft / OnIdle."""
        return await self.send(cp_id, cmd.Reset(hard), timeout_s=timeout_s)

    async def trigger_message(
        self, cp_id: str, message: str, connector_no: int | None = None, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """TriggerMessage (`message` in the charger's version's words)."""
        return await self.send(cp_id, cmd.TriggerMessage(message, connector_no), timeout_s=timeout_s)

    async def unlock_connector(
        self, cp_id: str, connector_no: int, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """UnlockConnector; done when the charger says Unlocked."""
        return await self.send(cp_id, cmd.UnlockConnector(connector_no), timeout_s=timeout_s)

    async def set_charging_profile(
        self, cp_id: str, connector_no: int, profile: cmd.ChargingProfile, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """SetChargingProfile."""
        return await self.send(cp_id, cmd.SetChargingProfile(connector_no, profile), timeout_s=timeout_s)

    async def clear_charging_profile(
        self, cp_id: str, command: cmd.ClearChargingProfile, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """ClearChargingProfile (by id, or by connector / purpose / stack level)."""
        return await self.send(cp_id, command, timeout_s=timeout_s)

    async def get_composite_schedule(
        self,
        cp_id: str,
        connector_no: int,
        duration_s: int,
        rate_unit: cmd.RateUnit | None = None,
        *,
        timeout_s: float | None = None,
    ) -> cmd.CommandResult[cmd.CompositeSchedule | None]:
        """GetCompositeSchedule; Done.details: the schedule, if the charger sent one."""
        command = cmd.GetCompositeSchedule(connector_no, duration_s, rate_unit)
        return await self.send(cp_id, command, timeout_s=timeout_s)

    async def get_settings(
        self, cp_id: str, *keys: cmd.SettingKey, timeout_s: float | None = None
    ) -> cmd.CommandResult[tuple[cmd.SettingValue, ...]]:
        """GetConfiguration (1.6) / GetVariables (2.0.1); Done.details: one SettingValue per key."""
        return await self.send(cp_id, cmd.GetSettings(keys), timeout_s=timeout_s)

    async def change_setting(
        self, cp_id: str, key: cmd.SettingKey, value: str, *, timeout_s: float | None = None
    ) -> cmd.CommandResult[None]:
        """ChangeConfiguration (1.6) / SetVariables (2.0.1); done when Accepted or RebootRequired."""
        return await self.send(cp_id, cmd.ChangeSetting(key, value), timeout_s=timeout_s)

    # ---- what the backend itself sends, on domain events (chargeshare/ocpp/command_policy.py) -----
    # Bus handlers run on whichever thread published the event (a request's worker thread, or the
    # loop), so each order is handed to the loop. A command for a charger no process holds is not
    # sent; what the database still shows undone is sent when the charger connects.
    def reachable(self, cp_id: str) -> bool:
        return self._loop is not None and (cp_id in self.links or self.router is not None)

    def linked_here(self, cp_id: str) -> bool:
        return self._loop is not None and cp_id in self.links

    def _on_event(self, event: Event) -> None:
        for order in self.policy.decide(event):
            self._execute(order)

    def _execute(self, order: Order) -> None:
        if not order.after_reply:
            self._soon(self.run(order))
            return
        link = self.links.get(order.charge_point_id)
        if link is not None:  # else its link closed meanwhile: nothing follows an answer never sent
            link.after_reply.append(order)

    async def run(self, order: Order) -> None:
        """Run an order's script: its commands sent over the link (here or through the process
        holding it), its service calls off the event loop."""
        script, reply, error = order.script, None, None
        while True:
            try:
                step = script.send(reply) if error is None else script.throw(error)
            except StopIteration:
                return
            reply, error = None, None
            if isinstance(step, Send):
                reply = await self.send(order.charge_point_id, step.command)
            elif isinstance(step, Effect):
                try:
                    reply = await asyncio.to_thread(step.fn, *step.args)
                except Exception as exc:
                    error = exc
            else:
                for issued in step.orders:
                    self._execute(issued)

    def _on_charger_offline(self, event: ChargerOffline) -> None:
        """Marked offline here while another process holds its link (its watchdog judged it silent,
        say): that process must write the charger's next frame at once, which brings it back."""
        if self.router is not None and self._loop is not None and event.charge_point_id not in self.links:
            self._soon(self._tell_owner_to_forget(event.charge_point_id))

    async def _tell_owner_to_forget(self, cp_id: str) -> None:
        assert self.router is not None
        owner = await self.router.owner_of(cp_id)
        if owner is not None and owner.node != self.router.node:
            await self.router.notify(owner.node, "forget", cp_id, owner.epoch)

    async def _resend_owed_rounds(self) -> None:
        """`resend_owed` twice per `command_resend_after_s` of the clock, for as long as the server runs."""
        every_s = self.app.config.rules.command_resend_after_s / 2
        while True:
            await asyncio.sleep(max(MIN_RESEND_ROUND_REAL_S, self.app.clock.real_seconds(every_s)))
            try:
                await self.resend_owed()
            except Exception:
                log.exception("asking chargers again for what they are owed failed; next round")

    async def resend_owed(self) -> list[str]:
        """Chargers linked here whose commands the database has shown owed for the rules'
        `command_resend_after_s`: what each is due is asked again, as on connecting. Whichever
        process decided a command may have died before it reached this link; only the link's
        holder sends, so a cluster sends it once. Returns the chargers asked."""
        if self._loop is None or not self.links:
            return []
        owed = await asyncio.to_thread(commands_owed, self.app.store, self.app.clock.now())
        here = frozenset(o for o in owed if o.charge_point_id in self.links)
        chargers = sorted({o.charge_point_id for o in self._owed.overdue(here, self.app.clock.now())})
        for cp_id in chargers:
            log.info("%s is still owed what was decided for it; asking again", cp_id)
            # Its overrides and exports only as their back-off allows (`commands_owed` says which).
            only = frozenset((o.kind, o.ref) for o in here if o.charge_point_id == cp_id)
            self._spawn(self.run(self.policy.owed(cp_id, only=only)))
        return chargers

    def _soon(self, coro: Any) -> None:
        """Run `coro` on the registry's loop, from any thread."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._spawn, coro)
        except RuntimeError:  # the loop has closed: the server is stopping
            coro.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- what other processes ask of the links held here (adapters/command_routing.py) ------------
    def held(self) -> dict[str, Owner]:
        return {cp_id: link.owner for cp_id, link in self.links.items() if link.owner is not None}

    async def answer_call(
        self, cp_id: str, epoch: int, action: str, payload: dict[str, Any], wait_s: float
    ) -> Outcome:
        link = self.links.get(cp_id)
        if link is None:
            return Outcome("", action, error=NOT_CONNECTED)
        if link.owner is None or link.owner.epoch != epoch:
            return Outcome("", action, error=MOVED)
        return await self._call_link(link, action, payload, wait_s)

    def evict(self, cp_id: str, epoch: int) -> None:
        """A newer connection holds the charger elsewhere: close our link, as a reconnect to this
        process would (its close then changes nothing: see `_closed`)."""
        link = self.links.get(cp_id)
        if link is not None and link.owner is None:
            self._evictions[cp_id] = max(epoch, self._evictions.get(cp_id, epoch))
            return
        if link is None or link.owner is None or link.owner.epoch > epoch:
            return
        self._spawn(link.websocket.close(code=1000, reason="connected through another server"))

    async def reclaim(self) -> None:
        """Claim again the links whose claim failed (Redis was away). One that arrived then has no
        epoch of its own, and may be older than a connection another process claimed since: it is
        claimed at the oldest epoch, so that any record in Redis supersedes it (closing it: the
        charger reconnects, newer than everything) rather than it evicting a live link elsewhere."""
        for link in list(self.links.values()):
            if link.owner is None and not link.superseded and self.links.get(link.cp_id) is link:
                await self._claim(link, epoch=OLDEST_EPOCH)
                if link.owner is not None:  # what other processes could not send it meanwhile
                    self._spawn(self.run(self.policy.owed(link.cp_id)))

    def heal(self, cp_id: str) -> None:
        """Our link is open, yet a stale link's close elsewhere marked the charger offline."""
        if cp_id in self.links:
            self.app.last_seen.forget(cp_id)
            with contextlib.suppress(NotFound, Busy):  # if busy, its next frame is written anyway
                self.app.charging.heartbeat(cp_id)

    def forget(self, cp_id: str) -> None:
        self.app.last_seen.forget(cp_id)
