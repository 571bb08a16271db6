"""Commands the central system sends to chargers, defined once, version-neutral and typed.

Each command is a frozen dataclass (the request) that knows how to say itself in OCPP 1.6, 2.0.1
and 2.1 (`action`, `payload`) and how to read the charger's answer (`result`); 2.1 says each with
2.0.1's action and fields (`chargeshare.ocpp.family`), except where noted. Sans-I/O: the
`ChargerRegistry` (entrypoints/ocpp_server.py) sends them and awaits the answer, so every send ends in
exactly one of:

- `Done(status, details)`: the charger did it (`status` is the charger's own word, e.g. Accepted,
  Scheduled, Unlocked, RebootRequired; `details` is the command's typed extra, often None);
- `Rejected(status, reason)`: the charger answered but declined (Rejected, Occupied, Unknown, ...);
- `NotConnected(reason)`: no link to that charger, or it dropped before answering;
- `Timeout(after_s)`: no answer in time;
- `CallError(code)`: a CALLERROR; `Malformed(code)`, one of them, when the charger sent a
  CALLRESULT that broke the schema or said what we cannot read (code FormatViolation etc.): no
  answer to what was asked, where a CALLERROR is the charger's own word;
- `NotApplicable(reason)`: the request cannot be said in this charger's version (e.g. a 2.0.1
  stop for a transaction the charger never reported to us); `Invalid(reason)`, one of them, when
  what it says would break that version's schema (checked before sending: it never goes out).

Transactions are named by `TransactionRef`: an int is our session id (which is the transactionId a
1.6 charger knows; for 2.0.1 it is translated to the charger's own string), a str is a 2.0.1
charger's own transactionId, passed through as is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar, runtime_checkable

from chargeshare.domain.tokens import ListEntry, UpdateType
from chargeshare.ocpp import V16, V21, V201, OcppVersion, family
from chargeshare.ocpp.timestamps import format_ts, parse_ts

T = TypeVar("T")

TransactionRef: TypeAlias = int | str
ChargerTxLookup = Callable[[int], str | None]
"""Our session id -> the 2.0.1 charger's own transactionId (None if it never reported one)."""


class Status(StrEnum):
    """Every status a charger may answer a command with, in either version."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    SCHEDULED = "Scheduled"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    UNLOCKED = "Unlocked"
    UNLOCK_FAILED = "UnlockFailed"
    ONGOING_AUTHORIZED_TRANSACTION = "OngoingAuthorizedTransaction"
    UNKNOWN_CONNECTOR = "UnknownConnector"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    UNAVAILABLE = "Unavailable"
    UNKNOWN = "Unknown"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
    FAILED = "Failed"
    VERSION_MISMATCH = "VersionMismatch"
    NOT_FOUND = "NotFound"
    EMPTY_RESULT_SET = "EmptyResultSet"
    NO_PROFILES = "NoProfiles"
    INVALID = "Invalid"
    NOT_SUPPORTED_MESSAGE_FORMAT = "NotSupportedMessageFormat"
    NOT_SUPPORTED_PRIORITY = "NotSupportedPriority"
    NOT_SUPPORTED_STATE = "NotSupportedState"
    UNKNOWN_TRANSACTION = "UnknownTransaction"
    UNSUPPORTED_MONITOR_TYPE = "UnsupportedMonitorType"
    DUPLICATE = "Duplicate"
    ACCEPTED_CANCELED = "AcceptedCanceled"  # accepted, and the request it replaces was cancelled
    INVALID_CERTIFICATE = "InvalidCertificate"
    REVOKED_CERTIFICATE = "RevokedCertificate"


# ---- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done(Generic[T]):
    status: Status
    details: T


@dataclass(frozen=True)
class Rejected:
    status: Status
    reason: str | None = None  # 2.0.1 statusInfo.reasonCode, when the charger gave one


@dataclass(frozen=True)
class NotConnected:
    reason: str = "not connected"


@dataclass(frozen=True)
class Timeout:
    after_s: float


@dataclass(frozen=True)
class CallError:
    code: str


@dataclass(frozen=True)
class Malformed(CallError):
    """The charger's CALLRESULT broke the schema, or named a status or value we cannot read: a
    CallError wherever one is handled as such, yet no answer to the request."""


@dataclass(frozen=True)
class NotApplicable:
    reason: str


@dataclass(frozen=True)
class Invalid(NotApplicable):
    """Said in the charger's version, the request breaks that version's schema (a value out of
    range, a string too long): it was never sent. The operator's to fix, where NotApplicable
    otherwise names what the version cannot say at all."""


Failure: TypeAlias = Rejected | NotConnected | Timeout | CallError | NotApplicable
CommandResult: TypeAlias = Done[T] | Failure


class CannotSay(Exception):
    """Raised by `payload` when the request cannot be said in this version (becomes NotApplicable)."""


# ---- the command base -------------------------------------------------------------------------------


class Command(ABC, Generic[T]):
    """A request to a charger. Subclasses name their action per version, build the payload, and say
    which statuses mean done; `details` reads any typed extra from the answer."""

    actions: ClassVar[dict[str, str]]
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED})

    def action(self, version: OcppVersion) -> str:
        return self.actions[family(version)]

    @abstractmethod
    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]: ...

    @abstractmethod
    def details(self, version: OcppVersion, answer: dict[str, Any]) -> T: ...

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> Done[T] | Rejected:
        status = Status(answer["status"])
        if status not in self.done:
            return Rejected(status, answer.get("statusInfo", {}).get("reasonCode"))
        return Done(status, self.details(version, answer))


class _NoDetails(Command[None]):
    def details(self, version: OcppVersion, answer: dict[str, Any]) -> None:
        return None


_NO_EVSES_IN_16 = "OCPP 1.6 has connectors only, no EVSEs with connectors of their own"


def _evse(evse_id: int, connector: int | None) -> dict[str, int]:
    return {"id": evse_id} if connector is None else {"id": evse_id, "connectorId": connector}


def _id_token(id_tag: str) -> dict[str, str]:
    return {"idToken": id_tag, "type": "ISO14443"}


def transaction_id(ref: TransactionRef, version: OcppVersion, charger_tx: ChargerTxLookup) -> int | str:
    """The transaction as the charger's version names it (CannotSay when it cannot)."""
    if version == V16:
        if isinstance(ref, int):
            return ref
        if ref.isdigit():
            return int(ref)
        raise CannotSay(f"OCPP 1.6 transaction ids are integers, not {ref!r}")
    if isinstance(ref, str):
        return ref
    found = charger_tx(ref)
    if found is None:
        raise CannotSay(f"the charger never reported a transaction for session {ref}")
    return found


# ---- transactions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartCharging(Command[str | None]):
    """RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1). `details`: the 2.0.1
    charger's transactionId when it already had one (None otherwise, and always in 1.6)."""

    id_tag: str
    connector_no: int | None = None
    remote_start_id: int = 1  # 2.0.1 only: echoed in the charger's TransactionEvent
    # The TxProfile the transaction starts under (both versions want a connector named with it).
    profile: ChargingProfile | None = None

    actions: ClassVar[dict[str, str]] = {V16: "RemoteStartTransaction", V201: "RequestStartTransaction"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if self.profile is not None and (
            self.profile.purpose is not ProfilePurpose.TX or self.connector_no is None
        ):
            raise CannotSay("a remote start carries a TxProfile only, for a connector it names")
        if self.profile is not None and self.profile.transaction is not None:
            raise CannotSay("a remote start's profile names no transaction: the charger has none yet")
        if version == V16:
            p16: dict[str, Any] = {"idTag": self.id_tag}
            if self.connector_no is not None:
                p16["connectorId"] = self.connector_no
            if self.profile is not None:
                p16["chargingProfile"] = _profile_body(self.profile, version, charger_tx)
            return p16
        p: dict[str, Any] = {"idToken": _id_token(self.id_tag), "remoteStartId": self.remote_start_id}
        if version == V21 and self.connector_no is not None and self.connector_no < 1:
            # 2.1's schema says it (minimum 1); in 2.0.1 the charger is left to refuse it
            raise CannotSay("a transaction starts on an EVSE: evseId 0 is the whole station")
        if self.connector_no is not None:
            p["evseId"] = self.connector_no
        if self.profile is not None:
            p["chargingProfile"] = _profile_body(self.profile, version, charger_tx)
        return p

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> str | None:
        tx = answer.get("transactionId")
        return None if tx is None else str(tx)


@dataclass(frozen=True)
class StopCharging(_NoDetails):
    """RemoteStopTransaction (1.6) / RequestStopTransaction (2.0.1)."""

    transaction: TransactionRef

    actions: ClassVar[dict[str, str]] = {V16: "RemoteStopTransaction", V201: "RequestStopTransaction"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        return {"transactionId": transaction_id(self.transaction, version, charger_tx)}


@dataclass(frozen=True)
class TransactionQueue:
    """What GetTransactionStatus learns: whether the charger still holds transaction messages to send
    (for the transaction named, or any), and whether that transaction is still going on (None when
    none was named)."""

    messages_in_queue: bool
    ongoing: bool | None = None


@dataclass(frozen=True)
class GetTransactionStatus(Command[TransactionQueue]):
    """2.0.1: a charger's queue of transaction messages not yet delivered, for one transaction or
    all. OCPP 1.6 has no such message (NotApplicable)."""

    transaction: TransactionRef | None = None

    actions: ClassVar[dict[str, str]] = {V201: "GetTransactionStatus"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            raise CannotSay("OCPP 1.6 has no GetTransactionStatus")
        if self.transaction is None:
            return {}
        return {"transactionId": transaction_id(self.transaction, version, charger_tx)}

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> Done[TransactionQueue] | Rejected:
        return Done(Status.ACCEPTED, self.details(version, answer))  # the answer has no status

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> TransactionQueue:
        ongoing = answer.get("ongoingIndicator")
        return TransactionQueue(bool(answer["messagesInQueue"]), None if ongoing is None else bool(ongoing))


# ---- reservations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reserve(_NoDetails):
    """ReserveNow: hold `connector_no` (2.0.1: the EVSE; 0: any the charger chooses) for `id_tag`
    until `expires_at`. `group_id_tag` (1.6 parentIdTag, 2.0.1 groupIdToken) lets any token of the
    group use it; `connector_type` (2.0.1 only: cType2, cCCS2, ...) asks for a connector of that type."""

    reservation_id: int
    connector_no: int
    id_tag: str
    expires_at: datetime
    group_id_tag: str | None = None
    connector_type: str | None = None

    actions: ClassVar[dict[str, str]] = {V16: "ReserveNow", V201: "ReserveNow"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            if self.connector_type is not None:
                raise CannotSay("OCPP 1.6 reserves a connector by its id, not its type")
            p: dict[str, Any] = {
                "connectorId": self.connector_no,
                "expiryDate": format_ts(self.expires_at),
                "idTag": self.id_tag,
                "reservationId": self.reservation_id,
            }
            if self.group_id_tag is not None:
                p["parentIdTag"] = self.group_id_tag
            return p
        p = {
            "id": self.reservation_id,
            "expiryDateTime": format_ts(self.expires_at),
            "idToken": _id_token(self.id_tag),
        }
        if self.connector_no:
            p["evseId"] = self.connector_no
        if self.connector_type is not None:
            p["connectorType"] = self.connector_type
        if self.group_id_tag is not None:
            p["groupIdToken"] = _id_token(self.group_id_tag)
        return p


@dataclass(frozen=True)
class CancelReservation(_NoDetails):
    reservation_id: int

    actions: ClassVar[dict[str, str]] = {V16: "CancelReservation", V201: "CancelReservation"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        return {"reservationId": self.reservation_id}


# ---- availability, reset, triggers, unlock ----------------------------------------------------------


@dataclass(frozen=True)
class ChangeAvailability(_NoDetails):
    """Operative or inoperative; `connector_no` 0 means the whole charger (2.0.1: the EVSE, and
    `evse_connector` one connector of it). Done: Accepted, Scheduled."""

    connector_no: int
    operative: bool
    evse_connector: int | None = None

    actions: ClassVar[dict[str, str]] = {V16: "ChangeAvailability", V201: "ChangeAvailability"}
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED, Status.SCHEDULED})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        word = "Operative" if self.operative else "Inoperative"
        if version == V16:
            if self.evse_connector is not None:
                raise CannotSay(_NO_EVSES_IN_16)
            return {"connectorId": self.connector_no, "type": word}
        p: dict[str, Any] = {"operationalStatus": word}
        if self.connector_no:
            p["evse"] = _evse(self.connector_no, self.evse_connector)
        elif self.evse_connector is not None:
            raise CannotSay("a connector is named within its EVSE")
        return p


@dataclass(frozen=True)
class Reset(_NoDetails):
    """`hard`: 1.6 Hard / 2.0.1 Immediate; otherwise 1.6 Soft / 2.0.1 OnIdle. `evse_id` (2.0.1):
    that EVSE alone. Done: Accepted, Scheduled."""

    hard: bool = False
    evse_id: int | None = None

    actions: ClassVar[dict[str, str]] = {V16: "Reset", V201: "Reset"}
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED, Status.SCHEDULED})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            if self.evse_id is not None:
                raise CannotSay("OCPP 1.6 resets the whole charger")
            return {"type": "Hard" if self.hard else "Soft"}
        p: dict[str, Any] = {"type": "Immediate" if self.hard else "OnIdle"}
        if self.evse_id is not None:
            p["evseId"] = self.evse_id
        return p


@dataclass(frozen=True)
class TriggerMessage(_NoDetails):
    """Ask the charger to send `message` now, in the version's own words: 1.6 BootNotification,
    DiagnosticsStatusNotification, FirmwareStatusNotification, Heartbeat, MeterValues,
    StatusNotification; 2.0.1 also TransactionEvent, LogStatusNotification,
    SignChargingStationCertificate, PublishFirmwareStatusNotification and the V2G ones (the schema
    says which; an unknown word is Invalid). `connector_no`: 1.6 the connector, 2.0.1 the EVSE, and
    `evse_connector` one connector of it."""

    message: str
    connector_no: int | None = None
    evse_connector: int | None = None

    actions: ClassVar[dict[str, str]] = {V16: "TriggerMessage", V201: "TriggerMessage"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        p: dict[str, Any] = {"requestedMessage": self.message}
        if self.evse_connector is not None and (version == V16 or self.connector_no is None):
            raise CannotSay(_NO_EVSES_IN_16 if version == V16 else "a connector is named within its EVSE")
        if self.connector_no is not None:
            if version == V16:
                p["connectorId"] = self.connector_no
            else:
                p["evse"] = _evse(self.connector_no, self.evse_connector)
        return p


@dataclass(frozen=True)
class UnlockConnector(_NoDetails):
    """Done: Unlocked. 2.0.1: the EVSE `connector_no`, its connector `evse_connector`."""

    connector_no: int
    evse_connector: int = 1

    actions: ClassVar[dict[str, str]] = {V16: "UnlockConnector", V201: "UnlockConnector"}
    done: ClassVar[frozenset[Status]] = frozenset({Status.UNLOCKED})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            if self.evse_connector != 1:
                raise CannotSay(_NO_EVSES_IN_16)
            return {"connectorId": self.connector_no}
        return {"evseId": self.connector_no, "connectorId": self.evse_connector}


# ---- smart charging ---------------------------------------------------------------------------------


class ProfilePurpose(StrEnum):
    CHARGER_MAX = "ChargerMax"  # 1.6 ChargePointMaxProfile, 2.0.1 ChargingStationMaxProfile
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"

    def word(self, version: OcppVersion) -> str:
        if self is ProfilePurpose.CHARGER_MAX:
            return "ChargePointMaxProfile" if version == V16 else "ChargingStationMaxProfile"
        return self.value


class ProfileKind(StrEnum):
    ABSOLUTE = "Absolute"
    RELATIVE = "Relative"
    RECURRING = "Recurring"


class RateUnit(StrEnum):
    WATTS = "W"
    AMPS = "A"


@dataclass(frozen=True)
class SchedulePeriod:
    start_s: int  # seconds from the schedule's start
    # In the schedule's rate unit (W or A): a rate, not energy or money. None only as read from a
    # 2.1 charger, whose periods may set a setpoint or discharge limit instead; we never send one.
    limit: float | None
    phases: int | None = None  # numberPhases: how many phases the car may use (None: all)
    # 2.1's V2X words (OCPP 2.1 only): operationMode, and for CentralSetpoint the power to hold
    # (negative: discharge) and the most the car may discharge (negative, as 2.1 writes it).
    mode: str | None = None
    setpoint: float | None = None
    discharge_limit: float | None = None

    @property
    def v2x(self) -> bool:
        return self.mode is not None or self.setpoint is not None or self.discharge_limit is not None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"startPeriod": self.start_s}
        if self.limit is not None:
            out["limit"] = self.limit
        if self.phases:
            out["numberPhases"] = self.phases
        if self.mode is not None:
            out["operationMode"] = self.mode
        if self.setpoint is not None:
            out["setpoint"] = self.setpoint
        if self.discharge_limit is not None:
            out["dischargeLimit"] = self.discharge_limit
        return out


class Recurrency(StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


@dataclass(frozen=True)
class ChargingProfile:
    profile_id: int
    stack_level: int
    purpose: ProfilePurpose
    kind: ProfileKind
    rate_unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    duration_s: int | None = None
    starts_at: datetime | None = None  # required by Absolute and Recurring profiles
    transaction: TransactionRef | None = None  # TxProfile only
    recurrency: Recurrency | None = None  # required by a Recurring profile, refused by others
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    min_rate: float | None = None  # minChargingRate: below it the car charges inefficiently

    def schedule(self, version: OcppVersion = V201) -> dict[str, Any]:
        if any(p.v2x for p in self.periods) and version != V21:
            raise CannotSay("operation modes, setpoints and discharge limits are OCPP 2.1's")
        if any(p.limit is None and p.mode is None for p in self.periods):
            raise CannotSay("every period of a profile we send sets a charging limit")
        if (self.kind is ProfileKind.RECURRING) != (self.recurrency is not None):
            raise CannotSay("a Recurring profile, and only one, says Daily or Weekly")
        s: dict[str, Any] = {
            "chargingRateUnit": self.rate_unit.value,
            "chargingSchedulePeriod": [p.body() for p in self.periods],
        }
        if self.duration_s is not None:
            s["duration"] = self.duration_s
        if self.starts_at is not None:
            s["startSchedule"] = format_ts(self.starts_at)
        if self.min_rate is not None:
            s["minChargingRate"] = self.min_rate
        return s


@dataclass(frozen=True)
class SetChargingProfile(_NoDetails):
    """Install a charging profile on `connector_no` (2.0.1: the EVSE; 0 is the whole charger)."""

    connector_no: int
    profile: ChargingProfile

    actions: ClassVar[dict[str, str]] = {V16: "SetChargingProfile", V201: "SetChargingProfile"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        body = _profile_body(self.profile, version, charger_tx)
        if version == V16:
            return {"connectorId": self.connector_no, "csChargingProfiles": body}
        return {"evseId": self.connector_no, "chargingProfile": body}


def _profile_body(pr: ChargingProfile, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
    """A charging profile as each version writes it (SetChargingProfile, or a remote start's)."""
    body: dict[str, Any] = {
        "stackLevel": pr.stack_level,
        "chargingProfilePurpose": pr.purpose.word(version),
        "chargingProfileKind": pr.kind.value,
    }
    if pr.transaction is not None:
        body["transactionId"] = transaction_id(pr.transaction, version, charger_tx)
    if pr.recurrency is not None:
        body["recurrencyKind"] = pr.recurrency.value
    if pr.valid_from is not None:
        body["validFrom"] = format_ts(pr.valid_from)
    if pr.valid_to is not None:
        body["validTo"] = format_ts(pr.valid_to)
    if version == V16:
        body["chargingProfileId"] = pr.profile_id
        body["chargingSchedule"] = pr.schedule(version)
        return body
    body["id"] = pr.profile_id
    body["chargingSchedule"] = [{"id": pr.profile_id, **pr.schedule(version)}]
    return body


@dataclass(frozen=True)
class AllowEnergyTransfer(_NoDetails):
    """NotifyAllowedEnergyTransfer (OCPP 2.1 only): the modes of energy transfer the CSMS accepts
    for a transaction, e.g. AC_BPT (bidirectional AC) so a V2G session may discharge."""

    transaction: TransactionRef
    modes: tuple[str, ...]

    actions: ClassVar[dict[str, str]] = {V201: "NotifyAllowedEnergyTransfer"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version != V21:
            raise CannotSay("NotifyAllowedEnergyTransfer is OCPP 2.1's")
        return {
            "transactionId": transaction_id(self.transaction, version, charger_tx),
            "allowedEnergyTransfer": list(self.modes),
        }


@dataclass(frozen=True)
class ClearChargingProfile(_NoDetails):
    """Clear profiles by id, or by any of connector, purpose and stack level. Unknown: Rejected."""

    profile_id: int | None = None
    connector_no: int | None = None
    purpose: ProfilePurpose | None = None
    stack_level: int | None = None

    actions: ClassVar[dict[str, str]] = {V16: "ClearChargingProfile", V201: "ClearChargingProfile"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        criteria: dict[str, Any] = {}
        if self.purpose is not None:
            criteria["chargingProfilePurpose"] = self.purpose.word(version)
        if self.stack_level is not None:
            criteria["stackLevel"] = self.stack_level
        if version == V16:
            p16 = dict(criteria)
            if self.profile_id is not None:
                p16["id"] = self.profile_id
            if self.connector_no is not None:
                p16["connectorId"] = self.connector_no
            return p16
        p: dict[str, Any] = {}
        if self.profile_id is not None:
            p["chargingProfileId"] = self.profile_id
        if self.connector_no is not None:
            criteria["evseId"] = self.connector_no
        if criteria:
            p["chargingProfileCriteria"] = criteria
        return p


@dataclass(frozen=True)
class CompositeSchedule:
    rate_unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    starts_at: datetime | None
    duration_s: int | None


@dataclass(frozen=True)
class GetCompositeSchedule(Command[CompositeSchedule | None]):
    """The limit the charger will apply over the next `duration_s` on `connector_no`."""

    connector_no: int
    duration_s: int
    rate_unit: RateUnit | None = None

    actions: ClassVar[dict[str, str]] = {V16: "GetCompositeSchedule", V201: "GetCompositeSchedule"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        p: dict[str, Any] = {"duration": self.duration_s}
        p["connectorId" if version == V16 else "evseId"] = self.connector_no
        if self.rate_unit is not None:
            p["chargingRateUnit"] = self.rate_unit.value
        return p

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> CompositeSchedule | None:
        if version == V16:
            schedule, start = answer.get("chargingSchedule"), answer.get("scheduleStart")
        else:
            schedule = answer.get("schedule")
            start = None if schedule is None else schedule["scheduleStart"]
        if schedule is None:
            return None
        return CompositeSchedule(
            RateUnit(schedule["chargingRateUnit"]),
            # 2.1 no longer requires a period's limit (V2X periods may give a setpoint instead)
            tuple(
                SchedulePeriod(p["startPeriod"], p.get("limit")) for p in schedule["chargingSchedulePeriod"]
            ),
            None if start is None else parse_ts(start),
            schedule.get("duration"),
        )


# ---- settings: GetConfiguration / ChangeConfiguration (1.6), GetVariables / SetVariables (2.0.1) ----


@dataclass(frozen=True)
class SettingKey:
    """A setting: 1.6 knows only `name` (a configuration key); 2.0.1 needs its `component` too, and
    the variable's `instance` where the device model names one (e.g. MessageAttempts[TransactionEvent])."""

    name: str
    component: str = ""
    instance: str = ""
    evse: int | None = None  # 2.0.1: the EVSE the component belongs to (e.g. EVSE 2's SupplyPhases)

    def __str__(self) -> str:
        where = self.component if self.evse is None else f"{self.component}({self.evse})"
        named = f"{where}.{self.name}" if self.component else self.name
        return f"{named}[{self.instance}]" if self.instance else named

    def variable(self) -> dict[str, str]:
        """The 2.0.1 VariableType naming it."""
        return {"name": self.name, "instance": self.instance} if self.instance else {"name": self.name}

    def component_type(self) -> dict[str, Any]:
        """The 2.0.1 ComponentType naming it."""
        if self.evse is None:
            return {"name": self.component}
        return {"name": self.component, "evse": {"id": self.evse}}

    @classmethod
    def answered(cls, result: dict[str, Any]) -> SettingKey:
        """The key a 2.0.1 Get/SetVariableResult names."""
        variable, component = result["variable"], result["component"]
        evse = component.get("evse")
        return cls(
            variable["name"],
            component["name"],
            variable.get("instance", ""),
            None if evse is None else int(evse["id"]),
        )


@dataclass(frozen=True)
class SettingValue:
    key: SettingKey
    status: Status  # Accepted, or why not (1.6 unknown keys: UnknownVariable)
    value: str | None = None
    readonly: bool | None = None  # 1.6 says; 2.0.1 does not in this answer


@dataclass(frozen=True)
class GetSettings(Command[tuple[SettingValue, ...]]):
    """Read settings. No keys: every 1.6 configuration key (2.0.1 has no such read: NotApplicable).
    `per_message`: the most keys the charger takes in one request (1.6 GetConfigurationMaxKeys,
    2.0.1 ItemsPerMessageGetVariables); more are asked in several, and their answers joined."""

    keys: tuple[SettingKey, ...] = ()
    per_message: int | None = None

    actions: ClassVar[dict[str, str]] = {V16: "GetConfiguration", V201: "GetVariables"}

    def parts(self, version: OcppVersion) -> list[GetSettings]:
        return [replace(self, keys=k, per_message=None) for k in _chunks(self.keys, self.per_message)]

    def items(self) -> int:
        return len(self.keys)

    def at_most(self, per_message: int) -> GetSettings:
        return replace(self, per_message=per_message)

    def joined(self, done: list[Done[tuple[SettingValue, ...]]]) -> Done[tuple[SettingValue, ...]]:
        return Done(Status.ACCEPTED, tuple(v for d in done for v in d.details))

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            return {"key": [k.name for k in self.keys]} if self.keys else {}
        if not self.keys:
            raise CannotSay("OCPP 2.0.1 reads named variables only (a full read is GetBaseReport)")
        return {
            "getVariableData": [
                {"component": k.component_type(), "variable": k.variable()} for k in self.keys
            ]
        }

    def result(
        self, version: OcppVersion, answer: dict[str, Any]
    ) -> Done[tuple[SettingValue, ...]] | Rejected:
        return Done(Status.ACCEPTED, self.details(version, answer))

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> tuple[SettingValue, ...]:
        if version == V16:
            found = [
                SettingValue(SettingKey(c["key"]), Status.ACCEPTED, c.get("value"), c["readonly"])
                for c in answer.get("configurationKey", [])
            ]
            unknown = [
                SettingValue(SettingKey(k), Status.UNKNOWN_VARIABLE) for k in answer.get("unknownKey", [])
            ]
            return tuple(found + unknown)
        return tuple(
            SettingValue(SettingKey.answered(r), Status(r["attributeStatus"]), r.get("attributeValue"))
            for r in answer["getVariableResult"]
        )


class ReportBase(StrEnum):
    CONFIGURATION = "ConfigurationInventory"  # what can be set
    FULL = "FullInventory"  # everything
    SUMMARY = "SummaryInventory"  # the charger's own choice (availability, problems, ...)


class ComponentCriterion(StrEnum):
    ACTIVE = "Active"
    AVAILABLE = "Available"
    ENABLED = "Enabled"
    PROBLEM = "Problem"


_NO_REPORTS_IN_16 = "OCPP 1.6 has no device-model reports (read its configuration with GetSettings)"


@dataclass(frozen=True)
class GetBaseReport(_NoDetails):
    """2.0.1: the charger reports its device model, as NotifyReport messages tagged `request_id`
    (kept among its reports). Done: Accepted; EmptyResultSet, NotSupported and Rejected refuse."""

    request_id: int
    base: ReportBase = ReportBase.FULL

    actions: ClassVar[dict[str, str]] = {V201: "GetBaseReport"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            raise CannotSay(_NO_REPORTS_IN_16)
        return {"requestId": self.request_id, "reportBase": self.base.value}


@dataclass(frozen=True)
class GetReport(_NoDetails):
    """2.0.1: a report of the named components' variables (a key without a name: the whole
    component), and/or those meeting the criteria; NotifyReport tagged `request_id` follows."""

    request_id: int
    variables: tuple[SettingKey, ...] = ()
    criteria: tuple[ComponentCriterion, ...] = ()

    actions: ClassVar[dict[str, str]] = {V201: "GetReport"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            raise CannotSay(_NO_REPORTS_IN_16)
        if any(not k.component for k in self.variables):
            raise CannotSay("a 2.0.1 report names each variable's component")
        p: dict[str, Any] = {"requestId": self.request_id}
        if self.variables:
            p["componentVariable"] = [
                {"component": k.component_type(), **({"variable": k.variable()} if k.name else {})}
                for k in self.variables
            ]
        if self.criteria:
            p["componentCriteria"] = [c.value for c in self.criteria]
        return p


@dataclass(frozen=True)
class ChangeSetting(_NoDetails):
    """Set one setting. Done: Accepted or RebootRequired."""

    key: SettingKey
    value: str

    actions: ClassVar[dict[str, str]] = {V16: "ChangeConfiguration", V201: "SetVariables"}
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED, Status.REBOOT_REQUIRED})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            return {"key": self.key.name, "value": self.value}
        return {
            "setVariableData": [
                {
                    "attributeValue": self.value,
                    "component": self.key.component_type(),
                    "variable": self.key.variable(),
                }
            ]
        }

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> Done[None] | Rejected:
        if version == V16:
            return super().result(version, answer)
        (first,) = answer["setVariableResult"]
        return super().result(version, {"status": first["attributeStatus"], **first})


@dataclass(frozen=True)
class ChangeSettings(Command[tuple[SettingValue, ...]]):
    """Set several settings, each answered on its own (Accepted, RebootRequired, Rejected,
    UnknownVariable, ...), so the command itself is done. 1.6 sets one key per ChangeConfiguration;
    2.0.1 as many per SetVariables as `per_message` (ItemsPerMessageSetVariables) allows."""

    values: tuple[tuple[SettingKey, str], ...]
    per_message: int | None = None

    actions: ClassVar[dict[str, str]] = {V16: "ChangeConfiguration", V201: "SetVariables"}

    def parts(self, version: OcppVersion) -> list[ChangeSettings]:
        per = 1 if version == V16 else self.per_message
        return [replace(self, values=v, per_message=None) for v in _chunks(self.values, per)]

    def items(self) -> int:
        return len(self.values)

    def at_most(self, per_message: int) -> ChangeSettings:
        return replace(self, per_message=per_message)

    def joined(self, done: list[Done[tuple[SettingValue, ...]]]) -> Done[tuple[SettingValue, ...]]:
        return Done(Status.ACCEPTED, tuple(v for d in done for v in d.details))

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if not self.values:
            raise CannotSay("set at least one setting")
        if version == V16:
            if len(self.values) > 1:
                raise CannotSay("OCPP 1.6 changes one key per ChangeConfiguration")
            ((key, value),) = self.values
            return {"key": key.name, "value": value}
        return {
            "setVariableData": [
                {
                    "attributeValue": value,
                    "component": key.component_type(),
                    "variable": key.variable(),
                }
                for key, value in self.values
            ]
        }

    def result(
        self, version: OcppVersion, answer: dict[str, Any]
    ) -> Done[tuple[SettingValue, ...]] | Rejected:
        return Done(Status.ACCEPTED, self.details(version, answer))

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> tuple[SettingValue, ...]:
        if version == V16:
            ((key, value),) = self.values
            return (SettingValue(key, Status(answer["status"]), value),)
        return tuple(
            SettingValue(SettingKey.answered(r), Status(r["attributeStatus"]))
            for r in answer["setVariableResult"]
        )


def _chunks(items: tuple[T, ...], size: int | None) -> list[tuple[T, ...]]:
    if size is None or len(items) <= size:
        return [items]
    if size < 1:
        raise CannotSay("a charger takes at least one item per message")
    return [items[i : i + size] for i in range(0, len(items), size)]


@runtime_checkable
class InParts(Protocol):
    """A command the registry sends in several requests when it names more items than the charger
    takes in one (`parts`), joining the parts' answers (`joined`). A charger that refuses a request
    for naming too many (OccurrenceConstraintViolation) is asked again in halves (`at_most`)."""

    def parts(self, version: OcppVersion) -> Sequence[Command[Any]]: ...

    def joined(self, done: list[Done[Any]]) -> Done[Any]: ...

    def items(self) -> int: ...

    def at_most(self, per_message: int) -> Command[Any]: ...


TOO_MANY_ITEMS = "OccurrenceConstraintViolation"  # the CALLERROR for more items than a charger takes


# ---- local authorisation list and cache -------------------------------------------------------------


@dataclass(frozen=True)
class SendLocalList(_NoDetails):
    """Install version `version` of the charger's local list: the whole list (Full), or changes to
    it (Differential: an entry without status removes that token). Done: Accepted; Failed,
    VersionMismatch and NotSupported are the charger's refusals."""

    version: int
    update: UpdateType = UpdateType.FULL
    entries: tuple[ListEntry, ...] = ()

    actions: ClassVar[dict[str, str]] = {V16: "SendLocalList", V201: "SendLocalList"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if self.update is UpdateType.FULL and any(e.status is None for e in self.entries):
            raise CannotSay("a Full local list gives every entry a status (only Differential removes)")
        if version == V16:
            p16: dict[str, Any] = {"listVersion": self.version, "updateType": self.update.value}
            if self.entries:
                p16["localAuthorizationList"] = [self._entry16(e) for e in self.entries]
            return p16
        p: dict[str, Any] = {"versionNumber": self.version, "updateType": self.update.value}
        if self.entries:
            p["localAuthorizationList"] = [self._entry201(e) for e in self.entries]
        return p

    @staticmethod
    def _entry16(e: ListEntry) -> dict[str, Any]:
        out: dict[str, Any] = {"idTag": e.value}
        if e.status is not None:
            info: dict[str, Any] = {"status": e.status.value}
            if e.expires_at is not None:
                info["expiryDate"] = format_ts(e.expires_at)
            if e.group_id is not None:
                info["parentIdTag"] = e.group_id
            out["idTagInfo"] = info
        return out

    @staticmethod
    def _entry201(e: ListEntry) -> dict[str, Any]:
        out: dict[str, Any] = {"idToken": {"idToken": e.value, "type": e.type.value}}
        if e.status is not None:
            info: dict[str, Any] = {"status": e.status.value}
            if e.expires_at is not None:
                info["cacheExpiryDateTime"] = format_ts(e.expires_at)
            if e.group_id is not None:
                info["groupIdToken"] = {"idToken": e.group_id, "type": "Central"}
            out["idTokenInfo"] = info
        return out


@dataclass(frozen=True)
class GetLocalListVersion(Command[int]):
    """The version of the charger's local list (0: none installed). A 1.6 charger without a local
    list answers -1: Rejected NotSupported."""

    actions: ClassVar[dict[str, str]] = {V16: "GetLocalListVersion", V201: "GetLocalListVersion"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        return {}

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> Done[int] | Rejected:
        found = self.details(version, answer)
        if found < 0:
            return Rejected(Status.NOT_SUPPORTED, "the charger has no local authorisation list")
        return Done(Status.ACCEPTED, found)

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> int:
        return int(answer["listVersion" if version == V16 else "versionNumber"])


@dataclass(frozen=True)
class ClearCache(_NoDetails):
    """Empty the charger's authorisation cache (not its local list)."""

    actions: ClassVar[dict[str, str]] = {V16: "ClearCache", V201: "ClearCache"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        return {}


# ---- certificates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateSigned(_NoDetails):
    """The certificate chain (PEM, the charger's certificate first) our CA signed for the charger's
    SignCertificate. 2.0.1 names what it is for; 1.6's security extension has only the charger's
    own certificate."""

    chain: str
    certificate_type: str | None = None

    actions: ClassVar[dict[str, str]] = {V16: "CertificateSigned", V201: "CertificateSigned"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        p: dict[str, Any] = {"certificateChain": self.chain}
        if version != V16 and self.certificate_type is not None:
            p["certificateType"] = self.certificate_type
        return p


class CertificateUse(StrEnum):
    """What an installed certificate is for, in 2.0.1's words (1.6 knows the first two only, and
    calls the CSMS root CentralSystemRootCertificate). A V2G certificate chain can be listed, never
    installed this way."""

    CSMS_ROOT = "CSMSRootCertificate"
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"
    V2G_ROOT = "V2GRootCertificate"
    MO_ROOT = "MORootCertificate"
    V2G_CHAIN = "V2GCertificateChain"


_USE16 = {
    CertificateUse.CSMS_ROOT: "CentralSystemRootCertificate",
    CertificateUse.MANUFACTURER_ROOT: "ManufacturerRootCertificate",
}


def say_use(use: CertificateUse, version: OcppVersion) -> str:
    if version != V16:
        return use.value
    if use not in _USE16:
        raise CannotSay(f"OCPP 1.6 has no {use.value}")
    return _USE16[use]


def read_use(value: str) -> CertificateUse:
    return next((u for u, v in _USE16.items() if v == value), None) or CertificateUse(value)


@dataclass(frozen=True)
class CertificateHash:
    """A certificate as OCPP names it (CertificateHashData): hashes of its issuer's name and key, and
    its serial number in hex (chargeshare.ocpp.certificate_ids computes one from a certificate)."""

    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    hash_algorithm: str = "SHA256"

    def said(self) -> dict[str, str]:
        return {
            "hashAlgorithm": self.hash_algorithm,
            "issuerNameHash": self.issuer_name_hash,
            "issuerKeyHash": self.issuer_key_hash,
            "serialNumber": self.serial_number,
        }

    @classmethod
    def read(cls, d: dict[str, Any]) -> CertificateHash:
        return cls(d["issuerNameHash"], d["issuerKeyHash"], d["serialNumber"], d["hashAlgorithm"])


@dataclass(frozen=True)
class InstalledCertificate:
    use: CertificateUse
    hash: CertificateHash


@dataclass(frozen=True)
class InstallCertificate(_NoDetails):
    """Install a root certificate (PEM) the charger then trusts: ours, so it can check the CSMS's
    TLS certificate (security profiles 2 and 3), or a manufacturer's, for signed firmware."""

    use: CertificateUse
    certificate: str

    actions: ClassVar[dict[str, str]] = {V16: "InstallCertificate", V201: "InstallCertificate"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if self.use is CertificateUse.V2G_CHAIN:
            raise CannotSay("a V2G certificate chain is not installed with InstallCertificate")
        return {"certificateType": say_use(self.use, version), "certificate": self.certificate}


@dataclass(frozen=True)
class GetInstalledCertificateIds(Command[tuple[InstalledCertificate, ...]]):
    """The certificates the charger holds of the given uses (2.0.1: every use when none is given;
    1.6 asks for exactly one). NotFound is done, with none."""

    uses: tuple[CertificateUse, ...] = ()

    actions: ClassVar[dict[str, str]] = {
        V16: "GetInstalledCertificateIds",
        V201: "GetInstalledCertificateIds",
    }
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED, Status.NOT_FOUND})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            if len(self.uses) != 1:
                raise CannotSay("OCPP 1.6 asks for one certificate use at a time")
            return {"certificateType": say_use(self.uses[0], version)}
        return {"certificateType": [u.value for u in self.uses]} if self.uses else {}

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> tuple[InstalledCertificate, ...]:
        if version == V16:
            return tuple(
                InstalledCertificate(self.uses[0], CertificateHash.read(h))
                for h in answer.get("certificateHashData", [])
            )
        return tuple(
            InstalledCertificate(
                read_use(c["certificateType"]), CertificateHash.read(c["certificateHashData"])
            )
            for c in answer.get("certificateHashDataChain", [])
        )


@dataclass(frozen=True)
class DeleteCertificate(_NoDetails):
    """Remove an installed certificate, named by its hash data. Failed and NotFound are refusals."""

    hash: CertificateHash

    actions: ClassVar[dict[str, str]] = {V16: "DeleteCertificate", V201: "DeleteCertificate"}

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        return {"certificateHashData": self.hash.said()}
