"""What the scripted drivers of both engines share: the search's constants, the reasons a driver
found no charger, and the run's tallies (`DriverStats`). The live driver is `simulators.live_driver`,
the discrete-event one `simulators.des.driver`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from simulators.faults import FaultRecord
from simulators.smart_gate import SmartGate

SEARCH_RADIUS_M = 8_000
CANDIDATES = 5
SEARCH_ROUNDS = 3
RETRY_AFTER_S = 600
RECEIPT_CHECKS = 20
RECEIPT_CHECK_EVERY_S = 30


# Why a driver's last search round booked nothing (the summary's `no_charger_because`).
NONE_FREE_NEARBY = "none_free_nearby"  # no charger online and free for the slot within the search radius
ALL_TAKEN = "all_taken"  # every charger the search found was booked by someone else first (409)
RATE_LIMITED = "rate_limited"  # the API refused the booking as too frequent (429)
NO_CHARGER_REASONS = (NONE_FREE_NEARBY, ALL_TAKEN, RATE_LIMITED)


class NoCharger(Exception):
    """A search round that booked nothing, and why (one of NO_CHARGER_REASONS)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class DriverStats:
    outcomes: Counter[str] = field(default_factory=Counter)
    no_charger_because: Counter[str] = field(default_factory=Counter)  # drivers ending "no_charger"
    conflicts: int = 0
    payments_down: int = 0  # booking attempts answered 503 (payment provider unavailable)
    rate_limited: int = 0  # booking attempts answered 429
    receipts_pence: int = 0
    errors: list[str] = field(default_factory=list)
    faults_fired: int = 0
    charger_reconnects: int = 0
    chargers_went_offline: int = 0  # during the run window (not the wind-down's disconnects)
    wind_down_from: datetime | None = None  # where the run window ended and the wind-down began

    sessions_closed_without_stop: int = 0  # the backend closed them: the charger's stop was lost

    def count_offline(self, in_window: bool) -> None:
        self.chargers_went_offline += in_window

    def count_closed_without_stop(self) -> None:
        self.sessions_closed_without_stop += 1

    frames_left_queued: int = 0  # transaction messages a charger never got to replay
    payments_backlog: int = 0  # payment steps not yet done when the run ended (before reconcile)
    outcomes_of_faults: Counter[str] = field(default_factory=Counter)
    fault_log: list[FaultRecord] = field(default_factory=list)  # each fault fired: when, on whom
    # Ids of the bookings the drivers' apps were answered with (live runs, over HTTP): a booking the
    # backend holds that no app heard of is one its driver will never use, and pay for as a no-show.
    bookings_answered: set[int] | None = None
    # Every transaction's smart charging gate, from every charger (the run's regulation measures).
    smart_gates: list[SmartGate] = field(default_factory=list)
