"""OCPP 2.0.1 cases: the Core and Smart Charging functional blocks (B provisioning, C authorization,
E transactions, F remote control, G availability, J metering, K smart charging; H reservation, D local
list and L firmware where the charger offers them), after the public OCTT 2.0.1 test case list.

A 2.1 charger runs the same cases: each says its messages with fields 2.1 keeps unchanged, and every
frame either way is judged against the 2.1 schemas. They test the 2.0.1 behaviour 2.1 carries over,
none of what 2.1 adds (V2X, tariffs and cost, battery swap, DER control...)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from chargeshare.certify.checks201 import expect_ended, expect_started, token
from chargeshare.certify.context import CaseContext, Match, limit_in
from chargeshare.certify.model import Case, CaseBody, Profile
from chargeshare.certify.operator import Action
from chargeshare.ocpp import V21, V201
from chargeshare.ocpp.timestamps import format_ts

VERSIONS_2X = frozenset({V201, V21})
HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
RESERVATION_ID = 8101


def _status_is(ctx: CaseContext, status: str) -> Match:
    return lambda p: bool(p["evseId"] == ctx.settings.connector and p["connectorStatus"] == status)


# ---- B: provisioning ---------------------------------------------------------------------------
async def cold_boot(ctx: CaseContext) -> None:
    boot = await ctx.wait_for("BootNotification", since=0, what="BootNotification")
    answer = ctx.log.answer_to(boot)
    if answer is None or answer.payload is None or answer.payload.get("status") != "Accepted":
        raise ctx.fail("the BootNotification was not accepted", boot, answer)
    ctx.cite(answer)
    await ctx.wait_for(
        "StatusNotification",
        lambda p: p["evseId"] == ctx.settings.connector,
        since=boot.seq,
        what=f"StatusNotification for EVSE {ctx.settings.connector} after boot",
    )
    early = [e for e in ctx.log.calls(since=0) if e.seq < boot.seq and e.action != "BootNotification"]
    if early:
        raise ctx.fail(
            f"the charger sent {early[0].action} before its BootNotification was accepted", early[0]
        )


async def _heartbeat_interval(ctx: CaseContext) -> str:
    answer = await ctx.command("GetVariables", {"getVariableData": [HEARTBEAT]})
    results = answer.get("getVariableResult", [])
    if (
        len(results) != 1
        or results[0].get("attributeStatus") != "Accepted"
        or "attributeValue" not in results[0]
    ):
        raise ctx.fail("GetVariables did not return OCPPCommCtrlr.HeartbeatInterval")
    return str(results[0]["attributeValue"])


async def get_variables(ctx: CaseContext) -> None:
    await _heartbeat_interval(ctx)
    unknown = {"component": {"name": "CertNoSuchCtrlr"}, "variable": {"name": "Nothing"}}
    answer = await ctx.command("GetVariables", {"getVariableData": [unknown]})
    statuses_ = [r.get("attributeStatus") for r in answer.get("getVariableResult", [])]
    if statuses_ != ["UnknownComponent"]:
        raise ctx.fail(f"GetVariables of an unknown component answered {statuses_}, not UnknownComponent")


async def set_variables(ctx: CaseContext) -> None:
    old = await _heartbeat_interval(ctx)
    new = "901" if old != "901" else "902"
    answer = await ctx.command("SetVariables", {"setVariableData": [{**HEARTBEAT, "attributeValue": new}]})
    got = [r.get("attributeStatus") for r in answer.get("setVariableResult", [])]
    if got not in (["Accepted"], ["RebootRequired"]):
        raise ctx.fail(f"SetVariables HeartbeatInterval answered {got}")
    if await _heartbeat_interval(ctx) != new:
        raise ctx.fail(f"HeartbeatInterval does not read back as {new} after it was accepted")
    await ctx.command("SetVariables", {"setVariableData": [{**HEARTBEAT, "attributeValue": old}]})


async def _rebooted(ctx: CaseContext, since: int) -> None:
    boot = await ctx.wait_for("BootNotification", since=since, what="BootNotification after the reset")
    await ctx.wait_for(
        "StatusNotification",
        lambda p: p["evseId"] == ctx.settings.connector,
        since=boot.seq,
        what="StatusNotification after the reboot",
    )


async def reset_idle(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    answer = await ctx.command("Reset", {"type": "Immediate"})
    ctx.status_is(answer, "Accepted", what="Reset Immediate")
    await _rebooted(ctx, mark)


async def reset_on_idle_during_transaction(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PLUG_AND_PRESENT, ctx.settings.id_tag)
    started = await expect_started(ctx, ctx.settings.id_tag, since=mark)
    answer = await ctx.command("Reset", {"type": "OnIdle"})
    ctx.status_is(answer, "Scheduled", what="Reset OnIdle while a transaction runs")
    early = ctx.find("BootNotification", since=mark)
    if early:
        raise ctx.fail("the charger rebooted before its transaction ended", *early)
    await ctx.operator_does(Action.UNPLUG)
    ended = await expect_ended(ctx, started, reasons=("EVDisconnected", "Local"))
    await _rebooted(ctx, ended.seq)


# ---- C, E, J: authorization, transactions, metering ----------------------------------------------
async def local_session(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    tag = ctx.settings.id_tag
    await ctx.operator_does(Action.PLUG_AND_PRESENT, tag)
    await ctx.wait_for(
        "StatusNotification", _status_is(ctx, "Occupied"), since=mark, what="StatusNotification Occupied"
    )
    auth = await ctx.wait_for("Authorize", lambda p: p["idToken"]["idToken"] == tag, since=mark)
    started = await expect_started(ctx, tag, since=mark)
    charging = ctx.find(
        "TransactionEvent", lambda p: p["transactionInfo"].get("chargingState") == "Charging", since=mark
    )
    if charging and charging[0].seq < auth.seq:
        raise ctx.fail("energy flowed before the token was authorised", auth, charging[0])
    await ctx.operator_does(Action.UNPLUG)
    ended = await expect_ended(ctx, started, reasons=("EVDisconnected", "Local"))
    await ctx.wait_for(
        "StatusNotification", _status_is(ctx, "Available"), since=ended.seq - 1, what="Available"
    )


async def invalid_token(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    tag = ctx.settings.invalid_tag
    await ctx.operator_does(Action.PLUG_AND_PRESENT, tag)
    await ctx.wait_for(
        "Authorize", lambda p: p["idToken"]["idToken"] == tag, since=mark, what=f"Authorize for {tag}"
    )
    await ctx.quiet(
        "TransactionEvent",
        lambda p: p["transactionInfo"].get("chargingState") == "Charging" and p["idToken"]["idToken"] == tag,
        since=mark,
        what="a charging TransactionEvent for a token the CSMS called Invalid",
    )
    await ctx.operator_does(Action.UNPLUG)


# ---- F: remote control ---------------------------------------------------------------------------
async def _request_start(ctx: CaseContext, remote_start_id: int) -> None:
    answer = await ctx.command(
        "RequestStartTransaction",
        {
            "idToken": token(ctx.settings.id_tag),
            "remoteStartId": remote_start_id,
            "evseId": ctx.settings.connector,
        },
    )
    ctx.status_is(answer, "Accepted", what="RequestStartTransaction")


async def remote_start(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PLUG_CABLE)
    await _request_start(ctx, 7001)
    started = await expect_started(ctx, ctx.settings.id_tag, since=mark, remote_start_id=7001)
    await ctx.operator_does(Action.UNPLUG)
    await expect_ended(ctx, started, reasons=("EVDisconnected", "Local"))


async def remote_stop(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await ctx.operator_does(Action.PLUG_CABLE)
    await _request_start(ctx, 7002)
    started = await expect_started(ctx, ctx.settings.id_tag, since=mark, remote_start_id=7002)
    answer = await ctx.command("RequestStopTransaction", {"transactionId": started.transaction_id})
    ctx.status_is(answer, "Accepted", what="RequestStopTransaction")
    ended = await ctx.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", since=started.mark)
    await asyncio.sleep(ctx.settings.settle_s)  # the car leaves after the charger has said its piece
    ctx.cite(ended)
    await ctx.operator_does(Action.UNPLUG)
    await expect_ended(ctx, started, reasons=("Remote",))


async def unlock_connector(ctx: CaseContext) -> None:
    answer = await ctx.command("UnlockConnector", {"evseId": ctx.settings.connector, "connectorId": 1})
    ctx.status_is(answer, "Unlocked", what="UnlockConnector with no transaction")


async def trigger_message(ctx: CaseContext) -> None:
    evse = {"id": ctx.settings.connector, "connectorId": 1}
    for requested, extra in (("Heartbeat", {}), ("StatusNotification", {"evse": evse})):
        mark = ctx.log.mark()
        answer = await ctx.command("TriggerMessage", {"requestedMessage": requested, **extra})
        ctx.status_is(answer, "Accepted", what=f"TriggerMessage {requested}")
        await ctx.wait_for(requested, since=mark, what=f"the triggered {requested}")


# ---- G: availability -----------------------------------------------------------------------------
async def change_availability(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    evse = {"id": ctx.settings.connector}
    answer = await ctx.command("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": evse})
    ctx.status_is(answer, "Accepted", what="ChangeAvailability Inoperative on an idle EVSE")
    await ctx.wait_for("StatusNotification", _status_is(ctx, "Unavailable"), since=mark, what="Unavailable")
    back = ctx.log.mark()
    answer = await ctx.command("ChangeAvailability", {"operationalStatus": "Operative", "evse": evse})
    ctx.status_is(answer, "Accepted", what="ChangeAvailability Operative")
    await ctx.wait_for("StatusNotification", _status_is(ctx, "Available"), since=back, what="Available again")


# ---- H: reservation ------------------------------------------------------------------------------
async def _reserve(ctx: CaseContext, reservation_id: int, seconds: float, mark: int) -> None:
    ctx.reservations.add(reservation_id)
    answer = await ctx.command(
        "ReserveNow",
        {
            "id": reservation_id,
            "expiryDateTime": format_ts(ctx.clock.now() + timedelta(seconds=seconds)),
            "idToken": token(ctx.settings.id_tag),
            "evseId": ctx.settings.connector,
        },
    )
    ctx.status_is(answer, "Accepted", what="ReserveNow on an available EVSE")
    await ctx.wait_for("StatusNotification", _status_is(ctx, "Reserved"), since=mark, what="Reserved")


async def reserve_and_cancel(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    await _reserve(ctx, RESERVATION_ID, ctx.settings.reservation_s, mark)
    cancelled = ctx.log.mark()
    answer = await ctx.command("CancelReservation", {"reservationId": RESERVATION_ID})
    ctx.status_is(answer, "Accepted", what="CancelReservation")
    await ctx.wait_for("StatusNotification", _status_is(ctx, "Available"), since=cancelled, what="Available")


async def reservation_expires(ctx: CaseContext) -> None:
    mark = ctx.log.mark()
    seconds = ctx.settings.reservation_s / 20
    expires_at = ctx.log.now() + ctx.clock.real_seconds(seconds)  # no earlier than this
    await _reserve(ctx, RESERVATION_ID + 1, seconds, mark)
    available = await ctx.wait_for(
        "StatusNotification",
        _status_is(ctx, "Available"),
        since=mark,
        timeout_s=ctx.clock.real_seconds(seconds) + ctx.settings.event_timeout_s,
        what="Available once the reservation expired",
    )
    if available.at < expires_at - ctx.clock.real_seconds(2):
        raise ctx.fail("the EVSE was freed before the reservation expired", available)


# ---- K: smart charging ---------------------------------------------------------------------------
def _profile(ctx: CaseContext, profile_id: int, purpose: str, amps: float, unit: str) -> dict[str, Any]:
    return {
        "id": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": profile_id,
                "startSchedule": format_ts(ctx.clock.now() - timedelta(minutes=1)),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_in(unit, amps)}],
            }
        ],
    }


async def _set_default(ctx: CaseContext, profile_id: int, amps: float) -> None:
    unit = await ctx.rate_unit()
    answer = await ctx.command(
        "SetChargingProfile",
        {
            "evseId": ctx.settings.connector,
            "chargingProfile": _profile(ctx, profile_id, "TxDefaultProfile", amps, unit),
        },
    )
    ctx.status_is(answer, "Accepted", what="SetChargingProfile TxDefaultProfile")


async def _clear(ctx: CaseContext, profile_id: int) -> dict[str, Any]:
    return await ctx.command("ClearChargingProfile", {"chargingProfileId": profile_id})


async def set_default_profile(ctx: CaseContext) -> None:
    await _set_default(ctx, 9101, 16.0)
    await _clear(ctx, 9101)


async def tx_profile_without_transaction(ctx: CaseContext) -> None:
    unit = await ctx.rate_unit()
    answer = await ctx.command(
        "SetChargingProfile",
        {
            "evseId": ctx.settings.connector,
            "chargingProfile": {
                **_profile(ctx, 9201, "TxProfile", 10.0, unit),
                "transactionId": "cert-no-such-tx",
            },
        },
    )
    ctx.status_is(
        answer, "Rejected", what="SetChargingProfile TxProfile for a transaction that is not running"
    )


async def composite_schedule(ctx: CaseContext) -> None:
    await _set_default(ctx, 9301, 12.0)
    unit = await ctx.rate_unit()
    try:
        answer = await ctx.command(
            "GetCompositeSchedule",
            {"duration": 600, "evseId": ctx.settings.connector, "chargingRateUnit": unit},
        )
        ctx.status_is(answer, "Accepted", what="GetCompositeSchedule")
        periods = answer.get("schedule", {}).get("chargingSchedulePeriod", [])
        if not periods or any(float(p["limit"]) > limit_in(unit, 12.0) for p in periods):
            raise ctx.fail(
                f"the composite schedule does not hold to the {limit_in(unit, 12.0):g} {unit} default "
                "profile just set"
            )
    finally:
        await _clear(ctx, 9301)


async def clear_profile(ctx: CaseContext) -> None:
    await _set_default(ctx, 9401, 20.0)
    answer = await _clear(ctx, 9401)
    ctx.status_is(answer, "Accepted", what="ClearChargingProfile of the profile just set")
    answer = await _clear(ctx, 9401)
    ctx.status_is(answer, "Unknown", what="ClearChargingProfile of a profile already cleared")


# ---- D, L: local list, firmware ------------------------------------------------------------------
async def local_list(ctx: CaseContext) -> None:
    answer = await ctx.command("GetLocalListVersion", {})
    version = answer.get("versionNumber")
    if not isinstance(version, int):
        raise ctx.fail("GetLocalListVersion gave no versionNumber")
    sent = await ctx.command(
        "SendLocalList",
        {
            "versionNumber": version + 1,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idToken": token(ctx.settings.id_tag), "idTokenInfo": {"status": "Accepted"}}
            ],
        },
    )
    ctx.status_is(sent, "Accepted", what="SendLocalList Full")
    again = await ctx.command("GetLocalListVersion", {})
    if again.get("versionNumber") != version + 1:
        raise ctx.fail(f"after SendLocalList version {version + 1}, GetLocalListVersion disagrees")


async def update_firmware(ctx: CaseContext) -> None:
    url = ctx.settings.firmware_url
    if url is None:
        raise ctx.not_applicable("no firmware image to offer (give --firmware-url)")
    mark = ctx.log.mark()
    answer = await ctx.command(
        "UpdateFirmware",
        {"requestId": 1, "firmware": {"location": url, "retrieveDateTime": format_ts(ctx.clock.now())}},
    )
    ctx.status_is(answer, "Accepted", what="UpdateFirmware")
    for status in ("Downloading", "Downloaded", "Installing", "Installed"):
        e = await ctx.wait_for(
            "FirmwareStatusNotification",
            _equals(status),
            since=mark,
            what=f"FirmwareStatusNotification {status}",
        )
        mark = e.seq


def _equals(status: str) -> Match:
    return lambda p: bool(p["status"] == status)


def _case(
    id_: str, ref: str, title: str, profile: Profile, body: CaseBody, checks: str, *, operator: bool = False
) -> Case:
    return Case(id_, ref, title, profile, VERSIONS_2X, body, checks, needs_operator=operator)


P = Profile
SESSION_CHECKS = (
    "TransactionEvents of the transaction share one id, begin with Started and end with Ended, with "
    "seqNo rising; "
    "every reading is a number and the energy register never runs backwards; Ended carries the final "
    "reading; "
    "the EVSE reports Occupied throughout."
)
CASES_201: tuple[Case, ...] = (
    _case(
        "TC_B_01",
        "OCTT TC_B_01_CS, use case B01",
        "Cold boot",
        P.CORE,
        cold_boot,
        "The first frame is an accepted BootNotification; the EVSE's status follows; nothing is sent "
        "before it.",
    ),
    _case(
        "TC_B_06",
        "OCTT TC_B_06_CS, use case B06",
        "Get variables",
        P.CORE,
        get_variables,
        "GetVariables returns OCPPCommCtrlr.HeartbeatInterval, and UnknownComponent for a component "
        "that does not exist.",
    ),
    _case(
        "TC_B_07",
        "OCTT TC_B_07_CS, use case B05",
        "Set variables",
        P.CORE,
        set_variables,
        "SetVariables of HeartbeatInterval is Accepted and reads back changed.",
    ),
    _case(
        "TC_B_11",
        "OCTT TC_B_11_CS, use case B11",
        "Reset with no transaction",
        P.CORE,
        reset_idle,
        "Reset Immediate is Accepted, and a fresh BootNotification and StatusNotification show a "
        "real restart.",
    ),
    _case(
        "TC_B_12",
        "OCTT TC_B_12_CS, use case B12",
        "Reset OnIdle during a transaction",
        P.CORE,
        reset_on_idle_during_transaction,
        "Reset OnIdle while charging is Scheduled; the charger reboots only after its transaction has Ended.",
        operator=True,
    ),
    _case(
        "TC_E_02",
        "OCTT TC_E_02_CS, use cases C01, E02, J02",
        "Charging session, cable first",
        P.CORE,
        local_session,
        "Occupied on plugging in, Authorize before any energy flows; " + SESSION_CHECKS,
        operator=True,
    ),
    _case(
        "TC_C_02",
        "OCTT TC_C_02_CS, use case C01",
        "Token the CSMS calls invalid",
        P.CORE,
        invalid_token,
        "The token is sent for Authorize; once we answer Invalid, no charging TransactionEvent "
        "follows for it.",
        operator=True,
    ),
    _case(
        "TC_F_01",
        "OCTT TC_F_01_CS, use case F01",
        "Remote start, cable first",
        P.CORE,
        remote_start,
        "RequestStartTransaction is Accepted and the transaction that follows carries its remoteStartId; "
        + SESSION_CHECKS,
        operator=True,
    ),
    _case(
        "TC_F_03",
        "OCTT TC_F_03_CS, use case F03",
        "Remote stop",
        P.CORE,
        remote_stop,
        "RequestStopTransaction is Accepted and the transaction Ends with stoppedReason Remote; "
        + SESSION_CHECKS,
        operator=True,
    ),
    _case(
        "TC_F_05",
        "OCTT TC_F_05_CS, use case F05",
        "Unlock a connector with no transaction",
        P.CORE,
        unlock_connector,
        "UnlockConnector answers Unlocked.",
    ),
    _case(
        "TC_F_06",
        "OCTT TC_F_06_CS, use case F06",
        "Trigger messages",
        P.REMOTE_TRIGGER,
        trigger_message,
        "TriggerMessage for Heartbeat and StatusNotification is Accepted and the requested message follows.",
    ),
    _case(
        "TC_G_03",
        "OCTT TC_G_03_CS, use case G03",
        "Change availability of an EVSE",
        P.CORE,
        change_availability,
        "Inoperative is Accepted and the EVSE reports Unavailable; Operative brings it back to Available.",
    ),
    _case(
        "TC_H_01",
        "OCTT TC_H_01_CS, use cases H01, H02",
        "Reserve and cancel",
        P.RESERVATION,
        reserve_and_cancel,
        "ReserveNow is Accepted with the EVSE Reserved; CancelReservation frees it (Available).",
    ),
    _case(
        "TC_H_15",
        "OCTT TC_H_15_CS, use case H01",
        "Reservation expires",
        P.RESERVATION,
        reservation_expires,
        "An unused reservation reports Reserved, then Available by itself once expiryDateTime has passed.",
    ),
    _case(
        "TC_K_01",
        "OCTT TC_K_01_CS, use case K01",
        "Set a default charging profile",
        P.SMART_CHARGING,
        set_default_profile,
        "SetChargingProfile with a TxDefaultProfile is Accepted.",
    ),
    _case(
        "TC_K_02",
        "OCTT TC_K_02_CS, use case K01",
        "Transaction profile with no transaction",
        P.SMART_CHARGING,
        tx_profile_without_transaction,
        "A TxProfile for a transaction that is not running is Rejected.",
    ),
    _case(
        "TC_K_08",
        "OCTT TC_K_08_CS, use case K08",
        "Composite schedule",
        P.SMART_CHARGING,
        composite_schedule,
        "After a 12 A default profile, GetCompositeSchedule is Accepted and no period exceeds 12 A.",
    ),
    _case(
        "TC_K_10",
        "OCTT TC_K_10_CS, use case K10",
        "Clear a charging profile",
        P.SMART_CHARGING,
        clear_profile,
        "ClearChargingProfile of a profile just set is Accepted; clearing it again answers Unknown.",
    ),
    _case(
        "TC_D_01",
        "OCTT TC_D_01_CS, use case D01",
        "Local list: full update",
        P.LOCAL_AUTH_LIST,
        local_list,
        "SendLocalList Full is Accepted and GetLocalListVersion then reports the version sent.",
    ),
    _case(
        "TC_L_01",
        "OCTT TC_L_01_CS, use case L01",
        "Firmware update",
        P.FIRMWARE,
        update_firmware,
        "UpdateFirmware is Accepted and FirmwareStatusNotification reports Downloading, Downloaded, "
        "Installing, "
        "Installed in order.",
    ),
)
