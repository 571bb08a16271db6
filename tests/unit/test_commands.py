"""The typed commands, sans-I/O: every request says itself in each OCPP version within the official
schema, and answers are read into the typed result."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

import pytest

from chargeshare.domain.tokens import ListEntry, TokenStatus, TokenType, UpdateType
from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.frames import CALL, CALLRESULT, RemoteProtocolError, check_payload
from chargeshare.ocpp.grid_limits import limit_commands
from chargeshare.ocpp.smart_charging import END_USER_OVERRIDE_PROFILE_ID, override_profile, settings_commands

WHEN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROFILE = cmd.ChargingProfile(
    profile_id=3,
    stack_level=0,
    purpose=cmd.ProfilePurpose.TX,
    kind=cmd.ProfileKind.RELATIVE,
    rate_unit=cmd.RateUnit.AMPS,
    periods=(cmd.SchedulePeriod(0, 16), cmd.SchedulePeriod(900, 6.5)),
    duration_s=3600,
    transaction=7,
)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
HASH = cmd.CertificateHash("a1" * 32, "b2" * 32, "7faf99ffa3e83ba0f456aebb5a4909ce0cde16f8")
COMMANDS: list[cmd.Command[Any]] = [
    cmd.StartCharging("TAG"),
    cmd.StartCharging("TAG", 2, remote_start_id=9),
    cmd.StartCharging("TAG", 1, profile=override_profile(7_400)),  # the driver's override, at the start
    cmd.StopCharging(7),
    cmd.Reserve(11, 1, "TAG", WHEN),
    cmd.CancelReservation(11),
    cmd.ChangeAvailability(0, True),
    cmd.ChangeAvailability(2, False),
    cmd.Reset(),
    cmd.Reset(hard=True),
    cmd.TriggerMessage("StatusNotification", 1),
    cmd.TriggerMessage("Heartbeat"),
    cmd.UnlockConnector(1),
    cmd.SetChargingProfile(1, PROFILE),
    cmd.SetChargingProfile(
        0,
        cmd.ChargingProfile(
            1,
            0,
            cmd.ProfilePurpose.CHARGER_MAX,
            cmd.ProfileKind.ABSOLUTE,
            cmd.RateUnit.WATTS,
            (cmd.SchedulePeriod(0, 11_000),),
            starts_at=WHEN,
        ),
    ),
    *limit_commands(((1, 3_000), (2, 1_380)), WHEN),  # a site's or feeder's limits
    *limit_commands((), WHEN),
    cmd.ClearChargingProfile(),
    cmd.ClearChargingProfile(profile_id=3),
    cmd.ClearChargingProfile(connector_no=1, purpose=cmd.ProfilePurpose.TX_DEFAULT, stack_level=2),
    cmd.GetCompositeSchedule(1, 600),
    cmd.GetCompositeSchedule(1, 600, cmd.RateUnit.WATTS),
    cmd.GetSettings((cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr"),)),
    cmd.ChangeSetting(cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr"), "60"),
    cmd.SendLocalList(1),
    cmd.SendLocalList(
        2,
        UpdateType.FULL,
        (
            ListEntry("CARD-1", TokenStatus.ACCEPTED, WHEN, "FLEET"),
            ListEntry("CARD-2", TokenStatus.BLOCKED, type=TokenType.KEY_CODE),
        ),
    ),
    cmd.SendLocalList(3, UpdateType.DIFFERENTIAL, (ListEntry("CARD-2", None),)),
    cmd.GetLocalListVersion(),
    cmd.ClearCache(),
    cmd.CertificateSigned("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    cmd.InstallCertificate(
        cmd.CertificateUse.CSMS_ROOT, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    ),
    cmd.InstallCertificate(cmd.CertificateUse.MANUFACTURER_ROOT, "PEM"),
    cmd.GetInstalledCertificateIds((cmd.CertificateUse.CSMS_ROOT,)),
    cmd.DeleteCertificate(HASH),
]


def charger_tx(session_id: int) -> str | None:
    return {7: "their-7"}.get(session_id)


@pytest.mark.parametrize("version", [V16, V201, V21])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_is_valid_ocpp_in_every_version(
    command: cmd.Command[Any], version: OcppVersion
) -> None:
    check_payload(command.action(version), command.payload(version, charger_tx), version, CALL, "1")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_21_says_every_command_as_201_does(command: cmd.Command[Any]) -> None:
    """2.1 keeps 2.0.1's action and fields for every command we send (docs/ocpp21.md)."""
    assert command.action(V21) == command.action(V201)
    assert command.payload(V21, charger_tx) == command.payload(V201, charger_tx)


def test_what_16_cannot_say_of_certificates_is_not_applicable() -> None:
    for command in (
        cmd.InstallCertificate(cmd.CertificateUse.V2G_ROOT, "PEM"),
        cmd.GetInstalledCertificateIds(),
        cmd.GetInstalledCertificateIds((cmd.CertificateUse.CSMS_ROOT, cmd.CertificateUse.MANUFACTURER_ROOT)),
    ):
        with pytest.raises(cmd.CannotSay):
            command.payload(V16, charger_tx)
    with pytest.raises(cmd.CannotSay):  # listed, never installed
        cmd.InstallCertificate(cmd.CertificateUse.V2G_CHAIN, "PEM").payload(V201, charger_tx)
    # 1.6's name for our root is read back as the same use.
    assert cmd.read_use("CentralSystemRootCertificate") is cmd.CertificateUse.CSMS_ROOT


def test_what_21_refuses_or_widens_is_handled_apart() -> None:
    # 2.1's schema sets evseId's minimum at 1 for a start: said as NotApplicable, not sent broken.
    with pytest.raises(cmd.CannotSay):
        cmd.StartCharging("TAG", 0).payload(V21, charger_tx)
    # A 2.1 composite schedule's period may set no limit (a V2X setpoint instead): read as None.
    answer = {
        "status": "Accepted",
        "schedule": {
            "evseId": 1,
            "duration": 600,
            "scheduleStart": "2026-03-02T09:00:00Z",
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 7400.0},
                {"startPeriod": 300, "setpoint": 2000.0, "operationMode": "CentralSetpoint"},
            ],
        },
    }
    check_payload("GetCompositeSchedule", answer, V21, CALLRESULT, "1")
    done = cmd.GetCompositeSchedule(1, 600).result(V21, answer)
    assert isinstance(done, cmd.Done) and done.details is not None
    assert done.details.periods == (cmd.SchedulePeriod(0, 7400.0), cmd.SchedulePeriod(300, None))
    # ... and such a period is never sent, in any version.
    unlimited = cmd.ChargingProfile(
        1,
        0,
        cmd.ProfilePurpose.TX_DEFAULT,
        cmd.ProfileKind.RELATIVE,
        cmd.RateUnit.WATTS,
        done.details.periods,
    )
    for version in (V16, V201, V21):
        with pytest.raises(cmd.CannotSay):
            cmd.SetChargingProfile(1, unlimited).payload(version, charger_tx)


def test_transactions_are_named_in_each_versions_terms() -> None:
    assert cmd.StopCharging(7).payload(V16, charger_tx) == {"transactionId": 7}
    assert cmd.StopCharging(7).payload(V201, charger_tx) == {"transactionId": "their-7"}
    assert cmd.StopCharging("raw-id").payload(V201, charger_tx) == {"transactionId": "raw-id"}
    assert cmd.StopCharging("12").payload(V16, charger_tx) == {"transactionId": 12}
    with pytest.raises(cmd.CannotSay):
        cmd.StopCharging(8).payload(V201, charger_tx)  # a session the charger never reported
    with pytest.raises(cmd.CannotSay):
        cmd.StopCharging("their-7").payload(V16, charger_tx)
    with pytest.raises(cmd.CannotSay):
        cmd.GetSettings().payload(V201, charger_tx)
    profile = cmd.SetChargingProfile(1, PROFILE).payload(V201, charger_tx)["chargingProfile"]
    assert profile["transactionId"] == "their-7" and profile["chargingSchedule"][0]["id"] == 3
    purpose = cmd.ProfilePurpose.CHARGER_MAX
    assert (purpose.word(V16), purpose.word(V201)) == (
        "ChargePointMaxProfile",
        "ChargingStationMaxProfile",
    )


@pytest.mark.parametrize(
    ("command", "version", "answer", "expected"),
    [
        (cmd.Reset(), V201, {"status": "Scheduled"}, cmd.Done(cmd.Status.SCHEDULED, None)),
        (cmd.Reset(), V16, {"status": "Rejected"}, cmd.Rejected(cmd.Status.REJECTED)),
        (
            cmd.StartCharging("T"),
            V201,
            {"status": "Rejected", "statusInfo": {"reasonCode": "NoCable"}},
            cmd.Rejected(cmd.Status.REJECTED, "NoCable"),
        ),
        (cmd.UnlockConnector(1), V16, {"status": "NotSupported"}, cmd.Rejected(cmd.Status.NOT_SUPPORTED)),
        (
            cmd.ChangeSetting(cmd.SettingKey("X", "C"), "1"),
            V201,
            {
                "setVariableResult": [
                    {
                        "attributeStatus": "UnknownVariable",
                        "component": {"name": "C"},
                        "variable": {"name": "X"},
                    }
                ]
            },
            cmd.Rejected(cmd.Status.UNKNOWN_VARIABLE),
        ),
        (
            cmd.GetSettings((cmd.SettingKey("A"), cmd.SettingKey("B"))),
            V16,
            {"configurationKey": [{"key": "A", "readonly": True, "value": "1"}], "unknownKey": ["B"]},
            cmd.Done(
                cmd.Status.ACCEPTED,
                (
                    cmd.SettingValue(cmd.SettingKey("A"), cmd.Status.ACCEPTED, "1", True),
                    cmd.SettingValue(cmd.SettingKey("B"), cmd.Status.UNKNOWN_VARIABLE),
                ),
            ),
        ),
        (cmd.GetCompositeSchedule(1, 60), V16, {"status": "Accepted"}, cmd.Done(cmd.Status.ACCEPTED, None)),
        (cmd.GetLocalListVersion(), V16, {"listVersion": 4}, cmd.Done(cmd.Status.ACCEPTED, 4)),
        (cmd.GetLocalListVersion(), V201, {"versionNumber": 0}, cmd.Done(cmd.Status.ACCEPTED, 0)),
        (cmd.GetLocalListVersion(), V16, {"listVersion": -1}, cmd.Rejected(cmd.Status.NOT_SUPPORTED, ANY)),
        (
            cmd.SendLocalList(2),
            V201,
            {"status": "VersionMismatch"},
            cmd.Rejected(cmd.Status.VERSION_MISMATCH),
        ),
        (cmd.SendLocalList(2), V16, {"status": "Failed"}, cmd.Rejected(cmd.Status.FAILED)),
        (cmd.ClearCache(), V16, {"status": "Rejected"}, cmd.Rejected(cmd.Status.REJECTED)),
        (cmd.ClearCache(), V201, {"status": "Accepted"}, cmd.Done(cmd.Status.ACCEPTED, None)),
        (cmd.Reset(), V21, {"status": "Scheduled"}, cmd.Done(cmd.Status.SCHEDULED, None)),
        (
            cmd.GetInstalledCertificateIds((cmd.CertificateUse.CSMS_ROOT,)),
            V16,
            {"status": "Accepted", "certificateHashData": [HASH.said()]},
            cmd.Done(cmd.Status.ACCEPTED, (cmd.InstalledCertificate(cmd.CertificateUse.CSMS_ROOT, HASH),)),
        ),
        (
            cmd.GetInstalledCertificateIds(),
            V201,
            {
                "status": "Accepted",
                "certificateHashDataChain": [
                    {"certificateType": "V2GCertificateChain", "certificateHashData": HASH.said()}
                ],
            },
            cmd.Done(cmd.Status.ACCEPTED, (cmd.InstalledCertificate(cmd.CertificateUse.V2G_CHAIN, HASH),)),
        ),
        (
            cmd.GetInstalledCertificateIds((cmd.CertificateUse.MO_ROOT,)),
            V201,
            {"status": "NotFound"},
            cmd.Done(cmd.Status.NOT_FOUND, ()),
        ),
        (cmd.DeleteCertificate(HASH), V16, {"status": "NotFound"}, cmd.Rejected(cmd.Status.NOT_FOUND)),
        (cmd.DeleteCertificate(HASH), V201, {"status": "Failed"}, cmd.Rejected(cmd.Status.FAILED)),
        (cmd.GetLocalListVersion(), V21, {"versionNumber": 3}, cmd.Done(cmd.Status.ACCEPTED, 3)),
        (
            cmd.StartCharging("T"),
            V21,
            {"status": "Accepted", "transactionId": "TX-21"},
            cmd.Done(cmd.Status.ACCEPTED, "TX-21"),
        ),
    ],
)
def test_answers_become_typed_results(
    command: cmd.Command[Any], version: OcppVersion, answer: dict[str, Any], expected: object
) -> None:
    check_payload(command.action(version), answer, version, CALLRESULT, "1")  # a valid answer
    assert command.result(version, answer) == expected


def test_a_full_local_list_cannot_remove_an_entry() -> None:
    with pytest.raises(cmd.CannotSay):
        cmd.SendLocalList(2, UpdateType.FULL, (ListEntry("CARD-1", None),)).payload(V16, charger_tx)


def test_a_remote_start_carries_a_txprofile_for_a_named_connector_only() -> None:
    def lookup(_session: int) -> str | None:
        return None

    start = cmd.StartCharging("TAG", 1, profile=override_profile(7_400))
    assert start.payload(V16, lookup)["chargingProfile"]["chargingProfileId"] == END_USER_OVERRIDE_PROFILE_ID
    assert start.payload(V201, lookup)["chargingProfile"]["id"] == END_USER_OVERRIDE_PROFILE_ID
    for wrong in (
        cmd.StartCharging("TAG", None, profile=override_profile(7_400)),
        cmd.StartCharging("TAG", 1, profile=override_profile(7_400, transaction=5)),
        cmd.StartCharging(
            "TAG", 1, profile=replace(PROFILE, purpose=cmd.ProfilePurpose.TX_DEFAULT, transaction=None)
        ),
    ):
        with pytest.raises(cmd.CannotSay):
            wrong.payload(V16, lookup)


@pytest.mark.parametrize("version", [V16, V201])
def test_the_smart_charging_settings_say_themselves_within_the_schema(version: OcppVersion) -> None:
    from chargeshare.domain.smart_charge_points import SmartSettings

    commands = settings_commands(SmartSettings(900, demand_side_response=True))
    said = {c.key.name: c.value for c in commands}
    assert said == {
        "RandomisedDelayMaxSeconds": "900",
        "RandomisedDelayOverride": "false",
        "DefaultChargingHoursEnabled": "true",
        "DemandSideResponseActive": "true",
    }
    for c in commands:
        check_payload(c.action(version), c.payload(version, lambda _s: None), version, CALL, "1")


def test_get_transaction_status_is_2x_only_and_its_answer_has_no_status() -> None:
    with pytest.raises(cmd.CannotSay):
        cmd.GetTransactionStatus(7).payload(V16, charger_tx)
    for version in (V201, V21):
        for command in (
            cmd.GetTransactionStatus(),
            cmd.GetTransactionStatus(7),
            cmd.GetTransactionStatus("x"),
        ):
            check_payload(command.action(version), command.payload(version, charger_tx), version, CALL, "1")
        assert cmd.GetTransactionStatus(7).payload(version, charger_tx) == {"transactionId": "their-7"}
        answer = {"messagesInQueue": True, "ongoingIndicator": False}
        check_payload("GetTransactionStatus", answer, version, CALLRESULT, "1")
        assert cmd.GetTransactionStatus(7).result(version, answer) == cmd.Done(
            cmd.Status.ACCEPTED, cmd.TransactionQueue(True, False)
        )
    with pytest.raises(cmd.CannotSay):  # a session the charger never named
        cmd.GetTransactionStatus(8).payload(V201, charger_tx)


def test_reports_are_2x_only_and_name_their_components() -> None:
    key = cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr")
    asks = (
        cmd.GetBaseReport(1),
        cmd.GetBaseReport(2, cmd.ReportBase.CONFIGURATION),
        cmd.GetReport(3, (key, cmd.SettingKey("", "TxCtrlr")), (cmd.ComponentCriterion.PROBLEM,)),
        cmd.GetReport(4),
    )
    for command in asks:
        with pytest.raises(cmd.CannotSay):
            command.payload(V16, charger_tx)
        for version in (V201, V21):
            check_payload(command.action(version), command.payload(version, charger_tx), version, CALL, "1")
    assert cmd.GetReport(3, (cmd.SettingKey("", "TxCtrlr"),)).payload(V201, charger_tx) == {
        "requestId": 3,
        "componentVariable": [{"component": {"name": "TxCtrlr"}}],
    }
    with pytest.raises(cmd.CannotSay):
        cmd.GetReport(5, (cmd.SettingKey("HeartbeatInterval"),)).payload(V201, charger_tx)
    assert cmd.GetBaseReport(1).result(V201, {"status": "EmptyResultSet"}) == cmd.Rejected(
        cmd.Status.EMPTY_RESULT_SET
    )


def test_every_field_of_the_targeting_commands_is_said_where_the_version_has_it() -> None:
    """ReserveNow without an EVSE, by connector type and for a group; Reset of one EVSE; one
    connector of an EVSE for availability, triggers and unlocking. 1.6 cannot say the 2.x-only
    ones, which become NotApplicable rather than a request that means something else."""
    group = cmd.Reserve(12, 0, "TAG", WHEN, group_id_tag="FLEET", connector_type="cType2")
    two_x = [
        group,
        cmd.Reset(evse_id=2),
        cmd.ChangeAvailability(1, False, evse_connector=2),
        cmd.TriggerMessage("StatusNotification", 1, evse_connector=1),
        cmd.UnlockConnector(1, evse_connector=2),
    ]
    for command in two_x:
        for version in (V201, V21):
            check_payload(command.action(version), command.payload(version, charger_tx), version, CALL, "1")
        with pytest.raises(cmd.CannotSay):
            command.payload(V16, charger_tx)
    assert group.payload(V201, charger_tx) == {
        "id": 12,
        "expiryDateTime": "2026-03-02T09:00:00.000Z",
        "idToken": {"idToken": "TAG", "type": "ISO14443"},
        "connectorType": "cType2",
        "groupIdToken": {"idToken": "FLEET", "type": "ISO14443"},
    }
    anywhere = cmd.Reserve(13, 0, "TAG", WHEN, group_id_tag="FLEET")
    check_payload("ReserveNow", anywhere.payload(V16, charger_tx), V16, CALL, "1")
    assert anywhere.payload(V16, charger_tx)["parentIdTag"] == "FLEET"
    assert cmd.Reset(evse_id=2).payload(V201, charger_tx) == {"type": "OnIdle", "evseId": 2}
    assert cmd.ChangeAvailability(1, False, evse_connector=2).payload(V201, charger_tx)["evse"] == {
        "id": 1,
        "connectorId": 2,
    }
    for whole_station in (
        cmd.ChangeAvailability(0, True, evse_connector=1),
        cmd.TriggerMessage("StatusNotification", evse_connector=1),
    ):
        with pytest.raises(cmd.CannotSay):
            whole_station.payload(V201, charger_tx)  # a connector is named within its EVSE
    # A trigger is the version's own word: the schema says which (the registry sends none it refuses).
    for word in ("LogStatusNotification", "SignChargingStationCertificate", "TransactionEvent"):
        check_payload("TriggerMessage", {"requestedMessage": word}, V201, CALL, "1")
        with pytest.raises(RemoteProtocolError):
            check_payload("TriggerMessage", {"requestedMessage": word}, V16, CALL, "1")
    for word in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        check_payload("TriggerMessage", {"requestedMessage": word}, V16, CALL, "1")


def test_a_profile_says_every_field_of_its_schema() -> None:
    weekly = cmd.ChargingProfile(
        4,
        1,
        cmd.ProfilePurpose.TX_DEFAULT,
        cmd.ProfileKind.RECURRING,
        cmd.RateUnit.AMPS,
        (cmd.SchedulePeriod(0, 32, phases=3), cmd.SchedulePeriod(3600, 10, phases=1)),
        duration_s=7200,
        starts_at=WHEN,
        recurrency=cmd.Recurrency.WEEKLY,
        valid_from=WHEN,
        valid_to=WHEN.replace(year=2027),
        min_rate=6,
    )
    for version in (V16, V201, V21):
        said = cmd.SetChargingProfile(1, weekly).payload(version, charger_tx)
        check_payload("SetChargingProfile", said, version, CALL, "1")
        body = said["csChargingProfiles" if version == V16 else "chargingProfile"]
        schedule = body["chargingSchedule"] if version == V16 else body["chargingSchedule"][0]
        assert (body["recurrencyKind"], body["validFrom"], schedule["minChargingRate"]) == (
            "Weekly",
            "2026-03-02T09:00:00.000Z",
            6,
        )
        assert [p.get("numberPhases") for p in schedule["chargingSchedulePeriod"]] == [3, 1]
    for mismatch in (
        replace(weekly, recurrency=None),
        replace(weekly, kind=cmd.ProfileKind.ABSOLUTE),
    ):
        with pytest.raises(cmd.CannotSay):
            cmd.SetChargingProfile(1, mismatch).payload(V201, charger_tx)


def test_settings_in_parts_as_the_charger_takes_them() -> None:
    a, b, c = (cmd.SettingKey(n, "OCPPCommCtrlr") for n in ("A", "B", "C"))
    change = cmd.ChangeSettings(((a, "1"), (b, "2"), (c, "3")), per_message=2)
    assert [p.values for p in change.parts(V201)] == [((a, "1"), (b, "2")), ((c, "3"),)]
    assert [len(p.values) for p in change.parts(V16)] == [1, 1, 1]  # one key per ChangeConfiguration
    for version in (V16, V201):
        for part in change.parts(version):
            check_payload(part.action(version), part.payload(version, charger_tx), version, CALL, "1")
    with pytest.raises(cmd.CannotSay):
        change.payload(V16, charger_tx)
    assert cmd.ChangeSettings(((a, "1"),)).result(V16, {"status": "RebootRequired"}) == cmd.Done(
        cmd.Status.ACCEPTED, (cmd.SettingValue(a, cmd.Status.REBOOT_REQUIRED, "1"),)
    )
    read = cmd.GetSettings((a, b, c), per_message=1)
    assert [p.keys for p in read.parts(V201)] == [(a,), (b,), (c,)]
    assert read.joined(
        [cmd.Done(cmd.Status.ACCEPTED, (cmd.SettingValue(k, cmd.Status.ACCEPTED, "x"),)) for k in (a, b, c)]
    ) == cmd.Done(
        cmd.Status.ACCEPTED, tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, "x") for k in (a, b, c))
    )
    with pytest.raises(cmd.CannotSay):
        cmd.GetSettings((a, b), per_message=0).parts(V201)
