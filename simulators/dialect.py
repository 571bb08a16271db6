"""What a protocol dialect does for the virtual charger: build the payloads it sends, read the answers,
and turn the CSMS's commands into the firmware's version-neutral operations. One per OCPP version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chargeshare.ocpp import V16, V21, V201, VERSIONS, OcppVersion
from chargeshare.ocpp.connection import Handler, Outcome
from simulators.evse import BootReason, StopReason, Transaction, VirtualConnector

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort

Message = tuple[str, dict[str, Any]]  # (action, payload)


@dataclass(eq=False)
class QueuedMessage:
    """A transaction message held for replay, with what takes the answer its replay gets."""

    action: str
    payload: dict[str, Any]
    then: Callable[[Outcome], None] | None = None
    sendings: int = 0  # times sent so far that the CSMS failed to process or left unanswered

    @property
    def message(self) -> Message:
        return self.action, self.payload


FIRMWARE = "chargeshare-sim"  # the version a virtual charger boots with until it is updated


class Dialect(Protocol):
    version: OcppVersion
    subprotocol: str
    transaction_actions: frozenset[str]
    ends_refused_start: bool  # a refused start is itself a transaction the CSMS must see end

    def boot(self, reason: BootReason, firmware: str = ...) -> Message: ...
    def read_boot(self, payload: dict[str, Any]) -> tuple[str, int]: ...
    def heartbeat(self) -> Message: ...
    def status(self, c: VirtualConnector, ts: str) -> Message: ...
    def authorize(self, id_tag: str) -> Message: ...
    def id_status(self, payload: dict[str, Any]) -> str: ...
    def started(
        self, c: VirtualConnector, tx: Transaction, ts: str, reservation_id: int | None
    ) -> Message: ...
    def start_accepted(self, tx: Transaction, outcome: Outcome) -> bool: ...
    def meter(self, c: VirtualConnector, tx: Transaction, ts: str, power_w: int) -> Message: ...
    def triggered_meter(
        self, c: VirtualConnector, tx: Transaction | None, ts: str, power_w: int
    ) -> Message: ...
    def charging_state_changed(self, c: VirtualConnector, tx: Transaction, ts: str) -> Message | None: ...
    def ended(self, c: VirtualConnector, tx: Transaction, ts: str, reason: StopReason) -> Message: ...
    def reservation_expired(self, reservation_id: int) -> Message | None:
        """What tells the CSMS a reservation lapsed on the charger (None: the version has nothing)."""
        ...

    def mark_offline(self, action: str, payload: dict[str, Any]) -> dict[str, Any]: ...
    def bad_meter_values(self) -> dict[str, Any]: ...
    def handlers(self, cp: ChargerPort) -> dict[str, Handler]: ...
    def refusal(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None: ...


PROTOCOLS = VERSIONS


def dialect_for(protocol: OcppVersion) -> Dialect:
    from simulators import dialect_v16, dialect_v21, dialect_v201

    if protocol == V16:
        return dialect_v16.V16()
    if protocol == V201:
        return dialect_v201.V201()
    if protocol == V21:
        return dialect_v21.V21()
    raise ValueError(f"unknown OCPP version {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def status_refusal(action: str, version: OcppVersion) -> dict[str, Any] | None:
    """{"status": "Rejected"} where the action's response allows it, from the library's schema."""
    from ocpp.messages import get_validator

    from chargeshare.ocpp.frames import CALLRESULT

    try:
        schema = get_validator(CALLRESULT, action, version).schema
    except (OSError, ValueError):
        return None
    status = schema.get("properties", {}).get("status", {})
    enum = status.get("enum")
    if enum is None and "$ref" in status:
        enum = schema["definitions"][status["$ref"].split("/")[-1]].get("enum")
    return {"status": "Rejected"} if enum and "Rejected" in enum else None
