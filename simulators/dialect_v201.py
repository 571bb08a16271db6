"""OCPP 2.0.1 as the virtual charger speaks it: one EVSE per connector (each with connector 1),
transactions as TransactionEvent Started/Updated/Ended with the charger's own string id and a seqNo,
configuration as components and variables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chargeshare.ocpp import OcppVersion
from chargeshare.ocpp.commands import CertificateHash, CertificateUse
from chargeshare.ocpp.connection import CallRejected, Handler, Outcome
from chargeshare.ocpp.provisioning import unknown_vendor
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from simulators import file_transfer, station_v201
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
from simulators.evse_model_v201 import CONNECTOR_ID, CONNECTOR_STATUS, at_evse, evse_variables, names
from simulators.firmware import ConnectorState
from simulators.local_auth import LocalEntry
from simulators.settings import BY_COMPONENT_VARIABLE, SetResult
from simulators.smart_charging import Kind, Period, Profile, Purpose, from_watts

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort

ENERGY = "Energy.Active.Import.Register"
TOKEN_TYPE = "ISO14443"  # RFID cards
BOOT_REASONS = {
    BootReason.POWER_UP: "PowerUp",
    BootReason.REMOTE_RESET: "RemoteReset",
    BootReason.TRIGGERED: "Triggered",
}
CHARGING_STATE = {
    ConnectorState.CHARGING: "Charging",
    ConnectorState.SUSPENDED_EV: "SuspendedEV",
    ConnectorState.SUSPENDED_EVSE: "SuspendedEVSE",
}
# (triggerReason, stoppedReason) of an Ended event.
ENDINGS = {
    StopReason.EV_DISCONNECTED: ("EVCommunicationLost", "EVDisconnected"),
    StopReason.REMOTE: ("RemoteStop", "Remote"),
    StopReason.LOCAL: ("StopAuthorized", "Local"),
    StopReason.REBOOT: ("AbnormalCondition", "Reboot"),
    StopReason.HARD_RESET: ("ResetCommand", "ImmediateReset"),
    StopReason.SOFT_RESET: ("ResetCommand", "ImmediateReset"),
    StopReason.IMMEDIATE_RESET: ("ResetCommand", "ImmediateReset"),
    StopReason.UNLOCK: ("UnlockCommand", "Other"),
    StopReason.DEAUTHORIZED: ("Deauthorized", "DeAuthorized"),
}
PURPOSES = {
    "ChargingStationMaxProfile": Purpose.CHARGER_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
TRIGGERS = {
    "BootNotification": Requested.BOOT,
    "Heartbeat": Requested.HEARTBEAT,
    "StatusNotification": Requested.STATUS,
    "MeterValues": Requested.METER_VALUES,
    "TransactionEvent": Requested.TRANSACTION_EVENT,
}
SOCKET = "sType2"  # every connector's type (ConnectorEnumType)
IDLE_STATUSES = ("FirmwareStatusNotification", "LogStatusNotification")
UNLOCK = {
    Unlock.UNLOCKED: "Unlocked",
    Unlock.FAILED: "UnlockFailed",
    Unlock.UNKNOWN_CONNECTOR: "UnknownConnector",
    Unlock.ONGOING_TRANSACTION: "OngoingAuthorizedTransaction",
}
SET_RESULT = {
    SetResult.ACCEPTED: "Accepted",
    SetResult.REJECTED: "Rejected",
    SetResult.UNKNOWN: "UnknownVariable",
}


def id_token(id_tag: str) -> dict[str, Any]:
    return {"idToken": id_tag, "type": TOKEN_TYPE}


def _readings(register_wh: int, power_w: int | None, ts: str, context: str) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = [
        {"value": register_wh, "context": context, "measurand": ENERGY, "unitOfMeasure": {"unit": "Wh"}}
    ]
    if power_w is not None:
        values.append(
            {
                "value": power_w,
                "context": context,
                "measurand": "Power.Active.Import",
                "unitOfMeasure": {"unit": "W"},
            }
        )
    return [{"timestamp": ts, "sampledValue": values}]


def profile_from(p: dict[str, Any], evse_id: int, set_at: Any) -> Profile:
    schedule = p["chargingSchedule"][0]  # one schedule per profile (more only for ISO 15118)
    return Profile(
        profile_id=p["id"],
        connector_no=evse_id,
        stack_level=p["stackLevel"],
        purpose=PURPOSES.get(p["chargingProfilePurpose"], Purpose.CHARGER_MAX),
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
        transaction=p.get("transactionId"),
    )


class V201:
    version = OcppVersion.V201
    subprotocol = "ocpp2.0.1"
    transaction_actions = frozenset({"TransactionEvent"})
    ends_refused_start = True

    # ---- what the charger sends ----------------------------------------------------------------
    def boot(self, reason: BootReason, firmware: str = FIRMWARE) -> Message:
        return "BootNotification", {
            "reason": BOOT_REASONS[reason],
            "chargingStation": {
                "vendorName": "ChargeShare",
                "model": "Virtual-1",
                "firmwareVersion": firmware,
            },
        }

    def read_boot(self, payload: dict[str, Any]) -> tuple[str, int]:
        return str(payload["status"]), int(payload["interval"])

    def heartbeat(self) -> Message:
        return "Heartbeat", {}

    def status(self, c: VirtualConnector, ts: str) -> Message:
        return "StatusNotification", {
            "timestamp": ts,
            "connectorStatus": CONNECTOR_STATUS[c.state],
            "evseId": c.no,
            "connectorId": CONNECTOR_ID,
        }

    def authorize(self, id_tag: str) -> Message:
        return "Authorize", {"idToken": id_token(id_tag)}

    def id_status(self, payload: dict[str, Any]) -> str:
        return str(payload["idTokenInfo"]["status"])

    def _event(
        self, kind: str, c: VirtualConnector, tx: Transaction, ts: str, trigger: str, info: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "eventType": kind,
            "timestamp": ts,
            "triggerReason": trigger,
            "seqNo": tx.next_seq(),
            "transactionInfo": {"transactionId": tx.local_id, **info},
            "evse": {"id": c.no, "connectorId": CONNECTOR_ID},
        }

    def started(self, c: VirtualConnector, tx: Transaction, ts: str, reservation_id: int | None) -> Message:
        remote = tx.remote_start_id is not None
        info: dict[str, Any] = {"chargingState": "Charging"}
        if remote:
            info["remoteStartId"] = tx.remote_start_id
        payload = self._event("Started", c, tx, ts, "RemoteStart" if remote else "Authorized", info)
        payload["idToken"] = id_token(tx.id_tag)
        payload["meterValue"] = _readings(tx.meter_start, None, ts, "Transaction.Begin")
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return "TransactionEvent", payload

    def start_accepted(self, tx: Transaction, outcome: Outcome) -> bool:
        tx.wire_id = tx.local_id  # ours from the moment it was announced
        if not outcome.ok or outcome.payload is None:
            return False
        info = outcome.payload.get("idTokenInfo")
        return info is None or info.get("status") == "Accepted"

    def meter(self, c: VirtualConnector, tx: Transaction, ts: str, power_w: int) -> Message:
        payload = self._event(
            "Updated",
            c,
            tx,
            ts,
            "MeterValuePeriodic",
            {"chargingState": CHARGING_STATE.get(c.state, "EVConnected")},
        )
        payload["meterValue"] = _readings(c.meter.register_wh, power_w, ts, "Sample.Periodic")
        return "TransactionEvent", payload

    def triggered_meter(self, c: VirtualConnector, tx: Transaction | None, ts: str, power_w: int) -> Message:
        readings = _readings(c.meter.register_wh, power_w, ts, "Trigger")
        if tx is None:
            return "MeterValues", {"evseId": c.no, "meterValue": readings}
        payload = self._event(
            "Updated", c, tx, ts, "Trigger", {"chargingState": CHARGING_STATE.get(c.state, "EVConnected")}
        )
        payload["meterValue"] = readings
        return "TransactionEvent", payload

    def charging_state_changed(self, c: VirtualConnector, tx: Transaction, ts: str) -> Message | None:
        return "TransactionEvent", self._event(
            "Updated",
            c,
            tx,
            ts,
            "ChargingStateChanged",
            {"chargingState": CHARGING_STATE.get(c.state, "EVConnected")},
        )

    def ended(self, c: VirtualConnector, tx: Transaction, ts: str, reason: StopReason) -> Message:
        trigger, stopped = ENDINGS[reason]
        plugged = c.plugged is not None and reason is not StopReason.EV_DISCONNECTED
        payload = self._event(
            "Ended",
            c,
            tx,
            ts,
            trigger,
            {"stoppedReason": stopped, "chargingState": "EVConnected" if plugged else "Idle"},
        )
        payload["meterValue"] = _readings(c.meter.register_wh, None, ts, "Transaction.End")
        return "TransactionEvent", payload

    def reservation_expired(self, reservation_id: int) -> Message | None:
        return "ReservationStatusUpdate", {
            "reservationId": reservation_id,
            "reservationUpdateStatus": "Expired",
        }

    def mark_offline(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "offline": True} if action == "TransactionEvent" else payload

    def bad_meter_values(self) -> dict[str, Any]:
        return {"evseId": "one", "meterValue": [{"timestamp": "soon", "sampledValue": []}]}

    def refusal(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action == "UnlockConnector":
            return {"status": "UnlockFailed"}
        if action == "ClearChargingProfile":
            return {"status": "Unknown"}
        if action == "GetVariables":
            return {
                "getVariableResult": [
                    {"attributeStatus": "Rejected", "component": d["component"], "variable": d["variable"]}
                    for d in payload["getVariableData"]
                ]
            }
        if action == "SetVariables":
            return {
                "setVariableResult": [
                    {"attributeStatus": "Rejected", "component": d["component"], "variable": d["variable"]}
                    for d in payload["setVariableData"]
                ]
            }
        return status_refusal(action, self.version)

    # ---- what the CSMS asks --------------------------------------------------------------------
    def handlers(self, cp: ChargerPort) -> dict[str, Handler]:
        def status(ok: bool) -> dict[str, Any]:
            return {"status": "Accepted" if ok else "Rejected"}

        def request_start(p: dict[str, Any]) -> dict[str, Any]:
            evse_id = p.get("evseId")
            profile = None
            if "chargingProfile" in p:
                if p["chargingProfile"]["chargingProfilePurpose"] != "TxProfile" or evse_id is None:
                    return status(False)
                profile = profile_from(p["chargingProfile"], evse_id, cp.clock.now())
            ok = cp.remote_start(
                evse_id, p["idToken"]["idToken"], remote_start_id=p["remoteStartId"], profile=profile
            )
            return status(ok)

        def request_stop(p: dict[str, Any]) -> dict[str, Any]:
            tx = next((t for _, t in cp.transactions() if t.local_id == p["transactionId"]), None)
            return status(cp.remote_stop(tx))

        def inventory() -> list[tuple[dict[str, Any], bool]]:
            """Every variable it can report, as its ReportDataType, and whether it is read-only: the
            station's settings, then each EVSE's own component."""
            found: list[tuple[dict[str, Any], bool]] = [
                (
                    {
                        "component": {"name": s.component},
                        "variable": {"name": s.variable},
                        "variableAttribute": [
                            {
                                "type": "Actual",
                                "value": cp.settings.get(s.name),
                                "mutability": "ReadOnly" if s.readonly else "ReadWrite",
                            }
                        ],
                    },
                    s.readonly,
                )
                for s in cp.settings.definitions
            ]
            for c in cp.connectors.values():
                for name, v in evse_variables(cp, c).items():
                    data = {
                        "component": {"name": "EVSE", "evse": {"id": c.no}},
                        "variable": {"name": name},
                        "variableAttribute": [{"type": "Actual", "value": v.value, "mutability": "ReadOnly"}],
                        "variableCharacteristics": v.characteristics,
                    }
                    found.append((data, True))
            return found

        def report(request_id: int, data: list[dict[str, Any]]) -> None:
            body = {"requestId": request_id, "generatedAt": cp.timestamp(), "seqNo": 0, "tbc": False}
            cp.follow_up(("NotifyReport", {**body, "reportData": data}))

        def get_base_report(p: dict[str, Any]) -> dict[str, Any]:
            if p["reportBase"] == "SummaryInventory":
                return {"status": "NotSupported"}
            full = p["reportBase"] == "FullInventory"
            report(p["requestId"], [d for d, readonly in inventory() if full or not readonly])
            return {"status": "Accepted"}

        def get_report(p: dict[str, Any]) -> dict[str, Any]:
            wanted = p.get("componentVariable", [])
            criteria = set(p.get("componentCriteria", []))
            chosen = [
                d
                for d, _ in inventory()
                if (not wanted or any(names(w, d["component"], d["variable"]["name"]) for w in wanted))
                # Every component here is active, available and enabled, and none has a problem.
                and (not criteria or bool(criteria - {"Problem"}))
            ]
            if not chosen:
                return {"status": "EmptyResultSet"}
            report(p["requestId"], chosen)
            return {"status": "Accepted"}

        def said_as(action: str, request_id: int) -> Callable[[str], Awaitable[None]]:
            async def say(word: str) -> None:
                await cp.send_message((action, {"status": word, "requestId": request_id}))

            return say

        def update_firmware(p: dict[str, Any]) -> dict[str, Any]:
            firmware = p["firmware"]
            if "signature" in firmware:
                return {"status": "Rejected"}  # it cannot check a signature: it takes unsigned images only
            say = said_as("FirmwareStatusNotification", p["requestId"])
            retrieve_at = parse_ts(firmware["retrieveDateTime"])
            cp.transfer_later(
                file_transfer.update_firmware(cp, firmware["location"], say), not_before=retrieve_at
            )
            return {"status": "Accepted"}

        def get_log(p: dict[str, Any]) -> dict[str, Any]:
            if p["logType"] != "DiagnosticsLog":
                return {"status": "Rejected"}  # it keeps no security log
            say = said_as("LogStatusNotification", p["requestId"])
            cp.transfer_later(
                file_transfer.upload_log(cp, p["log"]["remoteLocation"], say, failed="UploadFailure")
            )
            return {"status": "Accepted", "filename": f"{cp.cp_id}.log"}

        def get_transaction_status(p: dict[str, Any]) -> dict[str, Any]:
            named = p.get("transactionId")
            queued = [
                q
                for q in cp.queue
                if q.action == "TransactionEvent"
                and named in (None, q.payload["transactionInfo"]["transactionId"])
            ]
            answer: dict[str, Any] = {"messagesInQueue": bool(queued)}
            if named is not None:
                answer["ongoingIndicator"] = any(t.local_id == named for _, t in cp.transactions())
            return answer

        def reserve_now(p: dict[str, Any]) -> dict[str, Any]:
            if p.get("connectorType", SOCKET) != SOCKET:
                return {"status": "Rejected"}  # a home charger: Type 2 sockets only
            return {
                "status": cp.reserve(
                    p.get("evseId"), p["id"], p["idToken"]["idToken"], parse_ts(p["expiryDateTime"])
                )
            }

        def cancel_reservation(p: dict[str, Any]) -> dict[str, Any]:
            return status(cp.cancel_reservation(p["reservationId"]))

        def change_availability(p: dict[str, Any]) -> dict[str, Any]:
            evse = p.get("evse")
            if evse is not None and evse.get("connectorId", CONNECTOR_ID) != CONNECTOR_ID:
                return status(False)
            return {
                "status": cp.change_availability(
                    0 if evse is None else evse["id"], p["operationalStatus"] == "Operative"
                )
            }

        def reset(p: dict[str, Any]) -> dict[str, Any]:
            if p.get("evseId") is not None:
                return status(False)  # only the whole station resets
            return {
                "status": cp.reset(ResetKind.IMMEDIATE if p["type"] == "Immediate" else ResetKind.ON_IDLE)
            }

        def trigger(p: dict[str, Any]) -> dict[str, Any]:
            word = p["requestedMessage"]
            if word in IDLE_STATUSES:  # no firmware update or log upload under way
                cp.follow_up((word, {"status": "Idle"}))
                return {"status": "Accepted"}
            if word == "SignChargingStationCertificate":
                cp.renew_later()
                return {"status": "Accepted"}
            what = TRIGGERS.get(word)
            if what is None:
                return {"status": "NotImplemented"}
            if what is Requested.BOOT and cp.boot_accepted:
                return status(False)  # 2.0.1: no triggered BootNotification once registered
            evse = p.get("evse")
            return {"status": cp.trigger(what, None if evse is None else evse["id"])}

        def unlock(p: dict[str, Any]) -> dict[str, Any]:
            if p["connectorId"] != CONNECTOR_ID:
                return {"status": UNLOCK[Unlock.UNKNOWN_CONNECTOR]}
            return {"status": UNLOCK[cp.unlock(p["evseId"], stop_transaction=False)]}

        def set_profile(p: dict[str, Any]) -> dict[str, Any]:
            raw = p["chargingProfile"]
            if raw["chargingProfilePurpose"] not in PURPOSES:
                return status(False)  # external constraints are the CSMS's to set, not ours to obey
            profile = profile_from(raw, p["evseId"], cp.clock.now())
            if profile.purpose is Purpose.TX:
                c = cp.connectors.get(p["evseId"])
                tx = None if c is None else c.transaction
                if tx is None or (profile.transaction is not None and profile.transaction != tx.local_id):
                    return status(False)
                profile = replace(profile, transaction=tx.local_id)
            return status(cp.set_profile(profile))

        def clear_profile(p: dict[str, Any]) -> dict[str, Any]:
            criteria = p.get("chargingProfileCriteria", {})
            purpose = criteria.get("chargingProfilePurpose")
            if purpose is not None and purpose not in PURPOSES:
                return {"status": "Unknown"}
            cleared = cp.clear_profiles(
                profile_id=p.get("chargingProfileId"),
                connector_no=criteria.get("evseId"),
                purpose=None if purpose is None else PURPOSES[purpose],
                stack_level=criteria.get("stackLevel"),
            )
            return {"status": "Accepted" if cleared else "Unknown"}

        def composite(p: dict[str, Any]) -> dict[str, Any]:
            periods = cp.composite_schedule(p["evseId"], p["duration"])
            if periods is None:
                return {"status": "Rejected"}
            unit = p.get("chargingRateUnit", cp.schedule_unit)
            phases = cp.phases(p["evseId"])
            return {
                "status": "Accepted",
                "schedule": {
                    "evseId": p["evseId"],
                    "duration": p["duration"],
                    "scheduleStart": format_ts(cp.clock.now()),
                    "chargingRateUnit": unit,
                    "chargingSchedulePeriod": [
                        {"startPeriod": offset, "limit": from_watts(w, unit, phases)} for offset, w in periods
                    ],
                },
            }

        def lookup(d: dict[str, Any]) -> tuple[str | None, Any]:
            """(error attributeStatus or None, the setting)."""
            if d.get("attributeType", "Actual") != "Actual":
                return "NotSupportedAttributeType", None
            if d["component"]["name"] not in {s.component for s in cp.settings.definitions}:
                return "UnknownComponent", None
            setting = cp.settings.has(
                BY_COMPONENT_VARIABLE.get((d["component"]["name"], d["variable"]["name"]))
            )
            return (None, setting) if setting is not None else ("UnknownVariable", None)

        def at_most_per_message(items: list[Any], action: str) -> None:
            most = int(cp.settings.get("items_per_message"))
            if len(items) > most:
                raise CallRejected(
                    "OccurrenceConstraintViolation", f"{action} takes at most {most} items (ItemsPerMessage)"
                )

        def evse_value(d: dict[str, Any]) -> tuple[str | None, str | None]:
            """(error attributeStatus or None, the value) of a component at an EVSE."""
            if d.get("attributeType", "Actual") != "Actual":
                return "NotSupportedAttributeType", None
            error, found = at_evse(cp, d["component"], d["variable"]["name"])
            return error, None if found is None else found.value

        def get_variables(p: dict[str, Any]) -> dict[str, Any]:
            at_most_per_message(p["getVariableData"], "GetVariables")
            results = []
            for d in p["getVariableData"]:
                result: dict[str, Any] = {"component": d["component"], "variable": d["variable"]}
                # A component named with an EVSE is the one at that EVSE; without one, the station's.
                if d["component"].get("evse") is not None:
                    error, value = evse_value(d)
                else:
                    error, setting = lookup(d)
                    value = None if setting is None else cp.settings.get(setting.name)
                if error is not None:
                    result["attributeStatus"] = error
                else:
                    result["attributeStatus"] = "Accepted"
                    result["attributeValue"] = value
                results.append(result)
            return {"getVariableResult": results}

        def set_variables(p: dict[str, Any]) -> dict[str, Any]:
            at_most_per_message(p["setVariableData"], "SetVariables")
            results = []
            for d in p["setVariableData"]:
                if d["component"].get("evse") is not None:
                    # An EVSE's own variables say how it is built: read-only.
                    verdict = evse_value(d)[0] or "Rejected"
                else:
                    error, setting = lookup(d)
                    verdict = error or SET_RESULT[cp.change_setting(setting, d["attributeValue"])]
                results.append(
                    {"attributeStatus": verdict, "component": d["component"], "variable": d["variable"]}
                )
            return {"setVariableResult": results}

        def send_local_list(p: dict[str, Any]) -> dict[str, Any]:
            entries = []
            for e in p.get("localAuthorizationList", []):
                info = e.get("idTokenInfo")
                expiry = info.get("cacheExpiryDateTime") if info is not None else None
                group = info.get("groupIdToken") if info is not None else None
                entries.append(
                    LocalEntry(
                        e["idToken"]["idToken"],
                        None if info is None else info["status"],
                        None if expiry is None else parse_ts(expiry),
                        None if group is None else group["idToken"],
                    )
                )
            full = p["updateType"] == "Full"
            return {"status": cp.local_auth.apply(p["versionNumber"], full, entries)}

        def get_local_list_version(p: dict[str, Any]) -> dict[str, Any]:
            return {"versionNumber": cp.local_auth.version}

        def clear_cache(p: dict[str, Any]) -> dict[str, Any]:
            cp.local_auth.clear_cache()
            return status(True)

        def certificate_signed(p: dict[str, Any]) -> dict[str, Any]:
            return status(cp.certificates.install(p["certificateChain"]))

        def install_certificate(p: dict[str, Any]) -> dict[str, Any]:
            use = CertificateUse(p["certificateType"])
            return status(cp.certificates.install_root(use, p["certificate"]))

        def get_installed_certificate_ids(p: dict[str, Any]) -> dict[str, Any]:
            found = cp.certificates.root_ids([CertificateUse(u) for u in p.get("certificateType", [])])
            if not found:
                return {"status": "NotFound"}
            chain = [{"certificateType": u.value, "certificateHashData": h.said()} for u, h in found]
            return {"status": "Accepted", "certificateHashDataChain": chain}

        def delete_certificate(p: dict[str, Any]) -> dict[str, Any]:
            found = cp.certificates.delete_root(CertificateHash.read(p["certificateHashData"]))
            return {"status": "Accepted" if found else "NotFound"}

        return {
            "SendLocalList": send_local_list,
            "GetLocalListVersion": get_local_list_version,
            "ClearCache": clear_cache,
            "UpdateFirmware": update_firmware,
            "GetLog": get_log,
            "CertificateSigned": certificate_signed,
            "InstallCertificate": install_certificate,
            "GetInstalledCertificateIds": get_installed_certificate_ids,
            "DeleteCertificate": delete_certificate,
            "RequestStartTransaction": request_start,
            "RequestStopTransaction": request_stop,
            "GetTransactionStatus": get_transaction_status,
            "GetBaseReport": get_base_report,
            "GetReport": get_report,
            "ReserveNow": reserve_now,
            "CancelReservation": cancel_reservation,
            "ChangeAvailability": change_availability,
            "Reset": reset,
            "TriggerMessage": trigger,
            "UnlockConnector": unlock,
            "SetChargingProfile": set_profile,
            "ClearChargingProfile": clear_profile,
            "GetCompositeSchedule": composite,
            "GetVariables": get_variables,
            "SetVariables": set_variables,
            "DataTransfer": unknown_vendor,
            **station_v201.handlers(cp),
        }
