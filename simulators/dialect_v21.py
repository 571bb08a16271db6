"""OCPP 2.1 as the virtual charger speaks it: 2.0.1's dialect (the same messages, fields and firmware
operations) under the `ocpp2.1` subprotocol, every frame checked against the 2.1 schemas.

Only what 2.1 widens in a command the charger takes is handled apart, each refused rather than
half done: a Reset of type ImmediateAndResume (it cannot resume a transaction across a reboot), and
a charging profile it cannot obey (a Dynamic kind, a period without a charging limit, or one in an
operation mode other than ChargingOnly: V2X setpoints, discharging). What it sends is 2.0.1's, which
2.1's schemas all accept (docs/ocpp21.md lists the differences)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chargeshare.ocpp import V21 as VERSION
from chargeshare.ocpp.connection import Handler
from simulators.dialect_v201 import V201
from simulators.smart_charging import Kind

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort

KINDS = frozenset(k.value for k in Kind)
CHARGING_ONLY = "ChargingOnly"  # 2.1's operationMode when a period is plain charging (the default)
REJECTED = {"status": "Rejected"}


def obeyable(profile: dict[str, Any]) -> bool:
    """Whether a 2.1 charging profile asks only what the charger's power model does: charge under
    a limit, on a schedule it knows."""
    if profile["chargingProfileKind"] not in KINDS:
        return False
    return all(
        "limit" in period and period.get("operationMode", CHARGING_ONLY) == CHARGING_ONLY
        for schedule in profile["chargingSchedule"]
        for period in schedule["chargingSchedulePeriod"]
    )


class V21(V201):
    version = VERSION
    subprotocol = "ocpp2.1"

    def handlers(self, cp: ChargerPort) -> dict[str, Handler]:
        table = super().handlers(cp)
        reset201 = table["Reset"]
        set_profile201 = table["SetChargingProfile"]
        request_start201 = table["RequestStartTransaction"]

        def reset(p: dict[str, Any]) -> dict[str, Any]:
            return REJECTED if p["type"] == "ImmediateAndResume" else reset201(p)

        def set_profile(p: dict[str, Any]) -> dict[str, Any]:
            return set_profile201(p) if obeyable(p["chargingProfile"]) else REJECTED

        def request_start(p: dict[str, Any]) -> dict[str, Any]:
            profile = p.get("chargingProfile")
            return REJECTED if profile is not None and not obeyable(profile) else request_start201(p)

        return {
            **table,
            "Reset": reset,
            "SetChargingProfile": set_profile,
            "RequestStartTransaction": request_start,
        }
