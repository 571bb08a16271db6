"""The group flusher releases a waiter only after a flush that started after the waiter arrived."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chargeshare.adapters.durability import _FSYNC_THREAD, GroupFlusher


class GatedSync:
    """A fake fsync: each run announces that it started, then blocks until the test lets it end."""

    def __init__(self, runs: int, fail_on: int | None = None) -> None:
        self.started = [threading.Event() for _ in range(runs)]
        self.finish = [threading.Event() for _ in range(runs)]
        self.fail_on = fail_on
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            n = self.calls
            self.calls += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.started[n].set()
        self.finish[n].wait(timeout=10)
        with self._lock:
            self.in_flight -= 1
        if n == self.fail_on:
            raise OSError("disk on fire")

    async def wait_started(self, n: int) -> None:
        assert await asyncio.to_thread(self.started[n].wait, 10), f"flush {n} never started"


async def settle() -> None:
    """Let every ready task run (a released waiter would finish here)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_waiters_that_arrive_mid_flush_wait_for_the_next_flush() -> None:
    sync = GatedSync(runs=2)
    flusher = GroupFlusher(sync)
    first = asyncio.create_task(flusher.flushed())
    await sync.wait_started(0)
    # These arrive while flush 0 is on its way to disk: it may not cover their commits.
    late = [asyncio.create_task(flusher.flushed()) for _ in range(3)]
    await settle()
    assert sync.calls == 1 and not first.done() and not any(t.done() for t in late)

    sync.finish[0].set()
    await asyncio.wait_for(first, 10)
    await settle()
    assert not any(t.done() for t in late), "released by a flush that started before they arrived"

    await sync.wait_started(1)  # one flush, shared by all three
    sync.finish[1].set()
    await asyncio.wait_for(asyncio.gather(*late), 10)
    assert sync.calls == 2 and sync.most_in_flight == 1 and flusher.runs == 2


async def test_waiters_arriving_together_share_one_flush() -> None:
    sync = GatedSync(runs=1)
    flusher = GroupFlusher(sync)
    waiters = [asyncio.create_task(flusher.flushed()) for _ in range(50)]
    await sync.wait_started(0)
    sync.finish[0].set()
    await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert sync.calls == 1


async def test_a_failed_flush_fails_its_waiters_and_the_next_one_runs() -> None:
    sync = GatedSync(runs=2, fail_on=0)
    flusher = GroupFlusher(sync)
    doomed = asyncio.create_task(flusher.flushed())
    await sync.wait_started(0)
    sync.finish[0].set()
    with pytest.raises(OSError, match="disk on fire"):
        await asyncio.wait_for(doomed, 10)

    later = asyncio.create_task(flusher.flushed())
    await sync.wait_started(1)
    sync.finish[1].set()
    await asyncio.wait_for(later, 10)
    assert sync.calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_flush_others_wait_on() -> None:
    sync = GatedSync(runs=1)
    flusher = GroupFlusher(sync)
    quitter = asyncio.create_task(flusher.flushed())
    stayer = asyncio.create_task(flusher.flushed())
    await sync.wait_started(0)
    quitter.cancel()
    await settle()
    sync.finish[0].set()
    await asyncio.wait_for(stayer, 10)
    assert quitter.cancelled() and sync.calls == 1


def test_a_loop_shutting_down_mid_flush_starts_no_other_flush() -> None:
    """Only a loop shutting down cancels a run (asyncio.run cancels every task): a run started then
    could never hand back its result, and would flush after the loop, and perhaps the store, closed."""
    sync = GatedSync(runs=2)
    sync.finish[1].set()  # a second flush, if one starts, ends at once
    flusher = GroupFlusher(sync)

    async def serve_then_stop() -> list[asyncio.Task[None]]:
        waiting = [asyncio.create_task(flusher.flushed())]
        await sync.wait_started(0)
        waiting.append(asyncio.create_task(flusher.flushed()))  # for the next flush as the loop stops
        await asyncio.sleep(0)
        return waiting

    asyncio.run(serve_then_stop())
    sync.finish[0].set()
    _FSYNC_THREAD.submit(lambda: None).result(timeout=10)  # one thread: whatever was queued has run
    assert sync.calls == 1
