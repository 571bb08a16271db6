"""A relevant charge point under the UK's smart charging regulations, against the in-process CSMS
(every frame schema-checked both ways): its settings under both versions' names, the randomised
delay at a start (SuspendedEVSE, 0 W, the register still), the driver's override TxProfile ending
it, DSR suppressing it, and the default charging hours holding power back in peak hours.

The charger's clock is moved by hand (its periodic tasks never come round on their own), and its
meter tick is run when a test wants the charger to look at the time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from chargeshare.domain.smart_charge_points import Suppressed
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp.smart_charging import END_USER_OVERRIDE_PROFILE_ID
from simulators.charger import VirtualCharger
from simulators.firmware import ConnectorState
from simulators.power import Vehicle
from tests.charger.fake_csms import FakeCsms, fake_csms
from tests.clocks import HandClock
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # GMT, off-peak
MONDAY_EVENING = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # in the evening peak


@dataclass
class Rig:
    csms: FakeCsms
    charger: VirtualCharger
    clock: HandClock

    @property
    def version(self) -> str:
        return self.csms.version

    def v(self, v16: Any, v201: Any) -> Any:
        return v16 if self.version == V16 else v201


@pytest.fixture(params=[V16, V201], ids=["ocpp16", "ocpp201"])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def rig_at(
    version: OcppVersion, start: datetime, *, smart: bool = True, seed: int = 4
) -> AsyncIterator[Rig]:
    async with fake_csms(version) as csms:
        clock = HandClock(start)
        vc = VirtualCharger(
            "VC1",
            csms.url,
            clock,
            [7_400],
            protocol=version,
            call_timeout_s=2,
            seed=seed,
            smart_charge_point=smart,
        )
        await vc.start()
        try:
            yield Rig(csms, vc, clock)
        finally:
            await vc.stop()
        assert csms.errors_we_sent() == [], "every frame the charger sent must pass its schema"


@pytest.fixture
async def noon(version: OcppVersion) -> AsyncIterator[Rig]:
    async for r in rig_at(version, MONDAY_NOON):
        yield r


@pytest.fixture
async def evening(version: OcppVersion) -> AsyncIterator[Rig]:
    async for r in rig_at(version, MONDAY_EVENING):
        yield r


def state(rig: Rig) -> ConnectorState:
    """Connector 1's state, read afresh each time."""
    return rig.charger.connectors[1].state


def car() -> Vehicle:
    return Vehicle(battery_wh=60_000, soc_wh=20_000, max_power_w=7_400)


async def set_setting(rig: Rig, name: str, value: str) -> str:
    if rig.version == V16:
        outcome = await rig.csms.command("ChangeConfiguration", {"key": name, "value": value})
        assert outcome.payload is not None
        return str(outcome.payload["status"])
    outcome = await rig.csms.command(
        "SetVariables",
        {
            "setVariableData": [
                {
                    "attributeValue": value,
                    "component": {"name": "UKSmartChargingCtrlr"},
                    "variable": {"name": name},
                }
            ]
        },
    )
    assert outcome.payload is not None
    return str(outcome.payload["setVariableResult"][0]["attributeStatus"])


async def send_override(rig: Rig, transaction: Any) -> str:
    profile = {
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "transactionId": transaction,
    }
    schedule = {"chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400}]}
    if rig.version == V16:
        payload = {
            "connectorId": 1,
            "csChargingProfiles": {
                **profile,
                "chargingProfileId": END_USER_OVERRIDE_PROFILE_ID,
                "chargingSchedule": schedule,
            },
        }
    else:
        payload = {
            "evseId": 1,
            "chargingProfile": {
                **profile,
                "id": END_USER_OVERRIDE_PROFILE_ID,
                "chargingSchedule": [{"id": 1, **schedule}],
            },
        }
    outcome = await rig.csms.command("SetChargingProfile", payload)
    assert outcome.payload is not None
    return str(outcome.payload["status"])


def charging_states(rig: Rig) -> list[str]:
    """What the charger said about power flowing: 1.6 statuses, 2.0.1 TransactionEvent chargingStates."""
    if rig.version == V16:
        return [p["status"] for p in rig.csms.sent_by_charger("StatusNotification")]
    return [
        p["transactionInfo"]["chargingState"]
        for p in rig.csms.sent_by_charger("TransactionEvent")
        if "chargingState" in p["transactionInfo"]
    ]


async def test_the_regulations_settings_under_both_versions_names(noon: Rig) -> None:
    assert await set_setting(noon, "RandomisedDelayMaxSeconds", "1801") == "Rejected"
    assert await set_setting(noon, "RandomisedDelayMaxSeconds", "1800") == "Accepted"
    assert await set_setting(noon, "DemandSideResponseActive", "maybe") == "Rejected"
    assert await set_setting(noon, "DefaultChargingHoursEnabled", "false") == "Accepted"
    smart = noon.charger.settings.smart()
    assert (smart.randomised_delay_max_s, smart.default_charging_hours) == (1_800, False)
    if noon.version == V16:
        outcome = await noon.csms.command("GetConfiguration", {"key": ["RandomisedDelayOverride"]})
        assert outcome.payload == {
            "configurationKey": [{"key": "RandomisedDelayOverride", "readonly": False, "value": "false"}]
        }


async def test_a_charger_sold_before_the_rules_has_no_such_settings(version: OcppVersion) -> None:
    async for rig in rig_at(version, MONDAY_NOON, smart=False):
        assert await set_setting(rig, "RandomisedDelayMaxSeconds", "600") == rig.v(
            "NotSupported", "UnknownComponent"
        )


async def test_a_start_waits_its_delay_drawing_nothing_then_charges(noon: Rig) -> None:
    plugged = await noon.charger.plug_in(1, "TAG-1", car(), 20_000)
    c = noon.charger.connectors[1]
    (start,) = noon.charger.smart_gates[0].log
    assert start.drawn_s is not None and 0 < start.drawn_s <= 600  # seed 4 draws a delay
    assert state(noon) is ConnectorState.SUSPENDED_EVSE and noon.charger.power_w(c) == 0
    assert "SuspendedEVSE" in charging_states(noon)
    noon.clock.advance(start.drawn_s - 1)
    await noon.charger._meter_tick()
    assert state(noon) is ConnectorState.SUSPENDED_EVSE and c.meter.register_wh == plugged.meter_start
    noon.clock.advance(61)  # a minute at 7.4 kW after the delay ended: 123 Wh
    await noon.charger._meter_tick()
    assert (
        state(noon) is ConnectorState.CHARGING
        and c.meter.register_wh - plugged.meter_start == 7_400 * 60 // 3600
    )
    assert charging_states(noon)[-1] == "Charging"


async def test_the_drivers_override_ends_the_delay_at_once(noon: Rig) -> None:
    plugged = await noon.charger.plug_in(1, "TAG-1", car(), 20_000)
    assert state(noon) is ConnectorState.SUSPENDED_EVSE
    noon.clock.advance(5)
    assert await send_override(noon, plugged.transaction_id) == "Accepted"
    assert state(noon) is ConnectorState.CHARGING
    (start,) = noon.charger.smart_gates[0].log
    assert (start.cut_short_by, start.served_s) == (Suppressed.END_USER, 5.0)


async def test_an_override_for_another_transaction_is_refused(noon: Rig) -> None:
    await noon.charger.plug_in(1, "TAG-1", car(), 20_000)
    assert await send_override(noon, noon.v(9_999, "not-ours")) == "Rejected"
    assert state(noon) is ConnectorState.SUSPENDED_EVSE


async def test_dsr_suppresses_the_delay(noon: Rig) -> None:
    assert await set_setting(noon, "DemandSideResponseActive", "true") == "Accepted"
    await noon.charger.plug_in(1, "TAG-1", car(), 20_000)
    assert state(noon) is ConnectorState.CHARGING
    (start,) = noon.charger.smart_gates[0].log
    assert (start.suppressed, start.drawn_s) == (Suppressed.DSR, None)


async def test_in_peak_hours_nothing_flows_until_the_driver_overrides(evening: Rig) -> None:
    plugged = await evening.charger.plug_in(1, "TAG-1", car(), 20_000)
    c = evening.charger.connectors[1]
    evening.clock.advance(1_800)
    await evening.charger._meter_tick()
    assert state(evening) is ConnectorState.SUSPENDED_EVSE and c.meter.register_wh == plugged.meter_start
    assert evening.charger.smart_gates[0].log == []  # nothing would have flowed: no relevant time
    assert await send_override(evening, plugged.transaction_id) == "Accepted"
    assert state(evening) is ConnectorState.CHARGING
    evening.clock.advance(600)
    await evening.charger._meter_tick()
    assert evening.charger.smart_gates[0].peak_wh == 7_400 * 600 // 3600


async def test_a_remote_start_carrying_the_override_starts_at_once(evening: Rig) -> None:
    await evening.charger.plug_car(1, car(), 20_000)
    profile = {
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
    }
    schedule = {"chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400}]}
    if evening.version == V16:
        action = "RemoteStartTransaction"
        payload: dict[str, Any] = {
            "connectorId": 1,
            "idTag": "TAG-R",
            "chargingProfile": {
                **profile,
                "chargingProfileId": END_USER_OVERRIDE_PROFILE_ID,
                "chargingSchedule": schedule,
            },
        }
    else:
        action = "RequestStartTransaction"
        payload = {
            "evseId": 1,
            "idToken": {"idToken": "TAG-R", "type": "Central"},
            "remoteStartId": 5,
            "chargingProfile": {
                **profile,
                "id": END_USER_OVERRIDE_PROFILE_ID,
                "chargingSchedule": [{"id": 1, **schedule}],
            },
        }
    outcome = await evening.csms.command(action, payload)
    assert outcome.payload is not None and outcome.payload["status"] == "Accepted"
    await eventually(
        lambda: state(evening) is ConnectorState.CHARGING, "the override to let it charge in peak"
    )
    (start,) = evening.charger.smart_gates[0].log
    assert start.suppressed is Suppressed.END_USER
