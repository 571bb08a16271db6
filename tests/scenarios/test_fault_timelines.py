"""One fault catalogue for both engines. Every shipped scenario's fault timeline, played by the live
engine on a scaled clock and by the DES engine in virtual time, reaches each engine's executor as
the same faults at the same simulated times on the same chargers; and whole runs of both engines
record the same faults at the same times, on as many chargers of the same versions."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import simpy

from chargeshare.services.clock import ScaledClock
from simulators import live_faults
from simulators.des import DesParams, run_des
from simulators.des import faults as des_faults
from simulators.des.charger import Process
from simulators.des.engine import check_supported
from simulators.des.faults import play as des_play
from simulators.driver import DriverStats
from simulators.evse import Plugged, Transaction, VirtualConnector
from simulators.faults import CATALOGUE, IN_DES, Fault, FaultRecord, Planned, Scope, not_in_des, plan
from simulators.live import PACE_SLACK_S, LiveParams, backend_processes
from simulators.live_faults import play as live_play
from simulators.pacing import sleep_sim
from simulators.power import Vehicle
from simulators.scenario import discover, load
from simulators.scenario_runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = discover([ROOT / "scenarios", ROOT / "scenarios" / "cluster"])
START = datetime(2026, 6, 1, 7, tzinfo=UTC)
SPEED = 7_200.0  # two simulated hours per real second
# The live clock goes on at most this far (real seconds) past the loop's last turn, so a loaded
# machine delays a fault by a few simulated seconds at most, never by its load.
LEASH_S = 0.003
LATE_S = 60.0  # simulated seconds a live fault may start after its time


@dataclass
class StandIn:
    """A charger as the catalogue sees it."""

    cp_id: str
    protocol: str
    connectors: dict[int, VirtualConnector]
    connected: bool = True
    silent: bool = False


def _fleet(params: LiveParams) -> list[StandIn]:
    """The scenario's fleet by id and version, every third charger mid-transaction, so that the
    choice of victims has someone to prefer."""
    fleet = []
    for i in range(params.chargers):
        connector = VirtualConnector(1, 7_400)
        if i % 3 == 1:
            tx = Transaction(f"tx{i}", "TAG", 0, START, wire_id=i)
            connector.plugged = Plugged("TAG", Vehicle(60_000, 20_000, 7_400), 10_000, transaction=tx)
        fleet.append(StandIn(f"CS{i + 1:05d}", params.fleet.protocol_of(i), {1: connector}))
    return fleet


Received = list[tuple[int, list[str]]]  # (the fault's place in the file, the chargers handed over)


Played = tuple[list[FaultRecord], Received]


async def _played_live(scenarios: list[LiveParams]) -> list[Played]:
    """Every scenario's timeline at once, on one clock kept on a short leash."""
    clock = ScaledClock(START, SPEED, paused=True)  # until the leash first lets it go

    async def played(params: LiveParams) -> Played:
        stats, received, fleet = DriverStats(), [], _fleet(params)

        async def apply(p: Planned, fired: FaultRecord, chosen: list[StandIn]) -> None:
            received.append((p.index, [c.cp_id for c in chosen]))
            await sleep_sim(clock, p.end_s - p.start_s)  # lasting, as the executor's faults do

        await live_play(clock, params.faults, lambda: fleet, apply, stats)
        return stats.fault_log, received

    async def leash() -> None:
        while True:
            clock.keep_up(LEASH_S)
            await asyncio.sleep(LEASH_S / 5)

    pacing = asyncio.create_task(leash())
    try:
        return await asyncio.gather(*(played(params) for params in scenarios))
    finally:
        pacing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pacing


@pytest.fixture(scope="module")
def live_timelines() -> dict[Path, Played]:
    return dict(zip(SCENARIOS, asyncio.run(_played_live([load(p).params for p in SCENARIOS])), strict=True))


def _played_des(faults: tuple[Fault, ...], fleet: list[StandIn]) -> Played:
    env = simpy.Environment()
    stats, received = DriverStats(), []

    def apply(p: Planned, fired: FaultRecord, chosen: list[StandIn]) -> Process:
        received.append((p.index, [c.cp_id for c in chosen]))
        yield env.timeout(p.end_s - p.start_s)

    env.process(des_play(env, faults, lambda: fleet, apply, stats))
    env.run()
    return stats.fault_log, received


def _by_index(log: list[FaultRecord]) -> list[tuple[int, str, float, list[str]]]:
    return [(r.index, r.action, r.until_s, r.chargers) for r in sorted(log, key=lambda r: r.index)]


def _starts(log: list[FaultRecord]) -> list[float]:
    return [r.started_s for r in sorted(log, key=lambda r: r.index)]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_both_engines_hand_their_executors_the_same_faults(
    path: Path, live_timelines: dict[Path, Played]
) -> None:
    params = load(path).params
    live_log, live_received = live_timelines[path]
    des_log, des_received = _played_des(params.faults, _fleet(params))

    assert sorted(live_received) == sorted(des_received)
    assert _by_index(live_log) == _by_index(des_log)
    planned = sorted(plan(params.faults), key=lambda p: p.index)
    assert _starts(des_log) == [p.start_s for p in planned]
    for live_at, p in zip(_starts(live_log), planned, strict=True):
        assert p.start_s <= live_at <= p.start_s + LATE_S
    for p, (_, chosen) in zip(planned, sorted(des_received), strict=True):
        if CATALOGUE[p.fault.action].scope is Scope.CHARGERS:
            versions = {c.protocol for c in _fleet(params) if c.cp_id in chosen}
            assert len(chosen) == min(p.fault.count, params.chargers) or p.fault.protocol is not None
            assert p.fault.protocol is None or versions <= {p.fault.protocol}


def test_each_engine_applies_every_fault_it_models_where_the_catalogue_says() -> None:
    on_chargers = {a for a, kind in CATALOGUE.items() if kind.scope is Scope.CHARGERS}
    assert set(live_faults.CHARGER_ACTIONS) == on_chargers
    assert set(live_faults.WORLD_ACTIONS) == CATALOGUE.keys() - on_chargers
    assert set(des_faults.CHARGER_ACTIONS) == on_chargers & IN_DES
    assert set(des_faults.WORLD_ACTIONS) == IN_DES - on_chargers


def test_the_des_engine_refuses_by_name_each_fault_it_cannot_fire() -> None:
    for path in SCENARIOS:
        params = load(path).params
        refused = {f.action for f in params.faults if CATALOGUE[f.action].not_in_des is not None}
        if not refused:
            check_supported(DesParams.from_live(params))
            continue
        with pytest.raises(ValueError, match="the DES engine cannot model") as caught:
            check_supported(DesParams.from_live(params))
        assert all(action in str(caught.value) for action in refused), path


def _both_engines_run(path: Path) -> bool:
    params = load(path).params
    return bool(params.faults) and not_in_des(params.faults) is None and not backend_processes(params)


BOTH = [p for p in SCENARIOS if _both_engines_run(p)]


def _hits(record: dict[str, object], params: LiveParams) -> list[str]:
    """The OCPP versions of the chargers a fault hit (ids are CS00001, CS00002, ... in fleet order)."""
    chargers = record["chargers"]
    assert isinstance(chargers, list)
    return sorted(params.fleet.protocol_of(int(cp_id.removeprefix("CS")) - 1) for cp_id in chargers)


@pytest.mark.parametrize("path", BOTH, ids=[p.stem for p in BOTH])
@pytest.mark.e2e
@pytest.mark.slow
async def test_a_whole_run_of_each_engine_records_the_same_faults(path: Path) -> None:
    # Which chargers a fault hits also depends on which are mid-transaction when it starts (they go
    # first), and the live drivers' HTTP shifts sessions by simulated seconds: so the engines must
    # agree on when and on how many chargers, of the version the fault names, not on which ones.
    scenario = load(path)
    params = scenario.params
    live = (await run_scenario(scenario)).report
    des = run_des(DesParams.from_live(params)).report
    # A live fault starts late by as long as the run's loop was busy, up to where its clock's leash
    # holds simulated time back.
    late_s = max(LATE_S, 2 * PACE_SLACK_S * params.speed)
    assert [(r["index"], r["action"], r["until_s"]) for r in live.fault_log] == [
        (r["index"], r["action"], r["until_s"]) for r in des.fault_log
    ]
    for at_live, at_des in zip(
        (r["started_s"] for r in live.fault_log), (r["started_s"] for r in des.fault_log), strict=True
    ):
        assert isinstance(at_live, float) and isinstance(at_des, float)
        assert at_des <= at_live <= at_des + late_s
    for fault, in_live, in_des in zip(params.faults, live.fault_log, des.fault_log, strict=True):
        assert len(_hits(in_live, params)) == len(_hits(in_des, params))
        if fault.protocol is not None:
            assert set(_hits(in_live, params)) | set(_hits(in_des, params)) <= {fault.protocol}
