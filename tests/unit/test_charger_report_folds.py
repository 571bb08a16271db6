"""What a charger's reports add up to: the last word wins, limits are lifted by their source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chargeshare.domain.charger_reports import (
    charging_limits,
    device_model,
    ev_charging_needs,
    latest_statuses,
)
from tests.conftest import T0


@dataclass(frozen=True)
class Kept:
    action: str
    body: dict[str, Any] = field(default_factory=dict)
    received_at: datetime = T0


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def variable(name: str, value: str, *, evse: int | None = None, **attribute: Any) -> dict[str, Any]:
    component: dict[str, Any] = {"name": "EVSE" if evse is not None else "OCPPCommCtrlr"}
    if evse is not None:
        component["evse"] = {"id": evse}
    return {
        "component": component,
        "variable": {"name": name},
        "variableAttribute": [{"value": value, "mutability": "ReadWrite", **attribute}],
    }


def test_the_device_model_keeps_the_last_value_of_each_attribute() -> None:
    part1 = {
        "reportData": [
            variable("HeartbeatInterval", "300"),
            variable("Power", "7400", evse=1),
            variable("Power", "22000", evse=2),
        ]
    }
    part2 = {"reportData": [variable("HeartbeatInterval", "600", type="Target")]}
    later = {"reportData": [variable("HeartbeatInterval", "900")]}
    model = device_model(
        [
            Kept("NotifyReport", part1, at(0)),
            Kept("NotifyReport", part2, at(1)),
            Kept("FirmwareStatusNotification", {"status": "Idle"}, at(2)),
            Kept("NotifyReport", later, at(3)),
        ]
    )
    seen = [(v.component, v.evse_id, v.variable, v.attribute, v.value) for v in model]
    assert seen == [
        ("EVSE", 1, "Power", "Actual", "7400"),  # one per EVSE: an EVSE is part of the key
        ("EVSE", 2, "Power", "Actual", "22000"),
        ("OCPPCommCtrlr", None, "HeartbeatInterval", "Actual", "900"),  # the later report's
        ("OCPPCommCtrlr", None, "HeartbeatInterval", "Target", "600"),  # its own attribute
    ]
    assert model[2].reported_at == at(3) and model[2].mutability == "ReadWrite"


def limit(source: str, evse: int | None = None, critical: bool | None = None) -> Kept:
    body: dict[str, Any] = {"chargingLimit": {"chargingLimitSource": source}}
    if critical is not None:
        body["chargingLimit"]["isGridCritical"] = critical
    if evse is not None:
        body["evseId"] = evse
    return Kept("NotifyChargingLimit", body)


def cleared(source: str, evse: int | None = None) -> Kept:
    body: dict[str, Any] = {"chargingLimitSource": source}
    if evse is not None:
        body["evseId"] = evse
    return Kept("ClearedChargingLimit", body)


def test_a_limit_holds_until_its_source_lifts_it() -> None:
    reports = [limit("EMS", 1), limit("EMS", 2), limit("SO", critical=True), limit("EMS", 1, critical=False)]
    assert [(x.source, x.evse_id, x.grid_critical) for x in charging_limits(reports)] == [
        ("EMS", 1, False),  # set again: the later one stands
        ("EMS", 2, None),
        ("SO", None, True),
    ]
    lifted = charging_limits([*reports, cleared("EMS", 1), cleared("CSO")])
    assert [(x.source, x.evse_id) for x in lifted] == [("EMS", 2), ("SO", None)]
    # Naming no EVSE lifts every limit of that source.
    assert [(x.source, x.evse_id) for x in charging_limits([*reports, cleared("EMS")])] == [("SO", None)]


def test_ev_needs_per_evse_with_the_cars_schedule() -> None:
    ac = {
        "requestedEnergyTransfer": "AC_three_phase",
        "departureTime": "2026-03-02T17:00:00Z",
        "acChargingParameters": {
            "energyAmount": 20_000,
            "evMinCurrent": 6,
            "evMaxCurrent": 32,
            "evMaxVoltage": 400,
        },
    }
    dc = {"requestedEnergyTransfer": "DC", "dcChargingParameters": {"evMaxCurrent": 200, "evMaxVoltage": 800}}
    schedule = {
        "id": 1,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11_000}],
    }
    needs = ev_charging_needs(
        [
            Kept(
                "NotifyEVChargingSchedule", {"evseId": 1, "chargingSchedule": schedule}, at(0)
            ),  # no needs yet
            Kept("NotifyEVChargingNeeds", {"evseId": 2, "chargingNeeds": dc}, at(1)),
            Kept("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": ac}, at(2)),
            Kept("NotifyEVChargingSchedule", {"evseId": 1, "chargingSchedule": schedule}, at(3)),
        ]
    )
    assert [(n.evse_id, n.transfer_mode, n.energy_wh, n.departure_at) for n in needs] == [
        (1, "AC_three_phase", 20_000, "2026-03-02T17:00:00Z"),
        (2, "DC", None, None),
    ]
    assert needs[0].schedule == schedule and needs[1].schedule is None
    # New needs start without a schedule: the car's next plan is awaited.
    renewed = ev_charging_needs(
        [
            Kept("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": ac}),
            Kept("NotifyEVChargingSchedule", {"evseId": 1, "chargingSchedule": schedule}),
            Kept("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": dc}),
        ]
    )
    assert [(n.transfer_mode, n.schedule) for n in renewed] == [("DC", None)]


def test_the_last_status_of_each_job() -> None:
    statuses = latest_statuses(
        [
            Kept("FirmwareStatusNotification", {"status": "Downloading", "requestId": 3}, at(0)),
            Kept("LogStatusNotification", {"status": "Uploading", "requestId": 8}, at(1)),
            Kept("SignedFirmwareStatusNotification", {"status": "SignatureVerified", "requestId": 3}, at(2)),
            Kept("DiagnosticsStatusNotification", {"status": "Uploaded"}, at(3)),
            Kept("PublishFirmwareStatusNotification", {"status": "Published", "requestId": 5}, at(4)),
            Kept("LogStatusNotification", {"status": "Uploaded", "requestId": 8}, at(5)),
            Kept("NotifyReport", {"reportData": []}, at(6)),
        ]
    )
    assert [(s.kind, s.status, s.request_id, s.at) for s in statuses] == [
        ("diagnostics", "Uploaded", None, at(3)),
        ("firmware", "SignatureVerified", 3, at(2)),  # signed or not, one firmware job
        ("firmware_publishing", "Published", 5, at(4)),
        ("log", "Uploaded", 8, at(5)),
    ]
