"""A virtual OCPP charger, in 1.6J, 2.0.1 or 2.1, on a real websocket: the asyncio driver of the
firmware core (`charger_core.ChargerCore`: connector states, transactions, reservations, settings,
profiles, the answers to every command and the offline queue's rules). It boots, heartbeats,
reports status, meters energy under its charging profiles on each tick, sends what the core asks
once the current answer has gone, and replays its queue on reconnect. It uses the same sans-I/O
`Connection` as the backend, in the client role.

Behaviour a deliberately faulty variant may want to change is in small methods to override:
`status_message` (every StatusNotification; `report_status` sends the awaited ones), `meter_message`,
`stop_message` and `_stop_transaction` (how a transaction's end is told and sent),
`expire_reservations`, `reset` / `perform_reset`, the command operations (`remote_start`,
`reserve`, `change_availability`, ...) and `csms_handlers`. `send_unchecked` and `send_raw` put
frames on the wire that the schema would refuse; `send_call` sends a valid call of the caller's
making (a spoof).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from chargeshare.domain.credentials import basic_auth_header
from chargeshare.ocpp import V16, OcppVersion
from chargeshare.ocpp.connection import Connection, Outcome
from chargeshare.ocpp.frames import Call, encode, read_json
from chargeshare.services.clock import Clock
from simulators.charger_core import RETRIED_ERRORS, ChargerCore, Route, gated_state
from simulators.dialect import Message, QueuedMessage, dialect_for
from simulators.evse import (
    BootReason,
    Plugged,
    PlugRefused,
    Reservation,
    ResetKind,
    StopReason,
    Transaction,
    VirtualConnector,
)
from simulators.firmware import IN_TRANSACTION, ConnectorState, Trigger, step
from simulators.pacing import sleep_sim
from simulators.power import Vehicle
from simulators.smart_charging import Profile
from simulators.smart_gate import Segment, SmartGate
from simulators.wire_faults import malformed_frames

__all__ = ["PlugRefused", "Plugged", "Reservation", "VirtualCharger", "VirtualConnector"]

log = logging.getLogger(__name__)

RECONNECT_ATTEMPTS = 20
RECONNECT_BASE_S = 5.0  # simulated seconds, doubled each attempt, with jitter
# Doubling stops here, as OCPP 2.0.1's RetryBackOffRepeatTimes stops it: a charger back within a
# couple of minutes of its CSMS, well inside the heartbeat watchdog's patience.
RECONNECT_CAP_S = 120.0
REBOOT_S = 30.0  # simulated seconds a reboot takes
RESET_S = 10.0  # simulated seconds a commanded reset takes
LOST = "Lost"  # a transaction message lost with the power while it waited to go again


class VirtualCharger(ChargerCore):
    def __init__(
        self,
        cp_id: str,
        url: str,
        clock: Clock,
        connector_power_w: list[int],
        *,
        protocol: OcppVersion = V16,
        meter_interval_s: int = 60,
        call_timeout_s: float = 10.0,
        password: str | None = None,
        seed: int = 0,
        smart_charge_point: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            cp_id,
            clock,
            dialect_for(protocol),
            connector_power_w,
            meter_interval_s=meter_interval_s,
            seed=seed,
            smart_charge_point=smart_charge_point,
        )
        self.password = password  # HTTP Basic auth on the upgrade (OCPP security profile 1)
        # wss: trusting the CSMS's certificate, and presenting ours under security profile 3.
        self.ssl_context = ssl_context
        self.server_url = url.rstrip("/")
        self.url = self.server_url + "/" + cp_id
        self.conn = Connection(
            self.dialect.version, self.csms_handlers(), id_prefix=f"{cp_id}-", call_timeout_s=call_timeout_s
        )
        self._ws: ClientConnection | None = None
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        # Answers acted on as they arrive, before the next frame is read (see start_transaction).
        self._on_answer: dict[str, Callable[[Outcome], None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._followups: list[Coroutine[Any, Any, None]] | None = None
        self._last_meter_at = clock.now()
        self._replaying = False
        self._tx_turn = asyncio.Lock()  # held by the transaction message being sent, every attempt
        self._finished: dict[int, asyncio.Event] = {}  # per connector: its current car is done
        self.online = asyncio.Event()
        self._boot_answered = asyncio.Event()  # a boot was answered (a triggered one, while Pending)
        self.frames_sent = 0
        self.resets = 0
        # Queued transaction messages are replayed in order, with their original timestamps, on
        # reconnect.
        self.reconnects = 0
        self._rng = random.Random(f"{seed}:{cp_id}")
        self._malformed_ids: set[str] = set()
        self._closing = False
        self._reconnecting: asyncio.Task[None] | None = None
        # Off: back in touch, the connectors are not reported (OCPP asks it only at boot, and some
        # chargers do not), so the CSMS hears of them when they change or when it asks.
        self.reports_on_resume = True

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
        accepted = self.boot_answered(await self._call(*self.boot_message(reason)))
        self._boot_answered.set()
        return accepted

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
        if self.reports_on_resume:
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
        self.advance_energy()
        await self._drop_link()
        self.power_cut(lose_queue=lose_queue)
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
            while True:
                # A turn per message: one submitted meanwhile takes the next turn and, finding the
                # queue still waiting, joins its end.
                async with self._tx_turn:
                    if self.replay_head() is None:
                        break
                    head = self.queue[0]
                    outcome = await self._attempts(head.action, head.payload, queued=head)
                    if outcome.error == LOST or not self.replayed(outcome):
                        break
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
        self._fail_waiting()
        if ws is not None:
            await ws.close()

    def _fail_waiting(self) -> None:
        """Calls waiting for an answer on a lost link will get none: offline now, so a transaction
        message is queued for the replay instead of holding the turn until its timeout."""
        waiting, self._waiting = self._waiting, {}
        self._on_answer.clear()
        self.conn.tick(asyncio.get_running_loop().time() + self.conn.call_timeout_s)
        for uid, fut in waiting.items():
            if not fut.done():
                fut.set_result(Outcome(uid, "", error="Offline"))

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
            # The CSMS's end went away (its process died or restarted): firmware reconnects.
            log.info("%s: the link was closed by the other end; reconnecting", self.cp_id)
            self.connected = False
            self.online.clear()
            self._fail_waiting()
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

    async def _call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        queue_if_offline: bool = True,
        on_answer: Callable[[Outcome], None] | None = None,
        if_queued: Callable[[Outcome], None] | None = None,
    ) -> Outcome:
        """Send a call and wait for its answer; the core's `route` says what is queued or dropped.
        `if_queued` takes the answer of its replay, if it is queued."""
        if action not in self.dialect.transaction_actions:
            if self.route(action) is Route.DROP:
                return Outcome("", action, error="Offline")
            return await self._call_once(action, payload, on_answer)
        # One transaction message at a time, in the order submitted, each with all its attempts
        # before the next: routed only once its turn comes, so it joins a queue that formed meanwhile.
        async with self._tx_turn:
            route = self.route(action, queue_if_offline=queue_if_offline)
            if route is Route.QUEUE:
                self.enqueue((action, payload), if_queued)
                if self.reachable:
                    self._start(self._replay())  # a replay cut short earlier: take it up again
                return Outcome("", action, error="Queued")
            if route is Route.DROP:
                return Outcome("", action, error="Offline")
            outcome = await self._attempts(action, payload, on_answer)
            if queue_if_offline:
                if outcome.error == "Offline":  # the link went while we sent: keep it for the replay
                    # First: the queue was empty when it was sent, so what is there came after it.
                    self.enqueue((action, payload), if_queued, first=True)
                    return Outcome(outcome.unique_id, action, error="Queued")
                if outcome.error in RETRIED_ERRORS:
                    self.messages_given_up += 1
            return outcome

    async def _attempts(
        self,
        action: str,
        payload: dict[str, Any],
        on_answer: Callable[[Outcome], None] | None = None,
        *,
        queued: QueuedMessage | None = None,
    ) -> Outcome:
        """Send a transaction message until it is answered or its attempts run out, waiting the
        retry interval before each new attempt (`retry_after_s`); the caller holds `_tx_turn`. While
        it waits it is first in the queue (`queued`: it is the queue's head already), as the DES
        holds it, so a power cut meanwhile loses it with the queue (LOST) or queues its stops behind."""
        attempt = 1
        outcome = await self._call_once(action, payload, self._final_answer(action, attempt, on_answer))
        while (wait_s := self.retry_after_s(action, outcome, attempt)) is not None:
            held = queued if queued is not None else self.retry_first((action, payload), attempt, None)
            await self.wait_to_resend(wait_s)
            if not self.queue or self.queue[0] is not held:
                return Outcome(outcome.unique_id, action, error=LOST)
            if queued is None:
                self.queue.pop(0)
            attempt += 1
            outcome = await self._call_once(action, payload, self._final_answer(action, attempt, on_answer))
        return outcome

    async def wait_to_resend(self, simulated_s: float) -> None:
        """The wait before a transaction message goes again, on the simulated clock."""
        if simulated_s > 0:
            await sleep_sim(self.clock, simulated_s)

    def _final_answer(
        self, action: str, attempt: int, on_answer: Callable[[Outcome], None] | None
    ) -> Callable[[Outcome], None] | None:
        """`on_answer` for one attempt, skipping an answer after which the message is sent again."""
        if on_answer is None:
            return None
        hook = on_answer

        def final(outcome: Outcome) -> None:
            if not self.send_again(action, outcome, attempt):
                hook(outcome)

        return final

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
        outcome = await self._call(*self.renewal_message())
        return outcome.ok and outcome.payload is not None and outcome.payload["status"] == "Accepted"

    def transfer_later(
        self, transfer: Coroutine[Any, Any, None], *, not_before: datetime | None = None
    ) -> None:
        """A firmware download or log upload, begun once the command's answer has gone and not
        before `not_before` on the charger's clock."""
        self._spawn(self._transfer_at(transfer, not_before))

    async def _transfer_at(self, transfer: Coroutine[Any, Any, None], not_before: datetime | None) -> None:
        wait_s = 0.0 if not_before is None else (not_before - self.clock.now()).total_seconds()
        if wait_s > 0:
            try:
                await asyncio.sleep(wait_s)  # the charger's own schedule, as told
            except BaseException:
                transfer.close()
                raise
        await transfer

    def renew_later(self) -> None:
        """TriggerMessage SignChargingStationCertificate: renew once the answer has gone."""
        self._spawn(self._renew())

    async def _renew(self) -> None:
        if not await self.renew_certificate():
            log.info("%s: the CSMS refused to sign a renewal it asked for", self.cp_id)

    async def report_status(self, c: VirtualConnector) -> None:
        await self._call(*self.status_message(c))

    async def _send_message(self, message: Message) -> None:
        await self._call(*message)

    async def send_message(self, message: Message) -> None:
        """Send a message of its own now (queued while offline, as any other)."""
        await self._call(*message)

    def advance_energy(self) -> None:
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
                self.follow_limit(c)  # a period's edge may let a car held at 0 W charge again
                continue
            self._charge(c, p, self.power_w(c), seconds)
            self.follow_limit(c)

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
            self._finished[c.no].set()
        return c.meter.register_wh - before

    def _advance_gated(self, c: VirtualConnector, p: Plugged, gate: SmartGate, now: datetime) -> None:
        """Integrate stretch by stretch, each under the limit the gate held then (a delay ending, a
        peak window's edge), so energy lands where it was drawn."""
        segment: Segment
        for segment in gate.walk(now, self._limit_at(c), self._profile_edges(c)):
            c.state = gated_state(c.state, segment.limit_w)
            if c.state is ConnectorState.CHARGING:
                seconds = (segment.end - segment.start).total_seconds()
                gate.account(segment, self._charge(c, p, p.vehicle.power_w(segment.limit_w), seconds))
        c.state = gated_state(c.state, gate.applied_w)
        if c.state is ConnectorState.SUSPENDED_EV:
            # The car is full: electricity would not flow whatever the gate says, so no later
            # moment is a relevant time for this transaction.
            self.gates.pop(c.no, None)
            gate.close()

    async def _meter_tick(self) -> None:
        before = {c.no: c.state for c in self.connectors.values()}
        self.advance_energy()
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
        for c, r in self.expire_due():
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
            self.card_refused(c)
            return plugged
        await self.start_transaction(c, id_tag)
        return plugged

    async def plug_car(
        self, connector_no: int, vehicle: Vehicle, target_wh: int, *, id_tag: str = ""
    ) -> Plugged:
        """Plug a car in without presenting a card (a remote start may follow)."""
        plugged = self.plug(connector_no, vehicle, target_wh, id_tag=id_tag)
        self._finished[connector_no] = asyncio.Event()
        await self.report_status(self.connectors[connector_no])
        return plugged

    async def start_transaction(
        self, c: VirtualConnector, id_tag: str, *, remote_start_id: int | None = None
    ) -> bool:
        """Start on a plugged connector; True when the CSMS accepted the transaction."""
        assert c.plugged is not None
        tx = self.new_transaction(c, id_tag, remote_start_id=remote_start_id)
        reservation_id = c.plugged.reservation_id
        # The answer is taken as it arrives, before the next frame is read, as firmware does: the
        # CSMS may follow it at once with a command naming the transaction (a TxProfile).
        decided: list[bool | None] = []
        outcome = await self._call(
            *self.dialect.started(c, tx, self._ts(), reservation_id),
            on_answer=lambda answer: decided.append(self.take_start(c, tx, answer)),
            if_queued=self.start_queued(c, tx),
        )
        accepted = decided[0] if decided else self.take_start(c, tx, outcome)
        if accepted is None:  # unplugged meanwhile: end what the CSMS may have opened
            stop = self.abandoned_start(c, tx, outcome)
            if stop is not None:
                await self._call(*stop)
            return False
        if accepted:
            await self.report_status(c)
            held_back = self.held_back_message(c, tx)
            if held_back is not None:
                await self._call(*held_back)
            return True
        if tx.wire_id is not None and self.dialect.ends_refused_start:
            # 2.0.1: the transaction exists once announced; a refused card ends it at once.
            await self._call(*self.stop_message(c, tx, StopReason.DEAUTHORIZED))
        return False

    async def unplug(self, connector_no: int, reason: StopReason = StopReason.EV_DISCONNECTED) -> None:
        c = self.connectors[connector_no]
        if c.plugged is None:
            return
        self.advance_energy()
        if c.transaction is not None:
            await self._stop_transaction(c, self._end_transaction(c), reason)
        self.unplugged(c)
        await self.report_status(c)
        self._reset_if_idle()

    async def _stop_transaction(self, c: VirtualConnector, tx: Transaction, reason: StopReason) -> None:
        await self._call(*self.stop_message(c, tx, reason))

    # ---- the core's hooks: what takes time or goes on the wire ----------------------------------
    def follow_up(self, message: Message) -> None:
        """Send `message` once the answer to the command being handled has gone (a report it asked for)."""
        self._spawn(self._send_message(message))

    def start_later(
        self, c: VirtualConnector, id_tag: str, remote_start_id: int | None, profile: Profile | None
    ) -> None:
        self._spawn(self._remote_started(c, id_tag, remote_start_id, profile))

    async def _remote_started(
        self, c: VirtualConnector, id_tag: str, remote_start_id: int | None, profile: Profile | None
    ) -> None:
        if self.settings.flag("authorize_remote_start"):
            auth = await self._call(*self.dialect.authorize(id_tag))
            if not auth.ok or auth.payload is None or self.dialect.id_status(auth.payload) != "Accepted":
                return
        if not self.can_start(c):
            return  # the car left (or another start began) since the command was answered
        if await self.start_transaction(c, id_tag, remote_start_id=remote_start_id):
            self.start_profile(c, profile)

    def stopped_later(
        self, c: VirtualConnector, tx: Transaction, reason: StopReason, status: Message
    ) -> None:
        self._spawn(self._stop_and_report(c, tx, reason, status))

    async def _stop_and_report(
        self, c: VirtualConnector, tx: Transaction, reason: StopReason, status: Message
    ) -> None:
        await self._stop_transaction(c, tx, reason)
        await self._call(*status)  # the state when it stopped, even if the car has left since
        self._reset_if_idle()

    def reset_later(self, kind: ResetKind) -> None:
        self._spawn(self.perform_reset(kind))

    async def perform_reset(self, kind: ResetKind) -> None:
        """Stop every transaction (telling the CSMS), go down, come back and boot again."""
        for c, tx, reason in self.end_for_reset(kind):
            await self._stop_transaction(c, tx, reason)
        self.resets += 1
        await self._drop_link()
        await asyncio.sleep(self.clock.real_seconds(RESET_S))
        await self._reconnect(BootReason.REMOTE_RESET)

    def boot_later(self) -> None:
        self._spawn(self._triggered_boot())

    async def _triggered_boot(self) -> None:
        await self.boot(BootReason.TRIGGERED)

    def finished(self, connector_no: int) -> asyncio.Event:
        """Set when the car last plugged into the connector stops taking energy or its transaction ends."""
        return self._finished[connector_no]

    def next_transaction_id(self) -> str:
        return str(uuid.uuid4())  # unique across reboots and runs, as 2.0.1 wants

    def transaction_ended(self, c: VirtualConnector) -> None:
        if c.plugged is not None:
            self._finished[c.no].set()
