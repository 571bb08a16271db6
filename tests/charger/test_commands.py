"""The virtual charger answers every CSMS command, in each OCPP version, and follows up as a real
charger would. The CSMS is in-process (tests/charger/fake_csms.py), so each frame both ways is
checked against the `ocpp` library's schemas; the fixture fails a test in which the charger sent
anything the schemas refuse."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.ocpp.timestamps import format_ts
from simulators.dialect import QueuedMessage
from simulators.firmware import ConnectorState
from simulators.power import Vehicle
from simulators.settings import TRANSACTION_RETRY_INTERVAL
from tests.charger.conftest import Rig
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def car() -> Vehicle:
    return Vehicle(battery_wh=60_000, soc_wh=20_000, max_power_w=22_000)


def v(rig: Rig, v16: Any, v201: Any) -> Any:
    """The same command, said in the rig's version."""
    return v16 if rig.version == "1.6" else v201


def statuses(rig: Rig, connector_no: int = 1) -> list[str]:
    key = v(rig, "connectorId", "evseId")
    word = v(rig, "status", "connectorStatus")
    return [p[word] for p in rig.csms.sent_by_charger("StatusNotification") if p[key] == connector_no]


def tx_messages(rig: Rig) -> list[tuple[str, dict[str, Any]]]:
    return [(a, p) for a, p in rig.csms.calls if a in rig.charger.dialect.transaction_actions]


async def charging(rig: Rig, connector_no: int = 1) -> Any:
    plugged = await rig.charger.plug_in(connector_no, "TAG-1", car(), 20_000)
    assert plugged.transaction_id is not None
    return plugged.transaction_id


async def status_of(rig: Rig, action: str, p16: dict[str, Any], p201: dict[str, Any]) -> Any:
    outcome = await rig.csms.command(action, v(rig, p16, p201))
    assert outcome.ok and outcome.payload is not None, outcome
    return outcome.payload.get("status", outcome.payload)


async def test_remote_start_needs_a_car_then_starts_and_remote_stop_ends_it(rig: Rig) -> None:
    start = v(rig, "RemoteStartTransaction", "RequestStartTransaction")
    p16 = {"connectorId": 1, "idTag": "TAG-R"}
    p201 = {"evseId": 1, "idToken": {"idToken": "TAG-R", "type": "Central"}, "remoteStartId": 77}
    assert await status_of(rig, start, p16, p201) == "Rejected"  # nothing plugged in
    await rig.charger.plug_car(1, car(), 10_000)
    assert await status_of(rig, start, p16, p201) == "Accepted"
    c = rig.charger.connectors[1]
    await eventually(lambda: c.state is ConnectorState.CHARGING, "the remote start")
    started = tx_messages(rig)[0][1]
    if rig.version != "1.6":
        assert (started["triggerReason"], started["transactionInfo"]["remoteStartId"]) == ("RemoteStart", 77)
    assert started[v(rig, "idTag", "idToken")] == v(rig, "TAG-R", {"idToken": "TAG-R", "type": "ISO14443"})
    wire_id = c.plugged.transaction_id if c.plugged else None
    stop = v(rig, "RemoteStopTransaction", "RequestStopTransaction")
    assert await status_of(rig, stop, {"transactionId": 999}, {"transactionId": "no-such"}) == "Rejected"
    assert await status_of(rig, stop, {"transactionId": wire_id}, {"transactionId": wire_id}) == "Accepted"
    await eventually(
        lambda: len(tx_messages(rig)) >= 2 and tx_messages(rig)[-1][0] != "MeterValues", "the stop"
    )
    action, ended = tx_messages(rig)[-1]
    if rig.version == "1.6":
        assert (action, ended["transactionId"], ended["reason"]) == ("StopTransaction", wire_id, "Remote")
    else:
        assert (ended["eventType"], ended["transactionInfo"]["stoppedReason"]) == ("Ended", "Remote")
    assert c.state is ConnectorState.FINISHING and c.transaction is None


async def test_reservations_hold_a_connector_and_cancel_frees_it(rig: Rig) -> None:
    expiry = format_ts(rig.clock.now() + timedelta(hours=1))

    def reserve(rid: int, connector_no: int, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            {"connectorId": connector_no, "expiryDate": expiry, "idTag": tag, "reservationId": rid},
            {
                "id": rid,
                "expiryDateTime": expiry,
                "idToken": {"idToken": tag, "type": "ISO14443"},
                "evseId": connector_no,
            },
        )

    assert await status_of(rig, "ReserveNow", *reserve(5, 1, "TAG-A")) == "Accepted"
    await eventually(lambda: statuses(rig)[-1:] == ["Reserved"], "Reserved reported")
    assert await status_of(rig, "ReserveNow", *reserve(6, 1, "TAG-B")) == "Occupied"
    assert await status_of(rig, "ReserveNow", *reserve(7, 9, "TAG-B")) == "Rejected"  # no such connector
    assert await status_of(rig, "CancelReservation", {"reservationId": 6}, {"reservationId": 6}) == "Rejected"
    assert await status_of(rig, "CancelReservation", {"reservationId": 5}, {"reservationId": 5}) == "Accepted"
    await eventually(lambda: statuses(rig)[-1:] == ["Available"], "Available again")


async def test_change_availability_now_when_idle_and_scheduled_while_charging(rig: Rig) -> None:
    def change(connector_no: int, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            {"connectorId": connector_no, "type": kind},
            {"operationalStatus": kind, "evse": {"id": connector_no}},
        )

    assert await status_of(rig, "ChangeAvailability", *change(1, "Inoperative")) == "Accepted"
    await eventually(lambda: statuses(rig)[-1:] == ["Unavailable"], "Unavailable reported")
    assert await status_of(rig, "ChangeAvailability", *change(1, "Operative")) == "Accepted"
    await eventually(lambda: statuses(rig)[-1:] == ["Available"], "Available again")
    await charging(rig, 2)
    assert await status_of(rig, "ChangeAvailability", *change(2, "Inoperative")) == "Scheduled"
    assert rig.charger.connectors[2].state is ConnectorState.CHARGING  # the car charges on
    await rig.charger.unplug(2)
    assert statuses(rig, 2)[-1] == "Unavailable"  # once the car left
    assert await status_of(rig, "ChangeAvailability", *change(9, "Inoperative")) == "Rejected"


async def test_reset_stops_the_transaction_reboots_and_boots_again(rig: Rig) -> None:
    await charging(rig)
    boots_before = len(rig.csms.sent_by_charger("BootNotification"))
    kind = v(rig, {"type": "Soft"}, {"type": "Immediate"})
    assert await status_of(rig, "Reset", kind, kind) == "Accepted"
    await eventually(lambda: len(rig.csms.sent_by_charger("BootNotification")) > boots_before, "the boot")
    _, ended = tx_messages(rig)[-1]
    if rig.version == "1.6":
        assert ended["reason"] == "SoftReset"
    else:
        assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert rig.csms.sent_by_charger("BootNotification")[-1]["reason"] == "RemoteReset"
    assert rig.csms.connections == 2 and rig.charger.resets == 1


@pytest.mark.parametrize("rig", ["2.0.1", "2.1"], indirect=True)  # only these versions have it
async def test_reset_on_idle_waits_for_the_transaction_to_end(rig: Rig) -> None:
    await charging(rig)
    assert await status_of(rig, "Reset", {}, {"type": "OnIdle"}) == "Scheduled"
    await rig.charger.unplug(1)
    await eventually(lambda: rig.charger.resets == 1 and rig.csms.connections == 2, "the reset once idle")


async def test_trigger_message_sends_what_was_asked(rig: Rig) -> None:
    await charging(rig)
    beats = len(rig.csms.sent_by_charger("Heartbeat"))

    def trigger(name: str, evse: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            {"requestedMessage": name, **({"connectorId": evse} if evse else {})},
            {"requestedMessage": name, **({"evse": {"id": evse}} if evse else {})},
        )

    assert await status_of(rig, "TriggerMessage", *trigger("Heartbeat")) == "Accepted"
    await eventually(lambda: len(rig.csms.sent_by_charger("Heartbeat")) > beats, "the heartbeat")
    n = len(statuses(rig, 2))
    assert await status_of(rig, "TriggerMessage", *trigger("StatusNotification", 2)) == "Accepted"
    await eventually(lambda: len(statuses(rig, 2)) > n, "connector 2's status")
    meter_before = len(tx_messages(rig)) + len(rig.csms.sent_by_charger("MeterValues"))
    assert await status_of(rig, "TriggerMessage", *trigger("MeterValues", 1)) == "Accepted"
    await eventually(
        lambda: len(tx_messages(rig)) + len(rig.csms.sent_by_charger("MeterValues")) > meter_before,
        "readings",
    )
    boot = await status_of(rig, "TriggerMessage", *trigger("BootNotification"))
    assert boot == v(rig, "Accepted", "Rejected")  # 2.0.1: not once the boot was accepted
    # Nothing being updated or uploaded: the charger says Idle.
    for name in (
        "FirmwareStatusNotification",
        v(rig, "DiagnosticsStatusNotification", "LogStatusNotification"),
    ):
        assert await status_of(rig, "TriggerMessage", *trigger(name)) == "Accepted"
        await eventually(lambda: rig.csms.sent_by_charger(name) == [{"status": "Idle"}], name)  # noqa: B023
    if rig.version != "1.6":
        signing = trigger("SignChargingStationCertificate")
        assert await status_of(rig, "TriggerMessage", *signing) == "Accepted"
        await eventually(lambda: len(rig.csms.sent_by_charger("SignCertificate")) == 1, "a renewal")


async def test_unlock_connector(rig: Rig) -> None:
    await charging(rig)
    p16, p201 = {"connectorId": 1}, {"evseId": 1, "connectorId": 1}
    if rig.version == "1.6":
        assert await status_of(rig, "UnlockConnector", p16, p201) == "Unlocked"  # stops the transaction first
        await eventually(lambda: tx_messages(rig)[-1][0] == "StopTransaction", "the stop")
        assert tx_messages(rig)[-1][1]["reason"] == "UnlockCommand"
    else:
        assert await status_of(rig, "UnlockConnector", p16, p201) == "OngoingAuthorizedTransaction"
        assert await status_of(rig, "UnlockConnector", p16, {"evseId": 2, "connectorId": 1}) == "Unlocked"
        assert (
            await status_of(rig, "UnlockConnector", p16, {"evseId": 7, "connectorId": 1})
            == "UnknownConnector"
        )


async def test_a_charging_profile_limits_the_power_and_shows_in_the_composite_schedule(rig: Rig) -> None:
    await charging(rig, 2)  # the 22 kW connector
    c = rig.charger.connectors[2]
    assert rig.charger.power_w(c) == 22_000
    period = [{"startPeriod": 0, "limit": 16}]  # amps
    p16 = {
        "connectorId": 2,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": period},
        },
    }
    p201 = {
        "evseId": 2,
        "chargingProfile": {
            "id": 1,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": period}],
        },
    }
    assert await status_of(rig, "SetChargingProfile", p16, p201) == "Accepted"
    assert rig.charger.power_w(c) == 16 * 230 * 3  # 11,040 W on three phases
    composite = await rig.csms.command(
        "GetCompositeSchedule",
        v(
            rig,
            {"connectorId": 2, "duration": 600, "chargingRateUnit": "W"},
            {"evseId": 2, "duration": 600, "chargingRateUnit": "W"},
        ),
    )
    assert composite.payload is not None and composite.payload["status"] == "Accepted"
    schedule = composite.payload[v(rig, "chargingSchedule", "schedule")]
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 11_040}]
    clear = v(rig, {"id": 1}, {"chargingProfileId": 1})
    assert await status_of(rig, "ClearChargingProfile", clear, clear) == "Accepted"
    assert await status_of(rig, "ClearChargingProfile", clear, clear) == "Unknown"
    assert rig.charger.power_w(c) == 22_000


@pytest.mark.parametrize("rig", ["1.6"], indirect=True)  # only this version has it
async def test_configuration_keys_in_16(rig: Rig) -> None:
    got = await rig.csms.command(
        "GetConfiguration", {"key": ["HeartbeatInterval", "NumberOfConnectors", "Nope"]}
    )
    assert got.payload is not None
    assert {(k["key"], k["readonly"], k["value"]) for k in got.payload["configurationKey"]} == {
        ("HeartbeatInterval", False, "300"),
        ("NumberOfConnectors", True, "2"),
    }
    assert got.payload["unknownKey"] == ["Nope"]
    change = "ChangeConfiguration"
    assert await status_of(rig, change, {"key": "MeterValueSampleInterval", "value": "30"}, {}) == "Accepted"
    assert rig.charger.meter_interval_s == 30
    assert await status_of(rig, change, {"key": "NumberOfConnectors", "value": "4"}, {}) == "Rejected"
    assert await status_of(rig, change, {"key": "HeartbeatInterval", "value": "-5"}, {}) == "Rejected"
    assert await status_of(rig, change, {"key": "Nope", "value": "1"}, {}) == "NotSupported"
    everything = await rig.csms.command("GetConfiguration", {})
    assert everything.payload is not None and len(everything.payload["configurationKey"]) > 5


@pytest.mark.parametrize("rig", ["2.0.1", "2.1"], indirect=True)  # only these versions have it
async def test_variables_in_201(rig: Rig) -> None:

    def item(component: str, variable: str, value: str | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"component": {"name": component}, "variable": {"name": variable}}
        return d if value is None else {**d, "attributeValue": value}

    got = await rig.csms.command(
        "GetVariables",
        {
            "getVariableData": [
                item("OCPPCommCtrlr", "HeartbeatInterval"),
                item("OCPPCommCtrlr", "Nope"),
                item("NoSuchCtrlr", "HeartbeatInterval"),
                {**item("SampledDataCtrlr", "TxUpdatedInterval"), "attributeType": "MaxSet"},
            ]
        },
    )
    assert got.payload is not None
    results = got.payload["getVariableResult"]
    assert [r["attributeStatus"] for r in results] == [
        "Accepted",
        "UnknownVariable",
        "UnknownComponent",
        "NotSupportedAttributeType",
    ]
    assert results[0]["attributeValue"] == "300"
    put = await rig.csms.command(
        "SetVariables",
        {
            "setVariableData": [
                item("SampledDataCtrlr", "TxUpdatedInterval", "15"),
                item("EVSE", "Count", "8"),
                item("OCPPCommCtrlr", "HeartbeatInterval", "never"),
                item("Nowhere", "Thing", "1"),
            ]
        },
    )
    assert put.payload is not None
    assert [r["attributeStatus"] for r in put.payload["setVariableResult"]] == [
        "Accepted",
        "Rejected",
        "Rejected",
        "UnknownComponent",
    ]
    assert rig.charger.meter_interval_s == 15


async def test_a_refused_card_ends_the_201_transaction_it_announced(rig: Rig) -> None:
    rig.csms.id_status = "Blocked"
    plugged = await rig.charger.plug_in(1, "TAG-X", car(), 5_000)
    assert plugged.transaction_id is None
    if rig.version == "1.6":
        assert [a for a, _ in tx_messages(rig)] == []  # Authorize refused it: no transaction at all
        return
    rig.csms.id_status = "Accepted"
    assert (await rig.charger.start_transaction(rig.charger.connectors[1], "TAG-X")) is True
    rig.csms.id_status = "Blocked"
    await rig.charger.unplug(1)
    await rig.charger.plug_car(1, car(), 5_000)
    await rig.charger.start_transaction(rig.charger.connectors[1], "TAG-X")
    ended = tx_messages(rig)[-1][1]
    assert (ended["eventType"], ended["transactionInfo"]["stoppedReason"]) == ("Ended", "DeAuthorized")


async def test_offline_transaction_messages_are_queued_marked_and_replayed_in_order(rig: Rig) -> None:
    await charging(rig)
    await rig.charger.disconnect_for(0)  # reconnects at once, with nothing queued
    rig.charger.connected = False  # now lose it for real, mid-session
    await rig.charger._meter_tick()
    await rig.charger.unplug(1)
    queued = [q.message for q in rig.charger.queue]
    assert [a for a, _ in queued][-1] == v(rig, "StopTransaction", "TransactionEvent")
    if rig.version != "1.6":
        assert all(p["offline"] is True for _, p in queued)
    rig.charger.connected = True
    await rig.charger._resume()
    assert rig.charger.queue == []
    replayed = tx_messages(rig)[-len(queued) :]
    assert replayed == queued
    if rig.version != "1.6":
        seq = [p["seqNo"] for _, p in tx_messages(rig)]
        assert seq == sorted(seq) and len(set(seq)) == len(seq)


async def test_a_replayed_message_the_csms_failed_to_process_is_sent_again_in_order(rig: Rig) -> None:
    await charging(rig)
    rig.charger.connected = False  # lose the link mid-session: a reading and the stop wait
    await rig.charger._meter_tick()
    await rig.charger.unplug(1)
    queued = [q.message for q in rig.charger.queue]
    rig.csms.fail_next[queued[0][0]] = 1  # the first replayed message fails on the CSMS's side
    rig.charger.settings.values[TRANSACTION_RETRY_INTERVAL] = "0"  # and goes again at once
    before = len(tx_messages(rig))
    rig.charger.connected = True
    await rig.charger._resume()
    assert rig.charger.queue == [] and rig.charger.messages_given_up == 0
    assert tx_messages(rig)[before:] == [queued[0], *queued]  # sent again before what follows it


async def test_a_car_unplugged_while_its_remote_start_is_answered_ends_what_the_csms_opened(
    rig: Rig,
) -> None:
    start_action = v(rig, "StartTransaction", "TransactionEvent")
    rig.csms.hold[start_action] = answer_start = asyncio.Event()
    await rig.charger.plug_car(1, car(), 20_000)
    p16 = {"connectorId": 1, "idTag": "TAG-1"}
    p201 = {"evseId": 1, "remoteStartId": 3, "idToken": {"idToken": "TAG-1", "type": "ISO14443"}}
    assert await status_of(rig, v(rig, "RemoteStartTransaction", "RequestStartTransaction"), p16, p201) == (
        "Accepted"
    )
    await eventually(lambda: rig.csms.held == [start_action], "the start on the wire")
    await rig.charger.unplug(1)  # the car leaves before the CSMS has answered the start
    answer_start.set()
    await eventually(lambda: len(tx_messages(rig)) == 2, "the start's end")
    (_, started), (_, ended) = tx_messages(rig)
    c = rig.charger.connectors[1]
    assert (c.state, c.transaction, c.plugged) == (ConnectorState.AVAILABLE, None, None)
    if rig.version == "1.6":
        assert ended["transactionId"] == 100 and ended["reason"] == "EVDisconnected"  # the id we gave
    else:
        assert ended["eventType"] == "Ended"
        assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]


async def test_a_start_queued_behind_a_replay_is_ended_once_the_csms_has_opened_it(rig: Rig) -> None:
    await charging(rig)
    rig.charger.connected = False  # the link goes mid-session: a reading waits in the queue
    await rig.charger._meter_tick()
    rig.charger.connected = True  # back, the queue not yet replayed
    refused = await rig.charger.plug_in(2, "TAG-2", car(), 5_000)  # its start joins the queue's end
    assert refused.transaction is None  # no answer now: the driver is told to try again
    if rig.version == "1.6":
        opened = {
            p["connectorId"]: 100 + n for n, p in enumerate(rig.csms.sent_by_charger("StartTransaction"))
        }

        def ended() -> bool:  # the CSMS gave ids 100, 101, ... in the order the starts came
            ids = {
                p["connectorId"]: 100 + n for n, p in enumerate(rig.csms.sent_by_charger("StartTransaction"))
            }
            return 2 in ids and ids[2] in {
                p["transactionId"] for p in rig.csms.sent_by_charger("StopTransaction")
            }

        assert 2 not in opened
    else:

        def ended() -> bool:
            events = [p for _, p in tx_messages(rig) if p["evse"]["id"] == 2]
            return [p["eventType"] for p in events] == ["Started", "Ended"]

    await eventually(ended, "the replayed start's end")
    assert rig.charger.connectors[2].transaction is None


async def test_a_start_the_csms_failed_to_process_once_runs_on_its_second_attempt(rig: Rig) -> None:
    rig.csms.fail_next[v(rig, "StartTransaction", "TransactionEvent")] = 1
    rig.charger.settings.values[TRANSACTION_RETRY_INTERVAL] = "0"
    plugged = await rig.charger.plug_in(1, "TAG-1", car(), 20_000)
    c = rig.charger.connectors[1]
    assert plugged.transaction is not None and c.state is ConnectorState.CHARGING
    starts = [m for m in tx_messages(rig) if m[0] == "StartTransaction" or m[1].get("eventType") == "Started"]
    assert len(starts) == 2 and starts[0] == starts[1]  # the same frame again, taken from its answer


async def test_the_reserved_driver_takes_up_the_reservation_and_the_start_names_it(rig: Rig) -> None:
    expiry = format_ts(rig.clock.now() + timedelta(hours=1))
    p16 = {"connectorId": 1, "expiryDate": expiry, "idTag": "TAG-1", "reservationId": 9}
    p201 = {
        "id": 9,
        "expiryDateTime": expiry,
        "idToken": {"idToken": "TAG-1", "type": "ISO14443"},
        "evseId": 1,
    }
    assert await status_of(rig, "ReserveNow", p16, p201) == "Accepted"
    await eventually(lambda: rig.charger.connectors[1].state is ConnectorState.RESERVED, "Reserved")
    rig.csms.id_status = "Blocked"  # the card is refused this time: the car leaves, nothing stays held
    await rig.charger.plug_in(1, "TAG-1", car(), 5_000)
    await rig.charger.unplug(1)
    c = rig.charger.connectors[1]
    assert (c.state, c.reservation) == (ConnectorState.AVAILABLE, None)
    assert await status_of(rig, "ReserveNow", p16, p201) == "Accepted"
    rig.csms.id_status = "Accepted"
    await charging(rig)
    started = tx_messages(rig)[0][1]
    assert started["reservationId"] == 9


async def test_a_replay_cut_short_is_taken_up_by_the_next_transaction_message(rig: Rig) -> None:
    await charging(rig)
    rig.charger.connected = False  # the link goes mid-session: the next reading waits in the queue
    await rig.charger._meter_tick()
    rig.charger.connected = True  # back, but nothing replayed the queue yet
    before = len(tx_messages(rig))
    await rig.charger.unplug(1)  # its stop joins the end of the queue and starts the replay
    await eventually(lambda: rig.charger.queue == [] and len(tx_messages(rig)) == before + 2, "the replay")
    meter, stop = tx_messages(rig)[-2:]
    assert (meter[0], stop[0]) == v(rig, ("MeterValues", "StopTransaction"), ("TransactionEvent",) * 2)
    if rig.version != "1.6":
        assert (meter[1]["eventType"], stop[1]["eventType"]) == ("Updated", "Ended")
        assert meter[1]["seqNo"] < stop[1]["seqNo"]


@pytest.mark.parametrize("rig", ["2.1"], indirect=True)  # what 2.1 widens in the commands it takes
async def test_a_21_charger_refuses_what_it_cannot_do_and_does_the_rest(rig: Rig) -> None:
    await charging(rig, 2)
    c = rig.charger.connectors[2]

    def profile(kind: str, period: dict[str, Any]) -> dict[str, Any]:
        return {
            "evseId": 2,
            "chargingProfile": {
                "id": 5,
                "stackLevel": 1,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": kind,
                "chargingSchedule": [{"id": 5, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}],
            },
        }

    # What its power model cannot obey: a Dynamic profile, a setpoint without a limit, discharging.
    refused = [
        profile("Dynamic", {"startPeriod": 0, "limit": 3_000}),
        profile("Absolute", {"startPeriod": 0, "setpoint": 3_000, "operationMode": "CentralSetpoint"}),
        profile("Absolute", {"startPeriod": 0, "limit": 3_000, "operationMode": "ExternalSetpoint"}),
    ]
    for p in refused:
        assert await status_of(rig, "SetChargingProfile", {}, p) == "Rejected"
    assert rig.charger.power_w(c) == 22_000
    plain = profile("Absolute", {"startPeriod": 0, "limit": 3_000, "operationMode": "ChargingOnly"})
    assert await status_of(rig, "SetChargingProfile", {}, plain) == "Accepted"
    assert rig.charger.power_w(c) == 3_000
    # It cannot carry a transaction across a reboot, so a reset that asks it to is refused.
    assert await status_of(rig, "Reset", {}, {"type": "ImmediateAndResume"}) == "Rejected"
    assert rig.charger.resets == 0 and c.transaction is not None
    custom = {"requestedMessage": "CustomTrigger", "customTrigger": "x"}
    assert await status_of(rig, "TriggerMessage", {}, custom) == "NotImplemented"


async def test_get_transaction_status_reports_the_queue_and_the_transaction(rig: Rig) -> None:
    if rig.version == "1.6":
        pytest.skip("OCPP 1.6 has no GetTransactionStatus")
    tx_id = await charging(rig)
    answer = await status_of(rig, "GetTransactionStatus", {}, {"transactionId": tx_id})
    assert answer == {"messagesInQueue": False, "ongoingIndicator": True}
    assert await status_of(rig, "GetTransactionStatus", {}, {"transactionId": "other"}) == {
        "messagesInQueue": False,
        "ongoingIndicator": False,
    }
    # An event held back (as through an outage) counts for its transaction, and for "any".
    c = rig.charger.connectors[1]
    assert c.transaction is not None
    rig.charger.queue.append(QueuedMessage(*rig.charger.meter_message(c, c.transaction)))
    answer = await status_of(rig, "GetTransactionStatus", {}, {"transactionId": tx_id})
    assert answer == {"messagesInQueue": True, "ongoingIndicator": True}
    assert await status_of(rig, "GetTransactionStatus", {}, {}) == {"messagesInQueue": True}
    assert (await status_of(rig, "GetTransactionStatus", {}, {"transactionId": "other"}))[
        "messagesInQueue"
    ] is False


def stop_reading(rig: Rig) -> int:
    """The import register the charger told its stop with."""
    if rig.version == "1.6":
        (stop,) = rig.csms.sent_by_charger("StopTransaction")
        return int(stop["meterStop"])
    (ended,) = [p for _, p in tx_messages(rig) if p["eventType"] == "Ended"]
    readings = [
        sv["value"]
        for mv in ended["meterValue"]
        for sv in mv["sampledValue"]
        if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"
    ]
    return int(readings[-1])


async def test_the_register_stands_still_while_the_stop_is_on_its_way(rig: Rig) -> None:
    await charging(rig)
    c = rig.charger.connectors[1]
    rig.csms.hold[v(rig, "StopTransaction", "TransactionEvent")] = answer_stop = asyncio.Event()
    unplugging = asyncio.create_task(rig.charger.unplug(1))
    await eventually(lambda: c.transaction is None and c.plugged is not None, "the stop on its way")
    later = rig.clock.now() + timedelta(minutes=5)
    await eventually(lambda: rig.clock.now() >= later, "five simulated minutes")
    rig.charger.advance_energy()  # a meter tick while the CSMS has not answered the stop
    answer_stop.set()
    await unplugging
    assert c.meter.register_wh == stop_reading(rig)  # nothing drawn once the transaction ended
