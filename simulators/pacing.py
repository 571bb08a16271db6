"""Waiting on a simulated clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from chargeshare.services.clock import Clock


async def sleep_sim(clock: Clock, simulated_s: float) -> None:
    """Until `simulated_s` of the clock's time has passed: a clock held back while the machine was
    busy (`ScaledClock.keep_up`) or a backend restarted takes longer than its factor says."""
    until = clock.now() + timedelta(seconds=simulated_s)
    while (real := clock.real_seconds((until - clock.now()).total_seconds())) > 0:
        await asyncio.sleep(real)
