"""What a charger tells us about itself, in OCPP 1.6 (with the security extension) and 2.0.1 (2.1
alike: `handlers201` serves both): firmware, log and diagnostics status, security events,
certificate requests, device-model and monitoring reports, charging limits, EV charging needs,
display messages, customer data, reservation updates and vendor DataTransfer. Each is kept for
operators (services/charger_reports.py) and answered honestly: there is no certificate authority,
OCSP responder or contract-certificate service here yet, so requests for them are refused, saying
why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.timestamps import parse_ts
from chargeshare.services.charger_reports import ChargerReportsService

NO_CONTRACT_SERVICE = {
    "reasonCode": "NotSupported",
    "additionalInfo": "no contract certificate service (ISO 15118 Plug & Charge) is connected",
}
NO_OCSP = {
    "reasonCode": "NotSupported",
    "additionalInfo": "no OCSP responder is configured, so certificate status cannot be checked",
}

Summary = Callable[[dict[str, Any]], str]


def _status(p: dict[str, Any]) -> str:
    request = p.get("requestId")
    return p["status"] if request is None else f"{p['status']} (request {request})"


def _kept(
    reports: ChargerReportsService, cp_id: str, action: str, summary: Summary, stamp: str = ""
) -> Handler:
    """A handler that keeps the message and answers with an empty confirmation. `stamp`: the
    payload field holding the charger's own time for it, if any."""

    def handle(p: dict[str, Any]) -> dict[str, Any]:
        at = parse_ts(p[stamp]) if stamp and stamp in p else None
        reports.record(cp_id, action, summary(p), p, reported_at=at)
        return {}

    return handle


def _security_event(reports: ChargerReportsService, cp_id: str) -> Handler:
    def handle(p: dict[str, Any]) -> dict[str, Any]:
        reports.security_event(cp_id, p["type"], p.get("techInfo", ""), parse_ts(p["timestamp"]))
        return {}

    return handle


def _data_transfer(reports: ChargerReportsService, cp_id: str, *, text_only: bool) -> Handler:
    """Vendor DataTransfer through the hook registered for its vendorId. 1.6 carries data as text,
    so a hook's structured answer is sent as JSON text there."""

    def handle(p: dict[str, Any]) -> dict[str, Any]:
        answer = reports.data_transfer(cp_id, p["vendorId"], p.get("messageId"), p.get("data"))
        reply: dict[str, Any] = {"status": answer.status}
        if answer.data is not None:
            reply["data"] = (
                json.dumps(answer.data) if text_only and not isinstance(answer.data, str) else answer.data
            )
        return reply

    return handle


def _common(reports: ChargerReportsService, cp_id: str, *, text_only: bool) -> dict[str, Handler]:
    """Actions both versions have, with the same meaning."""
    return {
        "SecurityEventNotification": _security_event(reports, cp_id),
        "FirmwareStatusNotification": _kept(reports, cp_id, "FirmwareStatusNotification", _status),
        "LogStatusNotification": _kept(reports, cp_id, "LogStatusNotification", _status),
        "DataTransfer": _data_transfer(reports, cp_id, text_only=text_only),
    }


def handlers16(
    reports: ChargerReportsService, cp_id: str, credentials: str | None = None
) -> dict[str, Handler]:
    def sign_certificate(p: dict[str, Any]) -> dict[str, Any]:
        answer = reports.sign_certificate(cp_id, p["csr"], None, p, credentials=credentials)
        return {"status": "Accepted" if answer.accepted else "Rejected"}

    return {
        **_common(reports, cp_id, text_only=True),
        "SignedFirmwareStatusNotification": _kept(
            reports, cp_id, "SignedFirmwareStatusNotification", _status
        ),
        "DiagnosticsStatusNotification": _kept(reports, cp_id, "DiagnosticsStatusNotification", _status),
        "SignCertificate": sign_certificate,
    }


def handlers201(
    reports: ChargerReportsService, cp_id: str, credentials: str | None = None
) -> dict[str, Handler]:
    def kept(action: str, summary: Summary, stamp: str = "") -> Handler:
        return _kept(reports, cp_id, action, summary, stamp)

    def reservation_status(p: dict[str, Any]) -> dict[str, Any]:
        reports.reservation_ended(cp_id, p["reservationId"], p["reservationUpdateStatus"], p)
        return {}

    def ev_charging_needs(p: dict[str, Any]) -> dict[str, Any]:
        needs = p["chargingNeeds"]
        reports.record(
            cp_id, "NotifyEVChargingNeeds", f"EVSE {p['evseId']}: {needs['requestedEnergyTransfer']}", p
        )
        # Accepted says the needs were taken in, not that a schedule will meet them.
        return {"status": "Accepted"}

    def ev_charging_schedule(p: dict[str, Any]) -> dict[str, Any]:
        reports.record(
            cp_id, "NotifyEVChargingSchedule", f"EVSE {p['evseId']}", p, reported_at=parse_ts(p["timeBase"])
        )
        return {"status": "Accepted"}  # we set no limits of our own for the car's plan to break

    def sign_certificate(p: dict[str, Any]) -> dict[str, Any]:
        answer = reports.sign_certificate(
            cp_id, p["csr"], p.get("certificateType"), p, credentials=credentials
        )
        if answer.accepted:
            return {"status": "Accepted"}
        return {
            "status": "Rejected",
            "statusInfo": {"reasonCode": answer.code, "additionalInfo": answer.reason[:512]},
        }

    def ev_certificate(p: dict[str, Any]) -> dict[str, Any]:
        reports.record(cp_id, "Get15118EVCertificate", f"{p['action']} failed: no contract service", p)
        return {"status": "Failed", "exiResponse": "", "statusInfo": NO_CONTRACT_SERVICE}

    def certificate_status(p: dict[str, Any]) -> dict[str, Any]:
        reports.record(cp_id, "GetCertificateStatus", "failed: no OCSP responder", p)
        return {"status": "Failed", "statusInfo": NO_OCSP}

    return {
        **_common(reports, cp_id, text_only=False),
        "ReservationStatusUpdate": reservation_status,
        "NotifyReport": kept("NotifyReport", _report_part, "generatedAt"),
        "NotifyMonitoringReport": kept("NotifyMonitoringReport", _monitoring_part, "generatedAt"),
        "NotifyCustomerInformation": kept("NotifyCustomerInformation", _customer_part, "generatedAt"),
        "NotifyDisplayMessages": kept("NotifyDisplayMessages", _display_part),
        "ReportChargingProfiles": kept("ReportChargingProfiles", _profiles),
        "NotifyChargingLimit": kept("NotifyChargingLimit", _limit),
        "ClearedChargingLimit": kept("ClearedChargingLimit", _limit_cleared),
        "NotifyEVChargingNeeds": ev_charging_needs,
        "NotifyEVChargingSchedule": ev_charging_schedule,
        "PublishFirmwareStatusNotification": kept("PublishFirmwareStatusNotification", _status),
        "SignCertificate": sign_certificate,
        "Get15118EVCertificate": ev_certificate,
        "GetCertificateStatus": certificate_status,
    }


def _part(p: dict[str, Any], what: str) -> str:
    part = f" part {p['seqNo']}" if "seqNo" in p else ""
    more = ", more to come" if p.get("tbc") else ""
    return f"request {p['requestId']}{part}: {what}{more}"


def _report_part(p: dict[str, Any]) -> str:
    return _part(p, f"{len(p.get('reportData', []))} variables")


def _monitoring_part(p: dict[str, Any]) -> str:
    return _part(p, f"{len(p.get('monitor', []))} monitored variables")


def _customer_part(p: dict[str, Any]) -> str:
    return _part(p, f"{len(p['data'])} characters of customer data")


def _display_part(p: dict[str, Any]) -> str:
    return _part(p, f"{len(p.get('messageInfo', []))} display messages")


def _where(p: dict[str, Any]) -> str:
    evse = p.get("evseId")
    return "the whole charger" if evse is None else f"EVSE {evse}"


def _profiles(p: dict[str, Any]) -> str:
    return f"{len(p['chargingProfile'])} {p['chargingLimitSource']} profiles on {_where(p)}"


def _limit(p: dict[str, Any]) -> str:
    limit = p["chargingLimit"]
    critical = " (grid critical)" if limit.get("isGridCritical") else ""
    return f"{limit['chargingLimitSource']} limit on {_where(p)}{critical}"


def _limit_cleared(p: dict[str, Any]) -> str:
    return f"{p['chargingLimitSource']} limit lifted on {_where(p)}"
