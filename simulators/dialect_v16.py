"""OCPP 1.6J as the virtual charger speaks it: payloads out, answers in, CSMS commands onto the firmware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chargeshare.ocpp import OcppVersion
from chargeshare.ocpp.commands import CertificateHash, read_use
from chargeshare.ocpp.connection import Handler, Outcome
from chargeshare.ocpp.provisioning import unknown_vendor
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from simulators import file_transfer
from simulators.dialect import FIRMWARE, Message, status_refusal
from simulators.evse import (
    BootReason,
    Requested,
    ResetKind,
    StopReason,
    Transaction,
    Unlock,
    VirtualConnector,
)
from simulators.local_auth import LocalEntry
from simulators.settings import BY_KEY, SetResult
from simulators.smart_charging import Kind, Period, Profile, Purpose, from_watts

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort

ENERGY = "Energy.Active.Import.Register"
STOP_REASONS = {
    StopReason.EV_DISCONNECTED: "EVDisconnected",
    StopReason.REMOTE: "Remote",
    StopReason.LOCAL: "Local",
    StopReason.REBOOT: "Reboot",
    StopReason.HARD_RESET: "HardReset",
    StopReason.SOFT_RESET: "SoftReset",
    StopReason.IMMEDIATE_RESET: "HardReset",
    StopReason.UNLOCK: "UnlockCommand",
    StopReason.DEAUTHORIZED: "DeAuthorized",
}
PURPOSES = {
    "ChargePointMaxProfile": Purpose.CHARGER_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
TRIGGERS = {
    "BootNotification": Requested.BOOT,
    "Heartbeat": Requested.HEARTBEAT,
    "StatusNotification": Requested.STATUS,
    "MeterValues": Requested.METER_VALUES,
}
IDLE_STATUSES = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")
UNLOCK = {
    Unlock.UNLOCKED: "Unlocked",
    Unlock.FAILED: "UnlockFailed",
    Unlock.UNKNOWN_CONNECTOR: "NotSupported",
    Unlock.ONGOING_TRANSACTION: "UnlockFailed",
}


def _readings(register_wh: int, power_w: int | None, ts: str, context: str) -> list[dict[str, Any]]:
    values = [{"value": str(register_wh), "context": context, "measurand": ENERGY, "unit": "Wh"}]
    if power_w is not None:
        values.append(
            {"value": str(power_w), "context": context, "measurand": "Power.Active.Import", "unit": "W"}
        )
    return [{"timestamp": ts, "sampledValue": values}]


def profile_from(p: dict[str, Any], connector_no: int, set_at: Any) -> Profile:
    schedule = p["chargingSchedule"]
    return Profile(
        profile_id=p["chargingProfileId"],
        connector_no=connector_no,
        stack_level=p["stackLevel"],
        purpose=PURPOSES[p["chargingProfilePurpose"]],
        kind=Kind(p["chargingProfileKind"]),
        unit=schedule["chargingRateUnit"],
        periods=tuple(
            Period(x["startPeriod"], float(x["limit"]), x.get("numberPhases"))
            for x in schedule["chargingSchedulePeriod"]
        ),
        set_at=set_at,
        start=parse_ts(schedule["startSchedule"]) if "startSchedule" in schedule else None,
        duration_s=schedule.get("duration"),
        recurrency=p.get("recurrencyKind"),
        valid_from=parse_ts(p["validFrom"]) if "validFrom" in p else None,
        valid_to=parse_ts(p["validTo"]) if "validTo" in p else None,
        transaction=None,  # bound to the connector's running transaction when it names one
    )


class V16:
    version = OcppVersion.V16
    subprotocol = "ocpp1.6"
    transaction_actions = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})
    ends_refused_start = False  # the CSMS refused it: no transaction exists to stop

    # ---- what the charger sends ----------------------------------------------------------------
    def boot(self, reason: BootReason, firmware: str = FIRMWARE) -> Message:
        return "BootNotification", {
            "chargePointVendor": "ChargeShare",
            "chargePointModel": "Virtual-1",
            "firmwareVersion": firmware,
        }

    def read_boot(self, payload: dict[str, Any]) -> tuple[str, int]:
        return str(payload["status"]), int(payload["interval"])

    def heartbeat(self) -> Message:
        return "Heartbeat", {}

    def status(self, c: VirtualConnector, ts: str) -> Message:
        return "StatusNotification", {
            "connectorId": c.no,
            "errorCode": "NoError",
            "status": c.state.value,
            "timestamp": ts,
        }

    def authorize(self, id_tag: str) -> Message:
        return "Authorize", {"idTag": id_tag}

    def id_status(self, payload: dict[str, Any]) -> str:
        return str(payload["idTagInfo"]["status"])

    def started(self, c: VirtualConnector, tx: Transaction, ts: str, reservation_id: int | None) -> Message:
        payload: dict[str, Any] = {
            "connectorId": c.no,
            "idTag": tx.id_tag,
            "meterStart": tx.meter_start,
            "timestamp": ts,
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return "StartTransaction", payload

    def start_accepted(self, tx: Transaction, outcome: Outcome) -> bool:
        if not outcome.ok or outcome.payload is None:
            return False
        tx.wire_id = int(outcome.payload["transactionId"])
        return bool(outcome.payload["idTagInfo"]["status"] == "Accepted")

    def meter(self, c: VirtualConnector, tx: Transaction, ts: str, power_w: int) -> Message:
        return "MeterValues", {
            "connectorId": c.no,
            "transactionId": tx.wire_id,
            "meterValue": _readings(c.meter.register_wh, power_w, ts, "Sample.Periodic"),
        }

    def triggered_meter(self, c: VirtualConnector, tx: Transaction | None, ts: str, power_w: int) -> Message:
        payload: dict[str, Any] = {
            "connectorId": c.no,
            "meterValue": _readings(c.meter.register_wh, power_w, ts, "Trigger"),
        }
        if tx is not None:
            payload["transactionId"] = tx.wire_id
        return "MeterValues", payload

    def charging_state_changed(self, c: VirtualConnector, tx: Transaction, ts: str) -> Message | None:
        return None  # 1.6 says it with a StatusNotification (SuspendedEV) alone

    def ended(self, c: VirtualConnector, tx: Transaction, ts: str, reason: StopReason) -> Message:
        return "StopTransaction", {
            "transactionId": tx.wire_id,
            "meterStop": c.meter.register_wh,
            "timestamp": ts,
            "reason": STOP_REASONS[reason],
            "idTag": tx.id_tag,
            "transactionData": _readings(c.meter.register_wh, None, ts, "Transaction.End"),
        }

    def reservation_expired(self, reservation_id: int) -> Message | None:
        return None  # a 1.6 charger lets a reservation lapse without a word (its status says it)

    def mark_offline(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return payload  # 1.6 has no way to say a message was held back

    def bad_meter_values(self) -> dict[str, Any]:
        return {"connectorId": "one", "meterValue": [{"timestamp": "soon", "sampledValue": []}]}

    def refusal(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action == "UnlockConnector":
            return {"status": "UnlockFailed"}
        if action == "ClearChargingProfile":
            return {"status": "Unknown"}
        return status_refusal(action, self.version)

    # ---- what the CSMS asks --------------------------------------------------------------------
    def handlers(self, cp: ChargerPort) -> dict[str, Handler]:
        def status(ok: bool) -> dict[str, Any]:
            return {"status": "Accepted" if ok else "Rejected"}

        def remote_start(p: dict[str, Any]) -> dict[str, Any]:
            connector_no = p.get("connectorId")
            profile = None
            if "chargingProfile" in p:
                if p["chargingProfile"]["chargingProfilePurpose"] != "TxProfile" or connector_no is None:
                    return status(False)
                profile = profile_from(p["chargingProfile"], connector_no, cp.clock.now())
            return status(cp.remote_start(connector_no, p["idTag"], profile=profile))

        def remote_stop(p: dict[str, Any]) -> dict[str, Any]:
            tx = next((t for _, t in cp.transactions() if t.wire_id == p["transactionId"]), None)
            return status(cp.remote_stop(tx))

        def reserve_now(p: dict[str, Any]) -> dict[str, Any]:
            if p["connectorId"] == 0:
                return {"status": "Rejected"}  # ReserveConnectorZeroSupported is false
            return {
                "status": cp.reserve(
                    p["connectorId"], p["reservationId"], p["idTag"], parse_ts(p["expiryDate"])
                )
            }

        def cancel_reservation(p: dict[str, Any]) -> dict[str, Any]:
            return status(cp.cancel_reservation(p["reservationId"]))

        def change_availability(p: dict[str, Any]) -> dict[str, Any]:
            return {"status": cp.change_availability(p["connectorId"], p["type"] == "Operative")}

        def reset(p: dict[str, Any]) -> dict[str, Any]:
            return {"status": cp.reset(ResetKind.HARD if p["type"] == "Hard" else ResetKind.SOFT)}

        def trigger(p: dict[str, Any]) -> dict[str, Any]:
            word = p["requestedMessage"]
            if word in IDLE_STATUSES:  # no firmware update or diagnostics upload under way
                cp.follow_up((word, {"status": "Idle"}))
                return {"status": "Accepted"}
            what = TRIGGERS.get(word)
            if what is None:
                return {"status": "NotImplemented"}
            return {"status": cp.trigger(what, p.get("connectorId") or None)}

        def unlock(p: dict[str, Any]) -> dict[str, Any]:
            return {"status": UNLOCK[cp.unlock(p["connectorId"], stop_transaction=True)]}

        def set_profile(p: dict[str, Any]) -> dict[str, Any]:
            raw = p["csChargingProfiles"]
            profile = profile_from(raw, p["connectorId"], cp.clock.now())
            if profile.purpose is Purpose.TX:
                c = cp.connectors.get(p["connectorId"])
                tx = None if c is None else c.transaction
                if tx is None or ("transactionId" in raw and raw["transactionId"] != tx.wire_id):
                    return status(False)
                profile = replace(profile, transaction=tx.local_id)
            return status(cp.set_profile(profile))

        def clear_profile(p: dict[str, Any]) -> dict[str, Any]:
            purpose = p.get("chargingProfilePurpose")
            cleared = cp.clear_profiles(
                profile_id=p.get("id"),
                connector_no=p.get("connectorId"),
                purpose=None if purpose is None else PURPOSES[purpose],
                stack_level=p.get("stackLevel"),
            )
            return {"status": "Accepted" if cleared else "Unknown"}

        def composite(p: dict[str, Any]) -> dict[str, Any]:
            periods = cp.composite_schedule(p["connectorId"], p["duration"])
            if periods is None:
                return {"status": "Rejected"}
            unit = p.get("chargingRateUnit", cp.schedule_unit)
            phases = cp.phases(p["connectorId"])
            now = format_ts(cp.clock.now())
            return {
                "status": "Accepted",
                "connectorId": p["connectorId"],
                "scheduleStart": now,
                "chargingSchedule": {
                    "duration": p["duration"],
                    "startSchedule": now,
                    "chargingRateUnit": unit,
                    "chargingSchedulePeriod": [
                        {"startPeriod": offset, "limit": from_watts(w, unit, phases)} for offset, w in periods
                    ],
                },
            }

        def get_configuration(p: dict[str, Any]) -> dict[str, Any]:
            keys = p.get("key") or [s.key for s in cp.settings.definitions]
            known = [s for s in (cp.settings.has(BY_KEY.get(k)) for k in keys) if s is not None]
            out: dict[str, Any] = {
                "configurationKey": [
                    {"key": s.key, "readonly": s.readonly, "value": cp.settings.get(s.name)} for s in known
                ]
            }
            unknown = [k for k in keys if cp.settings.has(BY_KEY.get(k)) is None]
            if unknown:
                out["unknownKey"] = unknown
            return out

        def change_configuration(p: dict[str, Any]) -> dict[str, Any]:
            result = cp.change_setting(BY_KEY.get(p["key"]), p["value"])
            return {
                "status": {
                    SetResult.ACCEPTED: "Accepted",
                    SetResult.REJECTED: "Rejected",
                    SetResult.UNKNOWN: "NotSupported",
                }[result]
            }

        def send_local_list(p: dict[str, Any]) -> dict[str, Any]:
            entries = []
            for e in p.get("localAuthorizationList", []):
                info = e.get("idTagInfo")
                expiry = None if info is None or "expiryDate" not in info else parse_ts(info["expiryDate"])
                entries.append(
                    LocalEntry(
                        e["idTag"],
                        None if info is None else info["status"],
                        expiry,
                        None if info is None else info.get("parentIdTag"),
                    )
                )
            full = p["updateType"] == "Full"
            return {"status": cp.local_auth.apply(p["listVersion"], full, entries)}

        def get_local_list_version(p: dict[str, Any]) -> dict[str, Any]:
            return {"listVersion": cp.local_auth.version}

        def clear_cache(p: dict[str, Any]) -> dict[str, Any]:
            cp.local_auth.clear_cache()
            return status(True)

        def said_as(action: str) -> Callable[[str], Awaitable[None]]:
            async def say(word: str) -> None:
                await cp.send_message((action, {"status": word}))

            return say

        def update_firmware(p: dict[str, Any]) -> dict[str, Any]:
            say = said_as("FirmwareStatusNotification")
            transfer = file_transfer.update_firmware(cp, p["location"], say)
            cp.transfer_later(transfer, not_before=parse_ts(p["retrieveDate"]))
            return {}

        def get_diagnostics(p: dict[str, Any]) -> dict[str, Any]:
            say = said_as("DiagnosticsStatusNotification")
            cp.transfer_later(file_transfer.upload_log(cp, p["location"], say, failed="UploadFailed"))
            return {"fileName": f"{cp.cp_id}.log"}

        def certificate_signed(p: dict[str, Any]) -> dict[str, Any]:
            return status(cp.certificates.install(p["certificateChain"]))

        def install_certificate(p: dict[str, Any]) -> dict[str, Any]:
            use = read_use(p["certificateType"])
            return status(cp.certificates.install_root(use, p["certificate"]))

        def get_installed_certificate_ids(p: dict[str, Any]) -> dict[str, Any]:
            found = cp.certificates.root_ids([read_use(p["certificateType"])])
            if not found:
                return {"status": "NotFound"}
            return {"status": "Accepted", "certificateHashData": [h.said() for _, h in found]}

        def delete_certificate(p: dict[str, Any]) -> dict[str, Any]:
            found = cp.certificates.delete_root(CertificateHash.read(p["certificateHashData"]))
            return {"status": "Accepted" if found else "NotFound"}

        return {
            "SendLocalList": send_local_list,
            "GetLocalListVersion": get_local_list_version,
            "ClearCache": clear_cache,
            "UpdateFirmware": update_firmware,
            "GetDiagnostics": get_diagnostics,
            "CertificateSigned": certificate_signed,
            "InstallCertificate": install_certificate,
            "GetInstalledCertificateIds": get_installed_certificate_ids,
            "DeleteCertificate": delete_certificate,
            "RemoteStartTransaction": remote_start,
            "RemoteStopTransaction": remote_stop,
            "ReserveNow": reserve_now,
            "CancelReservation": cancel_reservation,
            "ChangeAvailability": change_availability,
            "Reset": reset,
            "TriggerMessage": trigger,
            "UnlockConnector": unlock,
            "SetChargingProfile": set_profile,
            "ClearChargingProfile": clear_profile,
            "GetCompositeSchedule": composite,
            "GetConfiguration": get_configuration,
            "ChangeConfiguration": change_configuration,
            "DataTransfer": unknown_vendor,
        }
