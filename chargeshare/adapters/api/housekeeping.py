"""Periodic work that time alone triggers, run beside the API server."""

from __future__ import annotations

import asyncio
import logging

from chargeshare.bootstrap import App

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY_SIMULATED_S = 30
MIN_HOUSEKEEPING_REAL_S = 0.05
# Last-seen stamps written per unit of work before the loop serves frames again: a fleet's worth at
# once (thousands of row updates) would hold every charger's acknowledgement for tens of milliseconds.
STAMPS_PER_FLUSH = 500


async def housekeeping(app: App) -> None:
    """Reservations coming due, no-shows expiring, the payments outbox, the heartbeat watchdog."""
    while True:
        await asyncio.sleep(
            max(MIN_HOUSEKEEPING_REAL_S, app.clock.real_seconds(HOUSEKEEPING_EVERY_SIMULATED_S))
        )
        try:
            while app.charging.flush_last_seen(most=STAMPS_PER_FLUSH) == STAMPS_PER_FLUSH:
                await asyncio.sleep(0)
            app.bookings.reservations_due()
            app.bookings.expire_no_shows()
            app.settlement.process_due()
            app.charging.watchdog()
        except Exception:
            log.exception("housekeeping failed; trying again next round")
