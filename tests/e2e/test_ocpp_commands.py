"""The typed command registry over real loopback WebSockets, in each OCPP version, against
independent charge points built on the `ocpp` library: every command gets its typed result,
including refusals, a timeout, a CALLERROR and a charger that is not connected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.asyncio.client import connect

from chargeshare.bootstrap import App
from chargeshare.domain.tokens import ListEntry, TokenStatus, UpdateType
from chargeshare.ocpp import commands as cmd
from chargeshare.services.booking import BookRequest
from tests.conftest import add_charger
from tests.e2e.conftest import Central
from tests.e2e.ocpp_clients import (
    Script,
    boot16,
    boot21,
    boot201,
    library_cp16,
    library_cp21,
    library_cp201,
    tx_event,
)
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

TIMEOUT_S = 0.3  # for the one command a charger leaves unanswered


Connect = Callable[..., AbstractAsyncContextManager[Any]]


@pytest.fixture(params=["1.6", "2.0.1", "2.1"])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def charge_point(
    version: str, central: Central, cp_id: str, script: Script
) -> AbstractAsyncContextManager[Any]:
    opener: Connect = {"1.6": library_cp16, "2.0.1": library_cp201, "2.1": library_cp21}[version]
    return opener(central.ws, cp_id, script)


async def boot(version: str, cp: Any) -> None:
    booted = await {"1.6": boot16, "2.0.1": boot201, "2.1": boot21}[version](cp)
    assert booted.status == "Accepted"


PROFILE = cmd.ChargingProfile(
    profile_id=7,
    stack_level=1,
    purpose=cmd.ProfilePurpose.TX_DEFAULT,
    kind=cmd.ProfileKind.ABSOLUTE,
    rate_unit=cmd.RateUnit.WATTS,
    periods=(cmd.SchedulePeriod(0, 7400), cmd.SchedulePeriod(3600, 3700)),
    starts_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
)


async def test_every_command_is_done_and_said_in_the_chargers_version(central: Central, version: str) -> None:
    r, script = central.registry, Script()
    v16 = version == "1.6"
    async with charge_point(version, central, "CMD", script) as cp:
        await boot(version, cp)
        assert r.connected() == {"CMD": version} and r.version_of("CMD") == version

        started = await r.remote_start("CMD", "TAG1", 1)
        assert started == cmd.Done(cmd.Status.ACCEPTED, None if v16 else "LIB-TX-9")
        stop_ref: cmd.TransactionRef = 42 if v16 else "LIB-TX-9"
        assert await r.remote_stop("CMD", stop_ref) == cmd.Done(cmd.Status.ACCEPTED, None)
        expires = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        assert await r.reserve("CMD", 5, 1, "TAG1", expires) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.cancel_reservation("CMD", 5) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.change_availability("CMD", 1, False) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.reset("CMD", hard=True) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.trigger_message("CMD", "StatusNotification", 1) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.unlock_connector("CMD", 1) == cmd.Done(cmd.Status.UNLOCKED, None)
        assert await r.set_charging_profile("CMD", 1, PROFILE) == cmd.Done(cmd.Status.ACCEPTED, None)
        cleared = await r.clear_charging_profile("CMD", cmd.ClearChargingProfile(profile_id=7))
        assert cleared == cmd.Done(cmd.Status.ACCEPTED, None)

        composite = await r.get_composite_schedule("CMD", 1, 3600)
        assert isinstance(composite, cmd.Done) and composite.details is not None
        if v16:
            assert composite.details.rate_unit is cmd.RateUnit.WATTS
            assert composite.details.periods == (cmd.SchedulePeriod(0, 7400), cmd.SchedulePeriod(600, 3700))
        else:
            assert composite.details.rate_unit is cmd.RateUnit.AMPS
            assert composite.details.periods == (cmd.SchedulePeriod(0, 16),)
        assert composite.details.starts_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

        heartbeat = cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr")
        missing = cmd.SettingKey("NoSuchThing", "OCPPCommCtrlr")
        settings = await r.get_settings("CMD", heartbeat, missing)
        assert isinstance(settings, cmd.Done)
        by_name = {s.key.name: s for s in settings.details}
        assert (by_name["HeartbeatInterval"].status, by_name["HeartbeatInterval"].value) == (
            cmd.Status.ACCEPTED,
            "300",
        )
        assert by_name["NoSuchThing"].status is cmd.Status.UNKNOWN_VARIABLE
        changed = await r.change_setting("CMD", heartbeat, "600")
        assert changed == cmd.Done(cmd.Status.ACCEPTED, None)

    # What the charger was asked, in its own version's words.
    asked = dict(script.received)
    if v16:
        assert asked["RemoteStartTransaction"] == {"id_tag": "TAG1", "connector_id": 1}
        assert asked["RemoteStopTransaction"] == {"transaction_id": 42}
        assert asked["ChangeAvailability"] == {"connector_id": 1, "type": "Inoperative"}
        assert asked["Reset"] == {"type": "Hard"}
        assert asked["ChangeConfiguration"] == {"key": "HeartbeatInterval", "value": "600"}
        profile = asked["SetChargingProfile"]["cs_charging_profiles"]
        assert (
            profile["charging_profile_id"] == 7 and profile["charging_profile_purpose"] == "TxDefaultProfile"
        )
        assert asked["ReserveNow"]["reservation_id"] == 5
    else:
        assert asked["RequestStartTransaction"]["id_token"] == {"id_token": "TAG1", "type": "ISO14443"}
        assert asked["RequestStartTransaction"]["evse_id"] == 1
        assert asked["RequestStopTransaction"] == {"transaction_id": "LIB-TX-9"}
        assert asked["ChangeAvailability"] == {"operational_status": "Inoperative", "evse": {"id": 1}}
        assert asked["Reset"] == {"type": "Immediate"}
        assert asked["UnlockConnector"] == {"evse_id": 1, "connector_id": 1}
        assert asked["SetVariables"]["set_variable_data"][0]["attribute_value"] == "600"
        profile = asked["SetChargingProfile"]["charging_profile"]
        assert profile["id"] == 7 and profile["charging_schedule"][0]["charging_rate_unit"] == "W"
        assert asked["ReserveNow"]["id"] == 5 and asked["ReserveNow"]["evse_id"] == 1
        assert asked["ClearChargingProfile"] == {"charging_profile_id": 7}
    assert central.registry.connected() == {}


async def test_refusals_are_typed_with_the_chargers_status(central: Central, version: str) -> None:
    r = central.registry
    script = Script(
        status={
            "Reset": "Rejected",
            "ReserveNow": "Occupied",
            "UnlockConnector": "UnlockFailed",
            "ClearChargingProfile": "Unknown",
            "ChangeAvailability": "Scheduled",
            "ChangeConfiguration": "RebootRequired",
            "SetVariables": "RebootRequired",
            "TriggerMessage": "NotImplemented",
        }
    )
    async with charge_point(version, central, "NO", script) as cp:
        await boot(version, cp)
        assert await r.reset("NO") == cmd.Rejected(cmd.Status.REJECTED)
        expires = datetime.now(UTC) + timedelta(hours=1)
        assert await r.reserve("NO", 1, 1, "T", expires) == cmd.Rejected(cmd.Status.OCCUPIED)
        assert await r.unlock_connector("NO", 1) == cmd.Rejected(cmd.Status.UNLOCK_FAILED)
        assert await r.clear_charging_profile("NO", cmd.ClearChargingProfile(stack_level=3)) == cmd.Rejected(
            cmd.Status.UNKNOWN
        )
        assert await r.trigger_message("NO", "Heartbeat") == cmd.Rejected(cmd.Status.NOT_IMPLEMENTED)
        # Not refusals: a change the charger will make later, or after a reboot.
        assert await r.change_availability("NO", 0, True) == cmd.Done(cmd.Status.SCHEDULED, None)
        key = cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr")
        assert await r.change_setting("NO", key, "60") == cmd.Done(cmd.Status.REBOOT_REQUIRED, None)


async def test_timeout_callerror_not_connected_and_not_applicable(central: Central, version: str) -> None:
    r = central.registry
    script = Script(silent={"Reset"}, fail={"UnlockConnector"})
    async with charge_point(version, central, "BAD", script) as cp:
        await boot(version, cp)
        assert await r.reset("BAD", timeout_s=TIMEOUT_S) == cmd.Timeout(TIMEOUT_S)
        assert await r.unlock_connector("BAD", 1) == cmd.CallError("GenericError")
        # The link survives both, and a late answer to nothing is ignored.
        assert await r.cancel_reservation("BAD", 9) == cmd.Done(cmd.Status.ACCEPTED, None)
        if version != "1.6":  # a session the charger never named cannot be stopped by its id
            assert isinstance(await r.remote_stop("BAD", 12345), cmd.NotApplicable)
            assert isinstance(await r.get_settings("BAD"), cmd.NotApplicable)
        else:
            assert isinstance(await r.remote_stop("BAD", "not-a-number"), cmd.NotApplicable)
    assert await r.reset("BAD") == cmd.NotConnected()
    outcome = await r.call("BAD", "Reset", {"type": "Soft"})  # the raw call stays available
    assert outcome.error == "NotConnected"


@pytest.mark.parametrize("start", ["not a time", "9999-12-31T23:30:00-05:00", "9999-12-31T23:59:59Z"])
async def test_an_answer_whose_time_cannot_be_read_is_a_typed_failure(
    central: Central, version: str, start: str
) -> None:
    async with charge_point(version, central, "ODD", Script(schedule_start=start)) as cp:
        await boot(version, cp)
        schedule = await central.registry.get_composite_schedule("ODD", 1, 600)
        assert schedule == cmd.Malformed("FormatViolation")  # an answer, yet none we can read
        assert await central.registry.reset("ODD") == cmd.Done(cmd.Status.ACCEPTED, None)  # the link lives


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])  # the 1.6 library charge point keeps no list
async def test_the_local_list_and_cache_commands_reach_a_2x_charger(central: Central, version: str) -> None:
    r, script = central.registry, Script()
    async with charge_point(version, central, "LIST", script) as cp:
        await boot(version, cp)
        assert await r.send("LIST", cmd.GetLocalListVersion()) == cmd.Done(cmd.Status.ACCEPTED, 0)
        entries = (ListEntry("CARD-1", TokenStatus.ACCEPTED, None, "FLEET"),)
        full = await r.send("LIST", cmd.SendLocalList(3, UpdateType.FULL, entries))
        assert full == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.send("LIST", cmd.GetLocalListVersion()) == cmd.Done(cmd.Status.ACCEPTED, 3)
        assert await r.send("LIST", cmd.ClearCache()) == cmd.Done(cmd.Status.ACCEPTED, None)
    (sent,) = script.asked("SendLocalList")
    assert (sent["version_number"], sent["update_type"]) == (3, "Full")
    assert sent["local_authorization_list"] == [
        {
            "id_token": {"id_token": "CARD-1", "type": "ISO14443"},
            "id_token_info": {
                "status": "Accepted",
                "group_id_token": {"id_token": "FLEET", "type": "Central"},
            },
        }
    ]


async def test_a_21_composite_schedule_period_without_a_limit_is_read_as_none(central: Central) -> None:
    """2.1 made a period's limit optional (a V2X setpoint may stand in its place)."""
    periods: list[dict[str, Any]] = [
        {"start_period": 0, "limit": 11_000},
        {"start_period": 900, "setpoint": 4_000, "operation_mode": "CentralSetpoint"},
    ]
    async with library_cp21(central.ws, "V2X", Script(composite_periods=periods)) as cp:
        await boot21(cp)
        schedule = await central.registry.get_composite_schedule("V2X", 1, 3600)
    assert isinstance(schedule, cmd.Done) and schedule.details is not None
    assert schedule.details.periods == (cmd.SchedulePeriod(0, 11_000), cmd.SchedulePeriod(900, None))


async def test_raw_call_reaches_the_charger(central: Central) -> None:
    script = Script()
    async with library_cp16(central.ws, "RAW", script) as cp:
        await boot16(cp)
        outcome = await central.registry.call("RAW", "Reset", {"type": "Soft"}, timeout_s=2)
    assert outcome.ok and outcome.payload == {"status": "Accepted"}
    assert script.asked("Reset") == [{"type": "Soft"}]


async def test_reservation_flow_for_a_201_charger(central: Central) -> None:
    """ReserveNow when a charge-now booking is made, CancelReservation when the driver cancels it."""
    app, script = central.app, Script()
    charger_id = add_charger(app, "RES201")
    driver = app.marketplace.add_driver("d", "RTAG")
    async with library_cp201(central.ws, "RES201", script) as cp:
        await boot201(cp)
        booking = app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 5_000))
        await eventually(lambda: reservation(app, booking.booking_id) == "accepted", "Accepted")
        (reserve,) = script.asked("ReserveNow")
        assert (reserve["id"], reserve["evse_id"], reserve["id_token"]["id_token"]) == (
            booking.booking_id,
            1,
            "RTAG",
        )
        app.bookings.cancel(booking.booking_id, driver_id=driver.driver_id)
        await eventually(lambda: script.asked("CancelReservation") != [], "CancelReservation")
    assert script.asked("CancelReservation") == [{"reservation_id": booking.booking_id}]


async def test_a_201_session_is_stopped_by_our_session_id(central: Central) -> None:
    """The registry translates our session id into the charger's own transactionId."""
    app, script = central.app, Script()
    charger_id = add_charger(app, "STOP201")
    driver = app.marketplace.add_driver("d", "STAG")
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 5_000))
    async with library_cp201(central.ws, "STOP201", script) as cp:
        await boot201(cp)
        await cp.call(tx_event("Started", 0, "their-id-1", wh=0, id_tag="STAG", evse=1))
        with app.store.transaction() as tx:
            (session,) = tx.sessions.all()
        result = await central.registry.remote_stop("STOP201", session.session_id)
    assert result == cmd.Done(cmd.Status.ACCEPTED, None)
    assert script.asked("RequestStopTransaction") == [{"transaction_id": "their-id-1"}]


def reservation(app: App, booking_id: int) -> str:
    with app.store.transaction() as tx:
        return tx.bookings.get(booking_id).reservation


async def test_get_transaction_status_reads_the_chargers_queue(central: Central, version: str) -> None:
    r = central.registry
    async with charge_point(version, central, "TXS", Script()) as cp:
        await boot(version, cp)
        named = await r.send("TXS", cmd.GetTransactionStatus("LIB-TX-9"))
        anyone = await r.send("TXS", cmd.GetTransactionStatus())
    if version == "1.6":
        assert isinstance(named, cmd.NotApplicable) and isinstance(anyone, cmd.NotApplicable)
    else:
        assert named == cmd.Done(cmd.Status.ACCEPTED, cmd.TransactionQueue(False, True))
        assert anyone == cmd.Done(cmd.Status.ACCEPTED, cmd.TransactionQueue(False, None))


async def test_a_seq_no_gap_makes_the_backend_ask_for_the_transactions_status(central: Central) -> None:
    """Events 2 and 3 never came: after answering event 4 the backend asks the charger whether it
    still holds them, once per session, and keeps what it learnt for the operator."""
    app, script = central.app, Script()
    charger_id = add_charger(app, "GAP201")
    driver = app.marketplace.add_driver("d", "GTAG")
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 5_000))
    async with library_cp201(central.ws, "GAP201", script) as cp:
        await boot201(cp)
        await cp.call(tx_event("Started", 0, "LIB-TX-9", wh=0, id_tag="GTAG", evse=1))
        await cp.call(tx_event("Updated", 1, "LIB-TX-9", wh=100))
        assert script.asked("GetTransactionStatus") == []  # no gap yet
        await cp.call(tx_event("Updated", 4, "LIB-TX-9", wh=400))
        await eventually(lambda: script.asked("GetTransactionStatus") != [], "GetTransactionStatus")
        await cp.call(tx_event("Updated", 7, "LIB-TX-9", wh=700))  # another gap: not asked again
        await cp.call(tx_event("Ended", 8, "LIB-TX-9", wh=800, trigger="EVCommunicationLost"))
    assert script.asked("GetTransactionStatus") == [{"transaction_id": "LIB-TX-9"}]
    with app.store.transaction() as tx:
        (session,) = tx.sessions.all()
    summaries = [r.summary for r in app.reports.reports("GAP201", ["GetTransactionStatus"])]
    assert summaries == [f"session {session.session_id}: seqNo 2-3 missing, not queued: lost, ongoing"]
    assert session.meter_stop_wh == 800  # billed from the registers all the same


async def test_the_2x_only_fields_reach_an_independent_201_charger(central: Central) -> None:
    """A reservation of any EVSE by connector type for a group, one EVSE's reset, one connector
    of an EVSE for availability and unlocking, and a trigger only 2.x has."""
    script = Script()
    when = datetime.now(UTC) + timedelta(hours=1)
    r = central.registry
    async with library_cp201(central.ws, "FIELDS201", script) as cp:
        await boot201(cp)
        reserve = cmd.Reserve(50, 0, "TAG", when, group_id_tag="FLEET", connector_type="cType2")
        assert await r.send("FIELDS201", reserve) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.send("FIELDS201", cmd.Reset(evse_id=1)) == cmd.Done(cmd.Status.ACCEPTED, None)
        inoperative = cmd.ChangeAvailability(1, False, evse_connector=1)
        assert await r.send("FIELDS201", inoperative) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await r.send("FIELDS201", cmd.UnlockConnector(1, evse_connector=2)) == cmd.Done(
            cmd.Status.UNLOCKED, None
        )
        log = cmd.TriggerMessage("LogStatusNotification")
        assert await r.send("FIELDS201", log) == cmd.Done(cmd.Status.ACCEPTED, None)
    (asked,) = script.asked("ReserveNow")
    assert "evse_id" not in asked
    assert (asked["connector_type"], asked["group_id_token"]["id_token"]) == ("cType2", "FLEET")
    assert script.asked("Reset") == [{"type": "OnIdle", "evse_id": 1}]
    assert script.asked("ChangeAvailability")[0]["evse"] == {"id": 1, "connector_id": 1}
    assert script.asked("UnlockConnector") == [{"evse_id": 1, "connector_id": 2}]
    assert script.asked("TriggerMessage") == [{"requested_message": "LogStatusNotification"}]


@pytest.mark.parametrize(
    ("reply", "result"),
    [
        ('[3,"{uid}",{{"status":"Bogus"}}]', cmd.Malformed("PropertyConstraintViolation")),  # not in the enum
        ('[4,"{uid}","FormatViolation","yours was bad",{{}}]', cmd.CallError("FormatViolation")),
        ('[4,"{uid}","NotSupported","",{{}}]', cmd.CallError("NotSupported")),
    ],
)
async def test_a_callresult_breaking_the_schema_is_malformed_and_a_callerror_is_the_chargers_word(
    central: Central, reply: str, result: cmd.CallError
) -> None:
    """A charger's CALLERROR is its answer (it may be a refusal); a CALLRESULT that breaks the
    schema answers nothing, and the result says which (commands owed count one, not the other)."""
    async with connect(f"{central.ws}/RAW", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
        await ws.send(json.dumps([2, "b1", "BootNotification", boot]))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))[:2] == [3, "b1"]
        sent = asyncio.create_task(central.registry.send("RAW", cmd.ClearCache()))
        call = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert call[2] == "ClearCache"
        await ws.send(reply.format(uid=call[1]))
        assert await asyncio.wait_for(sent, 10) == result
