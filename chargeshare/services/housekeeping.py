"""The periodic work time alone triggers: one sweep, run by the server, the DES and replay alike.

Each step stands alone: one that fails is logged and the rest still run. What a step changes is
claimed per row (compare-and-set status changes, claimed payment steps), so a sweep may run in
several processes at once without doing anything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chargeshare.services.booking import BookingService
from chargeshare.services.charging import ChargingService
from chargeshare.services.grid import GridService
from chargeshare.services.pricing import PricingService
from chargeshare.services.settlement import SettlementService

log = logging.getLogger(__name__)


@dataclass
class SweepRun:
    """What one sweep did, step by step; `failed` names the steps that raised."""

    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class Housekeeping:
    def __init__(
        self,
        bookings: BookingService,
        charging: ChargingService,
        settlement: SettlementService,
        grid: GridService | None = None,
        pricing: PricingService | None = None,
        forget_failures: Callable[[], int] | None = None,
    ) -> None:
        """`forget_failures`: forgets a batch of the records of commands chargers refused or left
        unanswered that nothing is owed for any more (`owed_commands.prune_failures`)."""
        self.bookings, self.charging, self.settlement, self.grid = bookings, charging, settlement, grid
        self.pricing = pricing
        self.forget_failures = forget_failures

    def sweep(self, *, payments: bool = True) -> SweepRun:
        """Reservations coming due, no-shows expiring, lost stops closed, payment steps due (unless a
        background worker has them: `payments=False`), the heartbeat watchdog, and connectors'
        grid limits decided again (a flexibility event that began or ended) and those owed told again,
        held quotes no booking used deleted once past their retention, and records of commands refused
        or unanswered that nothing is owed for any more forgotten."""
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("reservations_due", self.bookings.reservations_due),
            ("no_shows_expired", self.bookings.expire_no_shows),
            ("lost_stops_closed", self.charging.close_lost_stops),
        ]
        if payments:
            steps.append(("payment_steps_done", lambda: self.settlement.process_due().done))
        steps.append(("chargers_gone_offline", self.charging.watchdog))
        if self.grid is not None:
            steps.append(("grid_limits_due", self.grid.rebalance))
            steps.append(("grid_limits_owed", self.grid.resend_owed))
        if self.pricing is not None:
            steps.append(("held_quotes_deleted", self.pricing.delete_expired_quotes))
        if self.forget_failures is not None:
            steps.append(("command_failures_forgotten", self.forget_failures))
        return self._run(steps)

    def wind_down(self) -> SweepRun:
        """The end of a simulation: no one is coming any more, so every unused booking expires (one
        yet to start without a fee) and every stop still awaited is taken as lost, now."""
        return self._run(
            [
                (
                    "no_shows_expired",
                    lambda: self.bookings.expire_no_shows(grace=timedelta(0), unstarted=True),
                ),
                ("lost_stops_closed", lambda: self.charging.close_lost_stops(grace=timedelta(0))),
            ]
        )

    @staticmethod
    def _run(steps: list[tuple[str, Callable[[], Any]]]) -> SweepRun:
        run = SweepRun()
        for name, step in steps:
            try:
                done = step()
            except Exception as exc:
                log.exception("housekeeping step %s failed; the others still run", name)
                run.failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            run.counts[name] = done if isinstance(done, int) else len(done)
        return run
