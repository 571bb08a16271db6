"""What a certification case is, and what it concludes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from chargeshare.certify.wirelog import Entry

if TYPE_CHECKING:
    from chargeshare.certify.context import CaseContext


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"  # the case could not reach a verdict (our bug, a lost link, an operator abort)
    NOT_APPLICABLE = "NOT APPLICABLE"  # the charger does not have what the case exercises
    NOT_RUN = "NOT RUN"  # the case needed a person at the charger and there was none


class Profile(StrEnum):
    CORE = "core"
    REMOTE_TRIGGER = "remote-trigger"
    RESERVATION = "reservation"
    SMART_CHARGING = "smart-charging"
    LOCAL_AUTH_LIST = "local-auth-list"
    FIRMWARE = "firmware"


# How OCPP 1.6 names the feature profiles in SupportedFeatureProfiles.
PROFILE_OF_OCPP16_NAME = {
    "Core": Profile.CORE,
    "RemoteTrigger": Profile.REMOTE_TRIGGER,
    "Reservation": Profile.RESERVATION,
    "SmartCharging": Profile.SMART_CHARGING,
    "LocalAuthListManagement": Profile.LOCAL_AUTH_LIST,
    "FirmwareManagement": Profile.FIRMWARE,
}

CaseBody = Callable[["CaseContext"], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    """One conformance case. `ref` names the public OCTT test case (or 2.0.1 use case) it follows."""

    id: str
    ref: str
    title: str
    profile: Profile
    versions: frozenset[str]
    body: CaseBody
    checks: str  # what the case asserts, in a sentence or two (also the docs' wording)
    needs_operator: bool = False  # a physical action: plugging a cable, presenting a card


class CaseFailed(Exception):
    """The captured frames show the charger broke the rule the case checks."""

    def __init__(self, reason: str, evidence: list[Entry] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.evidence = reason, evidence or []


class NotApplicable(Exception):
    """The case cannot be exercised on this charger; the reason says why (never a silent pass)."""

    def __init__(self, reason: str, evidence: list[Entry] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.evidence = reason, evidence or []


class NotRun(Exception):
    """The case needs a physical action nobody was there to do: it says nothing about the charger."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    ref: str
    title: str
    profile: str
    verdict: Verdict
    reason: str
    duration_s: float
    excerpt: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CertificationReport:
    charge_point_id: str
    protocol: str
    role: str  # "charger": we certified a charger; "csms": we certified a central system
    started_at: str  # RFC 3339
    results: list[CaseResult]
    finished_at: str = ""  # RFC 3339; empty in reports written before it was kept
    # The device under test as its BootNotification named it: vendor, model, serial, firmware.
    device: dict[str, str] = field(default_factory=dict)
    tool_version: str = ""

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.results if r.verdict is verdict)

    @property
    def passed(self) -> bool:
        """Certified: nothing failed or errored, and every Core case ran. Not-applicable cases, and
        optional ones not run, are listed, not held against it."""
        return all(
            r.verdict in (Verdict.PASS, Verdict.NOT_APPLICABLE)
            or (r.verdict is Verdict.NOT_RUN and r.profile != Profile.CORE.value)
            for r in self.results
        )

    @property
    def core_not_run(self) -> list[str]:
        return [
            r.case_id
            for r in self.results
            if r.verdict is Verdict.NOT_RUN and r.profile == Profile.CORE.value
        ]
