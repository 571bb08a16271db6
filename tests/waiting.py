"""Bounded polling for async tests: wait for a condition instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chargeshare.bootstrap import App


async def eventually(
    check: Callable[[], bool], what: str, *, tries: int = 300, pause_s: float = 0.02
) -> None:
    """Wait (bounded: at most tries x pause_s) for `check` to hold."""
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(pause_s)
    raise AssertionError(f"gave up waiting for {what}")


async def settled(app: App) -> None:
    """Wait (bounded) until the payments worker has worked every step that is due: a stop's capture
    is queued with the stop and worked in the background, so a test of the money waits for it."""

    def idle() -> bool:
        now = app.clock.now()
        with app.store.reading() as tx:
            return all(item.next_attempt_at > now for item in tx.outbox.all("pending"))

    await eventually(idle, "the payments worker to work every due step", tries=500)
