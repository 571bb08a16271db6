"""The server's payments worker: threads that work the payments outbox, off the event loop.

A stop, a cancellation or a sweep only queues a step and wakes the worker (`kick`); the worker's
threads claim due steps one at a time and call the provider, so a slow or hanging provider holds a
worker thread, never a charger's acknowledgement. With several server processes, each has its own
worker and the claims keep them from working a step twice. Between rounds a thread sleeps until the
earliest moment a step may be claimed (a retry falling due, a dead worker's lease lapsing), or the
poll, whichever comes first.
"""

from __future__ import annotations

import logging
import threading

from chargeshare.services.clock import Clock
from chargeshare.services.settlement import SettlementService

log = logging.getLogger(__name__)

POLL_SIMULATED_S = 30.0  # as the housekeeping sweep: how late a retry that falls due may be picked up
MIN_POLL_REAL_S = 0.05
MAX_STEPS_PER_WAKE = 1_000  # bounded: a backlog is worked off over several wakes, not in one go


class PaymentsWorker:
    def __init__(self, settlement: SettlementService, clock: Clock, *, threads: int = 2) -> None:
        self.settlement, self.clock, self.threads = settlement, clock, threads
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: list[threading.Thread] = []
        self.steps_done = 0

    def kick(self, _booking_id: int | None = None) -> None:
        """Steps were queued: work them now rather than at the next poll. Never blocks."""
        self._wake.set()

    def start(self) -> None:
        """Work the outbox from now on; steps queued from here on are handed here, not worked inline."""
        self._stop.clear()
        self.settlement.on_queued = self.kick
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"payments-{n}", daemon=True)
            thread.start()
            self._running.append(thread)
        self.kick()  # whatever a previous process left due

    def stop(self, timeout_s: float = 15.0) -> None:
        """Let go: a step in flight finishes (or is left to its lease, if the provider hangs)."""
        self.settlement.on_queued = None
        self._stop.set()
        self._wake.set()
        for thread in self._running:
            thread.join(timeout_s)
        self._running.clear()

    def _until_next(self, poll: float) -> float:
        """Real seconds to sleep: until the earliest claimable step, at most `poll`."""
        try:
            with self.settlement.store.reading() as tx:
                at = tx.outbox.next_claimable_at()
        except Exception:
            log.exception("the payments worker could not read the outbox; it polls")
            return poll
        if at is None:
            return poll
        ahead = (at - self.clock.now()).total_seconds()
        return min(poll, max(MIN_POLL_REAL_S, self.clock.real_seconds(ahead)))

    def _run(self) -> None:
        poll = max(MIN_POLL_REAL_S, self.clock.real_seconds(POLL_SIMULATED_S))
        while not self._stop.is_set():
            self._wake.wait(self._until_next(poll))
            self._wake.clear()
            for _ in range(MAX_STEPS_PER_WAKE):
                if self._stop.is_set():
                    return
                try:
                    run = self.settlement.process_due(limit=1)
                except Exception:
                    log.exception("the payments worker failed a round; it tries again at the next poll")
                    break
                if not (run.done or run.retried or run.dead or run.lost):
                    break
                self.steps_done += run.done
            else:
                self._wake.set()  # more may be due: go on after giving the others a turn
