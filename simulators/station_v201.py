"""The 2.0.1 virtual charger's station management: the charging profiles it reports, its display,
what it keeps of a customer, its network profiles and its variable monitors. Each command is
answered, and what it asked for follows the answer as the charger's own report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chargeshare.ocpp import V21
from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.timestamps import format_ts
from simulators.evse_model_v201 import at_evse, names
from simulators.settings import BY_COMPONENT_VARIABLE
from simulators.smart_charging import Profile, Purpose

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort

PURPOSE_WORDS = {
    Purpose.CHARGER_MAX: "ChargingStationMaxProfile",
    Purpose.TX_DEFAULT: "TxDefaultProfile",
    Purpose.TX: "TxProfile",
}
FORMATS = ("ASCII", "UTF8")  # a character display: no HTML, no URIs
MONITOR_KINDS = ("UpperThreshold", "LowerThreshold", "Delta", "Periodic")  # no clock alignment
CRITERIA = {
    "ThresholdMonitoring": ("UpperThreshold", "LowerThreshold"),
    "DeltaMonitoring": ("Delta",),
    "PeriodicMonitoring": ("Periodic", "PeriodicClockAligned"),
}
NETWORK_SLOTS = (1, 2)  # NetworkConfigurationPriority's slots


@dataclass
class StationState:
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> MessageInfo as sent
    monitors: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> SetMonitoringData
    network_profiles: dict[int, dict[str, Any]] = field(default_factory=dict)  # slot -> connectionData
    monitoring_base: str = "All"
    monitoring_level: int = 9
    next_monitor_id: int = 1


def profile_said(p: Profile) -> dict[str, Any]:
    """A profile as 2.0.1's ChargingProfileType says it (what `dialect_v201.profile_from` reads)."""
    schedule: dict[str, Any] = {
        "id": p.profile_id,
        "chargingRateUnit": p.unit,
        "chargingSchedulePeriod": [
            {"startPeriod": x.start_s, "limit": x.limit, **({"numberPhases": x.phases} if x.phases else {})}
            for x in p.periods
        ],
    }
    if p.start is not None:
        schedule["startSchedule"] = format_ts(p.start)
    if p.duration_s is not None:
        schedule["duration"] = p.duration_s
    said: dict[str, Any] = {
        "id": p.profile_id,
        "stackLevel": p.stack_level,
        "chargingProfilePurpose": PURPOSE_WORDS[p.purpose],
        "chargingProfileKind": p.kind.value,
        "chargingSchedule": [schedule],
    }
    if p.recurrency is not None:
        said["recurrencyKind"] = p.recurrency
    if p.valid_from is not None:
        said["validFrom"] = format_ts(p.valid_from)
    if p.valid_to is not None:
        said["validTo"] = format_ts(p.valid_to)
    if p.transaction is not None:
        said["transactionId"] = p.transaction
    return said


def handlers(cp: ChargerPort) -> dict[str, Handler]:
    def status(word: str) -> dict[str, Any]:
        return {"status": word}

    def get_charging_profiles(p: dict[str, Any]) -> dict[str, Any]:
        c = p["chargingProfile"]
        sources = c.get("chargingLimitSource", ["CSO"])
        chosen = [
            x
            for x in cp.profiles.profiles
            if p.get("evseId") in (None, x.connector_no)
            and c.get("chargingProfilePurpose") in (None, PURPOSE_WORDS[x.purpose])
            and c.get("stackLevel") in (None, x.stack_level)
            and (not c.get("chargingProfileId") or x.profile_id in c["chargingProfileId"])
            and "CSO" in sources  # every profile here came from the CSMS
        ]
        if not chosen:
            return status("NoProfiles")
        evses = sorted({x.connector_no for x in chosen})
        for i, evse in enumerate(evses):
            cp.follow_up(
                (
                    "ReportChargingProfiles",
                    {
                        "requestId": p["requestId"],
                        "chargingLimitSource": "CSO",
                        "evseId": evse,
                        "chargingProfile": [profile_said(x) for x in chosen if x.connector_no == evse],
                        "tbc": i < len(evses) - 1,
                    },
                )
            )
        return status("Accepted")

    def set_display_message(p: dict[str, Any]) -> dict[str, Any]:
        info = p["message"]
        if info["message"]["format"] not in FORMATS:
            return status("NotSupportedMessageFormat")
        named = info.get("transactionId")
        if named is not None and not any(t.local_id == named for _, t in cp.transactions()):
            return status("UnknownTransaction")
        cp.station.messages[info["id"]] = info
        return status("Accepted")

    def get_display_messages(p: dict[str, Any]) -> dict[str, Any]:
        chosen = [
            m
            for i, m in sorted(cp.station.messages.items())
            if (not p.get("id") or i in p["id"])
            and p.get("priority") in (None, m["priority"])
            and p.get("state") in (None, m.get("state"))
        ]
        if not chosen:
            return status("Unknown")
        cp.follow_up(("NotifyDisplayMessages", {"requestId": p["requestId"], "messageInfo": chosen}))
        return status("Accepted")

    def clear_display_message(p: dict[str, Any]) -> dict[str, Any]:
        return status("Accepted" if cp.station.messages.pop(p["id"], None) is not None else "Unknown")

    def customer_information(p: dict[str, Any]) -> dict[str, Any]:
        token = p.get("idToken", {}).get("idToken")
        if token is None:
            return status("Invalid")  # it keeps customers by their tokens only
        known = cp.local_auth.status_of(token)
        if p["report"]:
            said = f"{token}: unknown here" if known is None else f"{token}: {known} in the list or cache"
            body = {
                "data": said,
                "seqNo": 0,
                "generatedAt": format_ts(cp.clock.now()),
                "requestId": p["requestId"],
            }
            cp.follow_up(("NotifyCustomerInformation", body))
        if p["clear"]:
            cp.local_auth.cache.pop(token, None)  # the CSMS's own list is the CSMS's to change
        return status("Accepted")

    def set_network_profile(p: dict[str, Any]) -> dict[str, Any]:
        data = p["connectionData"]
        if p["configurationSlot"] not in NETWORK_SLOTS or data["ocppTransport"] != "JSON":
            return status("Rejected")
        if data["securityProfile"] > 1 and not data["ocppCsmsUrl"].startswith("wss://"):
            return status("Rejected")
        cp.station.network_profiles[p["configurationSlot"]] = data
        return status("Accepted")

    def unknown(m: dict[str, Any]) -> str | None:
        """UnknownComponent or UnknownVariable, as SetVariables finds them, or None: it is there."""
        if m["component"].get("evse") is not None:
            return at_evse(cp, m["component"], m["variable"]["name"])[0]
        if m["component"]["name"] not in {s.component for s in cp.settings.definitions}:
            return "UnknownComponent"
        if (m["component"]["name"], m["variable"]["name"]) not in BY_COMPONENT_VARIABLE:
            return "UnknownVariable"
        return None

    def set_variable_monitoring(p: dict[str, Any]) -> dict[str, Any]:
        results = []
        for m in p["setMonitoringData"]:
            word = unknown(m) or "Accepted"
            if word == "Accepted" and m["type"] not in MONITOR_KINDS:
                word = "UnsupportedMonitorType"
            elif word == "Accepted" and "id" in m and m["id"] not in cp.station.monitors:
                word = "Rejected"  # replacing a monitor that is not there
            result: dict[str, Any] = {
                "status": word,
                "type": m["type"],
                "severity": m["severity"],
                "component": m["component"],
                "variable": m["variable"],
            }
            if word == "Accepted":
                monitor_id = m.get("id", cp.station.next_monitor_id)
                cp.station.next_monitor_id = max(cp.station.next_monitor_id, monitor_id + 1)
                cp.station.monitors[monitor_id] = {**m, "id": monitor_id}
                result["id"] = monitor_id
            results.append(result)
        return {"setMonitoringResult": results}

    def clear_variable_monitoring(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "clearMonitoringResult": [
                {
                    "id": i,
                    "status": "Accepted" if cp.station.monitors.pop(i, None) is not None else "NotFound",
                }
                for i in p["id"]
            ]
        }

    def set_monitoring_base(p: dict[str, Any]) -> dict[str, Any]:
        cp.station.monitoring_base = p["monitoringBase"]
        if cp.station.monitoring_base != "All":
            cp.station.monitors.clear()  # it has no preconfigured monitors: only ours, which go
        return status("Accepted")

    def set_monitoring_level(p: dict[str, Any]) -> dict[str, Any]:
        cp.station.monitoring_level = p["severity"]
        return status("Accepted")

    def get_monitoring_report(p: dict[str, Any]) -> dict[str, Any]:
        wanted = p.get("componentVariable", [])
        kinds = {k for c in p.get("monitoringCriteria", CRITERIA) for k in CRITERIA[c]}
        chosen = [
            m
            for _, m in sorted(cp.station.monitors.items())
            if m["type"] in kinds
            and (not wanted or any(names(w, m["component"], m["variable"]["name"]) for w in wanted))
        ]
        if not chosen:
            return status("EmptyResultSet")
        monitor = [
            {
                "component": m["component"],
                "variable": m["variable"],
                "variableMonitoring": [
                    {
                        "id": m["id"],
                        "transaction": m.get("transaction", False),
                        "value": m["value"],
                        "type": m["type"],
                        "severity": m["severity"],
                        # 2.1 says who made the monitor: all of these are the CSMS's
                        **({"eventNotificationType": "CustomMonitor"} if cp.protocol == V21 else {}),
                    }
                ],
            }
            for m in chosen
        ]
        body = {
            "requestId": p["requestId"],
            "seqNo": 0,
            "generatedAt": format_ts(cp.clock.now()),
            "monitor": monitor,
        }
        cp.follow_up(("NotifyMonitoringReport", body))
        return status("Accepted")

    return {
        "GetChargingProfiles": get_charging_profiles,
        "SetDisplayMessage": set_display_message,
        "GetDisplayMessages": get_display_messages,
        "ClearDisplayMessage": clear_display_message,
        "CustomerInformation": customer_information,
        "SetNetworkProfile": set_network_profile,
        "SetVariableMonitoring": set_variable_monitoring,
        "ClearVariableMonitoring": clear_variable_monitoring,
        "SetMonitoringBase": set_monitoring_base,
        "SetMonitoringLevel": set_monitoring_level,
        "GetMonitoringReport": get_monitoring_report,
    }
