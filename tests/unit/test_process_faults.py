"""The process faults' bookkeeping (simulators.live_faults: backend_crash at a failpoint) against a
scripted stand-in for the backend's processes, so that faults overlapping in time can be staged
exactly: a failpoint armed while another fault restarts a process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx

from chargeshare.services.clock import ScaledClock
from simulators.backend_nodes import BackendProcesses
from simulators.driver import DriverStats
from simulators.faults import Fault, FaultRecord
from simulators.live_driver import World
from simulators.live_faults import _crashed_at, node_crash

START = datetime(2026, 6, 1, 8, tzinfo=UTC)
WITHIN_S = 10.0  # real seconds; the window ends a simulated day (86 real seconds) away


class Processes:
    """What `_crashed_at` asks of BackendProcesses: which are up, which ended on their own."""

    def __init__(self, up: list[int]) -> None:
        self.running = set(up)
        self.followed = set(up)
        self.armed: str | None = None
        self.died_armed: list[int] = []

    def up(self) -> list[int]:
        return sorted(self.running)

    def arm(self, failpoint: str) -> None:
        self.armed = failpoint

    def disarm(self) -> None:
        self.armed = None

    def crashed(self, index: int) -> None:
        self.running.discard(index)
        self.followed.discard(index)

    crash = crashed

    def restarted(self, index: int) -> None:
        self.running.add(index)
        self.followed.add(index)

    def reaches_failpoint(self, index: int) -> None:
        if self.armed is not None and index in self.running:
            self.running.discard(index)
            self.died_armed.append(index)

    def ended_on_their_own(self) -> list[int]:
        return sorted(self.followed - self.running)

    def exited(self) -> list[int]:
        gone = self.ended_on_their_own()
        self.followed -= set(gone)
        return gone


async def test_a_failpoint_armed_while_another_fault_restarts_a_process_takes_one() -> None:
    # Process 1 is down (an earlier fault) when the failpoint is armed; another fault then starts it
    # again, and process 0 dies at the failpoint: one died, though as many are up as when armed.
    clock = ScaledClock(START, 1000)  # ten simulated seconds between looks: ten real milliseconds
    processes = Processes(up=[0])
    async with httpx.AsyncClient() as http:
        world = World(http, {}, clock, START + timedelta(days=1), DriverStats())
        world.backend = cast(BackendProcesses, processes)

        async def meanwhile() -> None:
            await asyncio.sleep(0.05)
            processes.restarted(1)
            await asyncio.sleep(0.05)
            processes.reaches_failpoint(0)
            while processes.armed is not None and 1 in processes.running:
                await asyncio.sleep(0.01)  # until the fault disarms it or lets process 1 die too
            processes.reaches_failpoint(1)

        other = asyncio.create_task(meanwhile())
        died = await asyncio.wait_for(_crashed_at(world.backend, world, "stop-committed"), WITHIN_S)
        await asyncio.wait_for(other, WITHIN_S)
    assert died == [0]
    assert processes.died_armed == [0]  # disarmed before the one restarted reached it
    assert processes.armed is None


async def test_a_process_another_fault_kills_meanwhile_is_no_failpoint_reached() -> None:
    clock = ScaledClock(START, 1000)
    processes = Processes(up=[0, 1])
    async with httpx.AsyncClient() as http:
        world = World(http, {}, clock, START + timedelta(days=1), DriverStats())

        async def meanwhile() -> None:
            await asyncio.sleep(0.05)
            processes.crashed(1)  # node_crash, as the failpoint waits
            await asyncio.sleep(0.05)
            processes.reaches_failpoint(0)

        other = asyncio.create_task(meanwhile())
        died = await asyncio.wait_for(
            _crashed_at(cast(BackendProcesses, processes), world, "stop-committed"), WITHIN_S
        )
        await asyncio.wait_for(other, WITHIN_S)
    assert died == [0] and processes.died_armed == [0]
    assert world.stats.outcomes_of_faults["failpoints_not_reached"] == 0


async def test_a_node_crash_of_no_processes_kills_none() -> None:
    # LiveParams takes faults from code as well as from files (whose schema wants a count of 1 or
    # more): "the last `count` up" must not read as every one of them when the count is 0.
    processes = Processes(up=[0, 1, 2])
    async with httpx.AsyncClient() as http:
        world = World(http, {}, ScaledClock(START, 1000), START + timedelta(days=1), DriverStats())
        world.backend = cast(BackendProcesses, processes)
        fired = FaultRecord(0, "node_crash", 0.0, 0.0)
        killed = await node_crash(cast(Any, None), world, Fault(at_s=0, action="node_crash", count=0), fired)
        assert killed == 0 and processes.up() == [0, 1, 2]
        killed = await node_crash(cast(Any, None), world, Fault(at_s=0, action="node_crash", count=2), fired)
        assert killed == 2 and processes.up() == [0]
