"""OCPP 1.6J cases, following the public OCTT test case list (ids TC_xxx), written our own way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chargeshare.certify.checks16 import Started, check_status_sequence, expect_start, expect_stop
from chargeshare.certify.context import NOT_SUPPORTED, CaseContext, Match, limit_in
from chargeshare.certify.model import Case, CaseBody, Profile
from chargeshare.certify.operator import Action
from chargeshare.certify.wirelog import CALLERROR
from chargeshare.ocpp import OcppVersion
from chargeshare.ocpp.timestamps import format_ts

V16 = frozenset({OcppVersion.V16})
RESERVATION_ID = 4601


def _status(ctx: CaseContext, status: str, since: int, what: str) -> Any:
    return ctx.wait_for(
        "StatusNotification",
        lambda p: p["connectorId"] == ctx.settings.connector and p["status"] == status,
        since=since,
        what=what,
    )


# ---- Core: boot, sessions ------------------------------------------------------------------------
async def cold_boot(ctx: CaseContext) -> None:
    # The charger connected before the first case: its boot is at the start of the log.
    boot = await ctx.wait_for("BootNotification", since=0, what="BootNotification")
    answer = ctx.log.answer_to(boot)
    if answer is None or answer.payload is None or answer.payload.get("status") != "Accepted":
        raise ctx.fail("the BootNotification was not accepted", boot, answer)
    ctx.cite(answer)
    await ctx.wait_for(
        "StatusNotification",
        lambda p: p["connectorId"] == ctx.settings.connector,
        since=boot.seq,
        what=f"StatusNotification for connector {ctx.settings.connector} after boot",
    )
    early = [e for e in ctx.log.calls(since=0) if e.seq < boot.seq and e.action != "BootNotification"]
    if early:
        raise ctx.fail(
            f"the charger sent {early[0].action} before its BootNotification was accepted", early[0]
        )


async def local_session(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PLUG_AND_PRESENT, ctx.settings.id_tag)
    auth = await ctx.wait_for("Authorize", lambda p: p["idTag"] == ctx.settings.id_tag, since=mark)
    started = await expect_start(ctx, ctx.settings.id_tag, since=mark)
    if auth.seq > started.entry.seq:
        raise ctx.fail("StartTransaction came before the card was authorised", started.entry, auth)
    await _status(ctx, "Preparing", mark, "StatusNotification Preparing on plugging in")
    await ctx.operator_does(Action.UNPLUG)
    await expect_stop(ctx, started, reasons=("EVDisconnected", "Local"))


async def invalid_card(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    tag = ctx.settings.invalid_tag
    try:
        await ctx.operator_does(Action.PLUG_AND_PRESENT, tag)
        await ctx.wait_for("Authorize", lambda p: p["idTag"] == tag, since=mark, what=f"Authorize for {tag}")
        await ctx.quiet(
            "StartTransaction",
            lambda p: p["idTag"] == tag,
            since=mark,
            what="StartTransaction for a card the CSMS called Invalid",
        )
        charging = ctx.find("StatusNotification", lambda p: p["status"] == "Charging", since=mark)
        if charging:
            raise ctx.fail("the connector started charging for an invalid card", *charging)
    finally:
        await ctx.operator_does(Action.UNPLUG)
    check_status_sequence(ctx, mark)


# ---- Core: remote start and stop -----------------------------------------------------------------
async def _remote_start(ctx: CaseContext, tag: str, mark: int, extra: dict[str, Any] | None = None) -> None:
    answer = await ctx.command(
        "RemoteStartTransaction", {"connectorId": ctx.settings.connector, "idTag": tag, **(extra or {})}
    )
    ctx.status_is(answer, "Accepted", what="RemoteStartTransaction")


async def remote_start_cable_first(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PLUG_CABLE)
    await _remote_start(ctx, ctx.settings.id_tag, mark)
    started = await expect_start(ctx, ctx.settings.id_tag, since=mark)
    await ctx.operator_does(Action.UNPLUG)
    await expect_stop(ctx, started, reasons=("EVDisconnected", "Local"))


async def remote_start_then_plug(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    answer = await ctx.command(
        "RemoteStartTransaction", {"connectorId": ctx.settings.connector, "idTag": ctx.settings.id_tag}
    )
    if answer.get("status") == "Rejected":
        # OCPP 1.6 lets a charger refuse a remote start; this one does while no car is plugged in.
        raise ctx.not_applicable("the charger refuses a remote start before a car is plugged in (allowed)")
    ctx.status_is(answer, "Accepted", what="RemoteStartTransaction")
    await ctx.operator_does(Action.PLUG_CABLE)
    started = await expect_start(ctx, ctx.settings.id_tag, since=mark)
    await ctx.operator_does(Action.UNPLUG)
    await expect_stop(ctx, started, reasons=("EVDisconnected", "Local"))


async def remote_stop(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PLUG_CABLE)
    await _remote_start(ctx, ctx.settings.id_tag, mark)
    started = await expect_start(ctx, ctx.settings.id_tag, since=mark)
    answer = await ctx.command("RemoteStopTransaction", {"transactionId": started.transaction_id})
    ctx.status_is(answer, "Accepted", what="RemoteStopTransaction")
    await _stops_before_unplug(ctx, started, "after the remote stop", reasons=("Remote",))


async def _stops_before_unplug(
    ctx: CaseContext, started: Started, after: str, *, reasons: tuple[str, ...]
) -> None:
    """StopTransaction, then Finishing, while the car is still plugged in; then the car leaves."""
    stop = await ctx.wait_for("StopTransaction", since=started.mark, what=f"StopTransaction {after}")
    await ctx.wait_for(
        "StatusNotification",
        lambda p: p["connectorId"] == ctx.settings.connector and p["status"] in ("Finishing", "Available"),
        since=stop.seq,
        what=f"StatusNotification Finishing {after}",
    )
    await ctx.operator_does(Action.UNPLUG)
    await expect_stop(ctx, started, reasons=reasons)


# ---- Core: reset, unlock, configuration ----------------------------------------------------------
def _reset(kind: str) -> Any:
    async def body(ctx: CaseContext) -> None:
        reset_at = ctx.log.mark()
        answer = await ctx.command("Reset", {"type": kind})
        ctx.status_is(answer, "Accepted", what=f"{kind} Reset")
        boot = await ctx.wait_for("BootNotification", since=reset_at, what="BootNotification after the reset")
        await ctx.wait_for(
            "StatusNotification",
            lambda p: p["connectorId"] == ctx.settings.connector,
            since=boot.seq,
            what="StatusNotification after the reboot",
        )

    return body


async def unlock_connector(ctx: CaseContext) -> None:
    answer = await ctx.command("UnlockConnector", {"connectorId": ctx.settings.connector})
    if answer.get("status") == "NotSupported":
        raise ctx.not_applicable("the charger has no lock to release (answered NotSupported)")
    ctx.status_is(answer, "Unlocked", what="UnlockConnector")
    started = ctx.find("StartTransaction")
    if started:
        raise ctx.fail("unlocking an idle connector started a transaction", *started)


async def unlock_during_session(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PLUG_AND_PRESENT, ctx.settings.id_tag)
    started = await expect_start(ctx, ctx.settings.id_tag, since=mark)
    answer = await ctx.command("UnlockConnector", {"connectorId": ctx.settings.connector})
    if answer.get("status") == "NotSupported":
        raise ctx.not_applicable("the charger has no lock to release (answered NotSupported)")
    ctx.status_is(answer, "Unlocked", what="UnlockConnector during a transaction")
    await _stops_before_unplug(ctx, started, "after the unlock", reasons=("UnlockCommand",))


async def card_first_session(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PRESENT_CARD, ctx.settings.id_tag)
    auth = await ctx.wait_for("Authorize", lambda p: p["idTag"] == ctx.settings.id_tag, since=mark)
    await ctx.operator_does(Action.PLUG_CABLE)
    started = await expect_start(ctx, ctx.settings.id_tag, since=auth.seq)
    await ctx.operator_does(Action.UNPLUG)
    await expect_stop(ctx, started, reasons=("EVDisconnected", "Local"))


REQUIRED_KEYS = (
    "HeartbeatInterval",
    "MeterValueSampleInterval",
    "NumberOfConnectors",
    "SupportedFeatureProfiles",
)


async def get_configuration(ctx: CaseContext) -> None:
    answer = await ctx.command("GetConfiguration", {})
    keys = {k.get("key") for k in answer.get("configurationKey", [])}
    missing = [k for k in REQUIRED_KEYS if k not in keys]
    if missing:
        raise ctx.fail(f"GetConfiguration lacks the required keys {', '.join(missing)}")
    answer = await ctx.command("GetConfiguration", {"key": ["HeartbeatInterval", "CertNoSuchKey"]})
    named = [k.get("key") for k in answer.get("configurationKey", [])]
    if named != ["HeartbeatInterval"] or answer.get("unknownKey") != ["CertNoSuchKey"]:
        raise ctx.fail("GetConfiguration for one known and one unknown key did not answer exactly those")


async def change_configuration(ctx: CaseContext) -> None:
    answer = await ctx.command("GetConfiguration", {"key": ["HeartbeatInterval"]})
    try:
        old = str(answer["configurationKey"][0]["value"])
    except (KeyError, IndexError):
        raise ctx.fail("GetConfiguration did not report HeartbeatInterval") from None
    new = "901" if old != "901" else "902"
    answer = await ctx.command("ChangeConfiguration", {"key": "HeartbeatInterval", "value": new})
    ctx.status_is(answer, "Accepted", "RebootRequired", what="ChangeConfiguration HeartbeatInterval")
    answer = await ctx.command("GetConfiguration", {"key": ["HeartbeatInterval"]})
    if [k.get("value") for k in answer.get("configurationKey", [])] != [new]:
        raise ctx.fail(f"HeartbeatInterval does not read back as {new} after it was accepted")
    answer = await ctx.command("ChangeConfiguration", {"key": "CertNoSuchKey", "value": "1"})
    ctx.status_is(answer, "NotSupported", what="ChangeConfiguration of an unknown key")
    await ctx.command("ChangeConfiguration", {"key": "HeartbeatInterval", "value": old})


# ---- Reservation ---------------------------------------------------------------------------------
def _reserve_payload(
    ctx: CaseContext, tag: str, seconds: float, reservation_id: int = RESERVATION_ID
) -> dict[str, Any]:
    return {
        "connectorId": ctx.settings.connector,
        "expiryDate": format_ts(ctx.clock.now() + timedelta(seconds=seconds)),
        "idTag": tag,
        "reservationId": reservation_id,
    }


async def _reserve(
    ctx: CaseContext, tag: str, seconds: float, mark: int, reservation_id: int = RESERVATION_ID
) -> None:
    ctx.reservations.add(reservation_id)
    answer = await ctx.command("ReserveNow", _reserve_payload(ctx, tag, seconds, reservation_id))
    ctx.status_is(answer, "Accepted", what="ReserveNow on an available connector")
    await _status(ctx, "Reserved", mark, "StatusNotification Reserved")


async def reserve_then_charge(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await _reserve(ctx, ctx.settings.id_tag, ctx.settings.reservation_s, mark)
    await ctx.operator_does(Action.PLUG_AND_PRESENT, ctx.settings.id_tag)
    started = await expect_start(ctx, ctx.settings.id_tag, since=mark)
    await ctx.operator_does(Action.UNPLUG)
    await expect_stop(ctx, started, reasons=("EVDisconnected", "Local"))


async def reservation_expires(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    seconds = ctx.settings.reservation_s / 20
    expires_at = ctx.log.now() + ctx.clock.real_seconds(seconds)  # no earlier than this
    await _reserve(ctx, ctx.settings.id_tag, seconds, mark, RESERVATION_ID + 1)
    wait = ctx.clock.real_seconds(seconds) + ctx.settings.event_timeout_s
    available = await _status_within(
        ctx, "Available", mark, wait, "StatusNotification Available once the reservation expired"
    )
    if available.at < expires_at - ctx.clock.real_seconds(2):
        raise ctx.fail("the connector was freed before the reservation expired", available)


async def _status_within(ctx: CaseContext, status: str, since: int, timeout_s: float, what: str) -> Any:
    return await ctx.wait_for(
        "StatusNotification",
        lambda p: p["connectorId"] == ctx.settings.connector and p["status"] == status,
        since=since,
        timeout_s=timeout_s,
        what=what,
    )


async def reserved_for_another(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await _reserve(ctx, ctx.settings.id_tag, ctx.settings.reservation_s, mark, RESERVATION_ID + 2)
    try:
        await ctx.operator_does(Action.PLUG_AND_PRESENT, ctx.settings.other_tag)
        await ctx.quiet(
            "StartTransaction",
            lambda p: p["idTag"] == ctx.settings.other_tag,
            since=mark,
            what="StartTransaction for a card other than the reservation's",
        )
    finally:
        await ctx.operator_does(Action.UNPLUG)
        await ctx.command("CancelReservation", {"reservationId": RESERVATION_ID + 2})


async def cancel_reservation(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await _reserve(ctx, ctx.settings.id_tag, ctx.settings.reservation_s, mark, RESERVATION_ID + 3)
    cancelled = ctx.log.mark()
    answer = await ctx.command("CancelReservation", {"reservationId": RESERVATION_ID + 3})
    ctx.status_is(answer, "Accepted", what="CancelReservation of a live reservation")
    await _status(ctx, "Available", cancelled, "StatusNotification Available after the cancellation")


async def cancel_unknown_reservation(ctx: CaseContext) -> None:
    answer = await ctx.command("CancelReservation", {"reservationId": 987654})
    ctx.status_is(answer, "Rejected", what="CancelReservation of an unknown reservation")


# ---- Remote trigger ------------------------------------------------------------------------------
async def trigger_message(ctx: CaseContext) -> None:
    for requested, extra in (
        ("Heartbeat", {}),
        ("StatusNotification", {"connectorId": ctx.settings.connector}),
    ):
        mark = ctx.log.mark()
        answer = await ctx.command("TriggerMessage", {"requestedMessage": requested, **extra})
        ctx.status_is(answer, "Accepted", what=f"TriggerMessage {requested}")
        await ctx.wait_for(requested, since=mark, what=f"the triggered {requested}")


async def trigger_rejected(ctx: CaseContext) -> None:
    sent, answer = await ctx.call(
        "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 99}
    )
    if answer.error_code in NOT_SUPPORTED:
        ctx.supported(sent, answer)
    if answer.kind != CALLERROR and (answer.payload or {}).get("status") != "Rejected":
        raise ctx.fail("TriggerMessage for connector 99, which does not exist, was not rejected", answer)


# ---- Smart charging ------------------------------------------------------------------------------
def _profile(ctx: CaseContext, profile_id: int, purpose: str, amps: float, unit: str) -> dict[str, Any]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": format_ts(ctx.clock.now() - timedelta(minutes=1)),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_in(unit, amps)}],
        },
    }


async def _set_default(ctx: CaseContext, profile_id: int, amps: float) -> None:
    unit = await ctx.rate_unit()
    answer = await ctx.command(
        "SetChargingProfile",
        {
            "connectorId": ctx.settings.connector,
            "csChargingProfiles": _profile(ctx, profile_id, "TxDefaultProfile", amps, unit),
        },
    )
    ctx.status_is(answer, "Accepted", what="SetChargingProfile TxDefaultProfile")


async def _clear(ctx: CaseContext, profile_id: int) -> dict[str, Any]:
    return await ctx.command("ClearChargingProfile", {"id": profile_id})


async def set_default_profile(ctx: CaseContext) -> None:
    await _set_default(ctx, 5601, 16.0)
    await _clear(ctx, 5601)


async def tx_profile_without_transaction(ctx: CaseContext) -> None:
    unit = await ctx.rate_unit()
    answer = await ctx.command(
        "SetChargingProfile",
        {
            "connectorId": ctx.settings.connector,
            "csChargingProfiles": {**_profile(ctx, 5701, "TxProfile", 10.0, unit), "transactionId": 424242},
        },
    )
    ctx.status_is(
        answer, "Rejected", what="SetChargingProfile TxProfile for a transaction that does not exist"
    )


async def composite_schedule(ctx: CaseContext) -> None:
    await _set_default(ctx, 6601, 12.0)
    unit = await ctx.rate_unit()
    try:
        answer = await ctx.command(
            "GetCompositeSchedule",
            {"connectorId": ctx.settings.connector, "duration": 600, "chargingRateUnit": unit},
        )
        ctx.status_is(answer, "Accepted", what="GetCompositeSchedule")
        periods = answer.get("chargingSchedule", {}).get("chargingSchedulePeriod", [])
        if not periods or any(float(p["limit"]) > limit_in(unit, 12.0) for p in periods):
            raise ctx.fail(
                f"the composite schedule does not hold to the {limit_in(unit, 12.0):g} {unit} default "
                "profile just set"
            )
    finally:
        await _clear(ctx, 6601)


async def clear_profile(ctx: CaseContext) -> None:
    await _set_default(ctx, 6701, 20.0)
    answer = await _clear(ctx, 6701)
    ctx.status_is(answer, "Accepted", what="ClearChargingProfile of the profile just set")
    answer = await _clear(ctx, 6701)
    ctx.status_is(answer, "Unknown", what="ClearChargingProfile of a profile already cleared")


# ---- Local authorisation list --------------------------------------------------------------------
async def _list_version(ctx: CaseContext) -> int:
    answer = await ctx.command("GetLocalListVersion", {})
    version = answer.get("listVersion")
    if not isinstance(version, int):
        raise ctx.fail("GetLocalListVersion gave no listVersion")
    if version == -1:
        raise ctx.not_applicable("the charger has no local authorisation list (listVersion -1)")
    return version


async def _send_list(ctx: CaseContext, version: int, update: str, tags: list[str]) -> None:
    answer = await ctx.command(
        "SendLocalList",
        {
            "listVersion": version,
            "updateType": update,
            "localAuthorizationList": [{"idTag": t, "idTagInfo": {"status": "Accepted"}} for t in tags],
        },
    )
    if answer.get("status") == "NotSupported":
        raise ctx.not_applicable("the charger answered SendLocalList with NotSupported")
    ctx.status_is(answer, "Accepted", what=f"SendLocalList {update}")
    if await _list_version(ctx) != version:
        raise ctx.fail(f"after a {update} SendLocalList of version {version}, GetLocalListVersion disagrees")


async def local_list_full(ctx: CaseContext) -> None:
    version = await _list_version(ctx)
    await _send_list(ctx, version + 1, "Full", [ctx.settings.id_tag])


async def local_list_differential(ctx: CaseContext) -> None:
    version = await _list_version(ctx)
    await _send_list(ctx, version + 1, "Differential", [ctx.settings.other_tag])


# ---- Firmware management -------------------------------------------------------------------------
async def update_firmware(ctx: CaseContext) -> None:
    url = ctx.settings.firmware_url
    if url is None:
        raise ctx.not_applicable("no firmware image to offer (give --firmware-url)")
    mark = ctx.log.mark()
    await ctx.command("UpdateFirmware", {"location": url, "retrieveDate": format_ts(ctx.clock.now())})
    for status in ("Downloading", "Downloaded", "Installing", "Installed"):
        e = await ctx.wait_for(
            "FirmwareStatusNotification",
            _status_equals(status),
            since=mark,
            what=f"FirmwareStatusNotification {status}",
        )
        mark = e.seq
    failed = ctx.find(
        "FirmwareStatusNotification", lambda p: p["status"] in ("DownloadFailed", "InstallationFailed")
    )
    if failed:
        raise ctx.fail("the firmware update reported a failure", *failed)


def _status_equals(status: str) -> Match:
    return lambda p: bool(p["status"] == status)


async def get_diagnostics(ctx: CaseContext) -> None:
    url = ctx.settings.diagnostics_url
    if url is None:
        raise ctx.not_applicable("no upload location for diagnostics (give --diagnostics-url)")
    mark = ctx.log.mark()
    answer = await ctx.command("GetDiagnostics", {"location": url})
    if not answer.get("fileName"):
        raise ctx.not_applicable("the charger has no diagnostics to upload (no fileName)")
    uploading = await ctx.wait_for(
        "DiagnosticsStatusNotification", lambda p: p["status"] == "Uploading", since=mark
    )
    await ctx.wait_for(
        "DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", since=uploading.seq
    )


def _case(
    id_: str, ref: str, title: str, profile: Profile, body: CaseBody, checks: str, *, operator: bool = False
) -> Case:
    return Case(id_, ref, title, profile, V16, body, checks, needs_operator=operator)


P = Profile
CASES_16: tuple[Case, ...] = (
    _case(
        "TC_001",
        "OCTT TC_001_CS",
        "Cold boot",
        P.CORE,
        cold_boot,
        "The first frame is an accepted BootNotification; the connector's status follows; nothing is sent "
        "before the boot.",
    ),
    _case(
        "TC_003",
        "OCTT TC_003_CS",
        "Charging session, plug in then present card",
        P.CORE,
        local_session,
        "Authorize precedes StartTransaction; statuses go Preparing, Charging, then Available along "
        "allowed transitions; "
        "MeterValues carry the assigned transaction id and numeric, rising readings; StopTransaction names "
        "that id, "
        "with a meterStop at or above every reading.",
        operator=True,
    ),
    _case(
        "TC_004",
        "OCTT TC_004_CS",
        "Charging session, present card then plug in",
        P.CORE,
        card_first_session,
        "The card is authorised before any car is plugged in; plugging in then starts the transaction, "
        "checked as in TC_003.",
        operator=True,
    ),
    _case(
        "TC_023",
        "OCTT TC_023_CS",
        "Card the CSMS calls invalid",
        P.CORE,
        invalid_card,
        "The card is sent for Authorize; once we answer Invalid, no StartTransaction follows and the "
        "connector never charges.",
        operator=True,
    ),
    _case(
        "TC_010",
        "OCTT TC_010_CS",
        "Remote start, cable plugged in first",
        P.CORE,
        remote_start_cable_first,
        "RemoteStartTransaction is Accepted and a StartTransaction for the given card follows; the session "
        "is then checked as in TC_003.",
        operator=True,
    ),
    _case(
        "TC_011",
        "OCTT TC_011_CS",
        "Remote start before the cable",
        P.CORE,
        remote_start_then_plug,
        "As TC_010, with the remote start sent before the car is plugged in.",
        operator=True,
    ),
    _case(
        "TC_012",
        "OCTT TC_012_CS",
        "Remote stop",
        P.CORE,
        remote_stop,
        "RemoteStopTransaction for the running transaction is Accepted and followed by StopTransaction "
        "with reason Remote, "
        "that transaction id and a consistent meterStop.",
        operator=True,
    ),
    _case(
        "TC_013",
        "OCTT TC_013_CS",
        "Hard reset without a transaction",
        P.CORE,
        _reset("Hard"),
        "Reset Hard is Accepted, and a fresh BootNotification and StatusNotification show the charger "
        "really restarted.",
    ),
    _case(
        "TC_014",
        "OCTT TC_014_CS",
        "Soft reset without a transaction",
        P.CORE,
        _reset("Soft"),
        "Reset Soft is Accepted, and a fresh BootNotification and StatusNotification show the charger "
        "really restarted.",
    ),
    _case(
        "TC_017",
        "OCTT TC_017_CS",
        "Unlock a connector with no session",
        P.CORE,
        unlock_connector,
        "UnlockConnector answers Unlocked and starts nothing (NotSupported, a tethered cable, is not "
        "applicable).",
    ),
    _case(
        "TC_018",
        "OCTT TC_018_CS",
        "Unlock a connector during a session",
        P.CORE,
        unlock_during_session,
        "UnlockConnector on a charging connector answers Unlocked and ends the transaction with "
        "StopTransaction reason UnlockCommand, checked as in TC_003.",
        operator=True,
    ),
    _case(
        "TC_019",
        "OCTT TC_019_CS",
        "Retrieve configuration",
        P.CORE,
        get_configuration,
        "GetConfiguration lists the required Core keys; asked for one known and one unknown key it returns "
        "exactly the known one "
        "and names the unknown one.",
    ),
    _case(
        "TC_021",
        "OCTT TC_021_CS",
        "Change configuration",
        P.CORE,
        change_configuration,
        "ChangeConfiguration of HeartbeatInterval is Accepted and reads back changed; an unknown key is "
        "NotSupported.",
    ),
    _case(
        "TC_046",
        "OCTT TC_046_CS",
        "Reserve a connector, then charge with the reserved card",
        P.RESERVATION,
        reserve_then_charge,
        "ReserveNow is Accepted and the connector reports Reserved; the reserved card then charges as in "
        "TC_003.",
        operator=True,
    ),
    _case(
        "TC_047",
        "OCTT TC_047_CS",
        "Reservation expires",
        P.RESERVATION,
        reservation_expires,
        "A reservation left unused reports Reserved, then Available by itself once its expiryDate has "
        "passed.",
    ),
    _case(
        "TC_048",
        "OCTT TC_048_CS",
        "Reserved connector refuses another card",
        P.RESERVATION,
        reserved_for_another,
        "While reserved for one card, presenting another card starts no transaction.",
        operator=True,
    ),
    _case(
        "TC_051",
        "OCTT TC_051_CS",
        "Cancel a reservation",
        P.RESERVATION,
        cancel_reservation,
        "CancelReservation of a live reservation is Accepted and the connector reports Available.",
    ),
    _case(
        "TC_052",
        "OCTT TC_052_CS",
        "Cancel an unknown reservation",
        P.RESERVATION,
        cancel_unknown_reservation,
        "CancelReservation of an id the charger never saw is Rejected.",
    ),
    _case(
        "TC_054",
        "OCTT TC_054_CS",
        "Trigger messages",
        P.REMOTE_TRIGGER,
        trigger_message,
        "TriggerMessage for Heartbeat and StatusNotification is Accepted and the requested message follows.",
    ),
    _case(
        "TC_055",
        "OCTT TC_055_CS",
        "Trigger message refused",
        P.REMOTE_TRIGGER,
        trigger_rejected,
        "TriggerMessage naming a connector that does not exist is Rejected (or refused with a CALLERROR).",
    ),
    _case(
        "TC_056",
        "OCTT TC_056_CS",
        "Set a default charging profile",
        P.SMART_CHARGING,
        set_default_profile,
        "SetChargingProfile with a TxDefaultProfile is Accepted.",
    ),
    _case(
        "TC_057",
        "OCTT TC_057_CS",
        "Transaction profile with no transaction",
        P.SMART_CHARGING,
        tx_profile_without_transaction,
        "SetChargingProfile with a TxProfile for a transaction that is not running is Rejected.",
    ),
    _case(
        "TC_066",
        "OCTT TC_066_CS",
        "Composite schedule",
        P.SMART_CHARGING,
        composite_schedule,
        "After a 12 A default profile, GetCompositeSchedule is Accepted and no period exceeds 12 A.",
    ),
    _case(
        "TC_067",
        "OCTT TC_067_CS",
        "Clear a charging profile",
        P.SMART_CHARGING,
        clear_profile,
        "ClearChargingProfile of a profile just set is Accepted; clearing it again answers Unknown.",
    ),
    _case(
        "TC_042",
        "OCTT TC_042_CS",
        "Local list: full update",
        P.LOCAL_AUTH_LIST,
        local_list_full,
        "SendLocalList Full is Accepted and GetLocalListVersion then reports the version sent.",
    ),
    _case(
        "TC_043",
        "OCTT TC_043_CS",
        "Local list: differential update",
        P.LOCAL_AUTH_LIST,
        local_list_differential,
        "SendLocalList Differential is Accepted and GetLocalListVersion then reports the version sent.",
    ),
    _case(
        "TC_044",
        "OCTT TC_044_CS",
        "Firmware update",
        P.FIRMWARE,
        update_firmware,
        "UpdateFirmware is confirmed and FirmwareStatusNotification reports Downloading, Downloaded, "
        "Installing, Installed in order.",
    ),
    _case(
        "TC_045",
        "OCTT TC_045_CS",
        "Upload diagnostics",
        P.FIRMWARE,
        get_diagnostics,
        "GetDiagnostics names a file and DiagnosticsStatusNotification reports Uploading then Uploaded.",
    ),
)
