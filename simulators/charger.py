"""A virtual OCPP charger, in 1.6J or 2.0.1: boots, heartbeats, reports status, runs transactions,
meters energy under its charging profiles, and answers the central system's commands.

One firmware model (connector state table, transactions, reservations, settings, profiles) serves
both versions; the wire format lives in `dialect_v16` / `dialect_v201`. It uses the same sans-I/O
`Connection` as the backend, in the client role, over a real websocket.

Behaviour a deliberately faulty variant may want to change is in small methods to override:
`status_message` (every StatusNotification; `report_status` sends the awaited ones), `meter_message`,
`stop_message` and `_stop_transaction` (how a transaction's end is told and sent),
`expire_reservations`, `reset` / `perform_reset`, and the command operations (`remote_start`,
`reserve`, `change_availability`, ...). `send_unchecked` and `send_raw` put frames on the wire that
the schema would refuse; `send_call` sends a valid call of the caller's making (a spoof).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from chargeshare.domain.credentials import basic_auth_header
from chargeshare.ocpp import V16
from chargeshare.ocpp.connection import CallRejected, Connection, Handler, Outcome
from chargeshare.ocpp.frames import Call, encode, read_json
from chargeshare.ocpp.smart_charging import END_USER_OVERRIDE_PROFILE_ID
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import Clock
from simulators.charger_certificates import ChargerCertificates
from simulators.dialect import FIRMWARE, Dialect, Message, dialect_for
from simulators.evse import (
    BootReason,
    Plugged,
    PlugRefused,
    Requested,
    Reservation,
    ResetKind,
    StopReason,
    Transaction,
    Unlock,
    VirtualConnector,
    check_plug_in,
    reserve_connector,
)
from simulators.firmware import IN_TRANSACTION, ConnectorState, Trigger, step
from simulators.local_auth import LocalAuth
from simulators.pacing import sleep_sim
from simulators.power import Vehicle
from simulators.settings import (
    HEARTBEAT_INTERVAL,
    METER_INTERVAL,
    SMART_NAMES,
    TRANSACTION_ATTEMPTS,
    SetResult,
    Setting,
    Settings,
)
from simulators.smart_charging import Profile, ProfileBook, ProfileRefused, Purpose, TxContext
from simulators.smart_gate import Segment, SmartGate
from simulators.station_v201 import StationState
from simulators.wire_faults import WireFaults, malformed_frames

__all__ = ["PlugRefused", "Plugged", "Reservation", "VirtualCharger", "VirtualConnector"]

log = logging.getLogger(__name__)

RECONNECT_ATTEMPTS = 20
RECONNECT_BASE_S = 5.0  # simulated seconds, doubled each attempt, with jitter
# Doubling stops here, as OCPP 2.0.1's RetryBackOffRepeatTimes stops it: a charger back within a
# couple of minutes of its CSMS, well inside the heartbeat watchdog's patience.
RECONNECT_CAP_S = 120.0
REBOOT_S = 30.0  # simulated seconds a reboot takes
RESET_S = 10.0  # simulated seconds a commanded reset takes


class VirtualCharger:
    def __init__(
        self,
        cp_id: str,
        url: str,
        clock: Clock,
        connector_power_w: list[int],
        *,
        protocol: str = V16,
        meter_interval_s: int = 60,
        call_timeout_s: float = 10.0,
        password: str | None = None,
        seed: int = 0,
        smart_charge_point: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.cp_id = cp_id
        self.password = password  # HTTP Basic auth on the upgrade (OCPP security profile 1)
        # wss: trusting the CSMS's certificate, and presenting ours under security profile 3.
        self.ssl_context = ssl_context
        self.certificates = ChargerCertificates(cp_id)
        self.server_url = url.rstrip("/")
        self.url = self.server_url + "/" + cp_id
        self.clock = clock
        self.dialect: Dialect = dialect_for(protocol)
        self.connectors = {i + 1: VirtualConnector(i + 1, p) for i, p in enumerate(connector_power_w)}
        self.settings = Settings(len(self.connectors), smart_charge_point=smart_charge_point)
        self.settings.values[METER_INTERVAL] = str(meter_interval_s)
        # A relevant charge point under the UK's smart charging regulations: each transaction runs
        # behind a gate (randomised delay, default charging hours), its draws from its own RNG.
        self.smart_charge_point = smart_charge_point
        self._delay_rng = random.Random(f"{seed}:{cp_id}:delay")
        self.gates: dict[int, SmartGate] = {}  # per connector, while its transaction runs
        self.smart_gates: list[SmartGate] = []  # every transaction's, for the run's measures
        self.profiles = ProfileBook()
        self.local_auth = LocalAuth()
        self.station = StationState()  # 2.x display, monitors, network profiles
        self.firmware_version = FIRMWARE  # an installed update's digest after UpdateFirmware
        self.conn = Connection(
            self.dialect.version, self._csms_handlers(), id_prefix=f"{cp_id}-", call_timeout_s=call_timeout_s
        )
        self._ws: ClientConnection | None = None
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        # Answers acted on as they arrive, before the next frame is read (see start_transaction).
        self._on_answer: dict[str, Callable[[Outcome], None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._followups: list[Coroutine[Any, Any, None]] | None = None
        self._last_meter_at = clock.now()
        self._reset_when_idle = False
        self._replaying = False
        self.online = asyncio.Event()
        self.boot_accepted = False
        self.boot_status: str | None = None  # the CSMS's last answer to our BootNotification
        self.boot_interval_s = 0
        self._boot_answered = asyncio.Event()  # a boot was answered (a triggered one, while Pending)
        self.frames_sent = 0
        self.boots = 0
        self.resets = 0
        self.transactions_started = 0
        # The link and its faults. Transaction messages survive a lost link in `queue` (as firmware
        # keeps them in flash) and are replayed in order, with their original timestamps, on reconnect.
        self.connected = False
        self.queue: list[Message] = []
        self.duplicate_sends = False  # send every transaction frame twice (a flaky network)
        self.silent = False  # say nothing, keep the socket: only a watchdog can notice
        self.clock_skew_s = 0.0
        self.reconnects = 0
        self.messages_given_up = 0  # transaction messages unanswered after every attempt
        self._rng = random.Random(f"{seed}:{cp_id}")
        self.wire = WireFaults(random.Random(f"{seed}:{cp_id}:wire"))
        self._malformed_ids: set[str] = set()
        self._closing = False
        self._reconnecting: asyncio.Task[None] | None = None

    @property
    def protocol(self) -> str:
        return self.dialect.version

    @property
    def heartbeat_interval_s(self) -> int:
        return self.settings.number(HEARTBEAT_INTERVAL)

    @property
    def meter_interval_s(self) -> int:
        return self.settings.number(METER_INTERVAL)

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self._connect(BootReason.POWER_UP)
        self._last_meter_at = self.clock.now()
        self._tasks.append(
            asyncio.create_task(self._every(lambda: self.heartbeat_interval_s, self._heartbeat))
        )
        self._tasks.append(asyncio.create_task(self._every(lambda: self.meter_interval_s, self._meter_tick)))

    async def _connect(self, reason: BootReason) -> None:
        headers = (
            {} if self.password is None else {"Authorization": basic_auth_header(self.cp_id, self.password)}
        )
        ws = await connect(
            self.url,
            subprotocols=[self.dialect.subprotocol],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=10,
            ssl=self.ssl_context,
        )
        self._ws = ws
        self._tasks.append(asyncio.create_task(self._reader(ws)))
        self.connected = True
        if not await self._boot_until_accepted(reason):
            self.connected = False
            self._ws = None  # given up on, not lost: its reader must not reconnect
            await ws.close()
            raise RuntimeError(f"{self.cp_id}: boot not accepted")
        await self._resume()

    async def boot(self, reason: BootReason) -> bool:
        """BootNotification; adopt the CSMS's heartbeat interval when accepted."""
        outcome = await self._call(*self.dialect.boot(reason, self.firmware_version))
        self.boots += 1
        if not outcome.ok or outcome.payload is None:
            self.boot_status = None
            return False
        status, interval = self.dialect.read_boot(outcome.payload)
        self.boot_status, self.boot_interval_s = status, interval
        self.boot_accepted = status == "Accepted"
        if self.boot_accepted and interval > 0:
            self.settings.values[HEARTBEAT_INTERVAL] = str(interval)
        self._boot_answered.set()
        return self.boot_accepted

    async def _boot_until_accepted(self, reason: BootReason) -> bool:
        """Boot; while the CSMS answers Pending, boot again after its interval, or at once when it
        triggers a boot. False when Rejected or unanswered."""
        accepted = await self.boot(reason)
        while not accepted and self.boot_status == "Pending":
            self._boot_answered.clear()
            wait_s = self.clock.real_seconds(max(self.boot_interval_s, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._boot_answered.wait(), wait_s)
            accepted = self.boot_accepted or await self.boot(reason)
        return accepted

    async def _resume(self) -> None:
        """Back in touch: replay what was queued first (so the CSMS sees the real meter stops), then
        report every connector (which is what brings an offline charger back on the map)."""
        await self._replay()
        for c in self.connectors.values():
            await self.report_status(c)
        self.online.set()

    # ---- faults --------------------------------------------------------------------------------
    async def disconnect_for(self, simulated_s: float) -> None:
        """Lose the link for a while, then reconnect with backoff and jitter (bounded attempts)."""
        await self.go_offline()
        await asyncio.sleep(self.clock.real_seconds(simulated_s))
        await self.come_back()

    async def go_offline(self) -> None:
        """Lose the link until `come_back`: what happens meanwhile is queued, as in any outage."""
        await self._drop_link()

    async def come_back(self) -> None:
        """End an outage: reconnect with backoff and jitter (bounded attempts), then replay."""
        await self._reconnect(BootReason.POWER_UP)

    async def reboot(self, *, lose_queue: bool) -> None:
        """Power-cycle mid-transaction: transactions end with reason Reboot (queued for the CSMS),
        unless the queue is lost with the power, in which case the CSMS never hears the stops."""
        self._advance_energy()
        await self._drop_link()
        for c in self.connectors.values():
            if c.transaction is not None:
                tx = self._end_transaction(c)
                if not lose_queue:
                    self._enqueue(self.stop_message(c, tx, StopReason.REBOOT))
                if c.state in IN_TRANSACTION:
                    c.state = step(c.state, Trigger.STOP)
        if lose_queue:
            self.queue.clear()
        await asyncio.sleep(self.clock.real_seconds(REBOOT_S))
        await self._reconnect(BootReason.POWER_UP)

    async def silence_for(self, simulated_s: float) -> None:
        """Keep the socket but say nothing (a hung firmware); then carry on as if nothing happened."""
        self.silent = True
        self.online.clear()
        await asyncio.sleep(self.clock.real_seconds(simulated_s))
        self.silent = False
        await self._resume()

    async def send_malformed(self, n: int) -> None:
        """Send `n` frames that break OCPP; the CSMS must answer each with a CALLERROR (or ignore
        what it cannot even read) and carry on."""
        prefix = f"bad-{self.frames_sent}-"
        for uid, text in malformed_frames(prefix, n, self.dialect.bad_meter_values()):
            self._malformed_ids.add(uid)
            await self.send_raw(text)
            self.wire.malformed_sent += 1

    async def send_raw(self, text: str) -> None:
        """Put a frame on the wire exactly as given (no schema check): for frames that break OCPP."""
        if self.connected and self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send(text)

    async def send_unchecked(self, action: str, payload: dict[str, Any]) -> str:
        """A CALL the schema would refuse, sent anyway; the CSMS's CALLERROR lands in
        `wire.malformed_answers`. Returns the unique id."""
        uid = f"raw-{self.frames_sent}-{len(self._malformed_ids)}"
        self._malformed_ids.add(uid)
        await self.send_raw(encode(Call(uid, action, payload)))
        return uid

    async def send_call(self, action: str, payload: dict[str, Any]) -> Outcome:
        """One call exactly as given, sent once and never queued, answered like any other: for a
        charger made to misbehave, such as one naming another charger's transaction."""
        if not self.connected or self.silent:
            return Outcome("", action, error="Offline")
        return await self._call_once(action, payload)

    async def _replay(self) -> None:
        """Send the queue in order, one at a time; stop at the first that gets no answer (it stays
        first in line for the next attempt)."""
        if self._replaying:
            return
        self._replaying = True
        try:
            while self.queue and self.connected and not self.silent:
                action, payload = self.queue[0]
                outcome = await self._call(action, payload, queue_if_offline=False)
                if outcome.error in ("Offline", "Timeout"):
                    break
                self.queue.pop(0)
        finally:
            self._replaying = False

    async def settle_down(self) -> None:
        """End of a run: get back in touch if a fault left us out of it, so nothing stays queued."""
        self.wire.clear()
        if self.silent:
            self.silent = False
            await self._resume()
        if not self.connected:
            await self._reconnect(BootReason.POWER_UP)
        await self._replay()

    async def _drop_link(self) -> None:
        self.connected = False
        self.online.clear()
        ws, self._ws = self._ws, None  # dropped on purpose: its reader must not reconnect
        if ws is not None:
            await ws.close()

    async def _reconnect(self, reason: BootReason) -> None:
        """One reconnection at a time: whoever asks while one is under way waits for it."""
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect_with_backoff(reason))
        await asyncio.shield(self._reconnecting)

    async def _reconnect_with_backoff(self, reason: BootReason) -> None:
        delay_s = RECONNECT_BASE_S
        for _ in range(RECONNECT_ATTEMPTS):
            if self._closing:
                return
            try:
                await self._connect(reason)
                self.reconnects += 1
                if self.connected:
                    return
                # Lost again while booting or replaying (the other end died meanwhile): its reader
                # asked for a reconnection, and this one is it.
                log.info("%s: the link was lost while resuming; reconnecting", self.cp_id)
            # A handshake cut short by a process dying or starting is a failed attempt like a refusal.
            except (OSError, RuntimeError, TimeoutError, WebSocketException) as exc:
                log.info("%s: reconnect failed: %s", self.cp_id, exc)
            # Simulated seconds: a clock held while the backend restarts does not use up attempts.
            await sleep_sim(self.clock, delay_s * (1 + self._rng.random()))
            delay_s = min(2 * delay_s, RECONNECT_CAP_S)
        log.warning("%s: gave up reconnecting after %s attempts", self.cp_id, RECONNECT_ATTEMPTS)

    async def stop(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task
        self._tasks.clear()
        if self._ws is not None:
            await self._ws.close()
        self.online.clear()

    async def _every(self, interval_s: Callable[[], float], fn: Any) -> None:
        """Run `fn` every interval, reading the interval afresh (the CSMS may change it). It also
        ends once the charger is closing: asyncio.wait_for (Python 3.11) can swallow the cancellation
        `stop` sends when an answer arrives at the same moment, and `stop` waits for this loop."""
        while not self._closing:
            await asyncio.sleep(self.clock.real_seconds(interval_s()))
            if self._closing:
                return
            await fn()

    # ---- the wire ------------------------------------------------------------------------------
    async def _reader(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                if isinstance(text, bytes):
                    text = text.decode(errors="replace")
                self._note_answer_to_raw(text)
                if self.wire.delay_s > 0 and text.lstrip().startswith("[2"):
                    self.wire.delayed += 1
                    self._start(self._answer_later(text, self.wire.delay_s))
                    continue
                await self._take(text)
        # Whoever sent last may have seen the link fail first (and set `connected` false).
        if self._ws is ws and not self._closing:
            # The CSMS's end went away (its process died or restarted): firmware reconnects. Calls
            # waiting for an answer will get none: offline now (a transaction message is queued).
            log.info("%s: the link was closed by the other end; reconnecting", self.cp_id)
            self.connected = False
            self.online.clear()
            waiting, self._waiting = self._waiting, {}
            self._on_answer.clear()
            self.conn.tick(asyncio.get_running_loop().time() + self.conn.call_timeout_s)
            for uid, fut in waiting.items():
                if not fut.done():
                    fut.set_result(Outcome(uid, "", error="Offline"))
            self._start(self._reconnect(BootReason.POWER_UP))

    async def _take(self, text: str) -> None:
        self._followups = []
        try:
            received = self.conn.receive(text)
        finally:
            followups, self._followups = self._followups, None
        if received.reply is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send(received.reply)
        for coro in followups:  # OCPP: answer first, then report
            self._start(coro)
        for outcome in received.outcomes:
            fut = self._waiting.pop(outcome.unique_id, None)
            hook = self._on_answer.pop(outcome.unique_id, None)
            if fut is not None and not fut.done():
                if hook is not None:
                    hook(outcome)
                fut.set_result(outcome)

    async def _answer_later(self, text: str, delay_s: float) -> None:
        await asyncio.sleep(self.clock.real_seconds(delay_s))
        if self.connected:
            await self._take(text)

    def _note_answer_to_raw(self, text: str) -> None:
        if not self._malformed_ids or not text.lstrip().startswith("[4"):
            return
        with contextlib.suppress(ValueError, TypeError, IndexError):
            frame = read_json(text)
            if frame[1] in self._malformed_ids or frame[1] == "-1":
                self.wire.malformed_answers.append(str(frame[2]))

    async def _send(self, text: str) -> None:
        if self._ws is None:  # the link was dropped on purpose meanwhile
            raise ConnectionClosed(None, None)
        if self.wire.drops():
            self.wire.dropped += 1
            return
        self.frames_sent += 1
        await self._ws.send(text)

    def _enqueue(self, message: Message) -> None:
        self.queue.append((message[0], self.dialect.mark_offline(*message)))

    async def _call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        queue_if_offline: bool = True,
        on_answer: Callable[[Outcome], None] | None = None,
    ) -> Outcome:
        """Send a call and wait for its answer. Offline (or silent), transaction messages are queued
        for replay and everything else is dropped, as firmware does; while a queue is being replayed,
        new transaction messages join its end so the order holds."""
        transactional = action in self.dialect.transaction_actions
        if transactional and queue_if_offline and (not self.connected or self.silent or self.queue):
            self._enqueue((action, payload))
            if self.connected and not self.silent:
                self._start(self._replay())  # a replay cut short earlier: take it up again
            return Outcome("", action, error="Queued")
        if not self.connected or self.silent:
            return Outcome("", action, error="Offline")
        attempts = self.settings.number(TRANSACTION_ATTEMPTS) if transactional else 1
        outcome = Outcome("", action, error="Timeout")
        for _ in range(attempts):
            outcome = await self._call_once(action, payload, on_answer)
            if outcome.error != "Timeout":
                break
        if transactional and queue_if_offline:
            if outcome.error == "Offline":  # the link went while we sent: keep it for the replay
                self._enqueue((action, payload))
                return Outcome(outcome.unique_id, action, error="Queued")
            if outcome.error == "Timeout":
                self.messages_given_up += 1
        return outcome

    async def _call_once(
        self, action: str, payload: dict[str, Any], on_answer: Callable[[Outcome], None] | None = None
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        uid, text = self.conn.call(action, payload, loop.time())
        fut: asyncio.Future[Outcome] = loop.create_future()
        self._waiting[uid] = fut
        if on_answer is not None:
            self._on_answer[uid] = on_answer
        try:
            await self._send(text)
            if self.duplicate_sends and action in self.dialect.transaction_actions:
                await self._send(text)  # the same frame again: the CSMS must not count it twice
        except ConnectionClosed:
            self._waiting.pop(uid, None)
            self._on_answer.pop(uid, None)
            self.conn.tick(loop.time() + self.conn.call_timeout_s)
            self.connected = False
            return Outcome(uid, action, error="Offline")
        try:
            return await asyncio.wait_for(fut, self.conn.call_timeout_s)
        except TimeoutError:
            self._waiting.pop(uid, None)
            self._on_answer.pop(uid, None)
            self.conn.tick(loop.time() + self.conn.call_timeout_s)
            return Outcome(uid, action, error="Timeout")

    def _ts(self) -> str:
        """This charger's idea of now: its clock may be skewed (a fault scenarios inject)."""
        return format_ts(self.clock.now() + timedelta(seconds=self.clock_skew_s))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Follow-up frames of a command: sent after its answer (OCPP: answer first, then report)."""
        if self._followups is not None:
            self._followups.append(coro)
        else:
            self._start(coro)

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- what the charger reports --------------------------------------------------------------
    async def _heartbeat(self) -> None:
        await self._call(*self.dialect.heartbeat())

    async def renew_certificate(self) -> bool:
        """SignCertificate with a CSR for a new key: whether the CSMS accepted to sign it (the chain
        comes later, as CertificateSigned, and is installed for the next connection)."""
        payload: dict[str, Any] = {"csr": self.certificates.csr()}
        if self.protocol != V16:
            payload["certificateType"] = "ChargingStationCertificate"
        outcome = await self._call("SignCertificate", payload)
        return outcome.ok and outcome.payload is not None and outcome.payload["status"] == "Accepted"

    def transfer_later(self, transfer: Coroutine[Any, Any, None]) -> None:
        """A firmware download or log upload, begun once the command's answer has gone."""
        self._spawn(transfer)

    def renew_later(self) -> None:
        """TriggerMessage SignChargingStationCertificate: renew once the answer has gone."""
        self._spawn(self._renew())

    async def _renew(self) -> None:
        if not await self.renew_certificate():
            log.info("%s: the CSMS refused to sign a renewal it asked for", self.cp_id)

    def status_message(self, c: VirtualConnector) -> Message:
        """StatusNotification for a connector's current state."""
        return self.dialect.status(c, self._ts())

    async def report_status(self, c: VirtualConnector) -> None:
        await self._call(*self.status_message(c))

    def _report_later(self, c: VirtualConnector) -> None:
        """Report the state as it is now, after the current answer (by then it may have moved on)."""
        self._spawn(self._send_message(self.status_message(c)))

    async def _send_message(self, message: Message) -> None:
        await self._call(*message)

    async def send_message(self, message: Message) -> None:
        """Send a message of its own now (queued while offline, as any other)."""
        await self._call(*message)

    def follow_up(self, message: Message) -> None:
        """Send `message` once the answer to the command being handled has gone (a report it asked for)."""
        self._spawn(self._send_message(message))

    def meter_message(self, c: VirtualConnector, tx: Transaction) -> Message:
        """The periodic meter reading of a running transaction (MeterValues / TransactionEvent Updated)."""
        return self.dialect.meter(c, tx, self._ts(), self.power_w(c))

    def stop_message(self, c: VirtualConnector, tx: Transaction, reason: StopReason) -> Message:
        """How a transaction's end is told (StopTransaction / TransactionEvent Ended)."""
        return self.dialect.ended(c, tx, self._ts(), reason)

    def power_w(self, c: VirtualConnector) -> int:
        """What the car draws now: its own curve, under the connector's rating and charging limit."""
        p = c.plugged
        if p is None or c.state is not ConnectorState.CHARGING:
            return 0
        gate = self.gates.get(c.no)
        return p.vehicle.power_w(self.limit_w(c) if gate is None else gate.applied_w)

    def limit_w(self, c: VirtualConnector) -> int:
        return self._shared_limit_w(c, self.clock.now())

    def _shared_limit_w(self, c: VirtualConnector, at: datetime) -> int:
        """The connector's limit at `at`, its part of the charger-wide maximum taken with the other
        connectors charging now (itself counted, as if it drew)."""
        drawing = {k.no for k in self.connectors.values() if k.state is ConnectorState.CHARGING} | {c.no}
        connectors = {k.no: (self._tx_context(k), k.max_power_w, k.phases) for k in self.connectors.values()}
        return self.profiles.shared_limits_w(at, connectors, drawing)[c.no]

    def _tx_context(self, c: VirtualConnector) -> TxContext | None:
        tx = c.transaction
        return None if tx is None else TxContext(tx.local_id, tx.started_at)

    def _advance_energy(self) -> None:
        """Integrate each charging connector's power since the last update."""
        now = self.clock.now()
        seconds = (now - self._last_meter_at).total_seconds()
        self._last_meter_at = now
        for c in self.connectors.values():
            p = c.plugged
            gate = self.gates.get(c.no)
            if gate is not None and p is not None:
                self._advance_gated(c, p, gate, now)
                continue
            if c.state is not ConnectorState.CHARGING or p is None:
                self._follow_limit(c)  # a period's edge may let a held car charge again
                continue
            self._charge(c, p, self.power_w(c), seconds)
            self._follow_limit(c)

    def _charge(self, c: VirtualConnector, p: Plugged, power_w: int, seconds: float) -> int:
        """Put `power_w` into the car for `seconds`; the Wh it took."""
        before = c.meter.register_wh
        c.meter.add(power_w, seconds)
        # The car stops taking energy at its target: the register never runs past it.
        overshoot = (c.meter.register_wh - p.meter_start) - p.target_wh
        if overshoot > 0:
            c.meter.register_wh -= overshoot
        p.vehicle.soc_wh += c.meter.register_wh - before
        p.delivered_wh = c.meter.register_wh - p.meter_start
        if p.delivered_wh >= p.target_wh or p.vehicle.power_w(c.max_power_w) == 0:
            c.state = step(c.state, Trigger.EV_FULL)
            p.done.set()
        return c.meter.register_wh - before

    def _advance_gated(self, c: VirtualConnector, p: Plugged, gate: SmartGate, now: datetime) -> None:
        """Integrate stretch by stretch, each under the limit the gate held then (a delay ending, a
        peak window's edge), so energy lands where it was drawn."""
        segment: Segment
        for segment in gate.walk(now, self._limit_at(c), self._profile_edges(c)):
            c.state = self._gated_state(c.state, segment.limit_w)
            if c.state is ConnectorState.CHARGING:
                seconds = (segment.end - segment.start).total_seconds()
                gate.account(segment, self._charge(c, p, p.vehicle.power_w(segment.limit_w), seconds))
        c.state = self._gated_state(c.state, gate.applied_w)
        if c.state is ConnectorState.SUSPENDED_EV:
            # The car is full: electricity would not flow whatever the gate says, so no later
            # moment is a relevant time for this transaction.
            self.gates.pop(c.no, None)
            gate.close()

    async def _meter_tick(self) -> None:
        before = {c.no: c.state for c in self.connectors.values()}
        self._advance_energy()
        await self.expire_reservations()
        for c in self.connectors.values():
            tx = c.transaction
            if tx is None or c.state not in IN_TRANSACTION:
                continue
            await self._call(*self.meter_message(c, tx))
            if before[c.no] is not c.state:
                changed = self.dialect.charging_state_changed(c, tx, self._ts())
                if changed is not None:
                    await self._call(*changed)
                await self.report_status(c)

    async def expire_reservations(self) -> None:
        """A reservation past its expiry frees the connector (and says so)."""
        for c in self.connectors.values():
            r = c.reservation
            if r is not None and c.state is ConnectorState.RESERVED and self.clock.now() >= r.expires_at:
                c.reservation, c.state = None, step(c.state, Trigger.RESERVATION_ENDED)
                await self.report_status(c)
                expired = self.dialect.reservation_expired(r.reservation_id)
                if expired is not None:
                    await self._call(*expired)

    # ---- what a driver does at the charger -----------------------------------------------------
    async def plug_in(self, connector_no: int, id_tag: str, vehicle: Vehicle, target_wh: int) -> Plugged:
        """Plug in and present a card: Authorize, then start a transaction if accepted."""
        plugged = await self.plug_car(connector_no, vehicle, target_wh, id_tag=id_tag)
        c = self.connectors[connector_no]
        auth = await self._call(*self.dialect.authorize(id_tag))
        if auth.ok and auth.payload is not None:
            self.local_auth.remember(id_tag, self.dialect.id_status(auth.payload))
        if not auth.ok or auth.payload is None or self.dialect.id_status(auth.payload) != "Accepted":
            c.state = step(c.state, Trigger.START_REFUSED)
            return plugged
        await self.start_transaction(c, id_tag)
        return plugged

    async def plug_car(
        self, connector_no: int, vehicle: Vehicle, target_wh: int, *, id_tag: str = ""
    ) -> Plugged:
        """Plug a car in without presenting a card (a remote start may follow)."""
        c = self.connectors[connector_no]
        reservation = c.reservation
        check_plug_in(self.cp_id, c, id_tag, online=self.connected and not self.silent)
        c.state = step(c.state, Trigger.PLUG_IN)
        # The reservation is taken up by this car: the connector is no longer free to reserve.
        taken = None if reservation is None else reservation.reservation_id
        c.plugged = Plugged(id_tag, vehicle, target_wh, reservation_id=taken)
        c.reservation = None
        await self.report_status(c)
        return c.plugged

    async def start_transaction(
        self, c: VirtualConnector, id_tag: str, *, remote_start_id: int | None = None
    ) -> bool:
        """Start on a plugged connector; True when the CSMS accepted the transaction."""
        assert c.plugged is not None
        self._advance_energy()
        tx = Transaction(
            str(uuid.uuid4()),  # unique across reboots and runs, as 2.0.1 wants
            id_tag,
            c.meter.register_wh,
            self.clock.now(),
            remote_start_id=remote_start_id,
        )
        reservation_id = c.plugged.reservation_id
        c.plugged.id_tag, c.plugged.meter_start = id_tag, tx.meter_start
        # The answer is taken as it arrives, before the next frame is read, as firmware does: the
        # CSMS may follow it at once with a command naming the transaction (a TxProfile).
        decided: list[bool | None] = []
        outcome = await self._call(
            *self.dialect.started(c, tx, self._ts(), reservation_id),
            on_answer=lambda answer: decided.append(self._take_start(c, tx, answer)),
        )
        accepted = decided[0] if decided else self._take_start(c, tx, outcome)
        if accepted is None:
            return False  # unplugged meanwhile
        if accepted:
            await self.report_status(c)
            if c.state is ConnectorState.SUSPENDED_EVSE:  # held back from the start: say so
                changed = self.dialect.charging_state_changed(c, tx, self._ts())
                if changed is not None:
                    await self._call(*changed)
            return True
        if tx.wire_id is not None and self.dialect.ends_refused_start:
            # 2.0.1: the transaction exists once announced; a refused card ends it at once.
            await self._call(*self.stop_message(c, tx, StopReason.DEAUTHORIZED))
        return False

    def _take_start(self, c: VirtualConnector, tx: Transaction, outcome: Outcome) -> bool | None:
        """The CSMS's answer to our start: True (the transaction runs), False (refused), None (the
        car was unplugged meanwhile)."""
        if c.plugged is None or c.state is not ConnectorState.PREPARING:
            return None
        if not self.dialect.start_accepted(tx, outcome):
            c.state = step(c.state, Trigger.START_REFUSED)
            return False
        c.plugged.transaction = tx
        self.transactions_started += 1
        if self.smart_charge_point:
            self._advance_energy()  # the gate walks from the start: energy so far is done
        c.state = step(c.state, Trigger.START_ACCEPTED)
        self._open_gate(c, tx)
        return True

    async def unplug(self, connector_no: int, reason: StopReason = StopReason.EV_DISCONNECTED) -> None:
        c = self.connectors[connector_no]
        if c.plugged is None:
            return
        self._advance_energy()
        if c.transaction is not None:
            await self._stop_transaction(c, self._end_transaction(c), reason)
        c.state = step(c.state, Trigger.UNPLUG)
        c.plugged = None
        if c.inoperative_scheduled:  # a ChangeAvailability Inoperative waited for the car to leave
            c.inoperative_scheduled = False
            c.state = step(c.state, Trigger.INOPERATIVE)
        await self.report_status(c)
        self._reset_if_idle()

    def _end_transaction(self, c: VirtualConnector) -> Transaction:
        """Close the transaction locally at once, so a second stop cannot also send one."""
        assert c.plugged is not None and c.plugged.transaction is not None
        tx, c.plugged.transaction = c.plugged.transaction, None
        c.plugged.done.set()
        self.profiles.end_transaction(tx.local_id)
        gate = self.gates.pop(c.no, None)
        if gate is not None:
            gate.close()
        return tx

    async def _stop_transaction(self, c: VirtualConnector, tx: Transaction, reason: StopReason) -> None:
        await self._call(*self.stop_message(c, tx, reason))

    def _stop_now(self, c: VirtualConnector, reason: StopReason) -> None:
        """End the running transaction at once; the stop message follows the current answer."""
        self._advance_energy()
        if c.state in IN_TRANSACTION:
            c.state = step(c.state, Trigger.STOP)
        tx = self._end_transaction(c)
        self._spawn(self._stop_and_report(c, tx, reason, self.status_message(c)))

    async def _stop_and_report(
        self, c: VirtualConnector, tx: Transaction, reason: StopReason, status: Message
    ) -> None:
        await self._stop_transaction(c, tx, reason)
        await self._call(*status)  # the state when it stopped, even if the car has left since
        self._reset_if_idle()

    def transactions(self) -> Iterator[tuple[VirtualConnector, Transaction]]:
        for c in self.connectors.values():
            if c.transaction is not None:
                yield c, c.transaction

    # ---- what the central system asks of us (version-neutral; the dialects parse and answer) ---
    def _csms_handlers(self) -> dict[str, Handler]:
        def guarded(action: str, handler: Handler) -> Handler:
            def answer(payload: dict[str, Any]) -> dict[str, Any]:
                if self.wire.rejects(action):
                    self.wire.rejected += 1
                    refusal = self.dialect.refusal(action, payload)
                    if refusal is None:
                        raise CallRejected("GenericError", f"{action} refused")
                    return refusal
                return handler(payload)

            return answer

        return {action: guarded(action, h) for action, h in self.dialect.handlers(self).items()}

    def remote_start(
        self,
        connector_no: int | None,
        id_tag: str,
        *,
        remote_start_id: int | None = None,
        profile: Profile | None = None,
    ) -> bool:
        """Accepted only where a car is plugged in and no transaction runs (this model does not wait
        for a car to arrive); the transaction starts after the answer."""
        candidates = self.connectors.values() if connector_no is None else [self.connectors.get(connector_no)]
        c = next(
            (
                x
                for x in candidates
                if x is not None
                and x.plugged is not None
                and x.transaction is None
                and x.state is ConnectorState.PREPARING
            ),
            None,
        )
        if c is None:
            return False
        self._spawn(self._remote_started(c, id_tag, remote_start_id, profile))
        return True

    async def _remote_started(
        self, c: VirtualConnector, id_tag: str, remote_start_id: int | None, profile: Profile | None
    ) -> None:
        if self.settings.flag("authorize_remote_start"):
            auth = await self._call(*self.dialect.authorize(id_tag))
            if not auth.ok or auth.payload is None or self.dialect.id_status(auth.payload) != "Accepted":
                return
        if await self.start_transaction(c, id_tag, remote_start_id=remote_start_id) and profile is not None:
            with contextlib.suppress(ProfileRefused):
                self._advance_energy()
                self.profiles.install(profile, self._tx_context(c))
                self._profiles_changed(profile)

    def remote_stop(self, tx: Transaction | None) -> bool:
        for c, running in self.transactions():
            if running is tx:
                self._stop_now(c, StopReason.REMOTE)
                return True
        return False

    def reserve(
        self, connector_no: int | None, reservation_id: int, id_tag: str, expires_at: datetime
    ) -> str:
        """ReserveNow: Accepted, Occupied, Unavailable or Rejected (`evse.reserve`). `None` reserves
        whichever connector is free."""
        answer, reserved = reserve_connector(
            self.connectors, connector_no, Reservation(reservation_id, id_tag, expires_at)
        )
        if reserved is not None:
            self._report_later(reserved)
        return answer

    def cancel_reservation(self, reservation_id: int) -> bool:
        for c in self.connectors.values():
            if c.reservation is not None and c.reservation.reservation_id == reservation_id:
                c.reservation = None
                if c.state is ConnectorState.RESERVED:
                    c.state = step(c.state, Trigger.RESERVATION_ENDED)
                    self._report_later(c)
                return True
        return False

    def change_availability(self, connector_no: int, operative: bool) -> str:
        """Accepted, or Scheduled when a connector is in use (it goes out of service once free);
        connector 0 is the whole charger; an unknown connector is Rejected."""
        if connector_no == 0:
            targets = list(self.connectors.values())
        elif connector_no in self.connectors:
            targets = [self.connectors[connector_no]]
        else:
            return "Rejected"
        scheduled = False
        for c in targets:
            if operative:
                c.inoperative_scheduled = False
                if c.state is ConnectorState.UNAVAILABLE:
                    c.state = step(c.state, Trigger.OPERATIVE)
                    self._report_later(c)
            elif c.state in (ConnectorState.AVAILABLE, ConnectorState.RESERVED):
                c.reservation = None
                c.state = step(c.state, Trigger.INOPERATIVE)
                self._report_later(c)
            elif c.state is not ConnectorState.UNAVAILABLE:
                c.inoperative_scheduled = scheduled = True
        return "Scheduled" if scheduled else "Accepted"

    def reset(self, kind: ResetKind) -> str:
        """Accepted (the reset follows the answer), or Scheduled for OnIdle while a transaction runs."""
        if kind is ResetKind.ON_IDLE and any(True for _ in self.transactions()):
            self._reset_when_idle = True
            return "Scheduled"
        self._spawn(self.perform_reset(kind))
        return "Accepted"

    def _reset_if_idle(self) -> None:
        if self._reset_when_idle and not any(True for _ in self.transactions()):
            self._reset_when_idle = False
            self._start(self.perform_reset(ResetKind.ON_IDLE))

    async def perform_reset(self, kind: ResetKind) -> None:
        """Stop every transaction (telling the CSMS), go down, come back and boot again."""
        reason = {
            ResetKind.HARD: StopReason.HARD_RESET,
            ResetKind.SOFT: StopReason.SOFT_RESET,
        }.get(kind, StopReason.IMMEDIATE_RESET)
        self._advance_energy()
        for c in self.connectors.values():
            if c.transaction is not None:
                if c.state in IN_TRANSACTION:
                    c.state = step(c.state, Trigger.STOP)
                await self._stop_transaction(c, self._end_transaction(c), reason)
        self.resets += 1
        await self._drop_link()
        await asyncio.sleep(self.clock.real_seconds(RESET_S))
        await self._reconnect(BootReason.REMOTE_RESET)

    def trigger(self, what: Requested, connector_no: int | None) -> str:
        """TriggerMessage: Accepted and the message follows the answer; Rejected for a connector we
        do not have."""
        if connector_no is not None and connector_no not in self.connectors:
            return "Rejected"
        targets = (
            [self.connectors[connector_no]] if connector_no is not None else list(self.connectors.values())
        )
        if what is Requested.BOOT:
            self._spawn(self._triggered_boot())
        elif what is Requested.HEARTBEAT:
            self._spawn(self._heartbeat())
        elif what is Requested.STATUS:
            for c in targets:
                self._report_later(c)
        elif what is Requested.METER_VALUES:
            for c in targets:
                self._spawn(self._triggered_meter(c))
        else:
            running = [c for c in targets if c.transaction is not None]
            if not running:
                return "Rejected"
            for c in running:
                self._spawn(self._triggered_meter(c))
        return "Accepted"

    async def _triggered_boot(self) -> None:
        await self.boot(BootReason.TRIGGERED)

    async def _triggered_meter(self, c: VirtualConnector) -> None:
        self._advance_energy()
        tx = c.transaction
        await self._call(*self.dialect.triggered_meter(c, tx, self._ts(), self.power_w(c)))

    def unlock(self, connector_no: int, *, stop_transaction: bool) -> Unlock:
        """Release the cable. 1.6 stops a running transaction first; 2.0.1 refuses while one runs."""
        c = self.connectors.get(connector_no)
        if c is None:
            return Unlock.UNKNOWN_CONNECTOR
        if c.transaction is not None:
            if not stop_transaction:
                return Unlock.ONGOING_TRANSACTION
            self._stop_now(c, StopReason.UNLOCK)
        return Unlock.UNLOCKED

    def set_profile(self, profile: Profile) -> bool:
        if profile.connector_no != 0 and profile.connector_no not in self.connectors:
            return False
        c = self.connectors.get(profile.connector_no)
        self._advance_energy()  # energy so far at the old limit; the new one applies from now
        try:
            self.profiles.install(profile, None if c is None else self._tx_context(c))
        except ProfileRefused as exc:
            log.info("%s: charging profile refused: %s", self.cp_id, exc)
            return False
        self._profiles_changed(profile)
        return True

    def clear_profiles(
        self,
        *,
        profile_id: int | None = None,
        connector_no: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile; False (OCPP: Unknown) when nothing matched."""
        self._advance_energy()
        cleared = self.profiles.clear(
            profile_id=profile_id, connector_no=connector_no, purpose=purpose, stack_level=stack_level
        )
        if cleared:
            self._profiles_changed(None)
        return cleared

    def change_setting(self, setting: Setting | None, value: str) -> SetResult:
        """ChangeConfiguration / SetVariables. A smart charging setting applies at once: an override
        or DSR ends a delay under way, and a new maximum bounds the next delay drawn."""
        smart = setting is not None and setting.name in SMART_NAMES
        if smart:
            self._advance_energy()  # energy so far under the old settings
        result = self.settings.set(self.settings.has(setting), value)
        if result is SetResult.ACCEPTED and smart:
            for c in self.connectors.values():
                gate = self.gates.get(c.no)
                if gate is not None:
                    gate.reconsider(self._limit_at(c))
                    self._follow_gate(c)
        return result

    # ---- the smart charging regulations (simulators/smart_gate.py) -------------------------------
    def _open_gate(self, c: VirtualConnector, tx: Transaction) -> None:
        """A transaction started: from now its power passes the regulations' gate."""
        if not self.smart_charge_point:
            return
        gate = SmartGate(
            tx.local_id,
            self.settings.smart,
            self._delay_rng,
            self.clock.now(),
            wire_id=tx.wire_id,
            charge_point_id=self.cp_id,
        )
        self.gates[c.no] = gate
        self.smart_gates.append(gate)
        gate.begin(self._limit_at(c))
        c.state = self._gated_state(c.state, gate.applied_w)

    def _profiles_changed(self, installed: Profile | None) -> None:
        """Profiles changed now: the driver's override, or a change of the limit (a relevant time)."""
        for c in self.connectors.values():
            gate = self.gates.get(c.no)
            if gate is None:
                self._follow_limit(c)
                continue
            ours = installed is not None and installed.connector_no in (0, c.no)
            if (
                ours
                and installed is not None
                and installed.purpose is Purpose.TX
                and installed.profile_id == END_USER_OVERRIDE_PROFILE_ID
            ):
                gate.override(self._limit_at(c))
            else:
                gate.reconsider(self._limit_at(c))
            self._follow_gate(c)

    def _follow_limit(self, c: VirtualConnector) -> None:
        """Without a gate: a car held at 0 W by the profiles shows SuspendedEVSE, and charges again
        when they let power through; a change is reported."""
        tx = c.transaction
        if tx is None or c.no in self.gates:
            return
        state = self._gated_state(c.state, self.limit_w(c))
        if state is not c.state:
            c.state = state
            changed = self.dialect.charging_state_changed(c, tx, self._ts())
            if changed is not None:
                self._spawn(self._send_message(changed))
            self._report_later(c)

    def _follow_gate(self, c: VirtualConnector) -> None:
        """The connector shows whether the gate lets power through now; a change is reported."""
        gate = self.gates.get(c.no)
        if gate is None:
            return
        state = self._gated_state(c.state, gate.applied_w)
        tx = c.transaction
        if state is not c.state and tx is not None:
            c.state = state
            changed = self.dialect.charging_state_changed(c, tx, self._ts())
            if changed is not None:
                self._spawn(self._send_message(changed))
            self._report_later(c)

    @staticmethod
    def _gated_state(state: ConnectorState, limit_w: int) -> ConnectorState:
        if state is ConnectorState.CHARGING and limit_w == 0:
            return step(state, Trigger.EVSE_SUSPEND)
        if state is ConnectorState.SUSPENDED_EVSE and limit_w > 0:
            return step(state, Trigger.EVSE_RESUME)
        return state

    def _limit_at(self, c: VirtualConnector) -> Callable[[datetime], int]:
        return lambda at: self._shared_limit_w(c, at)

    def _profile_edges(self, c: VirtualConnector) -> Callable[[datetime, datetime], list[datetime]]:
        def edges(start: datetime, end: datetime) -> list[datetime]:
            if not self.profiles.profiles:
                return []
            span = max(1, int((end - start).total_seconds()) + 1)
            changes = self.profiles.composite(c.no, start, span, self._tx_context(c), c.max_power_w, c.phases)
            return [start + timedelta(seconds=offset) for offset, _ in changes if offset > 0]

        return edges

    def composite_schedule(self, connector_no: int, duration_s: int) -> list[tuple[int, int]] | None:
        """(offset s, limit W) over the next `duration_s`; None for a connector we do not have."""
        now = self.clock.now()
        if connector_no == 0:
            rating = sum(c.max_power_w for c in self.connectors.values())
            return self.profiles.composite(0, now, duration_s, None, rating, 3)
        c = self.connectors.get(connector_no)
        if c is None:
            return None
        return self.profiles.composite(c.no, now, duration_s, self._tx_context(c), c.max_power_w, c.phases)

    def phases(self, connector_no: int) -> int:
        c = self.connectors.get(connector_no)
        return 3 if c is None else c.phases
