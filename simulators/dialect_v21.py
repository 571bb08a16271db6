"""OCPP 2.1 as the virtual charger speaks it: 2.0.1's dialect (the same messages, fields and firmware
operations) under the `ocpp2.1` subprotocol, every frame checked against the 2.1 schemas.

Only what 2.1 widens in a command the charger takes is handled apart, each refused rather than
half done: a Reset of type ImmediateAndResume (it cannot resume a transaction across a reboot), and
a charging profile it cannot obey (a Dynamic kind, a period without a charging limit, or one in an
operation mode other than ChargingOnly or CentralSetpoint). What it sends is 2.0.1's, which 2.1's
schemas all accept (docs/ocpp21.md lists the differences).

V2G (simulators/v2x.py): NotifyAllowedEnergyTransfer sets the modes a transaction may use; a
TxProfile whose CentralSetpoint periods discharge is taken only for a transaction allowed a
bidirectional mode with a car that can discharge, its charging limits obeyed as any profile's and
its discharge windows kept with the transaction. A bidirectional car's readings carry the export
register (Energy.Active.Export.Register) and its state of charge (SoC) besides the import register."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chargeshare.ocpp import V21 as VERSION
from chargeshare.ocpp.connection import Handler
from simulators.dialect import Message
from simulators.dialect_v201 import V201
from simulators.evse import StopReason, Transaction, VirtualConnector
from simulators.smart_charging import Kind
from simulators.v2x import DISCHARGE_MODES, V2x, charging_only, discharge_windows

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort

EXPORT_REGISTER = "Energy.Active.Export.Register"

KINDS = frozenset(k.value for k in Kind)
CHARGING_ONLY = "ChargingOnly"  # 2.1's operationMode when a period is plain charging (the default)
OBEYED_MODES = frozenset({CHARGING_ONLY, *DISCHARGE_MODES})
REJECTED = {"status": "Rejected"}


def obeyable(profile: dict[str, Any]) -> bool:
    """Whether a 2.1 charging profile asks only what the charger's power model does: charge under
    a limit, on a schedule it knows."""
    if profile["chargingProfileKind"] not in KINDS:
        return False
    return all(
        "limit" in period and period.get("operationMode", CHARGING_ONLY) in OBEYED_MODES
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
            profile = p["chargingProfile"]
            if not obeyable(profile):
                return REJECTED
            now = cp.clock.now()
            found = next(
                ((c, tx) for c, tx in cp.transactions() if tx.local_id == profile.get("transactionId")), None
            )
            windows = (
                None
                if found is None
                else discharge_windows(profile, found[0].max_power_w, now, found[0].phases)
            )
            if windows is None:
                if any(
                    period.get("operationMode") in DISCHARGE_MODES
                    for schedule in profile["chargingSchedule"]
                    for period in schedule["chargingSchedulePeriod"]
                ):
                    return REJECTED  # discharge asked of no transaction of ours
                return set_profile201(p)
            assert found is not None
            c, tx = found
            if tx.v2x is None or not tx.v2x.allowed:
                return REJECTED  # never allowed a bidirectional transfer, or the car cannot discharge
            answer = set_profile201({**p, "chargingProfile": charging_only(profile)})
            if answer.get("status") == "Accepted":
                cp.export_energy(c, tx)  # what went before is integrated under the old windows
                tx.v2x.windows = windows
                if tx.v2x.integrated_to is None:
                    tx.v2x.integrated_to = now
            return answer

        def allowed_transfer(p: dict[str, Any]) -> dict[str, Any]:
            for c, tx in cp.transactions():
                if tx.local_id == p["transactionId"] and c.plugged is not None:
                    if tx.v2x is None:
                        tx.v2x = V2x(c.plugged.vehicle)
                    tx.v2x.modes = tuple(p["allowedEnergyTransfer"])
                    return {"status": "Accepted"}
            return REJECTED

        def request_start(p: dict[str, Any]) -> dict[str, Any]:
            profile = p.get("chargingProfile")
            return REJECTED if profile is not None and not obeyable(profile) else request_start201(p)

        return {
            **table,
            "Reset": reset,
            "SetChargingProfile": set_profile,
            "RequestStartTransaction": request_start,
            "NotifyAllowedEnergyTransfer": allowed_transfer,
        }

    # ---- what a bidirectional car's readings add ---------------------------------------------------
    def _with_export(self, c: VirtualConnector, tx: Transaction | None, message: Message) -> Message:
        action, payload = message
        vehicle = None
        if tx is not None and tx.v2x is not None:
            vehicle = tx.v2x.vehicle
        elif c.plugged is not None:
            vehicle = c.plugged.vehicle
        if vehicle is None or vehicle.floor_soc_wh is None or not payload.get("meterValue"):
            return message
        reading = payload["meterValue"][0]
        context = reading["sampledValue"][0].get("context")
        extra = [
            {
                "value": c.export_meter.register_wh,
                "measurand": EXPORT_REGISTER,
                "unitOfMeasure": {"unit": "Wh"},
            },
            {"value": vehicle.soc_pct, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}},
        ]
        if context is not None:
            extra = [{**v, "context": context} for v in extra]
        reading["sampledValue"] = [*reading["sampledValue"], *extra]
        return action, payload

    def started(self, c: VirtualConnector, tx: Transaction, ts: str, reservation_id: int | None) -> Message:
        return self._with_export(c, tx, super().started(c, tx, ts, reservation_id))

    def meter(self, c: VirtualConnector, tx: Transaction, ts: str, power_w: int) -> Message:
        return self._with_export(c, tx, super().meter(c, tx, ts, power_w))

    def triggered_meter(self, c: VirtualConnector, tx: Transaction | None, ts: str, power_w: int) -> Message:
        return self._with_export(c, tx, super().triggered_meter(c, tx, ts, power_w))

    def ended(self, c: VirtualConnector, tx: Transaction, ts: str, reason: StopReason) -> Message:
        return self._with_export(c, tx, super().ended(c, tx, ts, reason))
