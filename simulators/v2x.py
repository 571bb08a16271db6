"""A bidirectional car's discharging (V2G, OCPP 2.1), shared by both engines through the charger core.

A transaction learns from the CSMS which energy transfer modes it may use (NotifyAllowedEnergyTransfer)
and, from a TxProfile's `CentralSetpoint` periods with a negative setpoint, when and how fast to
discharge. Discharge is integrated into the connector's export register, apart from the import
register, whenever the charger reports (every reading and the end): exact whatever the engine's
wake-ups, since only the windows and the car's floor decide it. The car never goes below its
driver's floor: what would take it lower is not taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chargeshare.ocpp.timestamps import parse_ts
from simulators.power import EnergyMeter, Vehicle
from simulators.smart_charging import to_watts

BIDIRECTIONAL = frozenset({"AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT"})
DISCHARGE_MODES = frozenset({"CentralSetpoint", "ExternalSetpoint"})
FAR = timedelta(days=3650)  # a last period without a duration: until the transaction ends


@dataclass
class V2x:
    vehicle: Vehicle
    modes: tuple[str, ...] = ()
    windows: list[tuple[datetime, datetime, int]] = field(default_factory=list)  # (from, to, W)
    integrated_to: datetime | None = None

    @property
    def allowed(self) -> bool:
        return bool(BIDIRECTIONAL & set(self.modes)) and self.vehicle.floor_soc_wh is not None


def discharge(v2x: V2x, meter: EnergyMeter, now: datetime) -> int:
    """Discharge since the last call up to `now`, within the windows and above the floor: the Wh
    added to the export register (and taken from the car)."""
    start = v2x.integrated_to if v2x.integrated_to is not None else now
    v2x.integrated_to = max(start, now)
    if not v2x.allowed:
        return 0
    total = 0
    for a, b, power_w in v2x.windows:
        lo, hi = max(a, start), min(b, now)
        if hi <= lo:
            continue
        before = meter.register_wh
        meter.add(power_w, (hi - lo).total_seconds())
        room = v2x.vehicle.discharge_room_wh()
        taken = meter.register_wh - before
        if taken > room:  # the floor: the car stops giving back
            meter.register_wh = before + room
            taken = room
        v2x.vehicle.soc_wh -= taken
        total += taken
    return total


def discharge_windows(
    profile: dict[str, Any], rating_w: int, now: datetime, phases: int = 3
) -> list[tuple[datetime, datetime, int]] | None:
    """The discharge windows a 2.1 TxProfile asks for (None if it asks none): each `CentralSetpoint`
    period with a negative setpoint, at the lesser of the setpoint, discharge limit and rating. In A,
    each is A x 230 V on the period's numberPhases, else the connector's `phases`."""
    windows: list[tuple[datetime, datetime, int]] = []
    for schedule in profile["chargingSchedule"]:
        unit = schedule.get("chargingRateUnit", "W")
        begin = parse_ts(schedule["startSchedule"]) if "startSchedule" in schedule else now
        periods: Sequence[dict[str, Any]] = schedule["chargingSchedulePeriod"]
        end = begin + timedelta(seconds=schedule["duration"]) if "duration" in schedule else begin + FAR
        for i, period in enumerate(periods):
            if period.get("operationMode") not in DISCHARGE_MODES or period.get("setpoint", 0) >= 0:
                continue
            on = period.get("numberPhases") or phases
            asked = min(-period["setpoint"], -period.get("dischargeLimit", period["setpoint"]))
            power = min(to_watts(asked, unit, on), rating_w)
            a = begin + timedelta(seconds=period["startPeriod"])
            b = begin + timedelta(seconds=periods[i + 1]["startPeriod"]) if i + 1 < len(periods) else end
            windows.append((a, min(b, end), int(power)))
    return windows or None


def charging_only(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile as charging limits alone (V2X words dropped): what the charger's power model
    obeys for import, while discharge follows the windows."""
    v2x_words = {"operationMode", "setpoint", "dischargeLimit", "setpoint_L2", "setpoint_L3"}
    return {
        **profile,
        "chargingSchedule": [
            {
                **s,
                "chargingSchedulePeriod": [
                    {k: v for k, v in p.items() if k not in v2x_words} for p in s["chargingSchedulePeriod"]
                ],
            }
            for s in profile["chargingSchedule"]
        ],
    }
