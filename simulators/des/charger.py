"""A virtual charger (OCPP 1.6J or 2.0.1) as SimPy processes, over an in-process link to the CSMS.

It reuses the live charger's models: what a connector holds (`evse`), its transition table
(`firmware.step`), the vehicle and meter (`power`), each OCPP version's payloads (`dialect_v16`,
`dialect_v201`), and the sans-I/O `Connection` in the client role. What differs is only time and
transport: waits are SimPy timeouts, frames go straight to the central system's `Connection`. Energy
is integrated in the live charger's 60 s steps, but the charger wakes only to report: a meter reading
every `meter_interval_s`, and the moment the car stops taking energy (predicted, then integrated).
Heartbeats go out only when nothing else was sent for a whole interval (any message is a sign of life).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import simpy

from chargeshare.ocpp import V16
from chargeshare.ocpp.connection import Connection, Handler, Outcome
from chargeshare.ocpp.smart_charging import END_USER_OVERRIDE_PROFILE_ID
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from simulators import dialect_v16, dialect_v201
from simulators.des.central import DesCentral
from simulators.dialect import Message, dialect_for
from simulators.evse import (
    BootReason,
    Plugged,
    Reservation,
    StopReason,
    Transaction,
    VirtualConnector,
    check_plug_in,
    reserve_connector,
)
from simulators.firmware import IN_TRANSACTION, ConnectorState, Trigger, step
from simulators.power import EnergyMeter, Vehicle
from simulators.settings import BY_COMPONENT_VARIABLE, BY_KEY, SMART_NAMES, SetResult, Settings
from simulators.smart_charging import ProfileBook, ProfileRefused, TxContext
from simulators.smart_gate import SmartGate

STEP_S = 60.0  # energy integration step: the live charger's meter tick
REBOOT_S = 30.0

Process = Generator[simpy.Event, Any, None]


def integrate(
    vehicle: Vehicle, meter: EnergyMeter, max_power_w: int, cap_wh: int, seconds: float
) -> float | None:
    """Charge for up to `seconds` in STEP_S steps, the register never passing `cap_wh`. Returns the
    offset at which the car stopped taking energy (full, or at its target), or None if it still is."""
    t = 0.0
    while True:
        power = vehicle.power_w(max_power_w)
        if meter.register_wh >= cap_wh or power == 0:
            return t
        if t >= seconds:
            return None
        dt = min(STEP_S, seconds - t)
        before = meter.register_wh
        meter.add(power, dt)
        meter.register_wh = min(meter.register_wh, cap_wh)
        vehicle.soc_wh += meter.register_wh - before
        t += dt


class DesCharger:
    def __init__(
        self,
        env: simpy.Environment,
        central: DesCentral,
        cp_id: str,
        connector_power_w: list[int],
        *,
        epoch: datetime,
        meter_interval_s: int,
        protocol: str = V16,
        seed: int = 0,
        smart_charge_point: bool = False,
    ) -> None:
        self.env = env
        self.central = central
        self.cp_id = cp_id
        self.epoch = epoch
        self.meter_interval_s = meter_interval_s
        self.dialect = dialect_for(protocol)
        self.heartbeat_interval_s = 300
        self.connectors = {i + 1: VirtualConnector(i + 1, p) for i, p in enumerate(connector_power_w)}
        self.settings = Settings(len(self.connectors), smart_charge_point=smart_charge_point)
        # The smart charging regulations, as the live charger keeps them (simulators/smart_gate.py).
        self.smart_charge_point = smart_charge_point
        self._delay_rng = random.Random(f"{seed}:{cp_id}:delay")
        self.gates: dict[int, SmartGate] = {}
        self.smart_gates: list[SmartGate] = []
        # Charging profiles the central system set (a site's or feeder's limits), as the live charger
        # keeps them; the driver's override is the gate's, above.
        self.profiles = ProfileBook()
        # Both ends of the link are ours: each checks what it receives, the central what we send.
        self.conn = Connection(
            self.dialect.version, self._csms_handlers(), id_prefix=f"{cp_id}-", check_own=False
        )
        self.connected = False
        self.silent = False
        self.duplicate_sends = False
        self.clock_skew_s = 0.0
        self.queue: list[Message] = []
        self.reconnects = 0
        self.last_sent_at = 0.0
        self._tx_ids = (f"{cp_id}-tx{n}" for n in itertools.count(1))  # deterministic, unique per run
        self._done: dict[int, simpy.Event] = {}  # per connector: the car stopped taking energy
        self._generation: dict[int, int] = {}  # per connector: the charging process that is current
        self._updated_at = dict.fromkeys(self.connectors, 0.0)  # energy integrated up to here
        self._metered_at = dict.fromkeys(self.connectors, 0.0)  # last periodic reading sent

    @property
    def protocol(self) -> str:
        return self.dialect.version

    # ---- the link --------------------------------------------------------------------------------
    def receive(self, text: str) -> str | None:
        """A frame from the central system; our reply (None when the link is down)."""
        if not self.connected:
            return None
        return self.conn.receive(text).reply

    def _call(self, action: str, payload: dict[str, Any], *, queue_if_offline: bool = True) -> Outcome:
        """Offline or silent, transaction messages are queued for replay (behind any queue still
        waiting, so the order holds) and everything else is dropped, as the live charger does."""
        transactional = action in self.dialect.transaction_actions
        if transactional and queue_if_offline and (not self.connected or self.silent or self.queue):
            self.queue.append((action, self.dialect.mark_offline(action, payload)))
            return Outcome("", action, error="Queued")
        if not self.connected or self.silent:
            return Outcome("", action, error="Offline")
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
        return self._call(action, payload, queue_if_offline=False)

    def _send(self, message: Message) -> None:
        self._call(*message)

    def _ts(self) -> str:
        return format_ts(self.epoch + timedelta(seconds=self.env.now + self.clock_skew_s))

    def _now(self) -> datetime:
        return self.epoch + timedelta(seconds=self.env.now)

    def later(self, fn: Callable[[], object]) -> None:
        self.central.later(fn)

    # ---- lifecycle -------------------------------------------------------------------------------
    def connect(self, reason: BootReason = BootReason.POWER_UP) -> None:
        self.central.attach(self, self.dialect.version)
        self.connected = True
        boot = self._call(*self.dialect.boot(reason))
        if not boot.ok or boot.payload is None:
            raise RuntimeError(f"{self.cp_id}: boot not answered: {boot}")
        status, interval = self.dialect.read_boot(boot.payload)
        if status != "Accepted":
            raise RuntimeError(f"{self.cp_id}: boot not accepted: {boot}")
        self.heartbeat_interval_s = interval or self.heartbeat_interval_s
        self._resume()

    def _resume(self) -> None:
        """Replay what was queued (so the CSMS sees the real meter stops), then report every connector."""
        while self.queue and self.connected and not self.silent:
            outcome = self._call(*self.queue[0], queue_if_offline=False)
            if outcome.error in ("Offline", "Timeout"):
                break
            self.queue.pop(0)
        for c in self.connectors.values():
            self._status(c)

    def heartbeats(self) -> Process:
        while True:
            wait = self.last_sent_at + self.heartbeat_interval_s - self.env.now
            if wait > 0:
                yield self.env.timeout(wait)
                continue
            if self.connected and not self.silent:
                self._send(self.dialect.heartbeat())
            else:
                self.last_sent_at = self.env.now  # nothing can be sent: look again an interval later

    def _drop_link(self) -> None:
        self.connected = False
        self.central.detach(self.cp_id)

    def _reconnect(self) -> None:
        self.connect()
        self.reconnects += 1

    # ---- faults ----------------------------------------------------------------------------------
    def disconnect_for(self, seconds: float) -> Process:
        self._drop_link()
        yield self.env.timeout(seconds)
        self._reconnect()

    def reboot(self, *, lose_queue: bool) -> Process:
        """Power-cycle: transactions end with reason Reboot (queued), unless the queue dies too."""
        self._drop_link()
        for c in self.connectors.values():
            self._advance(c)
            if c.transaction is not None:
                if c.state in IN_TRANSACTION:
                    c.state = step(c.state, Trigger.STOP)
                tx = self._end_transaction(c)
                self._send(self.dialect.ended(c, tx, self._ts(), StopReason.REBOOT))  # queued: offline
        if lose_queue:
            self.queue.clear()
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
    def _advance(self, c: VirtualConnector) -> None:
        """Integrate a charging connector up to now; a car that stopped taking energy is SuspendedEV."""
        seconds, self._updated_at[c.no] = self.env.now - self._updated_at[c.no], self.env.now
        p = c.plugged
        gate = self.gates.get(c.no)
        if gate is not None and p is not None:
            self._advance_gated(c, p, gate)
            return
        if p is None or c.transaction is None:
            return
        # The limit now held since the last update: a profile's change advances every connector first.
        limit = self._limit_w(c, self._now())
        c.state = _gated_state(c.state, limit)  # 0 W suspends (SuspendedEVSE), more resumes
        if c.state is not ConnectorState.CHARGING:
            return
        if integrate(p.vehicle, c.meter, limit, p.meter_start + p.target_wh, seconds) is not None:
            c.state = step(c.state, Trigger.EV_FULL)
        p.delivered_wh = c.meter.register_wh - p.meter_start

    def _advance_gated(self, c: VirtualConnector, p: Plugged, gate: SmartGate) -> None:
        """Stretch by stretch, each under the limit the gate held (the charger wakes at each edge)."""
        for segment in gate.walk(self._now(), self._limit_at(c), _no_profile_edges):
            c.state = _gated_state(c.state, segment.limit_w)
            if c.state is not ConnectorState.CHARGING:
                continue
            before = c.meter.register_wh
            seconds = (segment.end - segment.start).total_seconds()
            full = integrate(p.vehicle, c.meter, segment.limit_w, p.meter_start + p.target_wh, seconds)
            gate.account(segment, c.meter.register_wh - before)
            if full is not None:
                c.state = step(c.state, Trigger.EV_FULL)
        c.state = _gated_state(c.state, gate.applied_w)
        p.delivered_wh = c.meter.register_wh - p.meter_start
        if c.state is ConnectorState.SUSPENDED_EV:
            self.gates.pop(c.no, None)  # the car is full: no later moment is a relevant time
            gate.close()

    def _limit_at(self, c: VirtualConnector) -> Callable[[datetime], int]:
        return lambda at: self._limit_w(c, at)

    def _limit_w(self, c: VirtualConnector, at: datetime) -> int:
        """The connector's limit: its rating under the profiles held, the charger-wide maximum
        shared with the other connectors charging now (itself counted, as if it drew)."""
        if not self.profiles.profiles:
            return c.max_power_w
        drawing = {k.no for k in self.connectors.values() if k.state is ConnectorState.CHARGING} | {c.no}
        connectors = {k.no: (_tx_context(k), k.max_power_w, k.phases) for k in self.connectors.values()}
        return self.profiles.shared_limits_w(at, connectors, drawing)[c.no]

    def drawing(self) -> list[tuple[int, int, bool]]:
        """Each connector's number, the power it draws now, and whether a car plugged in there is
        held at 0 W (the grid meter's view: simulators/grid_metrics.py)."""
        return [
            (c.no, self._power_w(c), c.plugged is not None and c.state is ConnectorState.SUSPENDED_EVSE)
            for c in self.connectors.values()
        ]

    def _power_w(self, c: VirtualConnector) -> int:
        p = c.plugged
        if p is None or c.state is not ConnectorState.CHARGING:
            return 0
        gate = self.gates.get(c.no)
        return p.vehicle.power_w(self._limit_w(c, self._now()) if gate is None else gate.applied_w)

    def _charging(self, c: VirtualConnector, tx: Transaction) -> Process:
        """One transaction's reports: a reading every interval, and the moment the car is done."""
        generation = self._generation[c.no] = self._generation.get(c.no, 0) + 1
        while True:
            horizon = max(0.0, self._metered_at[c.no] + self.meter_interval_s - self.env.now)
            p = c.plugged
            gate = self.gates.get(c.no)
            if gate is not None:
                # Wake when the gate may change the limit (a delay ending, a peak window's edge).
                until = self._now() + timedelta(seconds=horizon)
                horizon = (
                    gate.next_change(self._now(), until, _no_profile_edges) - self._now()
                ).total_seconds()
            if c.state is ConnectorState.CHARGING and p is not None:
                probe = integrate(
                    dataclasses.replace(p.vehicle),
                    dataclasses.replace(c.meter),
                    self._limit_w(c, self._now()) if gate is None else gate.applied_w,
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
                self._send(self.dialect.meter(c, tx, self._ts(), self._power_w(c)))
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
        self._send(self.dialect.status(c, self._ts()))

    # ---- what a driver does at the charger -------------------------------------------------------
    def plug_in(self, connector_no: int, id_tag: str, vehicle: Vehicle, target_wh: int) -> simpy.Event:
        """Plug in and present a card: Authorize, then start a transaction if accepted. Returns the
        event that fires when the car stops taking energy or the transaction ends."""
        c = self.connectors[connector_no]
        check_plug_in(self.cp_id, c, id_tag, online=self.connected and not self.silent)
        c.state = step(c.state, Trigger.PLUG_IN)
        c.plugged = Plugged(id_tag, vehicle, target_wh)
        done = self._done[c.no] = self.env.event()
        self._status(c)
        auth = self._call(*self.dialect.authorize(id_tag))
        if not auth.ok or auth.payload is None or self.dialect.id_status(auth.payload) != "Accepted":
            c.state = step(c.state, Trigger.START_REFUSED)
            return done
        self._advance(c)
        tx = Transaction(next(self._tx_ids), id_tag, c.meter.register_wh, self._now())
        reservation_id = None if c.reservation is None else c.reservation.reservation_id
        c.reservation = None
        c.plugged.meter_start = tx.meter_start
        outcome = self._call(*self.dialect.started(c, tx, self._ts(), reservation_id))
        if self.dialect.start_accepted(tx, outcome):
            c.plugged.transaction = tx
            c.state = step(c.state, Trigger.START_ACCEPTED)
            self._updated_at[c.no] = self._metered_at[c.no] = self.env.now
            self._open_gate(c, tx)
            self._status(c)
            if c.state is ConnectorState.SUSPENDED_EVSE:  # held back from the start: say so
                changed = self.dialect.charging_state_changed(c, tx, self._ts())
                if changed is not None:
                    self._send(changed)
            self.env.process(self._charging(c, tx))
            return done
        c.state = step(c.state, Trigger.START_REFUSED)
        if tx.wire_id is not None and self.dialect.ends_refused_start:
            # 2.0.1: the transaction exists once announced; a refused card ends it at once.
            self._send(self.dialect.ended(c, tx, self._ts(), StopReason.DEAUTHORIZED))
        return done

    def transaction_running(self, connector_no: int) -> bool:
        return self.connectors[connector_no].transaction is not None

    def unplug(self, connector_no: int, reason: StopReason = StopReason.EV_DISCONNECTED) -> None:
        c = self.connectors[connector_no]
        if c.plugged is None:
            return
        self._advance(c)
        if c.transaction is not None:
            tx = self._end_transaction(c)
            self._send(self.dialect.ended(c, tx, self._ts(), reason))
        c.state = step(c.state, Trigger.UNPLUG)
        c.plugged = None
        self._status(c)

    def _end_transaction(self, c: VirtualConnector) -> Transaction:
        """Close the transaction locally at once, so a second stop cannot also send one."""
        assert c.plugged is not None and c.plugged.transaction is not None
        tx, c.plugged.transaction = c.plugged.transaction, None
        gate = self.gates.pop(c.no, None)
        if gate is not None:
            gate.close()
        self._finished(c)
        return tx

    def _stop_now(self, c: VirtualConnector, reason: StopReason) -> None:
        """A remote stop: end at once; the stop message and the status follow our answer."""
        self._advance(c)
        if c.state in IN_TRANSACTION:
            c.state = step(c.state, Trigger.STOP)
        tx = self._end_transaction(c)
        stop, status = self.dialect.ended(c, tx, self._ts(), reason), self.dialect.status(c, self._ts())
        self.later(partial(self._send, stop))
        self.later(partial(self._send, status))

    # ---- what the central system asks of us ------------------------------------------------------
    def _reserve(self, connector_no: int | None, r: Reservation) -> str:
        answer, reserved = reserve_connector(self.connectors, connector_no, r)
        if reserved is not None:
            self.later(partial(self._status, reserved))
            self.env.process(self._expire(reserved, r))
        return answer

    def _cancel_reservation(self, reservation_id: int) -> str:
        for c in self.connectors.values():
            if c.reservation is not None and c.reservation.reservation_id == reservation_id:
                c.reservation = None
                if c.state is ConnectorState.RESERVED:
                    c.state = step(c.state, Trigger.RESERVATION_ENDED)
                    self.later(partial(self._status, c))
                return "Accepted"
        return "Rejected"

    def _remote_stop(self, matches: Callable[[Transaction], bool]) -> str:
        for c in self.connectors.values():
            if c.transaction is not None and matches(c.transaction):
                self._stop_now(c, StopReason.REMOTE)
                return "Accepted"
        return "Rejected"

    # ---- the smart charging regulations ------------------------------------------------------------
    def _open_gate(self, c: VirtualConnector, tx: Transaction) -> None:
        if not self.smart_charge_point:
            return
        gate = SmartGate(
            tx.local_id,
            self.settings.smart,
            self._delay_rng,
            self._now(),
            wire_id=tx.wire_id,
            charge_point_id=self.cp_id,
        )
        self.gates[c.no] = gate
        self.smart_gates.append(gate)
        gate.begin(self._limit_at(c))
        c.state = _gated_state(c.state, gate.applied_w)

    def _regate(self, c: VirtualConnector, override: bool) -> None:
        """Something changed now (a setting, the driver's override): the gate reconsiders, and a
        state it changes is reported after our answer; the charging process wakes to follow it."""
        gate = self.gates.get(c.no)
        tx = c.transaction
        if gate is None or tx is None:
            return
        self._advance(c)
        if override:
            gate.override(self._limit_at(c))
        else:
            gate.reconsider(self._limit_at(c))
        state = _gated_state(c.state, gate.applied_w)
        if state is not c.state:
            c.state = state
            self.later(partial(self._status, c))
            changed = self.dialect.charging_state_changed(c, tx, self._ts())
            if changed is not None:
                self.later(partial(self._send, changed))
        self.env.process(self._charging(c, tx))  # the old process finds its wake moved and ends

    def _change_setting(self, setting: Any, value: str) -> str:
        result = self.settings.set(self.settings.has(setting), value)
        if result is SetResult.ACCEPTED and setting.name in SMART_NAMES:
            for c in self.connectors.values():
                self._regate(c, override=False)
        return result.value

    def _set_profile(self, connector_no: int, raw: dict[str, Any], tx_matches: bool) -> str:
        """A transaction profile is taken only as the driver's override (chargeshare/ocpp/
        smart_charging.py) for the connector's running transaction; a charger-wide maximum or a
        default profile is kept and obeyed from now."""
        c = self.connectors.get(connector_no)
        if raw["chargingProfilePurpose"] == "TxProfile":
            profile_id = raw.get("chargingProfileId", raw.get("id"))
            if (
                c is None
                or c.transaction is None
                or not tx_matches
                or profile_id != END_USER_OVERRIDE_PROFILE_ID
            ):
                return "Rejected"
            self._regate(c, override=True)
            return "Accepted"
        if c is None and connector_no != 0:
            return "Rejected"
        read = dialect_v16.profile_from if self.dialect.version == V16 else dialect_v201.profile_from
        if raw["chargingProfilePurpose"] not in (*dialect_v16.PURPOSES, *dialect_v201.PURPOSES):
            return "Rejected"
        for k in self.connectors.values():
            self._advance(k)  # energy so far at the old limits; the new ones apply from now
        try:
            self.profiles.install(read(raw, connector_no, self._now()), None)
        except ProfileRefused:
            return "Rejected"
        self._follow_limits()
        return "Accepted"

    def _clear_profiles(
        self, profile_id: int | None, connector_no: int | None, purpose: str | None, stack_level: int | None
    ) -> str:
        words = {**dialect_v16.PURPOSES, **dialect_v201.PURPOSES}
        if purpose is not None and purpose not in words:
            return "Unknown"
        for k in self.connectors.values():
            self._advance(k)
        cleared = self.profiles.clear(
            profile_id=profile_id,
            connector_no=connector_no,
            purpose=None if purpose is None else words[purpose],
            stack_level=stack_level,
        )
        self._follow_limits()
        return "Accepted" if cleared else "Unknown"

    def _follow_limits(self) -> None:
        """The limits changed now: each running transaction follows (a gated one through its gate),
        a state it changes is reported after our answer, and its charging process wakes to follow."""
        for c in self.connectors.values():
            tx = c.transaction
            if tx is None:
                continue
            if c.no in self.gates:
                self._regate(c, override=False)
                continue
            state = _gated_state(c.state, self._limit_w(c, self._now()))
            if state is not c.state:
                c.state = state
                self.later(partial(self._status, c))
                changed = self.dialect.charging_state_changed(c, tx, self._ts())
                if changed is not None:
                    self.later(partial(self._send, changed))
            self.env.process(self._charging(c, tx))

    def _csms_handlers(self) -> dict[str, Handler]:
        if self.dialect.version == V16:
            return {
                "ChangeConfiguration": lambda p: {
                    "status": _V16_SET[self._change_setting(BY_KEY.get(p["key"]), p["value"])]
                },
                "SetChargingProfile": lambda p: {
                    "status": self._set_profile(
                        p["connectorId"],
                        p["csChargingProfiles"],
                        self._tx_matches(
                            p["connectorId"],
                            lambda tx: p["csChargingProfiles"].get("transactionId") == tx.wire_id,
                        ),
                    )
                },
                "ClearChargingProfile": lambda p: {
                    "status": self._clear_profiles(
                        p.get("id"),
                        p.get("connectorId"),
                        p.get("chargingProfilePurpose"),
                        p.get("stackLevel"),
                    )
                },
                "RemoteStopTransaction": lambda p: {
                    "status": self._remote_stop(lambda tx: tx.wire_id == p["transactionId"])
                },
                "ReserveNow": lambda p: {
                    "status": self._reserve(
                        p["connectorId"],
                        Reservation(p["reservationId"], p["idTag"], parse_ts(p["expiryDate"])),
                    )
                },
                "CancelReservation": lambda p: {"status": self._cancel_reservation(p["reservationId"])},
            }
        return {
            "SetVariables": lambda p: {
                "setVariableResult": [
                    {
                        "attributeStatus": _V201_SET[
                            self._change_setting(
                                BY_COMPONENT_VARIABLE.get((d["component"]["name"], d["variable"]["name"])),
                                d["attributeValue"],
                            )
                        ],
                        "component": d["component"],
                        "variable": d["variable"],
                    }
                    for d in p["setVariableData"]
                ]
            },
            "SetChargingProfile": lambda p: {
                "status": self._set_profile(
                    p["evseId"],
                    p["chargingProfile"],
                    self._tx_matches(
                        p["evseId"], lambda tx: p["chargingProfile"].get("transactionId") == tx.local_id
                    ),
                )
            },
            "ClearChargingProfile": lambda p: {
                "status": self._clear_profiles(
                    p.get("chargingProfileId"),
                    p.get("chargingProfileCriteria", {}).get("evseId"),
                    p.get("chargingProfileCriteria", {}).get("chargingProfilePurpose"),
                    p.get("chargingProfileCriteria", {}).get("stackLevel"),
                )
            },
            "RequestStopTransaction": lambda p: {
                "status": self._remote_stop(lambda tx: tx.local_id == p["transactionId"])
            },
            "ReserveNow": lambda p: {
                "status": self._reserve(
                    p.get("evseId"),
                    Reservation(p["id"], p["idToken"]["idToken"], parse_ts(p["expiryDateTime"])),
                )
            },
            "CancelReservation": lambda p: {"status": self._cancel_reservation(p["reservationId"])},
        }

    def _tx_matches(self, connector_no: int, matches: Callable[[Transaction], bool]) -> bool:
        c = self.connectors.get(connector_no)
        return c is not None and c.transaction is not None and matches(c.transaction)

    def _expire(self, c: VirtualConnector, r: Reservation) -> Process:
        """A reservation nobody used ends at its expiry (the live charger checks on its meter tick)."""
        yield self.env.timeout(max(0.0, (r.expires_at - self._now()).total_seconds()))
        if c.reservation is r and c.state is ConnectorState.RESERVED:
            c.reservation, c.state = None, step(c.state, Trigger.RESERVATION_ENDED)
            self._status(c)


_V16_SET = {"accepted": "Accepted", "rejected": "Rejected", "unknown": "NotSupported"}
_V201_SET = {"accepted": "Accepted", "rejected": "Rejected", "unknown": "UnknownVariable"}


def _tx_context(c: VirtualConnector) -> TxContext | None:
    tx = c.transaction
    return None if tx is None else TxContext(tx.local_id, tx.started_at)


def _no_profile_edges(start: datetime, end: datetime) -> list[datetime]:
    return []


def _gated_state(state: ConnectorState, limit_w: int) -> ConnectorState:
    """Charging shows SuspendedEVSE while the charger holds the limit at 0 W, and back."""
    if state is ConnectorState.CHARGING and limit_w == 0:
        return step(state, Trigger.EVSE_SUSPEND)
    if state is ConnectorState.SUSPENDED_EVSE and limit_w > 0:
        return step(state, Trigger.EVSE_RESUME)
    return state
