"""What a virtual connector holds, in words both OCPP versions share: the car plugged in, its
transaction, a reservation, and the reasons a transaction ends or a charger boots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from simulators.firmware import ConnectorState, Trigger, step
from simulators.power import EnergyMeter, Vehicle
from simulators.v2x import V2x


class StopReason(StrEnum):
    EV_DISCONNECTED = "ev_disconnected"
    REMOTE = "remote"
    LOCAL = "local"
    REBOOT = "reboot"  # power lost: a reboot fault
    HARD_RESET = "hard_reset"
    SOFT_RESET = "soft_reset"
    IMMEDIATE_RESET = "immediate_reset"
    UNLOCK = "unlock"
    DEAUTHORIZED = "deauthorized"


class BootReason(StrEnum):
    POWER_UP = "power_up"
    REMOTE_RESET = "remote_reset"
    TRIGGERED = "triggered"


class ResetKind(StrEnum):
    HARD = "hard"  # 1.6
    SOFT = "soft"  # 1.6
    IMMEDIATE = "immediate"  # 2.0.1
    ON_IDLE = "on_idle"  # 2.0.1: once no transaction runs


class Requested(StrEnum):
    """What a TriggerMessage may ask for (the messages this charger can send on demand)."""

    BOOT = "boot"
    HEARTBEAT = "heartbeat"
    STATUS = "status"
    METER_VALUES = "meter_values"
    TRANSACTION_EVENT = "transaction_event"


class Unlock(StrEnum):
    UNLOCKED = "unlocked"
    FAILED = "failed"
    UNKNOWN_CONNECTOR = "unknown_connector"
    ONGOING_TRANSACTION = "ongoing_transaction"


@dataclass
class Transaction:
    local_id: str  # charger-generated: the 2.0.1 transactionId
    id_tag: str
    meter_start: int
    started_at: datetime
    remote_start_id: int | None = None
    wire_id: int | str | None = None  # as the CSMS knows it (1.6: what StartTransaction.conf assigned)
    seq_no: int = 0  # 2.0.1: the next TransactionEvent's seqNo
    v2x: V2x | None = None  # 2.1: what the CSMS allowed of bidirectional transfer, and when

    def next_seq(self) -> int:
        n, self.seq_no = self.seq_no, self.seq_no + 1
        return n


@dataclass
class Plugged:
    id_tag: str
    vehicle: Vehicle
    target_wh: int
    transaction: Transaction | None = None
    starting: Transaction | None = None  # announced to the CSMS, its answer not yet taken
    reservation_id: int | None = None  # the reservation this car took up when it plugged in
    meter_start: int = 0
    delivered_wh: int = 0

    @property
    def transaction_id(self) -> int | str | None:
        """The running transaction's id as the CSMS knows it (int in 1.6, str in 2.0.1)."""
        return None if self.transaction is None else self.transaction.wire_id


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
    export_meter: EnergyMeter = field(default_factory=EnergyMeter)  # V2G: energy given back, apart
    plugged: Plugged | None = None
    reservation: Reservation | None = None
    inoperative_scheduled: bool = False  # ChangeAvailability Inoperative while in use: applied when free
    wired_phases: int | None = None  # the phases it is wired to (`ChargerCore.wire_phases`); None: by rating

    @property
    def phases(self) -> int:
        """As wired; otherwise home chargers up to 7.4 kW are single-phase, above it three-phase."""
        if self.wired_phases is not None:
            return self.wired_phases
        return 1 if self.max_power_w <= 7_400 else 3

    @property
    def transaction(self) -> Transaction | None:
        return None if self.plugged is None else self.plugged.transaction


class PlugRefused(Exception):
    """The connector is in use, reserved for someone else or out of service, or the charger cannot
    authorise cards now: this driver cannot start here."""


def check_plug_in(cp_id: str, c: VirtualConnector, id_tag: str, *, online: bool) -> None:
    """Whether a car may plug in here: one rule for the live and the discrete-event charger."""
    if c.reservation is not None and c.reservation.id_tag != id_tag:
        raise PlugRefused(f"{cp_id}/{c.no} is reserved for another driver")
    if c.state not in (ConnectorState.AVAILABLE, ConnectorState.RESERVED):
        raise PlugRefused(f"{cp_id}/{c.no} is in use or out of service ({c.state})")
    if not online:
        raise PlugRefused(f"{cp_id} is offline and cannot authorise cards")


def reserve_connector(
    connectors: Mapping[int, VirtualConnector], connector_no: int | None, r: Reservation
) -> tuple[str, VirtualConnector | None]:
    """ReserveNow, one rule for the live and the discrete-event charger: the answer (Accepted,
    Occupied, Unavailable or Rejected, the same words in both versions) and the connector it newly
    reserved, whose status the charger then reports. `None` reserves whichever connector is free."""
    if connector_no is None:
        c = next(
            (
                x
                for x in connectors.values()
                if x.reservation and x.reservation.reservation_id == r.reservation_id
            ),
            None,
        ) or next((x for x in connectors.values() if x.state is ConnectorState.AVAILABLE), None)
        if c is None:
            return "Occupied", None
    else:
        found = connectors.get(connector_no)
        if found is None:
            return "Rejected", None
        c = found
    if c.reservation is not None and c.reservation.reservation_id == r.reservation_id:
        c.reservation = r  # a ReserveNow for an existing reservation id replaces that reservation
        return "Accepted", None
    if c.state is ConnectorState.UNAVAILABLE:
        return "Unavailable", None
    if c.state is not ConnectorState.AVAILABLE:
        return "Occupied", None  # OCPP 1.6 5.13: also when already reserved, for this or another idTag
    c.reservation, c.state = r, step(c.state, Trigger.RESERVE)
    return "Accepted", c
