"""A virtual OCPP 1.6J charger as SimPy processes, over an in-process link to the central system.

It reuses the live charger's models: the connector transition table (`firmware.step`), the vehicle
and meter (`power`), and the sans-I/O `Connection` in the client role. What differs is only time and
transport: waits are SimPy timeouts, frames go straight to the central system's `Connection`. Energy
is integrated in the live charger's 60 s steps, but the charger only wakes to report: a MeterValues
every `meter_interval_s` and the moment the car stops taking energy (predicted, then integrated).
Heartbeats go out only when nothing else was sent for a whole heartbeat interval (OCPP 1.6 4.6: any
message counts as a sign of life).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import simpy

from chargeshare.ocpp.connection import Connection, Outcome
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from simulators.des.central import DesCentral
from simulators.firmware import ConnectorState, Trigger, step
from simulators.power import EnergyMeter, Vehicle

TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})
STEP_S = 60.0  # energy integration step: the live charger's meter tick
REBOOT_S = 30.0
VENDOR = {"chargePointVendor": "ChargeShare", "chargePointModel": "Virtual-DES"}

Process = Generator[simpy.Event, Any, None]


class PlugRefused(Exception):
    """The connector is in use, reserved for someone else, or the charger cannot authorise now."""


@dataclass
class Session:
    id_tag: str
    vehicle: Vehicle
    target_wh: int
    done: simpy.Event
    transaction_id: int | None = None
    meter_start: int = 0


@dataclass(frozen=True)
class Reservation:
    reservation_id: int
    id_tag: str
    expires_at: datetime


@dataclass
class DesConnector:
    no: int
    max_power_w: int
    state: ConnectorState = ConnectorState.AVAILABLE
    meter: EnergyMeter = field(default_factory=EnergyMeter)
    plugged: Session | None = None
    reservation: Reservation | None = None
    updated_at: float = 0.0  # virtual seconds: energy integrated up to here
    metered_at: float = 0.0  # last MeterValues sent


def integrate(
    vehicle: Vehicle, meter: EnergyMeter, max_power_w: int, cap_wh: int, seconds: float
) -> float | None:
    """Charge for up to `seconds` in STEP_S steps, the register never passing `cap_wh`. Returns the
    offset at which the car stopped taking energy (full, or at its target), or None if it still is."""
    t = 0.0
    while True:
        if meter.register_wh >= cap_wh or vehicle.power_w(max_power_w) == 0:
            return t
        if t >= seconds:
            return None
        dt = min(STEP_S, seconds - t)
        before = meter.register_wh
        meter.add(vehicle.power_w(max_power_w), dt)
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
    ) -> None:
        self.env = env
        self.central = central
        self.cp_id = cp_id
        self.epoch = epoch
        self.meter_interval_s = meter_interval_s
        self.heartbeat_interval_s = 300
        self.connectors = {i + 1: DesConnector(i + 1, p) for i, p in enumerate(connector_power_w)}
        self.conn = Connection("1.6", self._csms_handlers(), id_prefix=f"{cp_id}-")
        self.connected = False
        self.silent = False
        self.duplicate_sends = False
        self.clock_skew_s = 0.0
        self.queue: list[tuple[str, dict[str, Any]]] = []
        self.reconnects = 0
        self.last_sent_at = 0.0

    # ---- the link --------------------------------------------------------------------------------
    def receive(self, text: str) -> str | None:
        """A frame from the central system; our reply (None when the link is down)."""
        if not self.connected:
            return None
        return self.conn.receive(text).reply

    def _call(self, action: str, payload: dict[str, Any], *, queue_if_offline: bool = True) -> Outcome:
        if not self.connected or self.silent:
            if action in TRANSACTION_ACTIONS and queue_if_offline:
                self.queue.append((action, payload))
                return Outcome("", action, error="Queued")
            return Outcome("", action, error="Offline")
        uid, text = self.conn.call(action, payload, self.env.now)
        self.last_sent_at = self.env.now
        reply = self.central.deliver(self.cp_id, text)
        if self.duplicate_sends and action in TRANSACTION_ACTIONS:
            # The same frame again: the CSMS must not count it twice (our side ignores the 2nd answer).
            second = self.central.deliver(self.cp_id, text)
            if second is not None:
                self.conn.receive(second)
        if reply is None:
            self.conn.tick(self.env.now + self.conn.call_timeout_s)
            return Outcome(uid, action, error="Timeout")
        outcomes = self.conn.receive(reply).outcomes
        return outcomes[0] if outcomes else Outcome(uid, action, error="NoAnswer")

    def _ts(self) -> str:
        return format_ts(self.epoch + timedelta(seconds=self.env.now + self.clock_skew_s))

    def later(self, fn: Callable[[], object]) -> None:
        self.central.later(fn)

    # ---- lifecycle -------------------------------------------------------------------------------
    def connect(self) -> None:
        self.central.attach(self, "1.6")
        self.connected = True
        boot = self._call("BootNotification", dict(VENDOR))
        if not boot.ok or boot.payload is None or boot.payload["status"] != "Accepted":
            raise RuntimeError(f"{self.cp_id}: boot not accepted: {boot}")
        self.heartbeat_interval_s = int(boot.payload["interval"]) or self.heartbeat_interval_s
        self._resume()

    def _resume(self) -> None:
        """Replay what was queued (so the CSMS sees the real meter stops), then report every connector."""
        while self.queue and self.connected and not self.silent:
            action, payload = self.queue[0]
            outcome = self._call(action, payload, queue_if_offline=False)
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
                self._call("Heartbeat", {})
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
            s = c.plugged
            if s is not None and s.transaction_id is not None:
                stop = self._end_transaction(c, s, "Reboot")
                if not lose_queue:
                    self.queue.append(("StopTransaction", stop))
                if c.state in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EV):
                    c.state = step(c.state, Trigger.STOP)
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
    def _advance(self, c: DesConnector) -> None:
        """Integrate a charging connector up to now; a car that stopped taking energy is SuspendedEV."""
        seconds, c.updated_at = self.env.now - c.updated_at, self.env.now
        s = c.plugged
        if c.state is not ConnectorState.CHARGING or s is None:
            return
        cap = s.meter_start + s.target_wh
        if integrate(s.vehicle, c.meter, c.max_power_w, cap, seconds) is not None:
            c.state = step(c.state, Trigger.EV_FULL)

    def _charging(self, c: DesConnector, s: Session) -> Process:
        """One transaction's reports: MeterValues every interval, and the moment the car is done."""
        while True:
            horizon = max(0.0, c.metered_at + self.meter_interval_s - self.env.now)
            if c.state is ConnectorState.CHARGING:
                probe = integrate(
                    dataclasses.replace(s.vehicle),
                    dataclasses.replace(c.meter),
                    c.max_power_w,
                    s.meter_start + s.target_wh,
                    horizon,
                )
                horizon = horizon if probe is None else probe
            yield self.env.timeout(horizon)
            if c.plugged is not s or s.transaction_id is None:
                return  # unplugged, stopped remotely or rebooted meanwhile
            was = c.state
            self._advance(c)
            if self.env.now - c.metered_at >= self.meter_interval_s or c.state is not was:
                self._meter_values(c, s)
            if c.state is not was:
                self._status(c)
                if not s.done.triggered:
                    s.done.succeed()

    # ---- what the charger reports ----------------------------------------------------------------
    def _status(self, c: DesConnector) -> None:
        self._call(
            "StatusNotification",
            {"connectorId": c.no, "errorCode": "NoError", "status": c.state.value, "timestamp": self._ts()},
        )

    def _meter_values(self, c: DesConnector, s: Session) -> None:
        c.metered_at = self.env.now
        power = s.vehicle.power_w(c.max_power_w) if c.state is ConnectorState.CHARGING else 0
        self._call(
            "MeterValues",
            {
                "connectorId": c.no,
                "transactionId": s.transaction_id,
                "meterValue": [
                    {
                        "timestamp": self._ts(),
                        "sampledValue": [
                            {
                                "value": str(c.meter.register_wh),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            },
                            {"value": str(power), "measurand": "Power.Active.Import", "unit": "W"},
                        ],
                    }
                ],
            },
        )

    # ---- what a driver does at the charger -------------------------------------------------------
    def plug_in(self, connector_no: int, id_tag: str, vehicle: Vehicle, target_wh: int) -> Session:
        """Plug in and present a card: Authorize, then StartTransaction if accepted."""
        c = self.connectors[connector_no]
        if c.reservation is not None and c.reservation.id_tag != id_tag:
            raise PlugRefused(f"{self.cp_id}/{connector_no} is reserved for another driver")
        if c.state not in (ConnectorState.AVAILABLE, ConnectorState.RESERVED):
            raise PlugRefused(f"{self.cp_id}/{connector_no} is in use ({c.state})")
        if not self.connected or self.silent:
            raise PlugRefused(f"{self.cp_id} is offline and cannot authorise cards")
        c.state = step(c.state, Trigger.PLUG_IN)
        c.reservation = None
        s = c.plugged = Session(id_tag, vehicle, target_wh, self.env.event())
        self._status(c)
        auth = self._call("Authorize", {"idTag": id_tag})
        if not auth.ok or auth.payload is None or auth.payload["idTagInfo"]["status"] != "Accepted":
            c.state = step(c.state, Trigger.START_REFUSED)
            return s
        self._advance(c)
        s.meter_start = c.meter.register_wh
        start = self._call(
            "StartTransaction",
            {
                "connectorId": connector_no,
                "idTag": id_tag,
                "meterStart": s.meter_start,
                "timestamp": self._ts(),
            },
        )
        if start.ok and start.payload is not None and start.payload["idTagInfo"]["status"] == "Accepted":
            s.transaction_id = int(start.payload["transactionId"])
            c.state = step(c.state, Trigger.START_ACCEPTED)
            c.updated_at = c.metered_at = self.env.now
            self._status(c)
            self.env.process(self._charging(c, s))
        else:
            c.state = step(c.state, Trigger.START_REFUSED)
        return s

    def unplug(self, connector_no: int, reason: str = "EVDisconnected") -> None:
        c = self.connectors[connector_no]
        s = c.plugged
        if s is None:
            return
        self._advance(c)
        if s.transaction_id is not None:
            self._call("StopTransaction", self._end_transaction(c, s, reason))
        c.state = step(c.state, Trigger.UNPLUG)
        c.plugged = None
        self._status(c)

    def _end_transaction(self, c: DesConnector, s: Session, reason: str) -> dict[str, Any]:
        """Close the transaction locally at once, so a second stop cannot also send one."""
        assert s.transaction_id is not None
        payload = {
            "transactionId": s.transaction_id,
            "meterStop": c.meter.register_wh,
            "timestamp": self._ts(),
            "reason": reason,
            "idTag": s.id_tag,
        }
        s.transaction_id = None
        if not s.done.triggered:
            s.done.succeed()
        return payload

    # ---- what the central system asks of us ------------------------------------------------------
    def _csms_handlers(self) -> dict[str, Any]:
        def remote_stop(p: dict[str, Any]) -> dict[str, Any]:
            for c in self.connectors.values():
                s = c.plugged
                if s is not None and s.transaction_id == p["transactionId"]:
                    self._advance(c)
                    if c.state in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EV):
                        c.state = step(c.state, Trigger.STOP)
                    stop = self._end_transaction(c, s, "Remote")
                    self.later(partial(self._call, "StopTransaction", stop))
                    return {"status": "Accepted"}
            return {"status": "Rejected"}

        def reserve_now(p: dict[str, Any]) -> dict[str, Any]:
            c = self.connectors.get(p["connectorId"])
            if c is None:
                return {"status": "Rejected"}
            r = Reservation(p["reservationId"], p["idTag"], parse_ts(p["expiryDate"]))
            if c.reservation is not None and c.reservation.reservation_id == r.reservation_id:
                c.reservation = r  # OCPP 1.6: the same reservationId replaces that reservation
                return {"status": "Accepted"}
            if c.state is not ConnectorState.AVAILABLE:
                return {"status": "Occupied"}  # OCPP 1.6 5.13: also when already reserved
            c.reservation, c.state = r, step(c.state, Trigger.RESERVE)
            self.later(partial(self._status, c))
            self.env.process(self._expire(c, r))
            return {"status": "Accepted"}

        def cancel_reservation(p: dict[str, Any]) -> dict[str, Any]:
            for c in self.connectors.values():
                if c.reservation is not None and c.reservation.reservation_id == p["reservationId"]:
                    c.reservation = None
                    if c.state is ConnectorState.RESERVED:
                        c.state = step(c.state, Trigger.RESERVATION_ENDED)
                        self.later(partial(self._status, c))
                    return {"status": "Accepted"}
            return {"status": "Rejected"}

        return {
            "RemoteStopTransaction": remote_stop,
            "ReserveNow": reserve_now,
            "CancelReservation": cancel_reservation,
        }

    def _expire(self, c: DesConnector, r: Reservation) -> Process:
        """A reservation nobody used ends at its expiry (the live charger checks on its meter tick)."""
        wait = (r.expires_at - self.epoch).total_seconds() - self.env.now
        yield self.env.timeout(max(0.0, wait))
        if c.reservation is r and c.state is ConnectorState.RESERVED:
            c.reservation, c.state = None, step(c.state, Trigger.RESERVATION_ENDED)
            self._status(c)
