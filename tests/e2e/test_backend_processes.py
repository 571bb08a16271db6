"""The backend as `serve` processes (simulators.backend_nodes), attacked as a whole: the simulation
that started them dying without a word, a port taken while its process is down."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chargeshare.adapters.shared_clock import PublishedClock
from chargeshare.bootstrap import Config
from simulators.backend_nodes import BackendProcesses

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WITHIN_S = 120.0  # bounds, on a loaded two-core machine: starting two servers and HAProxy
ENDS_WITHIN_S = 30.0  # the kernel signals at once; this only bounds the test when it does not

# A simulation in miniature: two `serve` processes behind HAProxy on a clock it keeps going, their
# pids written once all answer, then nothing more until it is killed.
SIMULATION = """
import asyncio, sys
from datetime import UTC, datetime
from pathlib import Path
from chargeshare.adapters.shared_clock import PublishedClock
from chargeshare.bootstrap import Config
from simulators.backend_nodes import BackendProcesses

async def main(workdir: Path) -> None:
    clock = PublishedClock(workdir / "clock", datetime(2026, 6, 1, tzinfo=UTC), 60)
    config = Config(database_url=f"sqlite:///{workdir / 'db.sqlite'}", password_hash="fast")
    nodes = BackendProcesses(config, clock, workdir, 2)
    await nodes.start()
    assert nodes.balancer is not None and nodes.balancer.proc is not None
    pids = [n.proc.pid for n in nodes.nodes if n.proc is not None] + [nodes.balancer.proc.pid]
    (workdir / "pids.tmp").write_text(" ".join(map(str, pids)))
    (workdir / "pids.tmp").rename(workdir / "pids")
    while True:
        clock.keep_up(0.1)
        await asyncio.sleep(0.02)

asyncio.run(main(Path(sys.argv[1])))
"""


def alive(pid: int) -> bool:
    """Running, and not a zombie left for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_for(check: Callable[[], bool], what: str, within_s: float = WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_no_server_or_haproxy_outlives_a_simulation_killed_outright(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    sim = subprocess.Popen([sys.executable, "-c", SIMULATION, str(tmp_path)], env=env)
    pids: list[int] = []
    try:
        wait_for(lambda: (tmp_path / "pids").exists() or sim.poll() is not None, "the backend to start")
        assert sim.poll() is None, "the simulation ended before its backend started"
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
        assert len(pids) == 3 and all(alive(p) for p in pids)
        sim.send_signal(signal.SIGKILL)  # no finally, no atexit: nothing of its own cleans up
        sim.wait(WITHIN_S)
        wait_for(lambda: not any(alive(p) for p in pids), "the servers and HAProxy to end", ENDS_WITHIN_S)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait(WITHIN_S)
        for pid in pids:  # this test's own children's children, by their ids, if the check failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _take(port: int) -> socket.socket | None:
    """What another program does with a free port: bind it and listen (None: refused)."""
    taker = socket.socket()
    try:
        taker.bind(("127.0.0.1", port))
    except OSError:
        taker.close()
        return None
    taker.listen()
    return taker


async def test_a_crashed_process_restarts_on_its_port_though_something_tried_to_take_it(
    tmp_path: Path,
) -> None:
    # Its port is the one the chargers and HAProxy know: while it is down, an outgoing connection
    # given that port by the kernel, or any other server, would make the restart fail.
    clock = PublishedClock(tmp_path / "clock", datetime(2026, 6, 1, tzinfo=UTC), 60)
    config = Config(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", password_hash="fast")
    nodes = BackendProcesses(config, clock, tmp_path, 1)
    taker = None
    try:
        await nodes.start()
        nodes.crash(0)
        taker = _take(nodes.nodes[0].port)
        await nodes.restart(0)
        assert nodes.up() == [0]
        assert taker is None
    finally:
        if taker is not None:
            taker.close()
        await asyncio.to_thread(nodes.stop)
        clock.close()


async def test_a_process_killed_again_while_it_restarts_stays_down_and_fails_nothing(
    tmp_path: Path,
) -> None:
    # Two faults overlap: one restarts a process, another kills it before it answers. That is the
    # second fault's doing, not a start that failed (which would fail the whole fault timeline).
    clock = PublishedClock(tmp_path / "clock", datetime(2026, 6, 1, tzinfo=UTC), 60)
    config = Config(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", password_hash="fast")
    nodes = BackendProcesses(config, clock, tmp_path, 1)
    try:
        await nodes.start()
        nodes.crash(0)
        restarting = asyncio.create_task(nodes.restart(0))
        while not (nodes.nodes[0].running or restarting.done()):  # spawned at its first step
            await asyncio.sleep(0)
        nodes.crash(0)
        await asyncio.wait_for(restarting, WITHIN_S)
        assert nodes.up() == [] and 0 not in clock.followers
        assert (nodes.crashes, nodes.restarts) == (2, 0)
        await nodes.restart(0)  # and a later restart brings it back
        assert nodes.up() == [0] and 0 in clock.followers
        assert (nodes.crashes, nodes.restarts) == (2, 1)
    finally:
        await asyncio.to_thread(nodes.stop)
        clock.close()


async def test_a_process_that_died_on_its_own_is_reported_though_a_restart_revived_it(
    tmp_path: Path,
) -> None:
    # A process dies of a bug (or at a failpoint); a node_restart brings it back before the run
    # asks who ended on their own: the death must still be counted and reported, with its log.
    clock = PublishedClock(tmp_path / "clock", datetime(2026, 6, 1, tzinfo=UTC), 60)
    config = Config(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", password_hash="fast")
    nodes = BackendProcesses(config, clock, tmp_path, 1)
    try:
        await nodes.start()
        proc = nodes.nodes[0].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)  # not through crash(): nobody here decided it
        await asyncio.to_thread(proc.wait, WITHIN_S)
        await nodes.restart(0)
        assert nodes.up() == [0]
        assert nodes.exited() == [0]
        assert (nodes.crashes, nodes.restarts, nodes.ended_runs) == (1, 1, {0: 1})
        assert "ChargeShare backend on" in nodes.nodes[0].output(nodes.ended_runs[0])
        assert nodes.exited() == [] and 0 in clock.followers  # the revived one is followed
    finally:
        await asyncio.to_thread(nodes.stop)
        clock.close()


def test_a_run_sent_sigterm_stops_as_ctrl_c_does_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # A CI job cancelled sends SIGTERM: the run must stop its processes and remove its temporary
    # directory (database, logs, clock), not die on the spot as Python does by default.
    scenario = ROOT / "scenarios" / "backend-crash-mid-session.yaml"
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen(
        [sys.executable, "-m", "chargeshare", "scenario", "run", str(scenario)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def serving() -> bool:
        logs = list(tmp_path.glob("chargeshare-backend-*/serve-0-1.log"))
        return run.poll() is not None or any("ChargeShare backend on" in p.read_text() for p in logs)

    try:
        wait_for(serving, "the run's backend process to start")
        assert run.poll() is None, "the run ended before its backend started"
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=WITHIN_S)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(WITHIN_S)
    assert run.returncode == 130, out
    assert "Traceback" not in out
    assert list(tmp_path.glob("chargeshare-backend-*")) == []
