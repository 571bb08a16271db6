"""OCPP 1.6J actions a charger sends us, mapped onto the charging service."""

from __future__ import annotations

import logging
from typing import Any

from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import NotFound
from chargeshare.ocpp import V16
from chargeshare.ocpp import phases as ocpp_phases
from chargeshare.ocpp.boot_gate import GatedHandlers, gated
from chargeshare.ocpp.connection import CallRejected, Handler
from chargeshare.ocpp.csms_reports import handlers16
from chargeshare.ocpp.provisioning import boot_reply, heartbeat_reply
from chargeshare.ocpp.report_clock import ReportClock
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from chargeshare.services.charger_reports import ChargerReportsService
from chargeshare.services.charging import AuthStatus, ChargingService

log = logging.getLogger(__name__)

ENERGY_REGISTER = "Energy.Active.Import.Register"
MAX_REGISTER_WH = 10**15  # far beyond any real meter; a larger reading is garbage, not energy


def energy_register_wh(meter_value: list[dict[str, Any]]) -> int | None:
    """The latest Energy.Active.Import.Register reading in Wh (measurand defaults to it in 1.6)."""
    reading: int | None = None
    for mv in meter_value:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", ENERGY_REGISTER) != ENERGY_REGISTER or sv.get("phase"):
                continue
            try:
                value = float(sv["value"]) * (1000 if sv.get("unit", "Wh") == "kWh" else 1)
                if not 0 <= value <= MAX_REGISTER_WH:  # also refuses nan and inf
                    raise ValueError
            except (KeyError, ValueError):
                raise CallRejected(
                    "PropertyConstraintViolation", f"not an energy register: {sv.get('value')!r}"
                ) from None
            reading = round(value)
    return reading


def handlers(
    charging: ChargingService,
    cp_id: str,
    reports: ChargerReportsService,
    *,
    credentials: str | None = None,
) -> GatedHandlers:
    """Actions for one connected charger. An unregistered charger may talk but changes nothing.
    Its timestamps are placed on our clock by what this connection learns of its own
    (`ReportClock`); a start keeps its own stamp too, which names it when it is sent again."""
    clock = ReportClock.opened(charging.rules, charging.clock.now())
    seen = ocpp_phases.Seen(lambda no, n: reports.phases_seen(cp_id, no, n))

    def touch(fn: Any, *args: Any) -> None:
        try:
            fn(cp_id, *args)
        except NotFound:
            log.debug("charger %s is not registered; %s not stored", cp_id, fn.__name__)

    def boot(p: dict[str, Any]) -> dict[str, Any]:
        clock.booted(charging.clock.now())
        return boot_reply(charging, cp_id, V16)

    def heartbeat(p: dict[str, Any]) -> dict[str, Any]:
        return heartbeat_reply(charging, cp_id)

    def status(p: dict[str, Any]) -> dict[str, Any]:
        at = None  # optional in 1.6
        if "timestamp" in p:
            at = clock.status(parse_ts(p["timestamp"]), charging.clock.now())
        touch(charging.status, p["connectorId"], ConnectorStatus(p["status"]), at)
        return {}

    def authorize(p: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = charging.authorization(cp_id, p["idTag"])
        except NotFound:
            return {"idTagInfo": {"status": AuthStatus.INVALID.value}}
        info: dict[str, Any] = {"status": answer.status.value}
        if answer.group_id is not None:
            info["parentIdTag"] = answer.group_id
        if answer.expires_at is not None:
            info["expiryDate"] = format_ts(answer.expires_at)
        return {"idTagInfo": info}

    def register(wh: int) -> int:
        if not 0 <= wh <= MAX_REGISTER_WH:
            raise CallRejected("PropertyConstraintViolation", f"not an energy register: {wh}")
        return wh

    def start(p: dict[str, Any]) -> dict[str, Any]:
        register(p["meterStart"])
        try:
            stamp = parse_ts(p["timestamp"])
            placed = clock.transaction(stamp, charging.clock.now())
            r = charging.start(
                cp_id,
                p["connectorId"],
                p["idTag"],
                p["meterStart"],
                stamp,
                placed_at=placed,
                clock_known=clock.known,
            )
        except NotFound:
            return {"transactionId": 0, "idTagInfo": {"status": "Invalid"}}
        return {"transactionId": r.transaction_id, "idTagInfo": {"status": r.status.value}}

    def meter_values(p: dict[str, Any]) -> dict[str, Any]:
        register = energy_register_wh(p["meterValue"])
        tx = p.get("transactionId")
        if tx is not None and register is not None:
            touch(charging.meter, tx, register)
        seen.frame(p["meterValue"], lambda: int(p["connectorId"]))  # 0, the main meter: no connector
        return {}

    def stop(p: dict[str, Any]) -> dict[str, Any]:
        meter_stop = register(p["meterStop"])
        # meterStart and meterStop are required in 1.6: a 1.6 session is always measured.
        stamp = parse_ts(p["timestamp"])
        placed = clock.transaction(stamp, charging.clock.now())
        verdict = charging.stop(
            cp_id, p["transactionId"], meter_stop, stamp, start_read=True, placed_at=placed
        )
        return {"idTagInfo": {"status": verdict.value}}

    table: dict[str, Handler] = {
        "BootNotification": boot,
        "Heartbeat": heartbeat,
        "StatusNotification": status,
        "Authorize": authorize,
        "StartTransaction": start,
        "MeterValues": meter_values,
        "StopTransaction": stop,
        **handlers16(reports, cp_id, credentials),
    }
    return gated(charging, cp_id, reports, table)
