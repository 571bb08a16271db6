"""The 2.x station commands over real loopback WebSockets, from the typed registry to a 2.0.1 or 2.1
virtual charger: each is answered as the charger's state says, and the reports they ask for reach
the backend and are kept among the charger's reports for operators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from chargeshare.ocpp import V16, V21, V201
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import station_commands as station
from chargeshare.services.clock import SystemClock
from simulators.charger import VirtualCharger
from simulators.settings import HEARTBEAT_INTERVAL
from tests.conftest import add_charger
from tests.e2e.conftest import Central
from tests.waiting import eventually

pytestmark = pytest.mark.e2e
CP = "VC-STATION"
ACCEPTED = cmd.Done(cmd.Status.ACCEPTED, None)
HEARTBEAT = cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr")


@pytest.fixture(params=[V201, V21])
async def charger(central: Central, request: pytest.FixtureRequest) -> AsyncIterator[VirtualCharger]:
    add_charger(central.app, CP, online=False)  # registered: what it reports is kept
    charger = VirtualCharger(CP, central.ws, SystemClock(), [7_400, 7_400], protocol=request.param)
    await charger.start()
    try:
        # The backend's own settings after the boot (its retries fitted) are in before the test reads.
        await eventually(lambda: bool(kept(central, "MeteringSetup")), "the metering set up")
        yield charger
    finally:
        await charger.stop()


def kept(c: Central, action: str) -> list[str]:
    return [r.summary for r in c.app.reports.reports(CP, [action])]


async def test_charging_profiles_held_are_reported(central: Central, charger: VirtualCharger) -> None:
    r = central.registry
    assert await r.send(CP, station.GetChargingProfiles(1)) == cmd.Done(cmd.Status.NO_PROFILES, None)
    for evse in (1, 2):
        default = cmd.ChargingProfile(
            10 + evse,
            1,
            cmd.ProfilePurpose.TX_DEFAULT,
            cmd.ProfileKind.RELATIVE,
            cmd.RateUnit.WATTS,
            (cmd.SchedulePeriod(0, 3_700),),
        )
        assert await r.send(CP, cmd.SetChargingProfile(evse, default)) == ACCEPTED
    assert await r.send(CP, station.GetChargingProfiles(2)) == ACCEPTED
    await eventually(
        lambda: (
            kept(central, "ReportChargingProfiles")
            == ["1 CSO profiles on EVSE 1", "1 CSO profiles on EVSE 2"]
        ),
        "both EVSEs' profiles",
    )
    only = station.GetChargingProfiles(3, evse_id=2, profile_ids=(12,))
    assert await r.send(CP, only) == ACCEPTED
    await eventually(lambda: len(kept(central, "ReportChargingProfiles")) == 3, "EVSE 2's profile")
    [report] = central.app.reports.reports(CP, ["ReportChargingProfiles"])[2:]
    assert report.body["chargingProfile"][0]["chargingSchedule"][0]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 3700.0}
    ]
    others = station.GetChargingProfiles(4, sources=(station.LimitSource.SO,))
    assert await r.send(CP, others) == cmd.Done(cmd.Status.NO_PROFILES, None)
    # Every field of the schema reaches the charger and comes back in its report.
    nightly = cmd.ChargingProfile(
        20,
        2,
        cmd.ProfilePurpose.TX_DEFAULT,
        cmd.ProfileKind.RECURRING,
        cmd.RateUnit.AMPS,
        (cmd.SchedulePeriod(0, 32, phases=1), cmd.SchedulePeriod(21_600, 10, phases=1)),
        duration_s=28_800,
        starts_at=datetime(2026, 1, 1, 23, 0, tzinfo=UTC),
        recurrency=cmd.Recurrency.DAILY,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_to=datetime(2036, 1, 1, tzinfo=UTC),
    )
    assert await r.send(CP, cmd.SetChargingProfile(1, nightly)) == ACCEPTED
    assert await r.send(CP, station.GetChargingProfiles(5, profile_ids=(20,))) == ACCEPTED
    await eventually(lambda: len(kept(central, "ReportChargingProfiles")) == 4, "the nightly profile")
    said = central.app.reports.reports(CP, ["ReportChargingProfiles"])[3].body["chargingProfile"][0]
    assert (said["recurrencyKind"], said["validTo"][:10]) == ("Daily", "2036-01-01")
    periods = said["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert [(p["limit"], p["numberPhases"]) for p in periods] == [(32.0, 1), (10.0, 1)]


async def test_display_messages_are_set_read_and_cleared(central: Central, charger: VirtualCharger) -> None:
    r = central.registry
    welcome = station.DisplayMessage(1, "Welcome", state=station.MessageState.IDLE)
    assert await r.send(CP, station.SetDisplayMessage(welcome)) == ACCEPTED
    html = station.DisplayMessage(2, "<b>hi</b>", format=station.MessageFormat.HTML)
    assert await r.send(CP, station.SetDisplayMessage(html)) == cmd.Rejected(
        cmd.Status.NOT_SUPPORTED_MESSAGE_FORMAT
    )
    stranger = station.DisplayMessage(3, "yours", transaction="no-such-transaction")
    assert await r.send(CP, station.SetDisplayMessage(stranger)) == cmd.Rejected(
        cmd.Status.UNKNOWN_TRANSACTION
    )
    assert await r.send(CP, station.GetDisplayMessages(5)) == ACCEPTED
    await eventually(
        lambda: kept(central, "NotifyDisplayMessages") == ["request 5: 1 display messages"],
        "the report",
    )
    assert charger.station.messages[1]["message"]["content"] == "Welcome"
    assert await r.send(CP, station.ClearDisplayMessage(1)) == ACCEPTED
    assert await r.send(CP, station.ClearDisplayMessage(1)) == cmd.Rejected(cmd.Status.UNKNOWN)
    assert await r.send(CP, station.GetDisplayMessages(6)) == cmd.Rejected(cmd.Status.UNKNOWN)


async def test_customer_information_is_reported_and_cleared(
    central: Central, charger: VirtualCharger
) -> None:
    r = central.registry
    charger.local_auth.remember("CARD-1", "Accepted")
    ask = station.CustomerInformation(7, clear=True, id_tag="CARD-1")
    assert await r.send(CP, ask) == ACCEPTED
    await eventually(lambda: len(kept(central, "NotifyCustomerInformation")) == 1, "the customer's data")
    [report] = central.app.reports.reports(CP, ["NotifyCustomerInformation"])
    assert report.body["data"] == "CARD-1: Accepted in the list or cache"
    assert charger.local_auth.status_of("CARD-1") is None  # cleared
    by_name = station.CustomerInformation(8, customer_identifier="driver-42")
    assert await r.send(CP, by_name) == cmd.Rejected(cmd.Status.INVALID)


async def test_network_profiles_are_stored_in_their_slots(central: Central, charger: VirtualCharger) -> None:
    r = central.registry
    secure = station.NetworkProfile("wss://csms.example/ocpp", security_profile=3)
    assert await r.send(CP, station.SetNetworkProfile(1, secure)) == ACCEPTED
    assert await r.send(CP, station.SetNetworkProfile(9, secure)) == cmd.Rejected(cmd.Status.REJECTED)
    assert charger.station.network_profiles[1]["securityProfile"] == 3


async def test_monitors_are_set_reported_and_cleared(central: Central, charger: VirtualCharger) -> None:
    r = central.registry
    monitors = station.SetVariableMonitoring(
        (
            station.Monitor(HEARTBEAT, station.MonitorKind.UPPER_THRESHOLD, 600),
            station.Monitor(HEARTBEAT, station.MonitorKind.PERIODIC_CLOCK_ALIGNED, 900),
            station.Monitor(cmd.SettingKey("Nope", "OCPPCommCtrlr"), station.MonitorKind.DELTA, 1),
            station.Monitor(cmd.SettingKey("X", "NoSuchCtrlr"), station.MonitorKind.DELTA, 1),
        )
    )
    set_ = await r.send(CP, monitors)
    assert isinstance(set_, cmd.Done)
    assert [m.status for m in set_.details] == [
        cmd.Status.ACCEPTED,
        cmd.Status.UNSUPPORTED_MONITOR_TYPE,
        cmd.Status.UNKNOWN_VARIABLE,
        cmd.Status.UNKNOWN_COMPONENT,
    ]
    monitor_id = set_.details[0].monitor_id
    assert monitor_id is not None
    assert await r.send(CP, station.GetMonitoringReport(9)) == ACCEPTED
    await eventually(
        lambda: kept(central, "NotifyMonitoringReport") == ["request 9 part 0: 1 monitored variables"],
        "the monitoring report",
    )
    deltas = station.GetMonitoringReport(10, criteria=(station.MonitoringCriterion.DELTA,))
    assert await r.send(CP, deltas) == cmd.Rejected(cmd.Status.EMPTY_RESULT_SET)
    assert await r.send(CP, station.SetMonitoringLevel(3)) == ACCEPTED
    assert await r.send(CP, station.ClearVariableMonitoring((monitor_id, 999))) == cmd.Done(
        cmd.Status.ACCEPTED, {monitor_id: cmd.Status.ACCEPTED, 999: cmd.Status.NOT_FOUND}
    )
    assert await r.send(CP, station.SetMonitoringBase(station.MonitoringBase.FACTORY_DEFAULT)) == ACCEPTED
    assert charger.station.monitoring_level == 3


async def test_a_16_charger_is_never_sent_them(central: Central) -> None:
    add_charger(central.app, "VC-16", online=False)
    charger = VirtualCharger("VC-16", central.ws, SystemClock(), [7_400], protocol=V16)
    await charger.start()
    try:
        for command in (station.GetChargingProfiles(1), station.SetMonitoringLevel(3)):
            assert isinstance(await central.registry.send("VC-16", command), cmd.NotApplicable)
    finally:
        await charger.stop()


async def test_many_settings_go_in_as_many_requests_as_the_charger_takes(
    central: Central,
    charger: VirtualCharger,
) -> None:
    """The charger takes at most ItemsPerMessage variables per request (it refuses more with a
    CALLERROR): the registry splits a longer read or change and joins the answers, in the parts
    it is told or in halves until the charger answers."""
    r = central.registry
    per = cmd.GetSettings((cmd.SettingKey("ItemsPerMessage", "DeviceDataCtrlr"),))
    read = await r.send(CP, per)
    assert isinstance(read, cmd.Done)
    most = int(read.details[0].value or 0)
    keys = tuple(cmd.SettingKey(s.variable, s.component) for s in charger.settings.definitions)
    assert len(keys) > most
    whole = await r.send(CP, cmd.GetSettings(keys, per_message=most))
    assert isinstance(whole, cmd.Done)
    assert [v.key for v in whole.details] == list(keys)
    assert all(v.status is cmd.Status.ACCEPTED for v in whole.details)
    # Not told how many it takes: refused (OccurrenceConstraintViolation), then asked in halves.
    assert await r.send(CP, cmd.GetSettings(keys)) == whole
    changes = tuple(
        (cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr"), str(60 + i)) for i in range(most + 2)
    )
    changed = await r.send(CP, cmd.ChangeSettings(changes, per_message=most))
    assert isinstance(changed, cmd.Done) and len(changed.details) == most + 2
    assert charger.settings.get(HEARTBEAT_INTERVAL) == str(60 + most + 1)  # the last one sent
