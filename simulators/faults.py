"""The fault catalogue, one for both engines: what each fault a scenario may fire is, when each
starts and ends, and which chargers it hits.

Nothing here waits or sends. Each engine (`simulators.live_faults` on asyncio,
`simulators.des.faults` on SimPy) plays the `plan`; as a fault starts, `fire` gives its
`FaultRecord` and the chargers it hits (`victims`; a spoof finds its own with
`running_transaction` and `spoofer`), and the engine's executor only applies it to those chargers,
its backend or its apps. The records let the two engines be held to the same timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from chargeshare.domain.booking import BookingStatus
from chargeshare.services.records import BookingRecord
from simulators.evse import Transaction, VirtualConnector


@dataclass(frozen=True)
class Fault:
    at_s: int  # simulated seconds after the start of the run
    action: str
    count: int = 1
    duration_s: int = 0  # for faults that last (outages, disconnections, silences)
    lose_queue: bool = False  # reboot: the queued transaction messages die with the power
    skew_s: float = 0.0  # clock_skew: how far the chargers' clocks are off; clock_jump: how far
    # their clocks move from where they are (below 0: back, as a reset real-time clock)
    percent: float = 0.0  # drop_frames: share of each victim's outgoing frames lost, 0..100
    delay_s: float = 0.0  # delay_responses: how late each victim handles and answers a command
    commands: tuple[str, ...] = ()  # reject_commands: the actions refused; empty means all of them
    frames: int = 0  # malformed_frames: how many broken frames each victim sends
    protocol: str | None = None  # only chargers speaking this OCPP version ("1.6" or "2.0.1")
    latency_s: float = 0.0  # provider_slow: simulated seconds each payment provider call takes
    spoofer: str = "fleet"  # spoofed_charger: another charger of the fleet, or an "unregistered" one
    failpoint: str | None = None  # backend_crash: die at this money-path boundary (chargeshare.failpoints)


class Scope(StrEnum):
    """What a fault acts on, which says who picks its targets."""

    CHARGERS = "chargers"  # `count` chargers of the fleet, chosen by `victims` when it starts
    TRANSACTION = "transaction"  # a running transaction once there is one (`running_transaction`)
    BACKEND = "backend"  # the payment provider or the backend's processes
    APPS = "apps"  # drivers', hosts' and operators' requests


class Lasts(StrEnum):
    NEVER = "never"  # done at once, or on from then until the run ends
    ALWAYS = "always"  # needs a duration
    OPTIONALLY = "optionally"  # lifted after its duration when it has one


_NO_WIRE = "the in-process link has no wire"
_NO_RACE = "one thread calls the services one after another, so no two requests race"
_NO_PROCESS = "the backend runs in the engine's own process, which has no process to kill"


@dataclass(frozen=True)
class Kind:
    scope: Scope
    lasts: Lasts = Lasts.NEVER
    not_in_des: str | None = None  # why the discrete-event engine cannot model it


CATALOGUE: dict[str, Kind] = {
    "host_cancels": Kind(Scope.APPS),
    "payment_outage": Kind(Scope.BACKEND, Lasts.ALWAYS),
    "disconnect": Kind(Scope.CHARGERS, Lasts.ALWAYS),
    "reboot": Kind(Scope.CHARGERS),
    "silence": Kind(Scope.CHARGERS, Lasts.ALWAYS),
    "duplicate_frames": Kind(Scope.CHARGERS),
    "clock_skew": Kind(Scope.CHARGERS),
    "clock_jump": Kind(Scope.CHARGERS),
    "drop_frames": Kind(Scope.CHARGERS, Lasts.OPTIONALLY, _NO_WIRE),
    "delay_responses": Kind(Scope.CHARGERS, Lasts.OPTIONALLY, _NO_WIRE),
    "reject_commands": Kind(Scope.CHARGERS, Lasts.OPTIONALLY, _NO_WIRE),
    "malformed_frames": Kind(Scope.CHARGERS, not_in_des=_NO_WIRE),
    "provider_slow": Kind(
        Scope.BACKEND, Lasts.ALWAYS, "a payment provider call is answered in the virtual instant it is made"
    ),
    "spoofed_charger": Kind(Scope.TRANSACTION),
    "racing_cancels": Kind(Scope.APPS, not_in_des=_NO_RACE),
    "racing_payouts": Kind(Scope.APPS, not_in_des=_NO_RACE),
    "backend_crash": Kind(Scope.BACKEND, Lasts.ALWAYS, _NO_PROCESS),
    "node_crash": Kind(Scope.BACKEND, Lasts.OPTIONALLY, _NO_PROCESS),
    "node_restart": Kind(Scope.BACKEND, not_in_des=_NO_PROCESS),
}
ACTIONS = tuple(sorted(CATALOGUE))
LASTING = frozenset(a for a, k in CATALOGUE.items() if k.lasts is Lasts.ALWAYS)  # need a duration
IN_DES = frozenset(a for a, k in CATALOGUE.items() if k.not_in_des is None)

# A fault that needs a victim not there yet (a transaction, enough bookings) looks again this often.
VICTIMS_POLL_SIM_S = 10.0


# ---- timing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    """One entry of a fault timeline: the fault, its place in the scenario's list, and when it
    starts and ends (simulated seconds after the start of the run)."""

    index: int
    fault: Fault

    @property
    def start_s(self) -> float:
        return float(self.fault.at_s)

    @property
    def end_s(self) -> float:
        """When a lasting fault is lifted; its start for one done at once or on for good."""
        lasts = CATALOGUE[self.fault.action].lasts is not Lasts.NEVER and self.fault.duration_s > 0
        return self.start_s + (self.fault.duration_s if lasts else 0)


def plan(faults: Iterable[Fault]) -> tuple[Planned, ...]:
    """The timeline: each fault starts at its own time whatever else is lasting then (entries run
    concurrently, not one after another); those starting together keep the file's order."""
    return tuple(sorted((Planned(i, f) for i, f in enumerate(faults)), key=lambda p: (p.start_s, p.index)))


@dataclass
class FaultRecord:
    """What an engine fired: when it started (simulated seconds after the start of the run) and the
    chargers it hit, by id."""

    index: int
    action: str
    started_s: float
    until_s: float  # the plan's end
    chargers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "action": self.action,
            "started_s": round(self.started_s, 1),
            "until_s": self.until_s,
            "chargers": list(self.chargers),
        }


# ---- targets --------------------------------------------------------------------------------------
class Target(Protocol):
    """What choosing a victim asks of a charger, live or in the DES."""

    cp_id: str
    connectors: dict[int, VirtualConnector]
    connected: bool
    silent: bool

    @property
    def protocol(self) -> str: ...


T = TypeVar("T", bound=Target)


def busy(charger: Target) -> bool:
    return any(
        c.plugged is not None and c.plugged.transaction_id is not None for c in charger.connectors.values()
    )


def victims(fault: Fault, fleet: Iterable[T]) -> list[T]:
    """`count` chargers (of the fault's OCPP version if it names one), those mid-transaction first
    (the interesting case), then by id."""
    eligible = [c for c in fleet if fault.protocol is None or c.protocol == fault.protocol]
    return sorted(eligible, key=lambda c: (not busy(c), c.cp_id))[: fault.count]


def running_transaction(
    fleet: Iterable[T], protocol: str | None, spoofed: set[str]
) -> tuple[T, VirtualConnector, Transaction] | None:
    """A transaction the backend knows of, on a charger not spoofed yet (by id; of one OCPP version
    if asked)."""
    for charger in sorted(fleet, key=lambda c: c.cp_id):
        if charger.cp_id in spoofed or (protocol is not None and charger.protocol != protocol):
            continue
        for c in charger.connectors.values():
            tx = c.transaction
            if tx is not None and tx.wire_id is not None:
                return charger, c, tx
    return None


def spoofer(fleet: Iterable[T], victim: T) -> T | None:
    """The fleet's charger that names the victim's transaction: the first by id speaking its
    version, in touch with the backend."""
    others = (
        c
        for c in sorted(fleet, key=lambda c: c.cp_id)
        if c is not victim and c.protocol == victim.protocol and c.connected and not c.silent
    )
    return next(others, None)


def fire(p: Planned, started_s: float, fleet: Iterable[T]) -> tuple[FaultRecord, list[T]]:
    """A planned fault starting now: its record, and the chargers it hits (none for one that finds
    its own targets or acts on no charger)."""
    chosen = victims(p.fault, fleet) if CATALOGUE[p.fault.action].scope is Scope.CHARGERS else []
    return FaultRecord(p.index, p.fault.action, started_s, p.end_s, [c.cp_id for c in chosen]), chosen


def confirmed(bookings: Sequence[BookingRecord], count: int) -> list[BookingRecord]:
    """The `count` oldest bookings that have not started."""
    return [b for b in bookings if b.status is BookingStatus.CONFIRMED][:count]


def not_in_des(faults: Iterable[Fault]) -> str | None:
    """Why the discrete-event engine cannot run these faults, naming each and those it can; None
    when it can run them all."""
    refused = sorted({f.action for f in faults} - IN_DES)
    if not refused:
        return None
    named = ", ".join(a if a not in CATALOGUE else f"{a} ({CATALOGUE[a].not_in_des})" for a in refused)
    return (
        f"the DES engine cannot model fault(s) {named}; "
        f"it supports {', '.join(sorted(IN_DES))} (use --engine live for the others)"
    )
