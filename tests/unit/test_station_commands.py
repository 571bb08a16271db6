"""The 2.x station commands, sans-I/O: each says itself within 2.0.1's and 2.1's schemas, is
NotApplicable in 1.6, refuses what it cannot mean, and reads its answer into a typed result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chargeshare.ocpp import V16, V21, V201
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import station_commands as station
from chargeshare.ocpp.command_names import parse_command
from chargeshare.ocpp.frames import CALL, CALLRESULT, check_payload

WHEN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HEARTBEAT = cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr")
HASH = cmd.CertificateHash("a1" * 32, "b2" * 32, "7faf99ffa3")
COMMANDS: list[cmd.Command[Any]] = [
    station.GetChargingProfiles(1),
    station.GetChargingProfiles(
        2,
        evse_id=1,
        purpose=cmd.ProfilePurpose.TX_DEFAULT,
        stack_level=2,
        profile_ids=(7, 8),
        sources=(station.LimitSource.CSO, station.LimitSource.SO),
    ),
    station.SetDisplayMessage(station.DisplayMessage(1, "Welcome")),
    station.SetDisplayMessage(
        station.DisplayMessage(
            2,
            "Charging at 7 kW",
            station.MessagePriority.IN_FRONT,
            station.MessageFormat.ASCII,
            "en",
            station.MessageState.CHARGING,
            WHEN,
            WHEN,
            "their-7",
        )
    ),
    station.GetDisplayMessages(3),
    station.GetDisplayMessages(4, (1, 2), station.MessagePriority.ALWAYS_FRONT, station.MessageState.IDLE),
    station.ClearDisplayMessage(1),
    station.CustomerInformation(5, customer_identifier="driver-42"),
    station.CustomerInformation(6, report=False, clear=True, id_tag="CARD-1"),
    station.CustomerInformation(7, certificate=HASH),
    station.SetNetworkProfile(1, station.NetworkProfile("wss://csms.example/ocpp", 3)),
    station.SetVariableMonitoring(
        (
            station.Monitor(HEARTBEAT, station.MonitorKind.UPPER_THRESHOLD, 600),
            station.Monitor(HEARTBEAT, station.MonitorKind.PERIODIC, 3600, 9, monitor_id=4, transaction=True),
        )
    ),
    station.ClearVariableMonitoring((4, 5)),
    station.SetMonitoringBase(station.MonitoringBase.FACTORY_DEFAULT),
    station.SetMonitoringLevel(4),
    station.GetMonitoringReport(8),
    station.GetMonitoringReport(
        9, (HEARTBEAT, cmd.SettingKey("", "EVSE")), (station.MonitoringCriterion.DELTA,)
    ),
]


def charger_tx(session_id: int) -> str | None:
    return {7: "their-7"}.get(session_id)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_each_is_2x_only_and_valid_in_2x(command: cmd.Command[Any]) -> None:
    for version in (V201, V21):
        check_payload(command.action(version), command.payload(version, charger_tx), version, CALL, "1")
    assert command.payload(V21, charger_tx) == command.payload(V201, charger_tx)
    with pytest.raises(cmd.CannotSay):
        command.payload(V16, charger_tx)


@pytest.mark.parametrize(
    "command",
    [
        station.CustomerInformation(1),  # nobody named
        station.CustomerInformation(1, customer_identifier="a", id_tag="b"),  # two named
        station.CustomerInformation(1, report=False, customer_identifier="a"),  # nothing asked
        station.SetNetworkProfile(1, station.NetworkProfile("https://csms.example")),
        station.SetNetworkProfile(1, station.NetworkProfile("ws://csms.example", security_profile=2)),
        station.SetVariableMonitoring(()),
        station.SetVariableMonitoring((station.Monitor(HEARTBEAT, station.MonitorKind.DELTA, 1, 10),)),
        station.SetVariableMonitoring(
            (station.Monitor(cmd.SettingKey("", "EVSE"), station.MonitorKind.DELTA, 1),)
        ),
        station.ClearVariableMonitoring(()),
        station.SetMonitoringLevel(10),
        station.GetMonitoringReport(1, (cmd.SettingKey("HeartbeatInterval"),)),
    ],
    ids=repr,
)
def test_what_cannot_mean_anything_is_not_applicable(command: cmd.Command[Any]) -> None:
    with pytest.raises(cmd.CannotSay):
        command.payload(V201, charger_tx)


def test_answers_become_typed_results() -> None:
    assert station.GetChargingProfiles(1).result(V201, {"status": "NoProfiles"}) == cmd.Done(
        cmd.Status.NO_PROFILES, None
    )
    assert station.ClearDisplayMessage(1).result(V201, {"status": "Unknown"}) == cmd.Rejected(
        cmd.Status.UNKNOWN
    )
    refused = {"status": "NotSupportedPriority"}
    check_payload("SetDisplayMessage", refused, V201, CALLRESULT, "1")
    assert COMMANDS[2].result(V201, refused) == cmd.Rejected(cmd.Status.NOT_SUPPORTED_PRIORITY)
    assert station.CustomerInformation(1, customer_identifier="x").result(
        V201, {"status": "Invalid"}
    ) == cmd.Rejected(cmd.Status.INVALID)
    monitored = {
        "setMonitoringResult": [
            {
                "id": 11,
                "status": "Accepted",
                "type": "UpperThreshold",
                "severity": 5,
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            },
            {
                "status": "UnsupportedMonitorType",
                "type": "Periodic",
                "severity": 9,
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            },
        ]
    }
    check_payload("SetVariableMonitoring", monitored, V201, CALLRESULT, "1")
    assert COMMANDS[11].result(V201, monitored) == cmd.Done(
        cmd.Status.ACCEPTED,
        (
            station.MonitorResult(HEARTBEAT, cmd.Status.ACCEPTED, 11),
            station.MonitorResult(HEARTBEAT, cmd.Status.UNSUPPORTED_MONITOR_TYPE),
        ),
    )
    cleared = {"clearMonitoringResult": [{"id": 4, "status": "Accepted"}, {"id": 5, "status": "NotFound"}]}
    check_payload("ClearVariableMonitoring", cleared, V201, CALLRESULT, "1")
    assert COMMANDS[12].result(V201, cleared) == cmd.Done(
        cmd.Status.ACCEPTED, {4: cmd.Status.ACCEPTED, 5: cmd.Status.NOT_FOUND}
    )


def test_an_operator_names_them_as_any_other_command() -> None:
    made = parse_command(
        "SetDisplayMessage", {"message": {"message_id": 3, "text": "Out of order", "state": "Faulted"}}
    )
    assert made == station.SetDisplayMessage(
        station.DisplayMessage(3, "Out of order", state=station.MessageState.FAULTED)
    )
    assert parse_command("GetChargingProfiles", {"request_id": 1, "purpose": "TxProfile"}) == (
        station.GetChargingProfiles(1, purpose=cmd.ProfilePurpose.TX)
    )
