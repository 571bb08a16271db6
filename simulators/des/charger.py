"""A virtual charger (OCPP 1.6J, 2.0.1 or 2.1) as SimPy processes, over an in-process link to the CSMS.

It is the SimPy driver of the firmware core (`charger_core.ChargerCore`), which the live charger
drives from asyncio: the same connectors, settings, charging profiles, offline queue and answers to
every command, through the live dialects' handler tables. What differs is only time and transport:
waits are SimPy timeouts, frames go straight to the central system's `Connection`, and a file
transfer (a firmware update, a log upload) is refused with the version's status, there being no
HTTP server in virtual time. Energy is integrated in the live charger's 60 s steps (split where a
charging profile changes the limit), but the charger wakes only to report: a meter reading every
`meter_interval_s`, the moment the car stops taking energy (predicted, then integrated), and a
limit's edge. Heartbeats go out only when nothing else was sent for a whole interval (any message
is a sign of life).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Coroutine, Generator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import simpy

from chargeshare.ocpp import V16, OcppVersion
from chargeshare.ocpp.connection import Connection, Handler, Outcome
from simulators.charger_core import ChargerCore, Route, gated_state
from simulators.des.central import DesCentral
from simulators.des.clock import SimClock
from simulators.dialect import Message, QueuedMessage, dialect_for
from simulators.evse import (
    BootReason,
    Plugged,
    Reservation,
    ResetKind,
    StopReason,
    Transaction,
    VirtualConnector,
)
from simulators.firmware import ConnectorState, Trigger, step
from simulators.power import TAPER_FROM, EnergyMeter, Vehicle
from simulators.settings import AUTHORIZE_REMOTE_START
from simulators.smart_charging import Profile
from simulators.smart_gate import SmartGate

STEP_S = 60.0  # energy integration step: the live charger's meter tick
REBOOT_S = 30.0  # simulated seconds a reboot takes
RESET_S = 10.0  # simulated seconds a commanded reset takes

Process = Generator[simpy.Event, Any, None]


def integrate(
    vehicle: Vehicle, meter: EnergyMeter, max_power_w: int, cap_wh: int, seconds: float
) -> float | None:
    """Charge for up to `seconds` in STEP_S steps, the register never passing `cap_wh`. Returns the
    offset at which the car stopped taking energy (full, or at its target), or None if it still is.

    Step for step what `Vehicle.power_w` and `EnergyMeter.add` would do, on local variables: every
    charging connector is integrated at each reading and probed ahead of it, a few hundred
    thousand steps in a simulated day (tests/des/test_des_integrate.py holds it to those methods)."""
    battery, soc, register, joules = vehicle.battery_wh, vehicle.soc_wh, meter.register_wh, meter._joules
    flat_w = min(vehicle.max_power_w, max_power_w)  # the car's draw below the taper
    t = 0.0
    try:
        while True:
            if soc / battery <= TAPER_FROM:
                power = flat_w
            else:
                vehicle.soc_wh = soc
                power = vehicle.power_w(max_power_w)
            if register >= cap_wh or power == 0:
                return t
            if t >= seconds:
                return None
            dt = STEP_S if seconds - t > STEP_S else seconds - t
            before = register
            wh, joules = divmod(joules + int(power * dt), 3600)
            register += wh
            if register > cap_wh:
                register = cap_wh
            soc += register - before
            t += dt
    finally:
        vehicle.soc_wh, meter.register_wh, meter._joules = soc, register, joules


class DesCharger(ChargerCore):
    def __init__(
        self,
        env: simpy.Environment,
        central: DesCentral,
        cp_id: str,
        connector_power_w: list[int],
        *,
        epoch: datetime,
        meter_interval_s: int,
        protocol: OcppVersion = V16,
        seed: int = 0,
        smart_charge_point: bool = False,
    ) -> None:
        super().__init__(
            cp_id,
            SimClock(env, epoch),
            dialect_for(protocol),
            connector_power_w,
            meter_interval_s=meter_interval_s,
            seed=seed,
            smart_charge_point=smart_charge_point,
        )
        self.env = env
        self.central = central
        self.epoch = epoch
        # Both ends of the link are ours: each checks what it receives, the central what we send.
        self.conn = Connection(
            self.dialect.version, self.csms_handlers(), id_prefix=f"{cp_id}-", check_own=False
        )
        self.reconnects = 0
        self.resets = 0
        self.last_sent_at = 0.0
        self._retrying: QueuedMessage | None = None  # the queue's head waiting out its retry interval
        self._tx_ids = (f"{cp_id}-tx{n}" for n in itertools.count(1))  # deterministic, unique per run
        self._done: dict[int, simpy.Event] = {}  # per connector: the car stopped taking energy
        self._generation: dict[int, int] = {}  # per connector: the charging process that is current
        self._updated_at = dict.fromkeys(self.connectors, 0.0)  # energy integrated up to here
        self._metered_at = dict.fromkeys(self.connectors, 0.0)  # last periodic reading sent

    def csms_handlers(self) -> dict[str, Handler]:
        """The live dialect's handlers, but for file transfers: refused, with the version's status."""
        table = super().csms_handlers()
        refusals = _TRANSFER_REFUSALS_V16 if self.dialect.version == V16 else _TRANSFER_REFUSALS_V2
        for action, refuse in refusals.items():
            if action in table:
                table[action] = partial(refuse, self)
        return table

    # ---- the link --------------------------------------------------------------------------------
    def receive(self, text: str) -> str | None:
        """A frame from the central system; our reply (None when the link is down)."""
        if not self.connected:
            return None
        return self.conn.receive(text).reply

    def _call(
        self, action: str, payload: dict[str, Any], *, if_queued: Callable[[Outcome], None] | None = None
    ) -> Outcome:
        """Send now and take the answer in the same instant; the core's `route` says what is queued
        or dropped while out of touch. A transaction message the CSMS failed to process goes again
        once its retry interval has passed in virtual time, first in the queue (`retry_first`), so
        everything submitted meanwhile waits behind it; `if_queued` takes its answer then."""
        route = self.route(action)
        if route is Route.QUEUE:
            self.enqueue((action, payload), if_queued)
            return Outcome("", action, error="Queued")
        if route is Route.DROP:
            return Outcome("", action, error="Offline")
        attempt = 1
        outcome = self._call_once(action, payload)
        while (wait_s := self.retry_after_s(action, outcome, attempt)) is not None:
            if wait_s > 0:
                self._retry_in(self.retry_first((action, payload), attempt, if_queued), wait_s)
                return Outcome(outcome.unique_id, action, error="Queued")
            attempt += 1
            outcome = self._call_once(action, payload)
        return outcome

    def _replay(self) -> None:
        """Send the queue in order; stop at the first that gets no answer (it stays first in line),
        or that waits out its retry interval."""
        if self._retrying is not None and self.queue and self.queue[0] is self._retrying:
            return  # the head goes when its interval has passed
        while (head := self.replay_head()) is not None:
            outcome = self._call_once(*head)
            self.queue[0].sendings += 1
            wait_s = self.retry_after_s(head[0], outcome, self.queue[0].sendings)
            if wait_s is None:
                if not self.replayed(outcome):
                    return
            elif wait_s > 0:
                self._retry_in(self.queue[0], wait_s)
                return

    def _retry_in(self, entry: QueuedMessage, wait_s: float) -> None:
        self._retrying = entry
        self.env.process(self._retry_after(entry, wait_s))

    def _retry_after(self, entry: QueuedMessage, wait_s: float) -> Process:
        yield self.env.timeout(wait_s)
        # Lost with the queue meanwhile (a power cut), a later message's wait is its own.
        if self._retrying is entry:
            self._retrying = None
            self._replay()  # out of touch by then: the next resume replays

    def _call_once(self, action: str, payload: dict[str, Any]) -> Outcome:
        transactional = action in self.dialect.transaction_actions
        uid, text = self.conn.call(action, payload, self.env.now)
        self.last_sent_at = self.env.now
        reply = self.central.deliver(self.cp_id, text)
        if self.duplicate_sends and transactional:
            # The same frame again: the CSMS must not count it twice (our side ignores the 2nd answer).
            second = self.central.deliver(self.cp_id, text)
            if second is not None:
                self.conn.receive(second)
        if reply is None:
            self.conn.tick(self.env.now + self.conn.call_timeout_s)
            return Outcome(uid, action, error="Timeout")
        outcomes = self.conn.receive(reply).outcomes
        return outcomes[0] if outcomes else Outcome(uid, action, error="NoAnswer")

    def send_call(self, action: str, payload: dict[str, Any]) -> Outcome:
        """One call exactly as given, never queued, answered like any other: for a charger made to
        misbehave, such as one naming another charger's transaction."""
        if not self.reachable:
            return Outcome("", action, error="Offline")
        return self._call_once(action, payload)

    def _send(self, message: Message) -> None:
        self._call(*message)

    def later(self, fn: Callable[[], object]) -> None:
        self.central.later(fn)

    # ---- lifecycle -------------------------------------------------------------------------------
    def connect(self, reason: BootReason = BootReason.POWER_UP) -> None:
        self.central.attach(self, self.dialect.version)
        self.connected = True
        if not self.boot(reason):
            raise RuntimeError(f"{self.cp_id}: boot not accepted")
        self._resume()

    def boot(self, reason: BootReason) -> bool:
        """BootNotification; adopt the CSMS's heartbeat interval when accepted."""
        return self.boot_answered(self._call(*self.boot_message(reason)))

    def _resume(self) -> None:
        """Replay what was queued (so the CSMS sees the real meter stops), then report every connector."""
        self._replay()
        for c in self.connectors.values():
            self._status(c)

    def heartbeats(self) -> Process:
        while True:
            wait = self.last_sent_at + self.heartbeat_interval_s - self.env.now
            if wait > 0:
                yield self.env.timeout(wait)
                continue
            if self.reachable:
                self._send(self.dialect.heartbeat())
            else:
                self.last_sent_at = self.env.now  # nothing can be sent: look again an interval later

    def _drop_link(self) -> None:
        self.connected = False
        self.central.detach(self.cp_id)

    def _reconnect(self, reason: BootReason = BootReason.POWER_UP) -> None:
        self.connect(reason)
        self.reconnects += 1

    # ---- faults ----------------------------------------------------------------------------------
    def disconnect_for(self, seconds: float) -> Process:
        self._drop_link()
        yield self.env.timeout(seconds)
        self._reconnect()

    def reboot(self, *, lose_queue: bool) -> Process:
        """Power-cycle: transactions end with reason Reboot (queued), unless the queue dies too."""
        self._drop_link()
        self.power_cut(lose_queue=lose_queue)
        yield self.env.timeout(REBOOT_S)
        self._reconnect()

    def silence_for(self, seconds: float) -> Process:
        self.silent = True
        yield self.env.timeout(seconds)
        self.silent = False
        self._resume()

    def settle_down(self) -> None:
        """End of a run: back in touch if a fault left us out of it, so nothing stays queued."""
        if self.silent:
            self.silent = False
            self._resume()
        if not self.connected:
            self._reconnect()

    def stop(self) -> None:
        self._drop_link()

    # ---- energy ----------------------------------------------------------------------------------
    def advance_energy(self) -> None:
        for c in self.connectors.values():
            self._advance(c)

    def _advance(self, c: VirtualConnector) -> None:
        """Integrate a charging connector up to now; a car that stopped taking energy is SuspendedEV."""
        start = self.epoch + timedelta(seconds=self._updated_at[c.no])
        self._updated_at[c.no] = self.env.now
        p = c.plugged
        gate = self.gates.get(c.no)
        if gate is not None and p is not None:
            self._advance_gated(c, p, gate)
            return
        if p is None or c.state not in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EVSE):
            return
        cap = p.meter_start + p.target_wh
        if not self.profiles.profiles:  # the common case: the connector's rating throughout
            stretches = [(c.max_power_w, (self.clock.now() - start).total_seconds())]
        else:
            now, limit_at = self.clock.now(), self._limit_at(c)
            moments = [start, *self._profile_edges(c)(start, now), now]
            stretches = [(limit_at(a), (b - a).total_seconds()) for a, b in itertools.pairwise(moments)]
        for limit_w, seconds in stretches:
            c.state = gated_state(c.state, limit_w)  # held at 0 W: SuspendedEVSE; more: charging again
            if c.state is not ConnectorState.CHARGING:
                continue
            if integrate(p.vehicle, c.meter, limit_w, cap, seconds) is not None:
                c.state = step(c.state, Trigger.EV_FULL)
                break
        if self.profiles.profiles and c.state in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EVSE):
            c.state = gated_state(c.state, self.limit_w(c))
        p.delivered_wh = c.meter.register_wh - p.meter_start

    def _advance_gated(self, c: VirtualConnector, p: Plugged, gate: SmartGate) -> None:
        """Stretch by stretch, each under the limit the gate held (the charger wakes at each edge)."""
        for segment in gate.walk(self.clock.now(), self._limit_at(c), self._profile_edges(c)):
            c.state = gated_state(c.state, segment.limit_w)
            if c.state is not ConnectorState.CHARGING:
                continue
            before = c.meter.register_wh
            seconds = (segment.end - segment.start).total_seconds()
            full = integrate(p.vehicle, c.meter, segment.limit_w, p.meter_start + p.target_wh, seconds)
            gate.account(segment, c.meter.register_wh - before)
            if full is not None:
                c.state = step(c.state, Trigger.EV_FULL)
        c.state = gated_state(c.state, gate.applied_w)
        p.delivered_wh = c.meter.register_wh - p.meter_start
        if c.state is ConnectorState.SUSPENDED_EV:
            self.gates.pop(c.no, None)  # the car is full: no later moment is a relevant time
            gate.close()

    def _charging(self, c: VirtualConnector, tx: Transaction) -> Process:
        """One transaction's reports: a reading every interval, and the moment the car is done."""
        generation = self._generation[c.no] = self._generation.get(c.no, 0) + 1
        while True:
            horizon = max(0.0, self._metered_at[c.no] + self.meter_interval_s - self.env.now)
            p = c.plugged
            gate = self.gates.get(c.no)
            if gate is not None or self.profiles.profiles:
                now = self.clock.now()
                until = now + timedelta(seconds=horizon)
                if gate is not None:
                    # Wake when the gate may change the limit (a delay ending, a peak window's edge).
                    horizon = (gate.next_change(now, until, self._profile_edges(c)) - now).total_seconds()
                else:
                    edges = self._profile_edges(c)(now, until)
                    if edges:  # a charging profile changes the limit: integrate up to there
                        horizon = (edges[0] - now).total_seconds()
            if c.state is ConnectorState.CHARGING and p is not None:
                if gate is not None:
                    limit_w = gate.applied_w
                else:
                    limit_w = self.limit_w(c) if self.profiles.profiles else c.max_power_w
                probe = integrate(
                    dataclasses.replace(p.vehicle),
                    dataclasses.replace(c.meter),
                    limit_w,
                    p.meter_start + p.target_wh,
                    horizon,
                )
                horizon = horizon if probe is None else probe
            yield self.env.timeout(horizon)
            if c.transaction is not tx or self._generation[c.no] != generation:
                return  # unplugged, stopped remotely or rebooted meanwhile; or a newer process follows it
            was = c.state
            self._advance(c)
            if self.env.now - self._metered_at[c.no] >= self.meter_interval_s or c.state is not was:
                self._metered_at[c.no] = self.env.now
                self._send(self.meter_message(c, tx))
            if c.state is not was:
                changed = self.dialect.charging_state_changed(c, tx, self._ts())
                if changed is not None:
                    self._send(changed)
                self._status(c)
                if c.state is ConnectorState.SUSPENDED_EV:
                    self._finished(c)

    def _finished(self, c: VirtualConnector) -> None:
        done = self._done.get(c.no)
        if done is not None and not done.triggered:
            done.succeed()

    # ---- what the charger reports ----------------------------------------------------------------
    def _status(self, c: VirtualConnector) -> None:
        self._send(self.status_message(c))

    # ---- what a driver does at the charger -------------------------------------------------------
    def plug_in(self, connector_no: int, id_tag: str, vehicle: Vehicle, target_wh: int) -> simpy.Event:
        """Plug in and present a card: Authorize, then start a transaction if accepted. Returns the
        event that fires when the car stops taking energy or the transaction ends."""
        self.plug(connector_no, vehicle, target_wh, id_tag=id_tag)
        c = self.connectors[connector_no]
        done = self._done[c.no] = self.env.event()
        self._status(c)
        if self._authorized(id_tag):
            self._start(c, id_tag)
        else:
            self.card_refused(c)
        return done

    def _authorized(self, id_tag: str) -> bool:
        auth = self._call(*self.dialect.authorize(id_tag))
        if not auth.ok or auth.payload is None:
            return False
        status = self.dialect.id_status(auth.payload)
        self.local_auth.remember(id_tag, status)
        return status == "Accepted"

    def _start(self, c: VirtualConnector, id_tag: str, remote_start_id: int | None = None) -> bool:
        """Announce a transaction on a plugged connector; True when the CSMS accepted it."""
        assert c.plugged is not None
        tx = self.new_transaction(c, id_tag, remote_start_id=remote_start_id)
        outcome = self._call(
            *self.dialect.started(c, tx, self._ts(), c.plugged.reservation_id),
            if_queued=self.start_queued(c, tx),
        )
        accepted = self.take_start(c, tx, outcome)
        if accepted is None:  # the car left meanwhile: end what the CSMS may have opened
            stop = self.abandoned_start(c, tx, outcome)
            if stop is not None:
                self._send(stop)
            return False
        if accepted:
            self._updated_at[c.no] = self._metered_at[c.no] = self.env.now
            self._status(c)
            held_back = self.held_back_message(c, tx)
            if held_back is not None:
                self._send(held_back)
            self.env.process(self._charging(c, tx))
            return True
        if accepted is False and tx.wire_id is not None and self.dialect.ends_refused_start:
            # 2.0.1: the transaction exists once announced; a refused card ends it at once.
            self._send(self.stop_message(c, tx, StopReason.DEAUTHORIZED))
        return False

    def transaction_running(self, connector_no: int) -> bool:
        return self.connectors[connector_no].transaction is not None

    def unplug(self, connector_no: int, reason: StopReason = StopReason.EV_DISCONNECTED) -> None:
        c = self.connectors[connector_no]
        if c.plugged is None:
            return
        self._advance(c)
        if c.transaction is not None:
            tx = self._end_transaction(c)
            self._send(self.stop_message(c, tx, reason))
        self.unplugged(c)
        self._status(c)
        self._reset_if_idle()

    # ---- the core's hooks ------------------------------------------------------------------------
    def follow_up(self, message: Message) -> None:
        self.later(partial(self._send, message))

    async def send_message(self, message: Message) -> None:
        self._send(message)

    def transfer_later(
        self, transfer: Coroutine[Any, Any, None], *, not_before: datetime | None = None
    ) -> None:
        transfer.close()  # never reached: the handlers that would start one are refusals here

    def renew_later(self) -> None:
        self.later(lambda: self._send(self.renewal_message()))

    def start_later(
        self, c: VirtualConnector, id_tag: str, remote_start_id: int | None, profile: Profile | None
    ) -> None:
        def start() -> None:
            if self.settings.flag(AUTHORIZE_REMOTE_START) and not self._authorized(id_tag):
                return
            if not self.can_start(c):
                return  # the car left (or another start began) since the command was answered
            if self._start(c, id_tag, remote_start_id):
                self.start_profile(c, profile)

        self.later(start)

    def stopped_later(
        self, c: VirtualConnector, tx: Transaction, reason: StopReason, status: Message
    ) -> None:
        def tell() -> None:
            self._send(self.stop_message(c, tx, reason))
            self._send(status)  # the state when it stopped, even if the car has left since
            self._reset_if_idle()

        self.later(tell)

    def reset_later(self, kind: ResetKind) -> None:
        self.later(lambda: self.env.process(self._perform_reset(kind)))

    def _perform_reset(self, kind: ResetKind) -> Process:
        """Stop every transaction (telling the CSMS), go down, come back and boot again."""
        for c, tx, reason in self.end_for_reset(kind):
            self._send(self.stop_message(c, tx, reason))
        self.resets += 1
        self._drop_link()
        yield self.env.timeout(RESET_S)
        self._reconnect(BootReason.REMOTE_RESET)

    def boot_later(self) -> None:
        self.later(lambda: self.boot(BootReason.TRIGGERED))

    def next_transaction_id(self) -> str:
        return next(self._tx_ids)

    def transaction_ended(self, c: VirtualConnector) -> None:
        self._finished(c)

    def reservation_made(self, c: VirtualConnector, r: Reservation) -> None:
        self.env.process(self._expire(r))

    def _expire(self, r: Reservation) -> Process:
        """A reservation nobody used ends at its expiry (the live charger checks on its meter tick)."""
        yield self.env.timeout(max(0.0, (r.expires_at - self.clock.now()).total_seconds()))
        for c, expired in self.expire_due():
            self._status(c)
            said = self.dialect.reservation_expired(expired.reservation_id)
            if said is not None:
                self._send(said)

    def limits_changed(self, c: VirtualConnector) -> None:
        tx = c.transaction
        if tx is not None:
            self.env.process(self._charging(c, tx))  # the old process finds its wake moved and ends


def _update_firmware_v16(cp: DesCharger, p: dict[str, Any]) -> dict[str, Any]:
    cp.follow_up(("FirmwareStatusNotification", {"status": "DownloadFailed"}))
    return {}


def _get_diagnostics_v16(cp: DesCharger, p: dict[str, Any]) -> dict[str, Any]:
    return {}  # no fileName: no diagnostics to upload


def _rejected(cp: DesCharger, p: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Rejected"}


# No HTTP server in virtual time: a file transfer is refused as the version lets a charger say so.
_TRANSFER_REFUSALS_V16 = {"UpdateFirmware": _update_firmware_v16, "GetDiagnostics": _get_diagnostics_v16}
_TRANSFER_REFUSALS_V2 = {"UpdateFirmware": _rejected, "GetLog": _rejected}
