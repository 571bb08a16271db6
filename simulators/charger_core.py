"""The virtual charger's firmware, free of any engine: no asyncio, no SimPy, no sockets.

It holds the connectors and their states, the settings, the charging profiles and the smart
charging gates, decides every answer to the central system's commands (ReserveNow's Accepted,
Occupied, Unavailable or Rejected, CancelReservation, RemoteStop, Reset, ...), checks a plug-in,
and keeps the offline queue's rules: offline or silent, transaction messages are queued (behind any
queue still waiting, so the order holds) and everything else is dropped.

Time comes from the injected `clock`. What must be sent, and everything that takes time, goes out
through the hooks a driver implements: the live `VirtualCharger` (asyncio, a real websocket) and
the DES `DesCharger` (SimPy, an in-process link). Both answer with the same dialect handler tables,
bound to this core through `ChargerPort`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from chargeshare.ocpp import V16, OcppVersion
from chargeshare.ocpp.connection import CallRejected, Handler, Outcome
from chargeshare.ocpp.smart_charging import END_USER_OVERRIDE_PROFILE_ID
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import Clock
from simulators.charger_certificates import ChargerCertificates
from simulators.dialect import FIRMWARE, Dialect, Message, QueuedMessage
from simulators.evse import (
    BootReason,
    Plugged,
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
from simulators.power import Vehicle
from simulators.settings import (
    EVSE_SUPPLY_PHASES,
    HEARTBEAT_INTERVAL,
    METER_INTERVAL,
    PHASE_SWITCHING,
    SMART_NAMES,
    SUPPLY_PHASES,
    TRANSACTION_ATTEMPTS,
    TRANSACTION_RETRY_INTERVAL,
    SetResult,
    Setting,
    Settings,
)
from simulators.smart_charging import Profile, ProfileBook, ProfileRefused, Purpose, TxContext
from simulators.smart_gate import SmartGate
from simulators.station_v201 import StationState
from simulators.v2x import discharge
from simulators.wire_faults import WireFaults

# Answers after which a transaction message is sent again, while attempts remain: no answer at all, or
# the CSMS failed to process it (InternalError: nothing was kept, the same frame may succeed).
RETRIED_ERRORS = frozenset({"Timeout", "InternalError"})


class Route(Enum):
    """What becomes of a message the charger wants to send now."""

    SEND = "send"
    QUEUE = "queue"  # a transaction message while out of touch (or behind a queue still waiting)
    DROP = "drop"  # anything else while out of touch


class ChargerCore:
    """The firmware model. A driver subclasses it and implements the hooks at the end."""

    def __init__(
        self,
        cp_id: str,
        clock: Clock,
        dialect: Dialect,
        connector_power_w: list[int],
        *,
        meter_interval_s: int,
        seed: int = 0,
        smart_charge_point: bool = False,
    ) -> None:
        self.cp_id = cp_id
        self.clock = clock
        self.dialect = dialect
        self.connectors = {i + 1: VirtualConnector(i + 1, p) for i, p in enumerate(connector_power_w)}
        self.settings = Settings(len(self.connectors), smart_charge_point=smart_charge_point)
        self.settings.values[METER_INTERVAL] = str(meter_interval_s)
        # A relevant charge point under the UK's smart charging regulations: each transaction runs
        # behind a gate (randomised delay, default charging hours), its draws from its own RNG.
        self.smart_charge_point = smart_charge_point
        self._seed = seed
        self.gates: dict[int, SmartGate] = {}  # per connector, while its transaction runs
        self.smart_gates: list[SmartGate] = []  # every transaction's, for the run's measures
        self.profiles = ProfileBook()
        self.rate_units = frozenset({"A", "W"})  # the units it takes schedules in (`take_amps_only`)
        self._declare_phases()
        self.local_auth = LocalAuth()
        self.station = StationState()  # 2.x display, monitors, network profiles
        self.certificates = ChargerCertificates(cp_id)
        self.firmware_version = FIRMWARE  # an installed update's digest after UpdateFirmware
        self.boot_accepted = False
        self.boot_status: str | None = None  # the CSMS's last answer to our BootNotification
        self.boot_interval_s = 0
        self.boots = 0
        # The link as the firmware sees it, and the faults a scenario injects into it. Transaction
        # messages survive a lost link in `queue` (as firmware keeps them in flash).
        self.connected = False
        self.silent = False  # say nothing, keep the socket: only a watchdog can notice
        self.duplicate_sends = False  # send every transaction frame twice (a flaky network)
        self.clock_skew_s = 0.0
        self.queue: list[QueuedMessage] = []
        self.messages_given_up = 0  # transaction messages unanswered or failed after every attempt
        self.wire = WireFaults(f"{seed}:{cp_id}:wire")
        self.transactions_started = 0
        self._reset_when_idle = False

    @functools.cached_property
    def _delay_rng(self) -> random.Random:
        """Made at the first gate: seeding one costs more than most chargers' whole setup, and
        only smart charge points draw from it."""
        return random.Random(f"{self._seed}:{self.cp_id}:delay")

    def boot_message(self, reason: BootReason) -> Message:
        """The BootNotification to send; `boot_answered` reads what comes back."""
        self.boots += 1
        return self.dialect.boot(reason, self.firmware_version)

    def boot_answered(self, outcome: Outcome) -> bool:
        """Read the CSMS's answer to BootNotification and adopt its heartbeat interval when
        accepted; whether it was."""
        if not outcome.ok or outcome.payload is None:
            self.boot_status = None
            return False
        status, interval = self.dialect.read_boot(outcome.payload)
        self.boot_status, self.boot_interval_s = status, interval
        self.boot_accepted = status == "Accepted"
        if self.boot_accepted and interval > 0:
            self.settings.values[HEARTBEAT_INTERVAL] = str(interval)
        return self.boot_accepted

    @property
    def protocol(self) -> OcppVersion:
        return self.dialect.version

    @property
    def heartbeat_interval_s(self) -> int:
        return self.settings.number(HEARTBEAT_INTERVAL)

    @property
    def meter_interval_s(self) -> int:
        return self.settings.number(METER_INTERVAL)

    def timestamp(self) -> str:
        """This charger's idea of now: its clock may be skewed (a fault scenarios inject)."""
        return format_ts(self.clock.now() + timedelta(seconds=self.clock_skew_s))

    def _ts(self) -> str:
        return self.timestamp()

    def transactions(self) -> Iterator[tuple[VirtualConnector, Transaction]]:
        for c in self.connectors.values():
            if c.transaction is not None:
                yield c, c.transaction

    def csms_handlers(self) -> dict[str, Handler]:
        """The dialect's handlers, each behind the wire fault that refuses a command."""

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

    # ---- the offline queue -----------------------------------------------------------------------
    @property
    def reachable(self) -> bool:
        return self.connected and not self.silent

    def route(self, action: str, *, queue_if_offline: bool = True) -> Route:
        """Offline (or silent), transaction messages are queued for replay and everything else is
        dropped; while a queue waits, new transaction messages join its end so the order holds."""
        transactional = action in self.dialect.transaction_actions
        if transactional and queue_if_offline and (not self.reachable or self.queue):
            return Route.QUEUE
        return Route.SEND if self.reachable else Route.DROP

    def enqueue(
        self, message: Message, then: Callable[[Outcome], None] | None = None, *, first: bool = False
    ) -> None:
        """Hold a transaction message for replay, marked as sent late where the version can say so;
        `then` takes the answer its replay gets. `first`: ahead of what was queued while it was sent."""
        entry = QueuedMessage(message[0], self.dialect.mark_offline(*message), then)
        self.queue.insert(0 if first else len(self.queue), entry)

    def retry_first(
        self, message: Message, sendings: int, then: Callable[[Outcome], None] | None
    ) -> QueuedMessage:
        """Hold a transaction message the CSMS failed to process, after `sendings`, until its retry
        interval has passed: first in the queue, so whatever is submitted meanwhile waits behind it
        and a power cut meanwhile loses it with the queue. `then` takes its answer."""
        entry = QueuedMessage(*message, then, sendings)
        self.queue.insert(0, entry)
        return entry

    def replay_head(self) -> Message | None:
        """The next queued message to replay, oldest first; None when nothing waits or we cannot send."""
        return self.queue[0].message if self.queue and self.reachable else None

    def send_again(self, action: str, outcome: Outcome, attempt: int) -> bool:
        """Whether a message that got `outcome` on its `attempt`-th sending goes again: a transaction
        message the CSMS did not answer or failed to process, within TransactionMessageAttempts
        (2.x MessageAttempts); the driver sends it again before anything after it, so order holds."""
        return (
            action in self.dialect.transaction_actions
            and outcome.error in RETRIED_ERRORS
            and attempt < self.settings.number(TRANSACTION_ATTEMPTS)
        )

    def retry_after_s(self, action: str, outcome: Outcome, attempt: int) -> float | None:
        """Seconds to wait before sending again a message that got `outcome` on its `attempt`-th
        sending, or None when it does not go again (`send_again`): TransactionMessageRetryInterval
        (2.x MessageAttemptInterval) times the sendings so far, as OCPP asks. The driver waits in its
        own time, holding back every transaction message behind this one."""
        if not self.send_again(action, outcome, attempt):
            return None
        return float(self.settings.number(TRANSACTION_RETRY_INTERVAL) * attempt)

    def replayed(self, outcome: Outcome) -> bool:
        """The head got `outcome` (after its attempts): True when it is done with (answered, even
        refused, or failed on every attempt); an unanswered head stays first in line for the next
        replay."""
        if outcome.error in ("Offline", "Timeout"):
            if self.queue:
                self.queue[0].sendings = 0  # the next replay starts its attempts afresh
            return False
        if outcome.error == "InternalError":
            self.messages_given_up += 1
        then = self.queue.pop(0).then
        if then is not None:
            then(outcome)
        return True

    def start_queued(self, c: VirtualConnector, tx: Transaction) -> Callable[[Outcome], None]:
        """What to do with the answer a queued start gets when replayed: its car was told no (it got
        no answer in time), so a transaction the CSMS opens then is ended at once."""

        def answered(outcome: Outcome) -> None:
            if self.dialect.ends_refused_start:
                return  # 2.x: its refusal here already queued its end behind it
            stop = self.abandoned_start(c, tx, outcome)
            if stop is not None:
                self.follow_up(stop)

        return answered

    # ---- what the charger says -------------------------------------------------------------------
    def status_message(self, c: VirtualConnector) -> Message:
        """StatusNotification for a connector's current state."""
        return self.dialect.status(c, self._ts())

    def meter_message(self, c: VirtualConnector, tx: Transaction) -> Message:
        """The periodic meter reading of a running transaction (MeterValues / TransactionEvent Updated)."""
        self.export_energy(c, tx)
        return self.dialect.meter(c, tx, self._ts(), self.power_w(c))

    def stop_message(self, c: VirtualConnector, tx: Transaction, reason: StopReason) -> Message:
        """How a transaction's end is told (StopTransaction / TransactionEvent Ended)."""
        self.export_energy(c, tx)
        return self.dialect.ended(c, tx, self._ts(), reason)

    def export_energy(self, c: VirtualConnector, tx: Transaction | None) -> None:
        """A V2G transaction's discharge integrated up to now (simulators/v2x.py), before a report."""
        if tx is not None and tx.v2x is not None:
            discharge(tx.v2x, c.export_meter, self.clock.now())

    def renewal_message(self) -> Message:
        """SignCertificate with a CSR for a new key (the chain comes later, as CertificateSigned)."""
        payload: dict[str, Any] = {"csr": self.certificates.csr()}
        if self.protocol != V16:
            payload["certificateType"] = "ChargingStationCertificate"
        return "SignCertificate", payload

    def report_later(self, c: VirtualConnector) -> None:
        """Report the connector's state as it is now, after the current answer."""
        self.follow_up(self.status_message(c))

    # ---- power and limits ------------------------------------------------------------------------
    def power_w(self, c: VirtualConnector) -> int:
        """What the car draws now: its own curve, under the connector's rating and charging limit.
        Nothing once its transaction has ended, though the car is still plugged in while the stop
        is on its way: the register must stand at the reading the stop told."""
        p = c.plugged
        if p is None or p.transaction is None or c.state is not ConnectorState.CHARGING:
            return 0
        gate = self.gates.get(c.no)
        return p.vehicle.power_w(self.limit_w(c) if gate is None else gate.applied_w)

    def drawing(self) -> list[tuple[int, int, bool]]:
        """Each connector's number, the power it draws now, and whether a car plugged in there is
        held at 0 W (the grid meter's view: simulators/grid_metrics.py)."""
        return [
            (c.no, self.power_w(c), c.plugged is not None and c.state is ConnectorState.SUSPENDED_EVSE)
            for c in self.connectors.values()
        ]

    def limit_w(self, c: VirtualConnector) -> int:
        return self._shared_limit_w(c, self.clock.now())

    def _shared_limit_w(self, c: VirtualConnector, at: datetime) -> int:
        """The connector's limit at `at`: its part of the charger-wide maximum, shared with the other
        connectors charging now (itself counted, as if it drew)."""
        drawing = {k.no for k in self.connectors.values() if k.state is ConnectorState.CHARGING} | {c.no}
        connectors = {k.no: (self._tx_context(k), k.max_power_w, k.phases) for k in self.connectors.values()}
        return self.profiles.shared_limits_w(at, connectors, drawing)[c.no]

    def _tx_context(self, c: VirtualConnector) -> TxContext | None:
        tx = c.transaction
        return None if tx is None else TxContext(tx.local_id, tx.started_at)

    def _limit_at(self, c: VirtualConnector) -> Callable[[datetime], int]:
        return lambda at: self._shared_limit_w(c, at)

    def _profile_edges(self, c: VirtualConnector) -> Callable[[datetime, datetime], list[datetime]]:
        """The moments within a stretch where the connector's charging limit changes."""

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
        c.state = gated_state(c.state, gate.applied_w)

    def _profiles_changed(self, installed: Profile | None) -> None:
        """Profiles changed now: the driver's override, or a change of the limit (a relevant time)."""
        for c in self.connectors.values():
            gate = self.gates.get(c.no)
            if gate is not None:
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
            else:
                self.follow_limit(c)
            if c.transaction is not None:
                self.limits_changed(c)

    def follow_limit(self, c: VirtualConnector) -> None:
        """Without a gate: a car the profiles hold at 0 W shows SuspendedEVSE, and Charging again once
        they let power through; a change is reported."""
        tx = c.transaction
        if tx is None or c.no in self.gates:
            return
        state = gated_state(c.state, self.limit_w(c))
        if state is not c.state:
            c.state = state
            changed = self.dialect.charging_state_changed(c, tx, self._ts())
            if changed is not None:
                self.follow_up(changed)
            self.report_later(c)

    def _follow_gate(self, c: VirtualConnector) -> None:
        """The connector shows whether the gate lets power through now; a change is reported."""
        gate = self.gates.get(c.no)
        if gate is None:
            return
        state = gated_state(c.state, gate.applied_w)
        tx = c.transaction
        if state is not c.state and tx is not None:
            c.state = state
            changed = self.dialect.charging_state_changed(c, tx, self._ts())
            if changed is not None:
                self.follow_up(changed)
            self.report_later(c)

    # ---- what a driver does at the charger -------------------------------------------------------
    def plug(self, connector_no: int, vehicle: Vehicle, target_wh: int, *, id_tag: str = "") -> Plugged:
        """A car is plugged in (PlugRefused where it may not be); a reservation for it is taken up."""
        c = self.connectors[connector_no]
        reservation = c.reservation
        check_plug_in(self.cp_id, c, id_tag, online=self.reachable)
        c.state = step(c.state, Trigger.PLUG_IN)
        # The reservation is taken up by this car: the connector is no longer free to reserve.
        taken = None if reservation is None else reservation.reservation_id
        c.plugged = Plugged(id_tag, vehicle, target_wh, reservation_id=taken)
        c.reservation = None
        return c.plugged

    def card_refused(self, c: VirtualConnector) -> None:
        c.state = step(c.state, Trigger.START_REFUSED)

    def new_transaction(
        self, c: VirtualConnector, id_tag: str, *, remote_start_id: int | None = None
    ) -> Transaction:
        """A transaction about to be announced on a plugged connector, from its register now."""
        assert c.plugged is not None
        self.advance_energy()
        tx = Transaction(
            self.next_transaction_id(),
            id_tag,
            c.meter.register_wh,
            self.clock.now(),
            remote_start_id=remote_start_id,
        )
        c.plugged.id_tag, c.plugged.meter_start = id_tag, tx.meter_start
        c.plugged.starting = tx
        return tx

    def can_start(self, c: VirtualConnector) -> bool:
        """A car is plugged in with no transaction running or being announced: one may start."""
        p = c.plugged
        return (
            p is not None
            and p.transaction is None
            and p.starting is None
            and c.state is ConnectorState.PREPARING
        )

    def take_start(self, c: VirtualConnector, tx: Transaction, outcome: Outcome) -> bool | None:
        """The CSMS's answer to our start: True (the transaction runs), False (refused), None (the
        car that started it was unplugged meanwhile: see `abandoned_start`)."""
        p = c.plugged
        if p is None or p.starting is not tx or c.state is not ConnectorState.PREPARING:
            return None
        p.starting = None
        if not self.dialect.start_accepted(tx, outcome):
            c.state = step(c.state, Trigger.START_REFUSED)
            return False
        p.transaction = tx
        self.transactions_started += 1
        if self.smart_charge_point:
            self.advance_energy()  # the gate walks from the start: energy so far is done
        c.state = step(c.state, Trigger.START_ACCEPTED)
        self._open_gate(c, tx)
        return True

    def abandoned_start(self, c: VirtualConnector, tx: Transaction, outcome: Outcome) -> Message | None:
        """The car left while its start was being answered: a transaction the CSMS opened anyway
        (or, in 2.x, any announced one) must be told ended at once, else it stays open there."""
        accepted = self.dialect.start_accepted(tx, outcome)
        if tx.wire_id is None or not (accepted or self.dialect.ends_refused_start):
            return None
        return self.stop_message(c, tx, StopReason.EV_DISCONNECTED)

    def held_back_message(self, c: VirtualConnector, tx: Transaction) -> Message | None:
        """A transaction held back by its gate from the start says so (2.x: a TransactionEvent)."""
        if c.state is not ConnectorState.SUSPENDED_EVSE:
            return None
        return self.dialect.charging_state_changed(c, tx, self._ts())

    def start_profile(self, c: VirtualConnector, profile: Profile | None) -> None:
        """A remote start's charging profile, installed once its transaction runs."""
        if profile is None or c.transaction is None or profile.unit not in self.rate_units:
            return
        try:
            self.advance_energy()
            self.profiles.install(profile, self._tx_context(c))
        except ProfileRefused:
            return
        self._profiles_changed(profile)

    def _end_transaction(self, c: VirtualConnector) -> Transaction:
        """Close the transaction locally at once, so a second stop cannot also send one."""
        assert c.plugged is not None and c.plugged.transaction is not None
        tx, c.plugged.transaction = c.plugged.transaction, None
        self.profiles.end_transaction(tx.local_id)
        gate = self.gates.pop(c.no, None)
        if gate is not None:
            gate.close()
        self.transaction_ended(c)
        return tx

    def unplugged(self, c: VirtualConnector) -> None:
        """The car left (its transaction already ended): free, or out of service if that waited."""
        c.state = step(c.state, Trigger.UNPLUG)
        c.plugged = None
        if c.inoperative_scheduled:  # a ChangeAvailability Inoperative waited for the car to leave
            c.inoperative_scheduled = False
            c.state = step(c.state, Trigger.INOPERATIVE)

    def power_cut(self, *, lose_queue: bool) -> None:
        """Power lost mid-transaction: each transaction ends with reason Reboot, its stop queued for
        the CSMS, unless the queue is lost with the power (the CSMS never hears those stops)."""
        self.advance_energy()
        for c in self.connectors.values():
            if c.transaction is not None:
                tx = self._end_transaction(c)
                if not lose_queue:
                    self.enqueue(self.stop_message(c, tx, StopReason.REBOOT))
                if c.state in IN_TRANSACTION:
                    c.state = step(c.state, Trigger.STOP)
        if lose_queue:
            self.queue.clear()

    def end_for_reset(self, kind: ResetKind) -> list[tuple[VirtualConnector, Transaction, StopReason]]:
        """A commanded reset: every transaction ends now, with the reset's reason (for the driver to tell)."""
        reason = {
            ResetKind.HARD: StopReason.HARD_RESET,
            ResetKind.SOFT: StopReason.SOFT_RESET,
        }.get(kind, StopReason.IMMEDIATE_RESET)
        self.advance_energy()
        ended = []
        for c in self.connectors.values():
            if c.transaction is not None:
                if c.state in IN_TRANSACTION:
                    c.state = step(c.state, Trigger.STOP)
                ended.append((c, self._end_transaction(c), reason))
        return ended

    def expire_due(self) -> list[tuple[VirtualConnector, Reservation]]:
        """Reservations past their expiry free their connectors; the driver reports each."""
        expired = []
        for c in self.connectors.values():
            r = c.reservation
            if r is not None and c.state is ConnectorState.RESERVED and self.clock.now() >= r.expires_at:
                c.reservation, c.state = None, step(c.state, Trigger.RESERVATION_ENDED)
                expired.append((c, r))
        return expired

    # ---- what the central system asks of us (the dialects parse and answer) ----------------------
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
        # A start already being announced is not started twice (a repeated RemoteStart).
        c = next((x for x in candidates if x is not None and self.can_start(x)), None)
        if c is None:
            return False
        self.start_later(c, id_tag, remote_start_id, profile)
        return True

    def remote_stop(self, tx: Transaction | None) -> bool:
        for c, running in self.transactions():
            if running is tx:
                self._stop_now(c, StopReason.REMOTE)
                return True
        return False

    def _stop_now(self, c: VirtualConnector, reason: StopReason) -> None:
        """End the running transaction at once; the stop message follows the current answer."""
        self.advance_energy()
        if c.state in IN_TRANSACTION:
            c.state = step(c.state, Trigger.STOP)
        tx = self._end_transaction(c)
        self.stopped_later(c, tx, reason, self.status_message(c))

    def reserve(
        self, connector_no: int | None, reservation_id: int, id_tag: str, expires_at: datetime
    ) -> str:
        """ReserveNow: Accepted, Occupied, Unavailable or Rejected (`evse.reserve_connector`). `None`
        reserves whichever connector is free."""
        reservation = Reservation(reservation_id, id_tag, expires_at)
        answer, reserved = reserve_connector(self.connectors, connector_no, reservation)
        if reserved is not None:
            self.report_later(reserved)
            self.reservation_made(reserved, reservation)
        return answer

    def cancel_reservation(self, reservation_id: int) -> bool:
        for c in self.connectors.values():
            if c.reservation is not None and c.reservation.reservation_id == reservation_id:
                c.reservation = None
                if c.state is ConnectorState.RESERVED:
                    c.state = step(c.state, Trigger.RESERVATION_ENDED)
                    self.report_later(c)
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
                    self.report_later(c)
            elif c.state in (ConnectorState.AVAILABLE, ConnectorState.RESERVED):
                c.reservation = None
                c.state = step(c.state, Trigger.INOPERATIVE)
                self.report_later(c)
            elif c.state is not ConnectorState.UNAVAILABLE:
                c.inoperative_scheduled = scheduled = True
        return "Scheduled" if scheduled else "Accepted"

    def reset(self, kind: ResetKind) -> str:
        """Accepted (the reset follows the answer), or Scheduled for OnIdle while a transaction runs."""
        if kind is ResetKind.ON_IDLE and any(True for _ in self.transactions()):
            self._reset_when_idle = True
            return "Scheduled"
        self.reset_later(kind)
        return "Accepted"

    def _reset_if_idle(self) -> None:
        """An OnIdle reset that waited for the last transaction to end goes ahead now."""
        if self._reset_when_idle and not any(True for _ in self.transactions()):
            self._reset_when_idle = False
            self.reset_later(ResetKind.ON_IDLE)

    def trigger(self, what: Requested, connector_no: int | None) -> str:
        """TriggerMessage: Accepted and the message follows the answer; Rejected for a connector we
        do not have, or a transaction's meter reading where none runs."""
        if connector_no is not None and connector_no not in self.connectors:
            return "Rejected"
        targets = (
            [self.connectors[connector_no]] if connector_no is not None else list(self.connectors.values())
        )
        if what is Requested.BOOT:
            self.boot_later()
        elif what is Requested.HEARTBEAT:
            self.follow_up(self.dialect.heartbeat())
        elif what is Requested.STATUS:
            for c in targets:
                self.report_later(c)
        elif what is Requested.METER_VALUES:
            for c in targets:
                self.meter_later(c)
        else:
            running = [c for c in targets if c.transaction is not None]
            if not running:
                return "Rejected"
            for c in running:
                self.meter_later(c)
        return "Accepted"

    def triggered_meter_message(self, c: VirtualConnector) -> Message:
        self.advance_energy()
        self.export_energy(c, c.transaction)
        return self.dialect.triggered_meter(c, c.transaction, self._ts(), self.power_w(c))

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

    def wire_phases(self, phases: int | Mapping[int, int] | None, *, said: bool = True) -> None:
        """Wire every connector to `phases` (1 or 3; by connector number, or None: as rated)
        whatever its rating, and say so unless not `said` (then 1.6 Unknown, 2.0.1 0): a limit in A
        is drawn on the phases named that it has (`simulators/smart_charging.py`, `drawn_w`)."""
        self.advance_energy()  # energy so far as wired before
        for c in self.connectors.values():
            c.wired_phases = phases.get(c.no) if isinstance(phases, Mapping) else phases
        self._declare_phases(said=said)

    def switch_phases(self, supported: bool) -> None:
        """Whether it switches a three-phase connector to one phase when a profile's period names
        one, and says so (1.6 `ConnectorSwitch3to1PhaseSupported`, 2.0.1 `Phases3to1`): one that
        cannot draws nothing when told fewer phases than it has, or under 6 A on each in W."""
        self.advance_energy()  # energy so far as it switched before
        self.settings.values[PHASE_SWITCHING] = "true" if supported else "false"
        self.profiles.switches_3to1 = supported

    def _declare_phases(self, *, said: bool = True) -> None:
        """1.6 `ConnectorPhaseRotation`, a rotation per connector (NotApplicable: one phase); 2.0.1
        `ChargingStation.SupplyPhases`, the most phases any of its connectors has, and each EVSE's
        own `EVSE.SupplyPhases` (an EVSE is a connector here)."""
        for c in self.connectors.values():
            self.settings.evse_values.pop((c.no, EVSE_SUPPLY_PHASES), None)
        if not said:
            self.settings.values[SUPPLY_PHASES] = "Unknown" if self.dialect.version == V16 else "0"
            return
        if self.dialect.version == V16:
            declared = ",".join(
                f"{c.no}.{'RST' if c.phases == 3 else 'NotApplicable'}" for c in self.connectors.values()
            )
        else:
            declared = str(max((c.phases for c in self.connectors.values()), default=1))
            for c in self.connectors.values():
                self.settings.evse_values[(c.no, EVSE_SUPPLY_PHASES)] = str(c.phases)
        self.settings.values[SUPPLY_PHASES] = declared

    def take_amps_only(self) -> None:
        """Take charging schedules in A only, and say so, as many real chargers do: a profile in W
        is refused (Rejected), one in A obeyed at 230 V on its numberPhases (else the connector's)."""
        self.rate_units = frozenset({"A"})
        self.settings.values["rate_units"] = "Current" if self.dialect.version == V16 else "A"

    @property
    def schedule_unit(self) -> str:
        """The unit a composite schedule is given in when none is asked for."""
        return "W" if "W" in self.rate_units else "A"

    def set_profile(self, profile: Profile) -> bool:
        if profile.connector_no != 0 and profile.connector_no not in self.connectors:
            return False
        if profile.unit not in self.rate_units:
            return False
        c = self.connectors.get(profile.connector_no)
        self.advance_energy()  # energy so far at the old limit; the new one applies from now
        try:
            self.profiles.install(profile, None if c is None else self._tx_context(c))
        except ProfileRefused:
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
        self.advance_energy()
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
            self.advance_energy()  # energy so far under the old settings
        result = self.settings.set(self.settings.has(setting), value)
        if result is SetResult.ACCEPTED and smart:
            for c in self.connectors.values():
                gate = self.gates.get(c.no)
                if gate is not None:
                    gate.reconsider(self._limit_at(c))
                    self._follow_gate(c)
                if c.transaction is not None:
                    self.limits_changed(c)
        return result

    # ---- hooks the driver implements -------------------------------------------------------------
    def advance_energy(self) -> None:
        """Integrate every charging connector's energy up to now."""
        raise NotImplementedError

    def follow_up(self, message: Message) -> None:
        """Send `message` once the answer to the command being handled has gone."""
        raise NotImplementedError

    async def send_message(self, message: Message) -> None:
        """Send a message of its own now (queued while offline, as any other)."""
        raise NotImplementedError

    def transfer_later(
        self, transfer: Coroutine[Any, Any, None], *, not_before: datetime | None = None
    ) -> None:
        """A file transfer (firmware download, log upload), begun once the answer has gone."""
        raise NotImplementedError

    def renew_later(self) -> None:
        """Renew the charger's certificate (TriggerMessage SignChargingStationCertificate)."""
        raise NotImplementedError

    def start_later(
        self, c: VirtualConnector, id_tag: str, remote_start_id: int | None, profile: Profile | None
    ) -> None:
        """A remote start accepted: authorise if the settings ask, start, then install `profile`."""
        raise NotImplementedError

    def stopped_later(
        self, c: VirtualConnector, tx: Transaction, reason: StopReason, status: Message
    ) -> None:
        """A transaction ended by command: send its stop, then `status`, after the answer."""
        raise NotImplementedError

    def reset_later(self, kind: ResetKind) -> None:
        """Go down and boot again (telling each transaction's end first), after the answer."""
        raise NotImplementedError

    def boot_later(self) -> None:
        """A triggered BootNotification, after the answer."""
        raise NotImplementedError

    def meter_later(self, c: VirtualConnector) -> None:
        """A triggered meter reading, after the answer."""
        self.follow_up(self.triggered_meter_message(c))

    def next_transaction_id(self) -> str:
        """The charger's own id for a new transaction, unique across reboots."""
        raise NotImplementedError

    def transaction_ended(self, c: VirtualConnector) -> None:
        """The connector's transaction ended locally (whoever waits on it may go on)."""

    def reservation_made(self, c: VirtualConnector, r: Reservation) -> None:
        """A reservation was accepted (a driver may schedule its expiry)."""

    def limits_changed(self, c: VirtualConnector) -> None:
        """The connector's charging limit may have changed now (a driver may wake its metering)."""


def gated_state(state: ConnectorState, limit_w: int) -> ConnectorState:
    """Charging shows SuspendedEVSE while the charger holds the limit at 0 W, and back."""
    if state is ConnectorState.CHARGING and limit_w == 0:
        return step(state, Trigger.EVSE_SUSPEND)
    if state is ConnectorState.SUSPENDED_EVSE and limit_w > 0:
        return step(state, Trigger.EVSE_RESUME)
    return state
