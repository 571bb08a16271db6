"""The virtual charger taking A only (`take_amps_only`) obeys the backend's other profiles in A as
well (chargeshare/ocpp/smart_charging.py, chargeshare/ocpp/v2g.py): the driver's override TxProfile
in each version, and the 2.1 discharging profile, each on the one phase it names and never above
the W it was made from; in W it refuses both."""

from __future__ import annotations

import pytest

from chargeshare.domain.grid_limits import VOLTS
from chargeshare.ocpp import V16, V21
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.smart_charging import override_command
from chargeshare.ocpp.v2g import ALLOWED_TRANSFER, export_profile
from simulators.power import Vehicle
from tests.charger.conftest import Rig
from tests.charger.test_grid_limits import send

pytestmark = pytest.mark.e2e

AMPS = cmd.RateUnit.AMPS


async def test_an_amps_only_charger_obeys_the_override_in_amps_and_refuses_it_in_watts(rig: Rig) -> None:
    rig.charger.take_amps_only()
    plugged = await rig.charger.plug_in(2, "TAG-2", Vehicle(60_000, 20_000, 22_000), 30_000)
    tx = rig.charger.connectors[2].transaction
    assert plugged.transaction_id is not None and tx is not None
    ref: cmd.TransactionRef = int(plugged.transaction_id) if rig.version == V16 else tx.local_id
    c2 = rig.charger.connectors[2]  # 22 kW on three phases
    assert (await send(rig, override_command(2, ref, 22_000)))["status"] == "Rejected"
    assert (await send(rig, override_command(2, ref, 22_000, AMPS)))["status"] == "Accepted"
    # 95 A on the one phase named: the connector switches to one, at the most a phase of it carries
    # (22 kW / 690 V is 31.9 A), 7,333 W; not 95 A on each of its three.
    assert rig.charger.power_w(c2) == 22_000 * VOLTS // (3 * VOLTS) <= 22_000
    # Told its three phases (as the backend does once it knows them), 31 A each: 21,390 W.
    assert (await send(rig, override_command(2, ref, 22_000, AMPS, wired=3)))["status"] == "Accepted"
    assert rig.charger.power_w(c2) == 31 * VOLTS * 3 <= 22_000
    assert (await send(rig, override_command(2, ref, 5_000, AMPS)))["status"] == "Accepted"
    assert rig.charger.power_w(c2) == 21 * VOLTS <= 5_000


@pytest.mark.parametrize("rig", [V21], indirect=True)
async def test_an_amps_only_charger_discharges_at_the_amps_sent_never_above_the_rating(rig: Rig) -> None:
    rig.charger.take_amps_only()
    car = Vehicle(battery_wh=60_000, soc_wh=40_000, max_power_w=11_000, floor_soc_wh=20_000)
    plugged = await rig.charger.plug_in(1, "TAG-1", car, 20_000)
    c1 = rig.charger.connectors[1]  # 7.4 kW
    tx = c1.transaction
    assert plugged.transaction_id is not None and tx is not None
    allowed = await rig.csms.command(
        "NotifyAllowedEnergyTransfer",
        {"transactionId": tx.local_id, "allowedEnergyTransfer": list(ALLOWED_TRANSFER)},
    )
    assert allowed.payload == {"status": "Accepted"}
    now = rig.clock.now()
    assert (await send(rig, export_profile(1, tx.local_id, 7_400, ((0, 3_600),), now)))[
        "status"
    ] == "Rejected"
    taken = await send(rig, export_profile(1, tx.local_id, 7_400, ((0, 3_600),), now, AMPS))
    assert taken["status"] == "Accepted"
    assert tx.v2x is not None
    # -32 A on one phase: 7,360 W out, within the 7,400 W decided (not 32 W, nor 32 A on three phases).
    assert [w for _a, _b, w in tx.v2x.windows] == [32 * VOLTS]
    assert rig.charger.power_w(c1) == 0  # not charging while it discharges
