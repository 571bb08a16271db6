"""OCPP 2.0.1 (and 2.1) actions a charger sends us, mapped onto the same charging service as 1.6.

Our model has one connector per EVSE: a 2.0.1 `evseId` is our connector number. The charger names
its own transactions (a string); the first event that carries an idToken opens our session and maps
that string onto it durably. Every TransactionEvent is idempotent: a seqNo already applied changes
nothing, a meter register only moves up, and a stopped session ignores later events, so duplicates,
retries and offline replays (offline=true, old timestamps) never count energy or money twice.

A 2.1 charger is served by these same handlers (`version="2.1"`, so its boot records it): every
field they read means the same in 2.1. What 2.1 adds to them is optional and left unread: a
TransactionEvent's `costDetails` (the charger's own cost, where it calculates one: we bill from the
meter), `preconditioningStatus`, `evseSleep`, `transactionInfo.operationMode`/`transactionLimit`/
`tariffId`, and new triggerReason and measurand words (only Energy.Active.Import.Register bills).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import NotFound
from chargeshare.domain.tokens import token_key
from chargeshare.failpoints import failpoint
from chargeshare.ocpp import V201, OcppVersion
from chargeshare.ocpp import phases as ocpp_phases
from chargeshare.ocpp.boot_gate import GatedHandlers, gated
from chargeshare.ocpp.connection import CallRejected, Handler
from chargeshare.ocpp.csms_reports import handlers201
from chargeshare.ocpp.csms_v16 import ENERGY_REGISTER, MAX_REGISTER_WH
from chargeshare.ocpp.provisioning import boot_reply, heartbeat_reply
from chargeshare.ocpp.report_clock import ReportClock
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from chargeshare.services.charger_reports import ChargerReportsService
from chargeshare.services.charging import AuthStatus, ChargingService

log = logging.getLogger(__name__)

# V2G (OCPP 2.1): what the car gave back is its own register, credited apart from what it drew.
EXPORT_REGISTER = "Energy.Active.Export.Register"
SOC = "SoC"


# 2.0.1 (and 2.1) report fewer connector states; map each onto the 1.6 set the store keeps.
CONNECTOR_STATUS = {
    "Available": ConnectorStatus.AVAILABLE,
    "Occupied": ConnectorStatus.CHARGING,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}

# triggerReason saying the car has left the bay (a parking bay detector): its connector is free
# whatever the transaction's stop point. EVCommunicationLost and chargingState Idle (the cable out at
# the car) are not: with StopTxOnEVSideDisconnect false the transaction is suspended, the cable
# stays locked, and the same car may plug back in and charge on (use case E10); when true, the
# charger ends the transaction itself.
EV_DEPARTED = "EVDeparted"
# transactionInfo.chargingState: the car stopped drawing power (the idle fee clock) or draws again.
IDLE_CHARGING_STATES = frozenset({"SuspendedEV"})
ACTIVE_CHARGING_STATES = frozenset({"Charging"})


def energy_readings_wh(meter_value: list[dict[str, Any]], measurand: str = ENERGY_REGISTER) -> list[int]:
    """Every Energy.Active.Import.Register reading (the default measurand; or `measurand`, another
    register such as the export one) in Wh, phases skipped. 2.0.1 values are numbers, scaled by
    unitOfMeasure (unit Wh or kWh, multiplier a power of ten)."""
    readings: list[int] = []
    for mv in meter_value:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", ENERGY_REGISTER) != measurand or sv.get("phase"):
                continue
            unit = sv.get("unitOfMeasure", {})
            try:
                scale = (1000 if unit.get("unit", "Wh") == "kWh" else 1) * 10.0 ** unit.get("multiplier", 0)
                value = float(sv["value"]) * scale
            except OverflowError:
                value = math.inf
            if not math.isfinite(value) or not 0 <= value <= MAX_REGISTER_WH:
                raise CallRejected("PropertyConstraintViolation", f"not an energy register: {sv['value']!r}")
            readings.append(round(value))
    return readings


def soc_readings_pct(meter_value: list[dict[str, Any]]) -> list[int]:
    """Every state-of-charge reading (measurand SoC, percent), rounded to the whole percent."""
    readings: list[int] = []
    for mv in meter_value:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand") != SOC:
                continue
            value = float(sv["value"])
            if not math.isfinite(value) or not 0 <= value <= 100:
                raise CallRejected("PropertyConstraintViolation", f"not a state of charge: {sv['value']!r}")
            readings.append(round(value))
    return readings


def _last(values: list[int]) -> int | None:
    return values[-1] if values else None


def handlers(
    charging: ChargingService,
    cp_id: str,
    reports: ChargerReportsService,
    version: OcppVersion = V201,
    *,
    credentials: str | None = None,
) -> GatedHandlers:
    """Actions for one connected charger speaking `version` (2.0.1 or 2.1). An unregistered charger
    may talk but changes nothing. Its timestamps are placed on our clock by what this connection
    learns of its own (`ReportClock`); a start keeps its own stamp too, which names it when it is
    sent again."""
    clock = ReportClock.opened(charging.rules, charging.clock.now())
    seen = ocpp_phases.Seen(lambda no, n: reports.phases_seen(cp_id, no, n))
    # The connector of each transaction whose events name no EVSE, once found (its first event names
    # it; the periodic ones need not).
    tx_connector: dict[str, int] = {}

    def boot(p: dict[str, Any]) -> dict[str, Any]:
        clock.booted(charging.clock.now())
        return boot_reply(charging, cp_id, version)

    def heartbeat(p: dict[str, Any]) -> dict[str, Any]:
        return heartbeat_reply(charging, cp_id)

    def status(p: dict[str, Any]) -> dict[str, Any]:
        with contextlib.suppress(NotFound):
            reported = CONNECTOR_STATUS[p["connectorStatus"]]
            at = clock.status(parse_ts(p["timestamp"]), charging.clock.now())
            charging.status(cp_id, p["evseId"], reported, at)
        return {}

    def verdict(id_tag: str) -> str:
        try:
            return charging.authorize(cp_id, id_tag).value
        except NotFound:
            return AuthStatus.INVALID.value

    def authorize(p: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = charging.authorization(cp_id, p["idToken"]["idToken"])
        except NotFound:
            return {"idTokenInfo": {"status": AuthStatus.INVALID.value}}
        info: dict[str, Any] = {"status": answer.status.value}
        if answer.group_id is not None:
            info["groupIdToken"] = {"idToken": answer.group_id, "type": "Central"}
        if answer.expires_at is not None:
            info["cacheExpiryDateTime"] = format_ts(answer.expires_at)
        return {"idTokenInfo": info}

    def connector_of(p: dict[str, Any]) -> int | None:
        """The event's EVSE; a charger with one connector may leave it out."""
        evse = p.get("evse")
        return int(evse["id"]) if evse is not None else charging.only_connector(cp_id)

    def seen_on(p: dict[str, Any]) -> int | None:
        charger_tx = str(p["transactionInfo"]["transactionId"])
        if "evse" in p:
            tx_connector[charger_tx] = int(p["evse"]["id"])
            return tx_connector[charger_tx]
        if charger_tx not in tx_connector:
            try:
                found = charging.connector_of_charger_tx(cp_id, charger_tx)
            except NotFound:
                return None  # unregistered: nothing is kept for it
            if found is None:
                return None  # no session yet: a later event may name it
            tx_connector[charger_tx] = found
        return tx_connector[charger_tx]

    def transaction_event(p: dict[str, Any]) -> dict[str, Any]:
        info = p["transactionInfo"]
        charger_tx = info["transactionId"]
        timestamp = parse_ts(p["timestamp"])
        placed = clock.transaction(timestamp, charging.clock.now())  # a queued event teaches nothing
        readings = energy_readings_wh(p.get("meterValue", []))
        exports = energy_readings_wh(p.get("meterValue", []), EXPORT_REGISTER)
        socs = soc_readings_pct(p.get("meterValue", []))
        seen.frame(p.get("meterValue", []), lambda: seen_on(p))
        if p["eventType"] == "Ended":
            tx_connector.pop(str(charger_tx), None)
        id_tag = p["idToken"]["idToken"] if "idToken" in p else None
        try:
            session = charging.session_for_charger_tx(cp_id, charger_tx)
        except NotFound:
            charging.foreign_charger_transaction(cp_id, charger_tx, "TransactionEvent")
            return {"idTokenInfo": {"status": "Invalid"}} if id_tag is not None else {}
        reply: dict[str, Any] = {}
        if session is None:
            if id_tag is None:
                # Not authorised yet (e.g. started on plug-in): nothing to bill. Unless another
                # charger runs a transaction under this id: then it is a spoof, kept for the operator.
                charging.foreign_charger_transaction(cp_id, charger_tx, "TransactionEvent")
                return reply
            connector_no = connector_of(p)
            if connector_no is None:
                log.warning("%s: transaction %s names no EVSE; not opened", cp_id, charger_tx)
                return {"idTokenInfo": {"status": AuthStatus.INVALID.value}}
            started = charging.start(
                cp_id,
                connector_no,
                id_tag,
                min(readings, default=0),
                timestamp,
                placed_at=placed,
                clock_known=clock.known,
                charger_tx_id=charger_tx,
                meter_start_known=bool(readings),  # else the first reading to come is the start
            )
            reply["idTokenInfo"] = {"status": started.status.value}
            if started.status is not AuthStatus.ACCEPTED:
                return reply  # refused (no booking, someone else's booking): Invalid or Blocked
            session = charging.session_for_charger_tx(cp_id, charger_tx)
            assert session is not None
        elif id_tag is not None:
            reply["idTokenInfo"] = {
                "status": AuthStatus.ACCEPTED.value
                if token_key(id_tag) == token_key(session.id_tag)
                else verdict(id_tag)
            }
            # A start sent again, first on its link: the status request behind its first answer
            # may have died with the process that made it (`ChargingService.start`).
            if p["eventType"] == "Started" and not clock.known:
                connector_no = connector_of(p)
                if connector_no is not None:
                    charging.ask_connector_status(cp_id, connector_no)
        ended = p["eventType"] == "Ended"
        # Asked before this event's own readings can become the start: a session whose first reading
        # comes with its end was never measured.
        start_read = ended and not charging.awaits_first_reading(session.session_id)
        fresh = charging.event_is_fresh(session.session_id, p["seqNo"], min(readings, default=None))
        if exports or socs:  # before a stop, which credits the export as read
            charging.meter_export(cp_id, session.session_id, max(exports, default=None), _last(socs))
            if ended:
                failpoint("stop-export-metered")
        if ended:
            # Always applied: a stop is idempotent, and a lost stop would leave the booking open.
            meter_stop = max(max(readings, default=0), session.meter_last_wh)
            charging.stop(
                cp_id,
                session.session_id,
                meter_stop,
                timestamp,
                start_read=start_read,
                stop_read=bool(readings),
                export_wh=max(exports, default=None),  # a late stop's, credited after the close
                placed_at=placed,
            )
        elif fresh:
            if readings:
                charging.meter(cp_id, session.session_id, max(readings))
            state = info.get("chargingState")
            if state in IDLE_CHARGING_STATES or state in ACTIVE_CHARGING_STATES:
                charging.charging_state(session.session_id, idle=state in IDLE_CHARGING_STATES)
            if p["triggerReason"] == EV_DEPARTED:  # after its reading: the stop is queued behind it
                charging.departed(cp_id, session.session_id, placed)
        if fresh:  # applied: recorded only now, so a failure above leaves it to be sent again
            charging.event_is_new(cp_id, session.session_id, p["seqNo"])
        return reply

    def meter_values(p: dict[str, Any]) -> dict[str, Any]:
        readings = energy_readings_wh(p["meterValue"])
        exports = energy_readings_wh(p["meterValue"], EXPORT_REGISTER)
        socs = soc_readings_pct(p["meterValue"])
        seen.frame(p["meterValue"], lambda: int(p["evseId"]))  # 0, the main meter: no connector
        if p["evseId"] == 0 or not (readings or exports or socs):
            return {}  # the station's main meter, or no energy register: nothing to bill
        with contextlib.suppress(NotFound):
            session = charging.open_session_on(cp_id, p["evseId"])
            if session is None:
                return {}
            # It names no transaction: only what was read since the session began is its own (a
            # late one from before would become the start of a session opened without a reading).
            since = [mv for mv in p["meterValue"] if parse_ts(mv["timestamp"]) >= session.started_at]
            readings = energy_readings_wh(since)
            exports = energy_readings_wh(since, EXPORT_REGISTER)
            socs = soc_readings_pct(since)
            if exports or socs:
                charging.meter_export(cp_id, session.session_id, max(exports, default=None), _last(socs))
            if readings:
                charging.first_reading(session.session_id, min(readings))
                charging.meter(cp_id, session.session_id, max(readings))
        return {}

    def notify_event(p: dict[str, Any]) -> dict[str, Any]:
        """Acknowledged; a connector's availability, or a problem raised on it, sets its status."""
        for event in p["eventData"]:
            component, variable, value = event["component"], event["variable"], event["actualValue"]
            evse = component.get("evse")
            new_status = None
            if component["name"] == "Connector" and evse is not None:
                if variable["name"] == "AvailabilityState":
                    new_status = CONNECTOR_STATUS.get(value)
                elif variable["name"] == "Problem" and value.lower() == "true":
                    new_status = ConnectorStatus.FAULTED  # a cleared problem waits for the next status
            if new_status is not None:
                at = clock.status(parse_ts(event["timestamp"]), charging.clock.now())
                with contextlib.suppress(NotFound):
                    charging.status(cp_id, evse["id"], new_status, at)
            else:
                log.info(
                    "%s event: %s.%s = %r (%s)",
                    cp_id,
                    component["name"],
                    variable["name"],
                    value,
                    event["trigger"],
                )
        return {}

    table: dict[str, Handler] = {
        "BootNotification": boot,
        "Heartbeat": heartbeat,
        "StatusNotification": status,
        "Authorize": authorize,
        "TransactionEvent": transaction_event,
        "MeterValues": meter_values,
        "NotifyEvent": notify_event,
        **handlers201(reports, cp_id, credentials),
    }
    return gated(charging, cp_id, reports, table)
