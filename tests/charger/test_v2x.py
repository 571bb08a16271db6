"""The live virtual charger as a bidirectional (V2G) OCPP 2.1 charge point: it discharges only once
the CSMS allowed a bidirectional transfer for the transaction and sent a CentralSetpoint profile,
reports the export register and state of charge apart from the import register, and stops giving
back at the car's floor. Every frame is checked against the `ocpp` library's 2.1 schemas."""

from __future__ import annotations

from typing import Any

import pytest

from chargeshare.ocpp.timestamps import format_ts
from simulators.power import Vehicle
from tests.charger.conftest import Rig
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

EXPORT = "Energy.Active.Export.Register"


def discharge_profile(rig: Rig, transaction_id: str) -> dict[str, Any]:
    period = {
        "startPeriod": 0,
        "limit": 0,
        "operationMode": "CentralSetpoint",
        "setpoint": -7_400,
        "dischargeLimit": -7_400,
    }
    return {
        "evseId": 1,
        "chargingProfile": {
            "id": 210_000,
            "stackLevel": 2,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "transactionId": transaction_id,
            "chargingSchedule": [
                {
                    "id": 210_000,
                    "chargingRateUnit": "W",
                    "startSchedule": format_ts(rig.clock.now()),
                    "duration": 7_200,
                    "chargingSchedulePeriod": [period],
                }
            ],
        },
    }


def sampled(rig: Rig, measurand: str) -> list[float]:
    return [
        float(sv["value"])
        for p in rig.csms.sent_by_charger("TransactionEvent")
        for mv in p.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand") == measurand
    ]


@pytest.mark.parametrize("rig", ["2.1"], indirect=True)
async def test_a_bidirectional_car_discharges_when_allowed_and_stops_at_its_floor(rig: Rig) -> None:
    car = Vehicle(battery_wh=60_000, soc_wh=24_600, max_power_w=11_000, floor_soc_wh=24_000)  # 41%, floor 40%
    plugged = await rig.charger.plug_in(1, "TAG-1", car, 20_000)
    tx = rig.charger.connectors[1].transaction
    assert plugged.transaction_id is not None and tx is not None
    # Not allowed a bidirectional transfer yet: a discharging profile is refused.
    refused = await rig.csms.command("SetChargingProfile", discharge_profile(rig, tx.local_id))
    assert refused.payload == {"status": "Rejected"}
    allowed = await rig.csms.command(
        "NotifyAllowedEnergyTransfer", {"transactionId": tx.local_id, "allowedEnergyTransfer": ["AC_BPT"]}
    )
    assert allowed.payload == {"status": "Accepted"}
    taken = await rig.csms.command("SetChargingProfile", discharge_profile(rig, tx.local_id))
    assert taken.payload == {"status": "Accepted"}
    assert rig.charger.power_w(rig.charger.connectors[1]) == 0  # not charging while it discharges

    def at_floor() -> bool:
        exports = sampled(rig, EXPORT)
        return car.soc_wh == 24_000 and len(exports) > 2 and exports[-1] == exports[-2] > 0

    await eventually(at_floor, "the car discharged to its floor")
    exports, socs = sampled(rig, EXPORT), sampled(rig, "SoC")
    assert exports == sorted(exports) and min(socs) == 40  # the register only moves up; the floor holds
    imports = sampled(rig, "Energy.Active.Import.Register")
    assert imports[-1] == imports[-2]  # nothing imported while the window discharges
