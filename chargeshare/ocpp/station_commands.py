"""2.x commands for running a station rather than a session: the charging profiles it holds, the
messages on its display, what it keeps of a customer, where it connects, and what it monitors.

OCPP 1.6 has none of them (each is NotApplicable there). Those that ask for a report are answered
first and followed by their report messages (ReportChargingProfiles, NotifyDisplayMessages,
NotifyCustomerInformation, NotifyMonitoringReport), which the backend keeps among the charger's
reports (`chargeshare.ocpp.csms_reports`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp.commands import (
    CannotSay,
    CertificateHash,
    ChargerTxLookup,
    Command,
    Done,
    ProfilePurpose,
    Rejected,
    SettingKey,
    Status,
    TransactionRef,
    _NoDetails,
    transaction_id,
)
from chargeshare.ocpp.timestamps import format_ts


def _2x_only(version: OcppVersion, what: str) -> None:
    if version == V16:
        raise CannotSay(f"OCPP 1.6 has no {what}")


def _component_variable(key: SettingKey) -> dict[str, Any]:
    if not key.component:
        raise CannotSay("a 2.0.1 device-model item names its component")
    return {"component": {"name": key.component}, **({"variable": key.variable()} if key.name else {})}


# ---- charging profiles held ------------------------------------------------------------------------


class LimitSource(StrEnum):
    CSO = "CSO"  # the operator: us
    EMS = "EMS"  # an energy management system on site
    SO = "SO"  # the system operator (a DNO)
    OTHER = "Other"


@dataclass(frozen=True)
class GetChargingProfiles(_NoDetails):
    """The profiles a charger holds, reported in ReportChargingProfiles tagged `request_id`:
    those on `evse_id` (0: the station's own; None: any), of the purpose, stack level, ids and
    limit sources given. Done: Accepted, or NoProfiles (none matched, and no report follows)."""

    request_id: int
    evse_id: int | None = None
    purpose: ProfilePurpose | None = None
    stack_level: int | None = None
    profile_ids: tuple[int, ...] = ()
    sources: tuple[LimitSource, ...] = ()

    actions: ClassVar[dict[str, str]] = {V201: "GetChargingProfiles"}
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED, Status.NO_PROFILES})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "GetChargingProfiles (read what applies with GetCompositeSchedule)")
        criteria: dict[str, Any] = {}
        if self.purpose is not None:
            criteria["chargingProfilePurpose"] = self.purpose.word(version)
        if self.stack_level is not None:
            criteria["stackLevel"] = self.stack_level
        if self.profile_ids:
            criteria["chargingProfileId"] = list(self.profile_ids)
        if self.sources:
            criteria["chargingLimitSource"] = [s.value for s in self.sources]
        p: dict[str, Any] = {"requestId": self.request_id, "chargingProfile": criteria}
        if self.evse_id is not None:
            p["evseId"] = self.evse_id
        return p


# ---- the display -----------------------------------------------------------------------------------


class MessagePriority(StrEnum):
    ALWAYS_FRONT = "AlwaysFront"
    IN_FRONT = "InFront"
    NORMAL = "NormalCycle"


class MessageState(StrEnum):
    """When a message shows: only in that state of the station (None: always)."""

    CHARGING = "Charging"
    FAULTED = "Faulted"
    IDLE = "Idle"
    UNAVAILABLE = "Unavailable"


class MessageFormat(StrEnum):
    ASCII = "ASCII"
    HTML = "HTML"
    URI = "URI"
    UTF8 = "UTF8"


@dataclass(frozen=True)
class DisplayMessage:
    message_id: int
    text: str
    priority: MessagePriority = MessagePriority.NORMAL
    format: MessageFormat = MessageFormat.UTF8
    language: str | None = None
    state: MessageState | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    transaction: TransactionRef | None = None  # shown during that transaction only


@dataclass(frozen=True)
class SetDisplayMessage(_NoDetails):
    """Show a message (replacing one with its id). Done: Accepted; the charger says
    NotSupportedMessageFormat, NotSupportedPriority, NotSupportedState, UnknownTransaction or
    Rejected otherwise."""

    message: DisplayMessage

    actions: ClassVar[dict[str, str]] = {V201: "SetDisplayMessage"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "display messages (a vendor's DataTransfer at most)")
        m = self.message
        content: dict[str, Any] = {"format": m.format.value, "content": m.text}
        if m.language is not None:
            content["language"] = m.language
        info: dict[str, Any] = {"id": m.message_id, "priority": m.priority.value, "message": content}
        if m.state is not None:
            info["state"] = m.state.value
        if m.starts_at is not None:
            info["startDateTime"] = format_ts(m.starts_at)
        if m.ends_at is not None:
            info["endDateTime"] = format_ts(m.ends_at)
        if m.transaction is not None:
            info["transactionId"] = transaction_id(m.transaction, version, charger_tx)
        return {"message": info}


@dataclass(frozen=True)
class GetDisplayMessages(_NoDetails):
    """The messages configured (those with `ids`, of the priority and state given), reported in
    NotifyDisplayMessages tagged `request_id`. Done: Accepted; Unknown when none matched."""

    request_id: int
    ids: tuple[int, ...] = ()
    priority: MessagePriority | None = None
    state: MessageState | None = None

    actions: ClassVar[dict[str, str]] = {V201: "GetDisplayMessages"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "display messages")
        p: dict[str, Any] = {"requestId": self.request_id}
        if self.ids:
            p["id"] = list(self.ids)
        if self.priority is not None:
            p["priority"] = self.priority.value
        if self.state is not None:
            p["state"] = self.state.value
        return p


@dataclass(frozen=True)
class ClearDisplayMessage(_NoDetails):
    """Remove a message. Done: Accepted; Unknown when there was no such message."""

    message_id: int

    actions: ClassVar[dict[str, str]] = {V201: "ClearDisplayMessage"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "display messages")
        return {"id": self.message_id}


# ---- a customer's data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerInformation(_NoDetails):
    """What the charger keeps of one customer, named by exactly one of an identifier, an id token
    or a certificate: reported in NotifyCustomerInformation tagged `request_id` (`report`), and/or
    erased (`clear`). Done: Accepted; Rejected or Invalid otherwise."""

    request_id: int
    report: bool = True
    clear: bool = False
    customer_identifier: str | None = None
    id_tag: str | None = None
    certificate: CertificateHash | None = None

    actions: ClassVar[dict[str, str]] = {V201: "CustomerInformation"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "CustomerInformation")
        named = [x for x in (self.customer_identifier, self.id_tag, self.certificate) if x is not None]
        if len(named) != 1:
            raise CannotSay("name the customer by one of an identifier, an id token or a certificate")
        if not (self.report or self.clear):
            raise CannotSay("ask for a report, a clearing, or both")
        p: dict[str, Any] = {"requestId": self.request_id, "report": self.report, "clear": self.clear}
        if self.customer_identifier is not None:
            p["customerIdentifier"] = self.customer_identifier
        if self.id_tag is not None:
            p["idToken"] = {"idToken": self.id_tag, "type": "ISO14443"}
        if self.certificate is not None:
            p["customerCertificate"] = self.certificate.said()
        return p


# ---- where it connects -----------------------------------------------------------------------------


class OcppInterface(StrEnum):
    WIRED = "Wired0"
    WIRED_1 = "Wired1"
    WIRELESS = "Wireless0"
    WIRELESS_1 = "Wireless1"


@dataclass(frozen=True)
class NetworkProfile:
    """A connection to a CSMS: its URL, the security profile (1 Basic auth over ws, 2 TLS with
    Basic auth, 3 TLS with client certificates), how long to wait for an answer, and the interface."""

    csms_url: str
    security_profile: int = 2
    message_timeout_s: int = 30
    interface: OcppInterface = OcppInterface.WIRED
    ocpp_version: str = "OCPP20"  # the schema's word for 2.0.1 and 2.1 alike


@dataclass(frozen=True)
class SetNetworkProfile(_NoDetails):
    """Store a connection profile in `slot` (the charger moves to it when NetworkConfigurationPriority
    names the slot). Done: Accepted; Rejected or Failed otherwise."""

    slot: int
    profile: NetworkProfile

    actions: ClassVar[dict[str, str]] = {V201: "SetNetworkProfile"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "SetNetworkProfile")
        p = self.profile
        if not p.csms_url.startswith(("ws://", "wss://")):
            raise CannotSay(f"a CSMS URL is ws:// or wss://, not {p.csms_url!r}")
        if p.csms_url.startswith("ws://") and p.security_profile > 1:
            raise CannotSay(f"security profile {p.security_profile} needs a wss:// URL")
        return {
            "configurationSlot": self.slot,
            "connectionData": {
                "ocppVersion": p.ocpp_version,
                "ocppTransport": "JSON",
                "ocppCsmsUrl": p.csms_url,
                "messageTimeout": p.message_timeout_s,
                "securityProfile": p.security_profile,
                "ocppInterface": p.interface.value,
            },
        }


# ---- monitoring --------------------------------------------------------------------------------------


class MonitorKind(StrEnum):
    UPPER_THRESHOLD = "UpperThreshold"
    LOWER_THRESHOLD = "LowerThreshold"
    DELTA = "Delta"
    PERIODIC = "Periodic"
    PERIODIC_CLOCK_ALIGNED = "PeriodicClockAligned"


@dataclass(frozen=True)
class Monitor:
    """Watch a variable: an event (NotifyEvent) when it crosses `value` (thresholds), moves by it
    (delta), or every `value` seconds (periodic); `severity` 0 (danger) to 9 (debug)."""

    key: SettingKey
    kind: MonitorKind
    value: float
    severity: int = 5
    monitor_id: int | None = None  # None: a new monitor; an id replaces that one
    transaction: bool = False  # only while a transaction runs


@dataclass(frozen=True)
class MonitorResult:
    key: SettingKey
    status: Status  # Accepted, or why not
    monitor_id: int | None = None  # the id the charger gave it


@dataclass(frozen=True)
class SetVariableMonitoring(Command[tuple[MonitorResult, ...]]):
    """Set monitors; each is answered on its own (its status and id), so the command itself is done."""

    monitors: tuple[Monitor, ...]

    actions: ClassVar[dict[str, str]] = {V201: "SetVariableMonitoring"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "monitoring (its device model has none)")
        if not self.monitors:
            raise CannotSay("set at least one monitor")
        data = []
        for m in self.monitors:
            if not 0 <= m.severity <= 9:
                raise CannotSay(f"severity is 0 to 9, not {m.severity}")
            item: dict[str, Any] = {
                **_component_variable(m.key),
                "value": m.value,
                "type": m.kind.value,
                "severity": m.severity,
                "transaction": m.transaction,
            }
            if "variable" not in item:
                raise CannotSay("a monitor watches one variable")
            if m.monitor_id is not None:
                item["id"] = m.monitor_id
            data.append(item)
        return {"setMonitoringData": data}

    def result(
        self, version: OcppVersion, answer: dict[str, Any]
    ) -> Done[tuple[MonitorResult, ...]] | Rejected:
        return Done(Status.ACCEPTED, self.details(version, answer))  # each item has its own status

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> tuple[MonitorResult, ...]:
        return tuple(
            MonitorResult(SettingKey.answered(r), Status(r["status"]), r.get("id"))
            for r in answer["setMonitoringResult"]
        )


@dataclass(frozen=True)
class ClearVariableMonitoring(Command[dict[int, Status]]):
    """Remove monitors by id; each is answered on its own (Accepted, Rejected, NotFound)."""

    monitor_ids: tuple[int, ...]

    actions: ClassVar[dict[str, str]] = {V201: "ClearVariableMonitoring"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "monitoring")
        if not self.monitor_ids:
            raise CannotSay("name at least one monitor")
        return {"id": list(self.monitor_ids)}

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> Done[dict[int, Status]] | Rejected:
        return Done(Status.ACCEPTED, self.details(version, answer))

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> dict[int, Status]:
        return {r["id"]: Status(r["status"]) for r in answer["clearMonitoringResult"]}


class MonitoringBase(StrEnum):
    ALL = "All"  # the charger's preconfigured monitors and ours
    FACTORY_DEFAULT = "FactoryDefault"  # back to its preconfigured ones (ours are cleared)
    HARD_WIRED_ONLY = "HardWiredOnly"  # only those it cannot do without


@dataclass(frozen=True)
class SetMonitoringBase(_NoDetails):
    """Which monitors are active. Done: Accepted; Rejected or NotSupported otherwise."""

    base: MonitoringBase

    actions: ClassVar[dict[str, str]] = {V201: "SetMonitoringBase"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "monitoring")
        return {"monitoringBase": self.base.value}


@dataclass(frozen=True)
class SetMonitoringLevel(_NoDetails):
    """Report only events of `severity` or worse (0 danger .. 9 debug). Done: Accepted."""

    severity: int

    actions: ClassVar[dict[str, str]] = {V201: "SetMonitoringLevel"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "monitoring")
        if not 0 <= self.severity <= 9:
            raise CannotSay(f"severity is 0 to 9, not {self.severity}")
        return {"severity": self.severity}


class MonitoringCriterion(StrEnum):
    THRESHOLD = "ThresholdMonitoring"
    DELTA = "DeltaMonitoring"
    PERIODIC = "PeriodicMonitoring"


@dataclass(frozen=True)
class GetMonitoringReport(_NoDetails):
    """The monitors set (on the named variables, of the kinds given), reported in
    NotifyMonitoringReport tagged `request_id`. Done: Accepted; EmptyResultSet when none matched."""

    request_id: int
    variables: tuple[SettingKey, ...] = ()
    criteria: tuple[MonitoringCriterion, ...] = ()

    actions: ClassVar[dict[str, str]] = {V201: "GetMonitoringReport"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        _2x_only(version, "monitoring")
        p: dict[str, Any] = {"requestId": self.request_id}
        if self.variables:
            p["componentVariable"] = [_component_variable(k) for k in self.variables]
        if self.criteria:
            p["monitoringCriteria"] = [c.value for c in self.criteria]
        return p
