"""The discrete-event engine: byte-identical reports per seed, invariants on a small run, the same
models as the live charger, agreement in shape with the live engine, and clear refusals."""

from __future__ import annotations

import dataclasses
import gc
import json
from pathlib import Path
from typing import cast

import pytest

from chargeshare.bootstrap import Config, build
from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.services.invariants import check_store
from simulators.des import DesParams, run_des
from simulators.des.central import NotSupportedInDes
from simulators.des.charger import integrate
from simulators.des.engine import DesResult, check_supported
from simulators.faults import IN_DES, Fault
from simulators.fleet import FleetShape
from simulators.live import LiveParams, run_live
from simulators.power import EnergyMeter, Vehicle
from simulators.scenario import discover, load

# Both OCPP versions, dealt out in turn: every test below covers each.
SMALL = DesParams(
    chargers=6, drivers=12, duration_s=2 * 3600, seed=5, fleet=FleetShape(protocols=(V16, V201, V21))
)
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def small() -> DesResult:
    return run_des(SMALL)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(small: DesResult) -> None:
    first = small.report.to_json()
    again = run_des(SMALL).report.to_json()
    other = run_des(dataclasses.replace(SMALL, seed=6)).report.to_json()
    assert first == again
    assert first != other
    body = json.loads(first)
    assert "wall_seconds" not in body and body["params"]["engine"] == "des"


def test_a_small_run_keeps_every_invariant_and_bills_each_session_once(small: DesResult) -> None:
    result = small
    report = result.report
    assert report.ok, [r for r in report.invariants if not r.ok] + [report.errors]
    s = report.summary
    assert s["sessions"] > 0 and s["energy_wh"] > 0
    assert s["driver_outcomes"].get("charged", 0) == s["sessions"] == s["bookings_by_status"]["completed"]
    assert s["captured_pence"] == s["host_payouts_pence"] + s["platform_fees_pence"] > 0
    assert sum(s["driver_outcomes"].values()) == SMALL.drivers
    assert sum(s["no_charger_because"].values()) == s["driver_outcomes"].get("no_charger", 0)
    assert set(s["sessions_by_protocol"]) == {"ocpp16", "ocpp201", "ocpp21"}
    assert result.frames > 0 and result.events > 0


def test_a_run_leaves_the_cycle_collector_as_it_found_it() -> None:
    # The collector runs at a slower pace during a run, and at the caller's own afterwards.
    before = gc.get_threshold()
    try:
        gc.set_threshold(500, 5, 5)
        run_des(dataclasses.replace(SMALL, chargers=2, drivers=2, duration_s=600))
        assert gc.get_threshold() == (500, 5, 5)
    finally:
        gc.set_threshold(*before)


def test_the_invariants_are_the_stores_own(small: DesResult) -> None:
    # The report's checks are check_store's (plus the gateway's agreement), not a copy of them.
    names = [r.name for r in small.report.invariants]
    app = build(Config(database_url="sqlite://", locks_enabled=False))
    try:
        expected = [r.name for r in check_store(app.store, app.config.rules)]
    finally:
        app.close()
    assert names[: len(expected)] == expected


def _integrate_like_the_live_charger(
    vehicle: Vehicle, meter: EnergyMeter, max_w: int, cap: int, s: int
) -> None:
    """The live charger's meter tick, once a minute: power now, for a minute, capped at the target."""
    for _ in range(s // 60):
        power = vehicle.power_w(max_w)
        before = meter.register_wh
        meter.add(power, 60)
        meter.register_wh = min(meter.register_wh, cap)
        vehicle.soc_wh += meter.register_wh - before


@pytest.mark.parametrize(("soc", "target"), [(10_000, 5_000), (30_000, 20_000), (50_000, 9_000)])
def test_energy_integrates_in_the_live_chargers_steps(soc: int, target: int) -> None:
    ours_v, ours_m = Vehicle(60_000, soc, 11_000), EnergyMeter()
    live_v, live_m = Vehicle(60_000, soc, 11_000), EnergyMeter()
    stopped = integrate(ours_v, ours_m, 7_400, target, 6 * 3600)
    _integrate_like_the_live_charger(live_v, live_m, 7_400, target, 6 * 3600)
    assert (ours_m.register_wh, ours_v.soc_wh) == (live_m.register_wh, live_v.soc_wh)
    assert stopped is not None and stopped % 60 == 0
    assert ours_m.register_wh <= target
    # The prediction the charger wakes on is where a fresh integration stops too.
    fresh_v, fresh_m = Vehicle(60_000, soc, 11_000), EnergyMeter()
    assert integrate(fresh_v, fresh_m, 7_400, target, stopped) == stopped


def test_a_car_already_full_stops_at_once() -> None:
    assert integrate(Vehicle(40_000, 40_000, 7_400), EnergyMeter(), 7_400, 10_000, 900) == 0


def test_refuses_what_it_cannot_model_by_name() -> None:
    with pytest.raises(NotSupportedInDes, match=r"not 1\.5"):
        check_supported(
            dataclasses.replace(SMALL, fleet=FleetShape(protocols=(V16, cast(OcppVersion, "1.5"))))
        )
    with pytest.raises(NotSupportedInDes, match=r"solar_flare.*disconnect"):
        check_supported(dataclasses.replace(SMALL, faults=(Fault(60, "solar_flare"),)))


def test_refuses_the_live_only_faults_saying_why() -> None:
    for action, why in (
        ("provider_slow", "answered in the virtual instant"),
        ("racing_cancels", "no two requests race"),
        ("racing_payouts", "no two requests race"),
    ):
        with pytest.raises(NotSupportedInDes, match=rf"{action} \([^)]*{why}"):
            check_supported(dataclasses.replace(SMALL, faults=(Fault(60, action),)))


def test_an_unregistered_spoofer_is_let_in_only_as_the_server_would() -> None:
    spoofed = load(SCENARIOS / "spoofed-charger.yaml").params
    assert spoofed.allow_unknown_chargers
    allowed = run_des(DesParams.from_live(spoofed)).report.summary
    refused = run_des(DesParams.from_live(dataclasses.replace(spoofed, allow_unknown_chargers=False)))
    summary = refused.report.summary
    assert allowed["fault_outcomes"].get("spoof_links_refused", 0) == 0
    assert summary["fault_outcomes"]["spoof_links_refused"] == 1
    assert summary["security_events"] == allowed["security_events"] - 2  # its reading and its stop
    assert refused.report.ok


def _fault_scenarios() -> list[Path]:
    """Shipped scenarios with faults the DES engine models (every scenario runs live in its own tests)."""
    return [
        p
        for p in discover([SCENARIOS])
        if load(p).params.faults and {f.action for f in load(p).params.faults} <= IN_DES
    ]


@pytest.mark.parametrize("path", _fault_scenarios(), ids=lambda p: p.stem)
@pytest.mark.slow
def test_fault_scenarios_meet_their_expectations_under_des(path: Path) -> None:
    scenario = load(path)
    report = run_des(DesParams.from_live(scenario.params)).report
    assert report.ok, [r for r in report.invariants if not r.ok] + [report.errors]
    failed = [text for ok, text in (e.check(report.summary) for e in scenario.expectations) if not ok]
    assert failed == []


@pytest.mark.e2e
@pytest.mark.slow
async def test_des_and_live_agree_in_shape() -> None:
    live = await run_live(LiveParams(chargers=5, drivers=10, duration_s=90 * 60, seed=4, speed=900))
    des = run_des(DesParams(chargers=5, drivers=10, duration_s=90 * 60, seed=4)).report
    assert set(des.summary) == set(live.summary)
    assert [r.name for r in des.invariants] == [r.name for r in live.invariants]
    for report in (live, des):
        s = report.summary
        assert report.ok, [r for r in report.invariants if not r.ok] + [report.errors]
        # Every session billed exactly once: one completed booking, one charged driver, one receipt.
        assert s["sessions"] > 0
        assert s["driver_outcomes"].get("charged", 0) == s["sessions"] == s["bookings_by_status"]["completed"]
        assert s["captured_pence"] == s["host_payouts_pence"] + s["platform_fees_pence"]
        assert sum(s["driver_outcomes"].values()) == 10


def test_no_show_bookings_still_open_at_the_windows_end_are_settled_under_des() -> None:
    # Every driver a no-show, booked late: the run must last until their slots pass, or it would end
    # with the bookings confirmed and their card holds open.
    scenario = load(SCENARIOS / "late-no-show.yaml")
    params = dataclasses.replace(scenario.params, processes=0)  # the DES runs the backend in process
    report = run_des(DesParams.from_live(params)).report
    assert report.ok, [r for r in report.invariants if not r.ok] + [report.errors]
    assert report.summary["bookings_by_status"] == {"expired": 3}
