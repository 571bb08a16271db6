"""What a case body works with: send commands, wait for frames, ask the operator, cite evidence."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chargeshare.certify.model import Case, CaseFailed, NotApplicable, NotRun, Profile
from chargeshare.certify.operator import Action, Operator, Step
from chargeshare.certify.wirelog import CALLERROR, Entry, WireLog
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, OcppVersion
from chargeshare.services.clock import Clock

Match = Callable[[dict[str, Any]], bool]
NOT_SUPPORTED = frozenset({"NotSupported", "NotImplemented"})


@dataclass(frozen=True)
class Settings:
    """The test plan's knobs. Waits are real seconds; `reservation_s` is in the charger's clock."""

    connector: int = 1
    id_tag: str = "CERT-VALID-1"
    invalid_tag: str = "CERT-UNKNOWN-9"
    other_tag: str = "CERT-VALID-2"
    answer_timeout_s: float = 30.0
    event_timeout_s: float = 60.0  # frames a charger sends on its own (status, meter values, boot)
    quiet_s: float = 5.0  # how long "nothing happens" is watched for
    reservation_s: float = 120.0
    settle_s: float = 0.2  # between cases: the last case's follow-up frames arrive first
    firmware_url: str | None = None
    diagnostics_url: str | None = None


RATE_UNIT_KEY_16 = "ChargingScheduleAllowedChargingRateUnit"
VOLTS = 230  # a case's limit in amps, per phase, as watts for a charger that takes W only


def rate_unit_of(declared: str) -> str:
    """The unit to send schedules in, from a declared list ("Current,Power" in 1.6, "A,W" in 2.0.1)."""
    units = {u.strip() for u in declared.replace(";", ",").split(",") if u.strip()}
    if units and not units & {"Current", "A"} and units & {"Power", "W"}:
        return "W"
    return "A"


def limit_in(unit: str, amps: float) -> float:
    return amps if unit == "A" else amps * VOLTS


class LinkLost(Exception):
    """The charger is not connected and did not come back in time."""


class CaseContext:
    def __init__(
        self,
        case: Case,
        *,
        registry: ChargerRegistry,
        cp_id: str,
        version: OcppVersion,
        log: WireLog,
        operator: Operator,
        clock: Clock,
        settings: Settings,
        declared: dict[str, str] | None = None,
    ) -> None:
        self.case, self.registry, self.cp_id, self.version = case, registry, cp_id, version
        self.log, self.operator, self.clock, self.settings = log, operator, clock, settings
        # What the charger declared of itself, read once per run and shared by its cases.
        self.declared: dict[str, str] = {} if declared is None else declared
        self.start = log.mark()
        self.cited: list[Entry] = []
        # What the case left behind, for the runner to undo if the case stops half-way.
        self.car_plugged = False
        self.reservations: set[int] = set()

    # ---- evidence ------------------------------------------------------------------------------
    def cite(self, *entries: Entry | None) -> None:
        self.cited.extend(e for e in entries if e is not None)

    def fail(self, reason: str, *entries: Entry | None) -> CaseFailed:
        self.cite(*entries)
        return CaseFailed(reason)

    def not_applicable(self, reason: str, *entries: Entry | None) -> NotApplicable:
        self.cite(*entries)
        return NotApplicable(reason)

    def window(self) -> list[Entry]:
        return self.log.since(self.start)

    # ---- commands ------------------------------------------------------------------------------
    async def connected(self, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.settings.event_timeout_s)
        while self.cp_id not in self.registry.links:
            if time.monotonic() > deadline:
                raise LinkLost(f"{self.cp_id} is not connected")
            await asyncio.sleep(0.05)

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[Entry, Entry]:
        """Send a command; return (our call, its answer) as captured. No answer is a failure."""
        await self.connected()
        outcome = await self.registry.call(self.cp_id, action, payload)
        sent = self.log.by_uid(outcome.unique_id, "out") if outcome.unique_id else None
        if sent is None:
            raise LinkLost(f"{action} could not be sent: {outcome.error}")
        answer = self.log.answer_to(sent)
        if answer is None:
            raise self.fail(f"no answer to {action} ({outcome.error or 'lost'})", sent)
        self.cite(sent, answer)
        return sent, answer

    def supported(self, sent: Entry, answer: Entry) -> None:
        """A NotSupported CALLERROR fails a Core case, and makes an optional profile's case not applicable."""
        if answer.kind == CALLERROR and answer.error_code in NOT_SUPPORTED:
            if self.case.profile is Profile.CORE:
                raise self.fail(
                    f"{sent.action} is Core, but the charger answered {answer.error_code}", answer
                )
            raise self.not_applicable(f"the charger answered {answer.error_code} to {sent.action}", answer)
        if answer.kind == CALLERROR:
            raise self.fail(f"{sent.action} was answered with CALLERROR {answer.error_code}", answer)

    async def command(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """call + supported: the answer's payload."""
        sent, answer = await self.call(action, payload)
        self.supported(sent, answer)
        assert answer.payload is not None
        return answer.payload

    async def rate_unit(self) -> str:
        """ "A" or "W": the unit the charger takes charging schedules in. A charger that declares Power
        only (1.6 ChargingScheduleAllowedChargingRateUnit, 2.0.1 SmartChargingCtrlr.RateUnit) gets W;
        one that allows Current, or says nothing, gets A."""
        if "rate_unit" not in self.declared:
            self.declared["rate_unit"] = rate_unit_of(await self._declared_rate_units())
        return self.declared["rate_unit"]

    async def _declared_rate_units(self) -> str:
        if self.version == V16:
            _, answer = await self.call("GetConfiguration", {"key": [RATE_UNIT_KEY_16]})
            for item in (answer.payload or {}).get("configurationKey", []):
                if item.get("key") == RATE_UNIT_KEY_16:
                    return str(item.get("value") or "")
            return ""
        asked = {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}}
        _, answer = await self.call("GetVariables", {"getVariableData": [asked]})
        for item in (answer.payload or {}).get("getVariableResult", []):
            if item.get("attributeStatus") == "Accepted":
                return str(item.get("attributeValue") or "")
        return ""

    def status_is(self, answer: dict[str, Any], *expected: str, what: str) -> None:
        status = answer.get("status")
        if status not in expected:
            raise self.fail(f"{what}: answered {status!r}, expected {' or '.join(expected)}", self.cited[-1])

    # ---- frames the charger sends on its own -------------------------------------------------
    def find(self, action: str, match: Match | None = None, *, since: int | None = None) -> list[Entry]:
        since = self.start if since is None else since
        return [
            e
            for e in self.log.calls(action, since=since)
            if e.payload is not None and (match is None or _safe(match, e.payload))
        ]

    async def wait_for(
        self,
        action: str,
        match: Match | None = None,
        *,
        since: int | None = None,
        timeout_s: float | None = None,
        what: str | None = None,
    ) -> Entry:
        """The first matching charger call after `since` (default: the case start), waiting for it."""
        changed = asyncio.Event()
        stop = self.log.on_entry(changed.set)
        deadline = time.monotonic() + (timeout_s or self.settings.event_timeout_s)
        try:
            while True:
                found = self.find(action, match, since=since)
                if found:
                    self.cite(found[0])
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = timeout_s or self.settings.event_timeout_s
                    raise self.fail(f"no {what or action} from the charger within {waited:.0f} s")
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), left)
        finally:
            stop()

    async def quiet(self, action: str, match: Match | None = None, *, since: int, what: str) -> None:
        """Watch for `quiet_s`: no matching charger call may appear."""
        await asyncio.sleep(self.settings.quiet_s)
        found = self.find(action, match, since=since)
        if found:
            raise self.fail(f"the charger sent {what}", *found)

    # ---- the operator --------------------------------------------------------------------------
    async def operator_does(self, action: Action, id_tag: str | None = None) -> None:
        step = Step(action, self.settings.connector, id_tag)
        if not await self.operator.perform(step):
            raise NotRun(f"needs an operator to: {step.instruction()}")
        self.car_plugged = action is not Action.UNPLUG

    async def restore(self) -> None:
        """After a case stopped half-way: unplug its car and cancel its reservations, so the next
        case starts from an idle connector (best effort: the verdict is already decided)."""
        with contextlib.suppress(Exception):
            if self.car_plugged:
                await self.operator.perform(Step(Action.UNPLUG, self.settings.connector))
            for reservation_id in sorted(self.reservations):
                await self.registry.call(self.cp_id, "CancelReservation", {"reservationId": reservation_id})


def _safe(match: Match, payload: dict[str, Any]) -> bool:
    """A predicate over a charger's payload; a missing or odd field is simply no match."""
    try:
        return bool(match(payload))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
