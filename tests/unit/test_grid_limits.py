"""Site and feeder limits as pure rules: fair shares that never pass a limit, the minimum charging
power, pausing the latest started, flexibility events, and the overload invariant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.grid_limits import (
    MIN_CHARGING_W,
    Charging,
    Feeder,
    FlexEvent,
    Idle,
    LoadSample,
    Plan,
    Scope,
    Site,
    Unheard,
    allocate,
    capacities_w,
    fair_shares,
    lower_before_raise,
    min_charging_w,
    overloads,
    site_loads_w,
)
from tests.conftest import T0, examples

MINUTE = timedelta(minutes=1)


def charging(connector: int, site: int, minutes_in: int = 0, rating: int = 7_400) -> Charging:
    return Charging(connector, site, rating, T0 + minutes_in * MINUTE)


def least(c: Charging | Idle) -> int:
    return MIN_CHARGING_W if c.min_w is None else c.min_w


def test_a_connectors_minimum_is_6_a_on_each_phase_unless_it_switches_to_one() -> None:
    assert min_charging_w(1, False) == min_charging_w(3, True) == MIN_CHARGING_W == 1_380
    assert min_charging_w(3, False) == 4_140
    assert min_charging_w(0, False) == MIN_CHARGING_W  # unknown: one phase's


def test_fair_shares_lift_a_connector_to_its_own_floor_and_share_the_rest_evenly() -> None:
    """6,000 W for a three-phase car that cannot switch (4,140 W at least) and two one-phase ones:
    equal shares (2,000 W) would leave the first unable to charge; it takes its floor and the
    others share what it leaves. Under a roomier cap everyone is above their floor and equal."""
    demands = {1: (11_000, ["s"]), 2: (7_400, ["s"]), 3: (7_400, ["s"])}
    floors = {1: 4_140, 2: 1_380, 3: 1_380}
    assert fair_shares({"s": 6_000}, {1: demands[1], 2: demands[2]}, floors) == {1: 4_140, 2: 1_860}
    assert fair_shares({"s": 7_000}, demands, floors) == {1: 4_140, 2: 1_430, 3: 1_430}
    assert fair_shares({"s": 15_000}, demands, floors) == {1: 5_000, 2: 5_000, 3: 5_000}
    assert fair_shares({"s": 15_000}, demands) == fair_shares({"s": 15_000}, demands, floors)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1_000, 7_400, 11_000, 22_000]), st.sampled_from([0, 1_380, 4_140])),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, 40_000),
)
def test_fair_shares_with_floors_fit_and_give_each_its_floor_when_the_floors_fit(
    items: list[tuple[int, int]], cap: int
) -> None:
    demands = {n: (rating, ["s"]) for n, (rating, _) in enumerate(items)}
    floors = {n: min(floor, rating) for n, (rating, floor) in enumerate(items)}
    got = fair_shares({"s": cap}, demands, floors)
    if sum(floors.values()) <= cap:
        assert sum(got.values()) <= cap
        assert all(floors[n] <= got[n] <= demands[n][0] for n in got)
        # Max-min fair above the floors: one below another's share is at its rating or its floor
        # is not what holds it (every share above a floor is the same level).
        above = {got[n] for n in got if got[n] > floors[n] and got[n] < demands[n][0]}
        assert len(above) <= 1


def test_a_house_on_a_60_amp_fuse_leaves_the_rest_to_its_one_car() -> None:
    site = Site(1, 1, "home", limit_w=13_800, house_load_w=9_000)
    got = allocate([site], [], [charging(1, 1)], [], T0)
    assert got.limits_w == {1: 4_800} and not got.paused


def test_cars_share_a_feeder_equally_and_a_slow_car_gives_its_spare_to_the_others() -> None:
    feeder = Feeder(1, "F1", limit_w=12_000)
    sites = [Site(i, i, f"s{i}", 13_800, feeder_id=1) for i in (1, 2, 3)]
    cars = [charging(1, 1), charging(2, 2), charging(3, 3, rating=2_000)]
    assert allocate(sites, [feeder], cars, [], T0).limits_w == {1: 5_000, 2: 5_000, 3: 2_000}


def test_below_the_minimum_the_latest_started_is_paused_first() -> None:
    feeder = Feeder(1, "F1", limit_w=2 * MIN_CHARGING_W - 1)  # room for one car's minimum only
    sites = [Site(i, i, f"s{i}", 13_800, feeder_id=1) for i in (1, 2, 3)]
    cars = [charging(1, 1, 5), charging(2, 2, 9), charging(3, 3, 0)]
    got = allocate(sites, [feeder], cars, [], T0)
    assert got.paused == {1, 2}
    assert got.limits_w == {1: 0, 2: 0, 3: 2 * MIN_CHARGING_W - 1}


def test_a_flexibility_event_lowers_a_feeder_only_within_its_window() -> None:
    feeder = Feeder(1, "F1", limit_w=20_000)
    site = Site(1, 1, "home", 13_800, house_load_w=1_000, feeder_id=1)
    event = FlexEvent(1, Scope.FEEDER, 1, 4_000, T0 + 10 * MINUTE, T0 + 40 * MINUTE)
    before = capacities_w([site], [feeder], [event], T0)
    during = capacities_w([site], [feeder], [event], T0 + 10 * MINUTE)
    after = capacities_w([site], [feeder], [event], T0 + 40 * MINUTE)
    assert before[(Scope.FEEDER, 1)] == after[(Scope.FEEDER, 1)] == 19_000
    assert during[(Scope.FEEDER, 1)] == 3_000


def test_limits_and_events_that_mean_nothing_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        Site(1, 1, "s", limit_w=0)
    with pytest.raises(InvalidRequest, match="at least"):
        Site(1, 1, "s", limit_w=MIN_CHARGING_W - 1)  # no car could charge under it
    with pytest.raises(InvalidRequest, match="at least"):
        Feeder(1, "F", limit_w=MIN_CHARGING_W - 1)
    with pytest.raises(InvalidRequest):
        FlexEvent(1, Scope.SITE, 1, 1_000, T0, T0)
    with pytest.raises(InvalidRequest, match="time zone"):  # not a TypeError comparing it later
        FlexEvent(1, Scope.SITE, 1, 1_000, T0.replace(tzinfo=None), T0.replace(tzinfo=None) + MINUTE)


def test_an_overload_shorter_than_the_tolerance_passes_and_a_longer_one_is_found() -> None:
    key = (Scope.FEEDER, 1)
    brief = [LoadSample(T0, 9_000, 8_000), LoadSample(T0 + MINUTE, 7_000, 8_000)]
    assert overloads({key: brief}, tolerance=MINUTE) == []
    long = [*brief[:1], LoadSample(T0 + 2 * MINUTE, 8_500, 8_000), LoadSample(T0 + 3 * MINUTE, 1, 8_000)]
    (found,) = overloads({key: long}, tolerance=MINUTE)
    assert (found.starts_at, found.ends_at, found.peak_w) == (T0, T0 + 3 * MINUTE, 9_000)
    found_open = overloads({key: long[:2]}, tolerance=MINUTE)
    assert [o.ends_at for o in found_open] == [T0 + 2 * MINUTE]


def test_loads_add_houses_and_chargers_up_to_the_feeder() -> None:
    sites = [Site(1, 1, "a", 13_800, 500, feeder_id=7), Site(2, 2, "b", 13_800, 300, feeder_id=7)]
    loads = site_loads_w(sites, {10: 7_000, 11: 2_000, 12: 1_000}, {10: 1, 11: 2, 12: 2})
    assert loads == {(Scope.SITE, 1): 7_500, (Scope.SITE, 2): 3_300, (Scope.FEEDER, 7): 10_800}


# ---- properties -----------------------------------------------------------------------------------
@st.composite
def grids(draw: st.DrawFn) -> tuple[list[Site], list[Feeder], list[Charging], list[FlexEvent]]:
    feeders = [
        Feeder(f, f"F{f}", draw(st.integers(MIN_CHARGING_W, 60_000))) for f in range(draw(st.integers(0, 3)))
    ]
    sites = [
        Site(
            s,
            s,
            f"s{s}",
            draw(st.integers(MIN_CHARGING_W, 25_000)),
            draw(st.integers(0, 15_000)),
            draw(st.sampled_from([None, *[f.feeder_id for f in feeders]])),
        )
        for s in range(draw(st.integers(1, 5)))
    ]
    cars = [
        Charging(
            c,
            draw(st.sampled_from([s.site_id for s in sites])),
            draw(st.sampled_from([0, 1_000, 3_680, 7_400, 11_000, 22_000])),
            T0 + draw(st.integers(0, 120)) * MINUTE,
            # The allocation's minimum, or a three-phase connector's that cannot switch to one.
            draw(st.sampled_from([None, MIN_CHARGING_W, 3 * MIN_CHARGING_W])),
        )
        for c in range(draw(st.integers(0, 9)))
    ]
    events = [
        FlexEvent(
            e,
            draw(st.sampled_from(list(Scope))),
            draw(st.integers(0, 5)),
            draw(st.integers(0, 30_000)),
            T0 - MINUTE * draw(st.integers(0, 2)),
            T0 + MINUTE,
        )
        for e in range(draw(st.integers(0, 3)))
    ]
    return sites, feeders, cars, events


@settings(max_examples=examples(300), deadline=None)
@given(grids())
def test_no_allocation_passes_a_limit_or_falls_below_the_minimum_unless_paused(
    grid: tuple[list[Site], list[Feeder], list[Charging], list[FlexEvent]],
) -> None:
    sites, feeders, cars, events = grid
    got = allocate(sites, feeders, cars, events, T0)
    assert set(got.limits_w) == {c.connector_id for c in cars}
    site_of = {c.connector_id: c.site_id for c in cars}
    loads = site_loads_w(sites, got.limits_w, site_of)
    caps = capacities_w(sites, feeders, events, T0)
    houses = site_loads_w(sites, {}, {})
    for key, load in loads.items():
        assert load - houses[key] <= caps[key], key
    for c in cars:
        limit = got.limits_w[c.connector_id]
        assert limit <= c.rating_w
        if c.connector_id in got.paused or least(c) > c.rating_w:  # paused, or can never charge
            assert limit == 0
        else:
            assert limit >= least(c)


@settings(max_examples=examples(200), deadline=None)
@given(grids())
def test_a_paused_car_started_after_every_car_charging_on_its_site_or_needs_more(
    grid: tuple[list[Site], list[Feeder], list[Charging], list[FlexEvent]],
) -> None:
    sites, feeders, cars, events = grid
    got = allocate(sites, feeders, cars, events, T0)

    # A car started later charges while this one waits only on a lower minimum that fits (one rated
    # under its minimum charges never, and holds nothing).
    for p in (c for c in cars if c.connector_id in got.paused):
        for c in cars:
            if c.site_id == p.site_id and c.connector_id not in got.paused and least(c) <= c.rating_w:
                assert (c.started_at, c.connector_id) < (p.started_at, p.connector_id) or least(c) < least(p)


@settings(max_examples=examples(300), deadline=None)
@given(grids(), st.lists(st.sampled_from([0, 1_000, 3_680, 7_400, 22_000]), max_size=6))
def test_cars_starting_unheard_on_every_idle_connector_never_pass_a_limit(
    grid: tuple[list[Site], list[Feeder], list[Charging], list[FlexEvent]], ratings: list[int]
) -> None:
    sites, feeders, cars, events = grid
    idle = [
        Idle(100 + n, sites[n % len(sites)].site_id, r, None if n % 2 else 3 * MIN_CHARGING_W)
        for n, r in enumerate(ratings)
    ]
    got = allocate(sites, feeders, cars, events, T0, idle=idle)
    assert set(got.limits_w) == {c.connector_id for c in cars} | {i.connector_id for i in idle}
    assert not got.paused & {i.connector_id for i in idle}
    site_of = {**{c.connector_id: c.site_id for c in cars}, **{i.connector_id: i.site_id for i in idle}}
    loads = site_loads_w(sites, got.limits_w, site_of)
    caps = capacities_w(sites, feeders, events, T0)
    houses = site_loads_w(sites, {}, {})
    for key, load in loads.items():
        assert load - houses[key] <= caps[key], key
    for i in idle:
        assert got.limits_w[i.connector_id] in ((0, least(i)) if least(i) <= i.rating_w else (0,))
    # Idle connectors take only what the cars leave: the cars' shares are as without them.
    assert {c: w for c, w in got.limits_w.items() if c < 100} == allocate(
        sites, feeders, cars, events, T0
    ).limits_w


def test_an_idle_connector_gets_the_minimum_only_where_the_cars_leave_room_for_it() -> None:
    feeder = Feeder(1, "F1", limit_w=12_000)
    sites = [Site(i, i, f"s{i}", 13_800, feeder_id=1) for i in (1, 2, 3)]
    one_car = allocate(sites, [feeder], [charging(1, 1)], [], T0, idle=[Idle(2, 2, 7_400), Idle(3, 3, 7_400)])
    assert one_car.limits_w == {1: 7_400, 2: MIN_CHARGING_W, 3: MIN_CHARGING_W}
    two_cars = allocate(sites, [feeder], [charging(1, 1), charging(2, 2)], [], T0, idle=[Idle(3, 3, 7_400)])
    assert two_cars.limits_w == {1: 6_000, 2: 6_000, 3: 0}


@settings(max_examples=examples(300), deadline=None)
@given(grids(), st.lists(st.sampled_from([0, 1_380, 7_400, 22_000]), max_size=4))
def test_unheard_connectors_are_left_what_they_may_hold_where_it_fits(
    grid: tuple[list[Site], list[Feeder], list[Charging], list[FlexEvent]], held: list[int]
) -> None:
    sites, feeders, cars, events = grid
    unheard = [Unheard(200 + n, sites[n % len(sites)].site_id, w) for n, w in enumerate(held)]
    got = allocate(sites, feeders, cars, events, T0, unheard=unheard)
    assert set(got.limits_w) == {c.connector_id for c in cars}  # the unheard are not decided
    site_of = {**{c.connector_id: c.site_id for c in cars}, **{u.connector_id: u.site_id for u in unheard}}
    drawn = {**got.limits_w, **{u.connector_id: u.w for u in unheard}}
    alone = site_loads_w(sites, {u.connector_id: u.w for u in unheard}, site_of)
    loads = site_loads_w(sites, drawn, site_of)
    caps = capacities_w(sites, feeders, events, T0)
    houses = site_loads_w(sites, {}, {})
    for key, load in loads.items():
        if alone[key] - houses[key] <= caps[key]:  # what the unheard may hold fits: so does the rest
            assert load - houses[key] <= caps[key], key
        else:  # it does not: nobody else under that limit charges
            assert all(
                got.limits_w[c] == 0 for c, w in got.limits_w.items() if key in under_of(sites, site_of[c])
            )


def under_of(sites: list[Site], site_id: int) -> list[tuple[Scope, int]]:
    site = next(s for s in sites if s.site_id == site_id)
    return [(Scope.SITE, site_id), *([(Scope.FEEDER, site.feeder_id)] if site.feeder_id is not None else [])]


@st.composite
def two_decisions(draw: st.DrawFn) -> tuple[dict[int, Plan], dict[int, Plan], dict[int, int]]:
    """Plans sent before and wanted now for connectors on a few chargers under one feeder: a limit
    now and up to two later steps, at a few shared moments (a flexibility event's edges)."""
    charger_of = {c: draw(st.integers(1, 4)) for c in range(draw(st.integers(1, 8)))}
    watts = st.sampled_from([0, 1_380, 2_500, 4_000, 6_000, 7_400])
    moments = [T0 + n * MINUTE for n in (1, 2, 3)]

    def plan() -> Plan:
        at = sorted(draw(st.sets(st.sampled_from(moments), max_size=2)))
        return Plan(draw(watts), tuple((t, draw(watts)) for t in at))

    before = {c: plan() for c in charger_of}
    wanted = {c: plan() for c in charger_of}
    return before, wanted, charger_of


@settings(max_examples=examples(500), deadline=None)
@given(two_decisions())
def test_chargers_taking_a_decision_in_any_order_never_pass_what_either_decision_fits(
    decisions: tuple[dict[int, Plan], dict[int, Plan], dict[int, int]],
) -> None:
    before, wanted, charger_of = decisions
    under = {key: [(Scope.FEEDER, 1)] for key in charger_of}
    sent = lower_before_raise(before, wanted, under, charger_of, ())
    chargers = sorted(set(charger_of.values()))
    for at in [T0 + n * MINUTE for n in range(5)]:
        # Both decisions fit the feeder at every moment.
        cap = max(sum(p.at(at) for p in before.values()), sum(p.at(at) for p in wanted.values()))
        # A charger takes its whole decision (its charger-wide maximum comes first); the others may
        # or may not have taken theirs yet.
        for mask in range(1 << len(chargers)):
            took = {ch for i, ch in enumerate(chargers) if mask >> i & 1}
            drawn = [(sent if charger_of[c] in took else before)[c].at(at) for c in charger_of]
            assert sum(drawn) <= cap, (at, took)
        for c in charger_of:
            low, high = sorted((before[c].at(at), wanted[c].at(at)))
            assert low <= sent[c].at(at) <= high
    # Once what was sent is acknowledged, deciding again sends the rest: two rounds at most.
    assert lower_before_raise(sent, wanted, under, charger_of, ()) == wanted


def test_a_raise_waits_for_another_chargers_lowering_but_not_for_its_own() -> None:
    under = {key: [(Scope.FEEDER, 1)] for key in (1, 2, 3)}
    charger_of = {1: 10, 2: 10, 3: 20}
    before = {1: Plan(6_000), 2: Plan(0), 3: Plan(0)}

    def sent(wanted: dict[int, int], settling: set[int] | None = None) -> dict[int, int]:
        plans = {c: Plan(w) for c, w in wanted.items()}
        return {
            c: p.limit_w
            for c, p in lower_before_raise(before, plans, under, charger_of, settling or ()).items()
        }

    # Charger 10 moves power between its own connectors: its charger-wide maximum orders it.
    assert sent({1: 3_000, 2: 3_000, 3: 0}) == {1: 3_000, 2: 3_000, 3: 0}
    # Charger 20's raise waits for charger 10's lowering, and for a decision still on its way.
    assert sent({1: 3_000, 2: 0, 3: 3_000})[3] == 0
    assert sent({1: 6_000, 2: 0, 3: 3_000}, {1})[3] == 0
    assert sent({1: 6_000, 2: 0, 3: 3_000})[3] == 3_000


def test_a_raising_step_waits_for_another_chargers_lowering_step() -> None:
    """At a flexibility event's end charger 20 steps up; charger 10's new plan steps down then.
    Until charger 10 has its plan, charger 20's step is held at what it had."""
    under = {key: [(Scope.FEEDER, 1)] for key in (1, 2)}
    charger_of = {1: 10, 2: 20}
    end = T0 + 3 * MINUTE
    before = {1: Plan(2_000, ((end, 6_000),)), 2: Plan(2_000)}
    wanted = {1: Plan(2_000, ((end, 3_000),)), 2: Plan(2_000, ((end, 3_000),))}
    sent = lower_before_raise(before, wanted, under, charger_of, ())
    assert sent == {1: wanted[1], 2: Plan(2_000)}
    assert lower_before_raise(sent, wanted, under, charger_of, ()) == wanted


def test_a_plan_takes_its_passed_steps_as_its_limit_now() -> None:
    plan = Plan(6_000, ((T0 + MINUTE, 2_000), (T0 + 3 * MINUTE, 7_000)))
    assert plan.from_(T0) == plan
    assert plan.from_(T0 + MINUTE) == Plan(2_000, ((T0 + 3 * MINUTE, 7_000),))
    assert plan.from_(T0 + 5 * MINUTE) == Plan(7_000)
    assert plan.capped_by(Plan(4_000)) == Plan(4_000, ((T0 + MINUTE, 2_000), (T0 + 3 * MINUTE, 4_000)))
