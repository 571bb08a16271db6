"""Periodic work that time alone triggers, run beside the API server."""

from __future__ import annotations

import asyncio
import logging

from chargeshare.bootstrap import App
from chargeshare.services.housekeeping import SweepRun

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY_SIMULATED_S = 30
MIN_HOUSEKEEPING_REAL_S = 0.05
# Last-seen stamps written per unit of work before the loop serves frames again: each unit holds
# every charger's acknowledgement while it runs, so it is kept small enough not to show in their tail.
STAMPS_PER_FLUSH = 50


async def housekeeping(app: App) -> None:
    """`sweep_once` every HOUSEKEEPING_EVERY_SIMULATED_S of the clock, for as long as the server runs."""
    while True:
        await asyncio.sleep(
            max(MIN_HOUSEKEEPING_REAL_S, app.clock.real_seconds(HOUSEKEEPING_EVERY_SIMULATED_S))
        )
        await sweep_once(app)


async def sweep_once(app: App) -> SweepRun:
    """Last-seen stamps written behind, then the one sweep (`services.housekeeping`); the payments
    outbox is the payments worker's (adapters/payments_worker.py), off the event loop."""
    try:
        await app.last_seen.flush_in_batches(STAMPS_PER_FLUSH)
    except Exception:
        log.exception("writing last-seen stamps failed; they wait for the next round")
    return app.housekeeping.sweep(payments=False)
