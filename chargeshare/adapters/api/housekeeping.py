"""Periodic work that time alone triggers, run beside the API server."""

from __future__ import annotations

import asyncio
import logging

from chargeshare.bootstrap import App

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY_SIMULATED_S = 30
MIN_HOUSEKEEPING_REAL_S = 0.05


async def housekeeping(app: App) -> None:
    """Reservations coming due, no-shows expiring, the payments outbox, the heartbeat watchdog."""
    while True:
        await asyncio.sleep(
            max(MIN_HOUSEKEEPING_REAL_S, app.clock.real_seconds(HOUSEKEEPING_EVERY_SIMULATED_S))
        )
        try:
            app.bookings.reservations_due()
            app.bookings.expire_no_shows()
            app.settlement.process_due()
            app.charging.watchdog()
        except Exception:
            log.exception("housekeeping failed; trying again next round")
