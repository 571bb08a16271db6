"""What a charger's reports add up to, for operators: folds over the messages it sent, oldest first.

A charger tells the central system about itself in pieces: a device-model report split over several
NotifyReport frames, limits set by one message and lifted by another, a firmware update as a run of
status notifications. The store keeps every message as received; these pure functions read the
current picture out of them (the last word wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# Which status a notification is about: its action -> the kind operators see.
STATUS_KINDS = {
    "FirmwareStatusNotification": "firmware",
    "SignedFirmwareStatusNotification": "firmware",  # 1.6 security extension: signed updates
    "PublishFirmwareStatusNotification": "firmware_publishing",  # 2.0.1 local controllers
    "DiagnosticsStatusNotification": "diagnostics",
    "LogStatusNotification": "log",
}


class Reported(Protocol):
    """One kept message: what the folds read (the store's ChargerReport is one)."""

    @property
    def action(self) -> str: ...
    @property
    def body(self) -> Mapping[str, Any]: ...
    @property
    def received_at(self) -> datetime: ...


@dataclass(frozen=True)
class DeviceVariable:
    """One attribute of one variable of the charger's device model (OCPP 2.0.1 NotifyReport)."""

    component: str
    variable: str
    attribute: str  # Actual, Target, MinSet, MaxSet
    value: str | None
    mutability: str | None
    evse_id: int | None = None
    connector_id: int | None = None
    component_instance: str | None = None
    variable_instance: str | None = None
    reported_at: datetime | None = None


@dataclass(frozen=True)
class ChargingLimit:
    """A limit an external system (EMS, system operator, ...) put on the charger and has not lifted."""

    source: str  # EMS, Other, SO, CSO
    evse_id: int | None  # None: the whole charger
    grid_critical: bool | None
    schedules: tuple[Mapping[str, Any], ...]
    since: datetime


@dataclass(frozen=True)
class EvChargingNeeds:
    """What the car on an EVSE asked for (ISO 15118 through NotifyEVChargingNeeds) and, once it
    proposed one, its own schedule (NotifyEVChargingSchedule)."""

    evse_id: int
    transfer_mode: str  # AC_single_phase, AC_three_phase, DC, ...
    energy_wh: int | None
    departure_at: str | None
    needs: Mapping[str, Any]
    reported_at: datetime
    schedule: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LatestStatus:
    """The last status of a long-running job on the charger: a firmware update, a log upload."""

    kind: str
    status: str
    request_id: int | None
    action: str
    at: datetime


def device_model(reports: Iterable[Reported]) -> list[DeviceVariable]:
    """Every attribute the charger's NotifyReports named, with the value last reported, sorted."""
    latest: dict[tuple[Any, ...], DeviceVariable] = {}
    for r in reports:
        if r.action != "NotifyReport":
            continue
        for item in r.body.get("reportData", []):
            component, variable = item["component"], item["variable"]
            evse = component.get("evse") or {}
            for attr in item.get("variableAttribute", []):
                v = DeviceVariable(
                    component=component["name"],
                    variable=variable["name"],
                    attribute=attr.get("type", "Actual"),
                    value=attr.get("value"),
                    mutability=attr.get("mutability"),
                    evse_id=evse.get("id"),
                    connector_id=evse.get("connectorId"),
                    component_instance=component.get("instance"),
                    variable_instance=variable.get("instance"),
                    reported_at=r.received_at,
                )
                latest[_variable_key(v)] = v
    return sorted(latest.values(), key=lambda v: tuple("" if k is None else str(k) for k in _variable_key(v)))


def _variable_key(v: DeviceVariable) -> tuple[Any, ...]:
    return (
        v.component,
        v.component_instance,
        v.evse_id,
        v.connector_id,
        v.variable,
        v.variable_instance,
        v.attribute,
    )


def charging_limits(reports: Iterable[Reported]) -> list[ChargingLimit]:
    """Limits in force: each NotifyChargingLimit sets the limit of its source on its EVSE (or the
    whole charger); a ClearedChargingLimit lifts its source's limit there, or, naming no EVSE, every
    limit of that source."""
    active: dict[tuple[str, int | None], ChargingLimit] = {}
    for r in reports:
        if r.action == "NotifyChargingLimit":
            limit = r.body["chargingLimit"]
            key = (limit["chargingLimitSource"], r.body.get("evseId"))
            active[key] = ChargingLimit(
                source=key[0],
                evse_id=key[1],
                grid_critical=limit.get("isGridCritical"),
                schedules=tuple(r.body.get("chargingSchedule", [])),
                since=r.received_at,
            )
        elif r.action == "ClearedChargingLimit":
            source, evse_id = r.body["chargingLimitSource"], r.body.get("evseId")
            for key in [k for k in active if k[0] == source and (evse_id is None or k[1] == evse_id)]:
                del active[key]
    return sorted(active.values(), key=lambda x: (x.source, -1 if x.evse_id is None else x.evse_id))


def ev_charging_needs(reports: Iterable[Reported]) -> list[EvChargingNeeds]:
    """The latest needs per EVSE, with the car's schedule if it sent one after them."""
    needs: dict[int, EvChargingNeeds] = {}
    for r in reports:
        if r.action == "NotifyEVChargingNeeds":
            asked = r.body["chargingNeeds"]
            params = asked.get("acChargingParameters") or asked.get("dcChargingParameters") or {}
            evse_id = int(r.body["evseId"])
            needs[evse_id] = EvChargingNeeds(
                evse_id=evse_id,
                transfer_mode=asked["requestedEnergyTransfer"],
                energy_wh=params.get("energyAmount"),
                departure_at=asked.get("departureTime"),
                needs=asked,
                reported_at=r.received_at,
            )
        elif r.action == "NotifyEVChargingSchedule":
            current = needs.get(int(r.body["evseId"]))
            if current is not None:
                needs[current.evse_id] = _with_schedule(current, r.body["chargingSchedule"])
    return [needs[k] for k in sorted(needs)]


def _with_schedule(n: EvChargingNeeds, schedule: Mapping[str, Any]) -> EvChargingNeeds:
    return EvChargingNeeds(
        n.evse_id, n.transfer_mode, n.energy_wh, n.departure_at, n.needs, n.reported_at, schedule
    )


def latest_statuses(reports: Iterable[Reported]) -> list[LatestStatus]:
    """The last firmware, log, diagnostics (and firmware publishing) status, by kind."""
    latest: dict[str, LatestStatus] = {}
    for r in reports:
        kind = STATUS_KINDS.get(r.action)
        if kind is not None:
            latest[kind] = LatestStatus(
                kind, r.body["status"], r.body.get("requestId"), r.action, r.received_at
            )
    return [latest[k] for k in sorted(latest)]
