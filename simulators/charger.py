"""A virtual OCPP 1.6J charger: boots, heartbeats, reports status, runs transactions and meters energy.

It uses the same sans-I/O `Connection` as the backend, in the client role, over a real websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chargeshare.domain.credentials import basic_auth_header
from chargeshare.ocpp.connection import Connection, Outcome
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from chargeshare.services.clock import Clock
from simulators.firmware import ConnectorState, Trigger, step
from simulators.power import EnergyMeter, Vehicle

log = logging.getLogger(__name__)

TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})
TRANSACTION_ATTEMPTS = 3  # OCPP 1.6 TransactionMessageAttempts
RECONNECT_ATTEMPTS = 8
RECONNECT_BASE_S = 5.0  # simulated seconds, doubled each attempt, with jitter
REBOOT_S = 30.0  # simulated seconds a reboot takes


@dataclass
class Plugged:
    id_tag: str
    vehicle: Vehicle
    target_wh: int
    transaction_id: int | None = None
    meter_start: int = 0
    delivered_wh: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Reservation:
    reservation_id: int
    id_tag: str
    expires_at: datetime


@dataclass
class VirtualConnector:
    no: int
    max_power_w: int
    state: ConnectorState = ConnectorState.AVAILABLE
    meter: EnergyMeter = field(default_factory=EnergyMeter)
    plugged: Plugged | None = None
    reservation: Reservation | None = None


class PlugRefused(Exception):
    """The connector is in use or reserved for someone else: this driver cannot start here."""


class VirtualCharger:
    def __init__(
        self,
        cp_id: str,
        url: str,
        clock: Clock,
        connector_power_w: list[int],
        *,
        meter_interval_s: int = 60,
        call_timeout_s: float = 10.0,
        password: str | None = None,
        seed: int = 0,
    ) -> None:
        self.cp_id = cp_id
        self.password = password  # HTTP Basic auth on the upgrade (OCPP security profile 1)
        self.url = url.rstrip("/") + "/" + cp_id
        self.clock = clock
        self.connectors = {i + 1: VirtualConnector(i + 1, p) for i, p in enumerate(connector_power_w)}
        self.meter_interval_s = meter_interval_s
        self.heartbeat_interval_s = 300
        self.conn = Connection(
            "1.6", self._csms_handlers(), id_prefix=f"{cp_id}-", call_timeout_s=call_timeout_s
        )
        self._ws: ClientConnection | None = None
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._last_meter_at = clock.now()
        self.online = asyncio.Event()
        self.frames_sent = 0
        # The link and its faults. Transaction messages survive a lost link in `queue` (as firmware
        # keeps them in flash) and are replayed in order, with their original timestamps, on reconnect.
        self.connected = False
        self.queue: list[tuple[str, dict[str, Any]]] = []
        self.duplicate_sends = False  # send every transaction frame twice (a flaky network)
        self.silent = False  # say nothing, keep the socket: only a watchdog can notice
        self.clock_skew_s = 0.0
        self.reconnects = 0
        self._rng = random.Random(f"{seed}:{cp_id}")
        self._closing = False

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self._connect()
        self._last_meter_at = self.clock.now()
        self._tasks.append(asyncio.create_task(self._every(self.heartbeat_interval_s, self._heartbeat)))
        self._tasks.append(asyncio.create_task(self._every(self.meter_interval_s, self._meter_tick)))

    async def _connect(self) -> None:
        headers = (
            {} if self.password is None else {"Authorization": basic_auth_header(self.cp_id, self.password)}
        )
        self._ws = await connect(
            self.url,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=10,
        )
        self._tasks.append(asyncio.create_task(self._reader()))
        self.connected = True
        boot = await self._call(
            "BootNotification", {"chargePointVendor": "ChargeShare", "chargePointModel": "Virtual-1"}
        )
        if not boot.ok or boot.payload is None or boot.payload["status"] != "Accepted":
            raise RuntimeError(f"{self.cp_id}: boot not accepted: {boot}")
        self.heartbeat_interval_s = int(boot.payload["interval"]) or self.heartbeat_interval_s
        await self._resume()

    async def _resume(self) -> None:
        """Back in touch: replay what was queued first (so the CSMS sees the real meter stops), then
        report every connector (which is what brings an offline charger back on the map)."""
        while self.queue and self.connected and not self.silent:
            action, payload = self.queue[0]
            outcome = await self._call(action, payload, queue_if_offline=False)
            if outcome.error in ("Offline", "Timeout"):
                break
            self.queue.pop(0)
        for c in self.connectors.values():
            await self._status(c)
        self.online.set()

    # ---- faults --------------------------------------------------------------------------------
    async def disconnect_for(self, simulated_s: float) -> None:
        """Lose the link for a while, then reconnect with backoff and jitter (bounded attempts)."""
        await self._drop_link()
        await asyncio.sleep(self.clock.real_seconds(simulated_s))
        await self._reconnect()

    async def reboot(self, *, lose_queue: bool) -> None:
        """Power-cycle mid-transaction: transactions end with reason Reboot (queued for the CSMS),
        unless the queue is lost with the power, in which case the CSMS never hears the stops."""
        self._advance_energy()
        await self._drop_link()
        for c in self.connectors.values():
            if c.plugged is not None and c.plugged.transaction_id is not None:
                ended = self._end_transaction(c)
                if not lose_queue:
                    self.queue.append(("StopTransaction", self._stop_payload(c, ended, "Reboot")))
                if c.state in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EV):
                    c.state = step(c.state, Trigger.STOP)
        if lose_queue:
            self.queue.clear()
        await asyncio.sleep(self.clock.real_seconds(REBOOT_S))
        await self._reconnect()

    async def silence_for(self, simulated_s: float) -> None:
        """Keep the socket but say nothing (a hung firmware); then carry on as if nothing happened."""
        self.silent = True
        self.online.clear()
        await asyncio.sleep(self.clock.real_seconds(simulated_s))
        self.silent = False
        await self._resume()

    async def settle_down(self) -> None:
        """End of a run: get back in touch if a fault left us out of it, so nothing stays queued."""
        if self.silent:
            self.silent = False
            await self._resume()
        if not self.connected:
            await self._reconnect()

    async def _drop_link(self) -> None:
        self.connected = False
        self.online.clear()
        if self._ws is not None:
            await self._ws.close()

    async def _reconnect(self) -> None:
        delay_s = RECONNECT_BASE_S
        for _ in range(RECONNECT_ATTEMPTS):
            try:
                await self._connect()
                self.reconnects += 1
                return
            except (OSError, RuntimeError, ConnectionClosed, TimeoutError) as exc:
                log.info("%s: reconnect failed: %s", self.cp_id, exc)
            await asyncio.sleep(self.clock.real_seconds(delay_s * (1 + self._rng.random())))
            delay_s *= 2
        log.warning("%s: gave up reconnecting after %s attempts", self.cp_id, RECONNECT_ATTEMPTS)

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task
        self._tasks.clear()
        if self._ws is not None:
            await self._ws.close()
        self.online.clear()

    async def _every(self, simulated_s: float, fn: Any) -> None:
        while True:
            await asyncio.sleep(self.clock.real_seconds(simulated_s))
            await fn()

    async def _reader(self) -> None:
        assert self._ws is not None
        ws = self._ws
        async for text in ws:
            received = self.conn.receive(text)
            if received.reply is not None:
                await self._send(received.reply)
            for outcome in received.outcomes:
                fut = self._waiting.pop(outcome.unique_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(outcome)

    async def _send(self, text: str) -> None:
        assert self._ws is not None
        self.frames_sent += 1
        await self._ws.send(text)

    async def _call(self, action: str, payload: dict[str, Any], *, queue_if_offline: bool = True) -> Outcome:
        """Send a call and wait for its answer. Offline (or silent), transaction messages are queued
        for replay and everything else is dropped, as firmware does."""
        if not self.connected or self.silent:
            if action in TRANSACTION_ACTIONS and queue_if_offline:
                self.queue.append((action, payload))
                return Outcome("", action, error="Queued")
            return Outcome("", action, error="Offline")
        attempts = TRANSACTION_ATTEMPTS if action in TRANSACTION_ACTIONS else 1
        outcome = Outcome("", action, error="Timeout")
        for _ in range(attempts):
            outcome = await self._call_once(action, payload)
            if outcome.error != "Timeout":
                break
        return outcome

    async def _call_once(self, action: str, payload: dict[str, Any]) -> Outcome:
        loop = asyncio.get_running_loop()
        uid, text = self.conn.call(action, payload, loop.time())
        fut: asyncio.Future[Outcome] = loop.create_future()
        self._waiting[uid] = fut
        try:
            await self._send(text)
            if self.duplicate_sends and action in TRANSACTION_ACTIONS:
                await self._send(text)  # the same frame again: the CSMS must not count it twice
        except ConnectionClosed:
            self._waiting.pop(uid, None)
            self.connected = False
            return Outcome(uid, action, error="Offline")
        try:
            return await asyncio.wait_for(fut, self.conn.call_timeout_s)
        except TimeoutError:
            self._waiting.pop(uid, None)
            self.conn.tick(loop.time() + self.conn.call_timeout_s)
            return Outcome(uid, action, error="Timeout")

    def _ts(self) -> str:
        """This charger's idea of now: its clock may be skewed (a fault scenarios inject)."""
        return format_ts(self.clock.now() + timedelta(seconds=self.clock_skew_s))

    # ---- what the charger reports --------------------------------------------------------------
    async def _heartbeat(self) -> None:
        await self._call("Heartbeat", {})

    async def _status(self, c: VirtualConnector) -> None:
        await self._call(
            "StatusNotification",
            {
                "connectorId": c.no,
                "errorCode": "NoError",
                "status": c.state.value,
                "timestamp": self._ts(),
            },
        )

    def _advance_energy(self) -> None:
        """Integrate each charging connector's power since the last update."""
        now = self.clock.now()
        seconds = (now - self._last_meter_at).total_seconds()
        self._last_meter_at = now
        for c in self.connectors.values():
            p = c.plugged
            if c.state is not ConnectorState.CHARGING or p is None:
                continue
            power = p.vehicle.power_w(c.max_power_w)
            before = c.meter.register_wh
            c.meter.add(power, seconds)
            # The car stops taking energy at its target: the register never runs past it.
            overshoot = (c.meter.register_wh - p.meter_start) - p.target_wh
            if overshoot > 0:
                c.meter.register_wh -= overshoot
            added = c.meter.register_wh - before
            p.vehicle.soc_wh += added
            p.delivered_wh = c.meter.register_wh - p.meter_start
            if p.delivered_wh >= p.target_wh or p.vehicle.power_w(c.max_power_w) == 0:
                c.state = step(c.state, Trigger.EV_FULL)
                p.done.set()

    async def _meter_tick(self) -> None:
        before = {c.no: c.state for c in self.connectors.values()}
        self._advance_energy()
        for c in self.connectors.values():
            r = c.reservation
            if r is not None and c.state is ConnectorState.RESERVED and self.clock.now() >= r.expires_at:
                c.reservation, c.state = None, step(c.state, Trigger.RESERVATION_ENDED)
                await self._status(c)
        for c in self.connectors.values():
            p = c.plugged
            if (
                p is None
                or p.transaction_id is None
                or c.state not in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EV)
            ):
                continue
            await self._call(
                "MeterValues",
                {
                    "connectorId": c.no,
                    "transactionId": p.transaction_id,
                    "meterValue": [
                        {
                            "timestamp": self._ts(),
                            "sampledValue": [
                                {
                                    "value": str(c.meter.register_wh),
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                },
                                {
                                    "value": str(
                                        p.vehicle.power_w(c.max_power_w)
                                        if c.state is ConnectorState.CHARGING
                                        else 0
                                    ),
                                    "measurand": "Power.Active.Import",
                                    "unit": "W",
                                },
                            ],
                        }
                    ],
                },
            )
            if before[c.no] is not c.state:
                await self._status(c)

    # ---- what a driver does at the charger -----------------------------------------------------
    async def plug_in(self, connector_no: int, id_tag: str, vehicle: Vehicle, target_wh: int) -> Plugged:
        """Plug in and present a card: Authorize, then StartTransaction if accepted."""
        c = self.connectors[connector_no]
        reservation = c.reservation
        if reservation is not None and reservation.id_tag != id_tag:
            raise PlugRefused(f"{self.cp_id}/{connector_no} is reserved for another driver")
        if c.state not in (ConnectorState.AVAILABLE, ConnectorState.RESERVED):
            raise PlugRefused(f"{self.cp_id}/{connector_no} is in use ({c.state})")
        if not self.connected or self.silent:
            raise PlugRefused(f"{self.cp_id} is offline and cannot authorise cards")
        c.state = step(c.state, Trigger.PLUG_IN)
        c.reservation = None
        c.plugged = Plugged(id_tag, vehicle, target_wh)
        await self._status(c)
        auth = await self._call("Authorize", {"idTag": id_tag})
        if not auth.ok or auth.payload is None or auth.payload["idTagInfo"]["status"] != "Accepted":
            c.state = step(c.state, Trigger.START_REFUSED)
            return c.plugged
        self._advance_energy()
        c.plugged.meter_start = c.meter.register_wh
        start = await self._call(
            "StartTransaction",
            {
                "connectorId": connector_no,
                "idTag": id_tag,
                "meterStart": c.meter.register_wh,
                "timestamp": self._ts(),
            },
        )
        if start.ok and start.payload is not None and start.payload["idTagInfo"]["status"] == "Accepted":
            c.plugged.transaction_id = int(start.payload["transactionId"])
            c.state = step(c.state, Trigger.START_ACCEPTED)
            await self._status(c)
        else:
            c.state = step(c.state, Trigger.START_REFUSED)
        return c.plugged

    async def unplug(self, connector_no: int, reason: str = "EVDisconnected") -> None:
        c = self.connectors[connector_no]
        if c.plugged is None:
            return
        self._advance_energy()
        if c.plugged.transaction_id is not None:
            await self._stop_transaction(c, self._end_transaction(c), reason)
        c.state = step(c.state, Trigger.UNPLUG)
        c.plugged = None
        await self._status(c)

    def _end_transaction(self, c: VirtualConnector) -> tuple[int, str]:
        """Close the transaction locally at once, so a second stop cannot also send one."""
        assert c.plugged is not None and c.plugged.transaction_id is not None
        tx, c.plugged.transaction_id = c.plugged.transaction_id, None
        c.plugged.done.set()
        return tx, c.plugged.id_tag

    async def _stop_transaction(self, c: VirtualConnector, ended: tuple[int, str], reason: str) -> None:
        await self._call("StopTransaction", self._stop_payload(c, ended, reason))

    def _stop_payload(self, c: VirtualConnector, ended: tuple[int, str], reason: str) -> dict[str, Any]:
        tx, id_tag = ended
        return {
            "transactionId": tx,
            "meterStop": c.meter.register_wh,
            "timestamp": self._ts(),
            "reason": reason,
            "idTag": id_tag,
        }

    # ---- what the central system asks of us ----------------------------------------------------
    def _csms_handlers(self) -> dict[str, Any]:
        def remote_stop(p: dict[str, Any]) -> dict[str, Any]:
            for c in self.connectors.values():
                if c.plugged is not None and c.plugged.transaction_id == p["transactionId"]:
                    self._advance_energy()
                    if c.state in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EV):
                        c.state = step(c.state, Trigger.STOP)
                    self._spawn(self._stop_transaction(c, self._end_transaction(c), "Remote"))
                    return {"status": "Accepted"}
            return {"status": "Rejected"}

        def reserve_now(p: dict[str, Any]) -> dict[str, Any]:
            c = self.connectors.get(p["connectorId"])
            if c is None:
                return {"status": "Rejected"}
            if c.reservation is not None and c.reservation.reservation_id == p["reservationId"]:
                # OCPP 1.6: a ReserveNow for an existing reservationId replaces that reservation.
                c.reservation = Reservation(p["reservationId"], p["idTag"], parse_ts(p["expiryDate"]))
                return {"status": "Accepted"}
            if c.state is not ConnectorState.AVAILABLE:
                # OCPP 1.6 5.13: Occupied also when already reserved, for this or another idTag.
                return {"status": "Occupied"}
            c.reservation = Reservation(p["reservationId"], p["idTag"], parse_ts(p["expiryDate"]))
            c.state = step(c.state, Trigger.RESERVE)
            self._spawn(self._status(c))
            return {"status": "Accepted"}

        def cancel_reservation(p: dict[str, Any]) -> dict[str, Any]:
            for c in self.connectors.values():
                if c.reservation is not None and c.reservation.reservation_id == p["reservationId"]:
                    c.reservation = None
                    if c.state is ConnectorState.RESERVED:
                        c.state = step(c.state, Trigger.RESERVATION_ENDED)
                        self._spawn(self._status(c))
                    return {"status": "Accepted"}
            return {"status": "Rejected"}

        return {
            "RemoteStopTransaction": remote_stop,
            "ReserveNow": reserve_now,
            "CancelReservation": cancel_reservation,
        }

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Send follow-up frames after the current reply (OCPP: answer first, then report)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
