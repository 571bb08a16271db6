"""Bounded polling for async tests: wait for a condition instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(
    check: Callable[[], bool], what: str, *, tries: int = 300, pause_s: float = 0.02
) -> None:
    """Wait (bounded: at most tries x pause_s) for `check` to hold."""
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(pause_s)
    raise AssertionError(f"gave up waiting for {what}")
