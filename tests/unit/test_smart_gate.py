"""One transaction's gate under the smart charging regulations, walked through time: when power may
flow, the delay at each relevant time, and what suppresses or ends it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeshare.domain.smart_charge_points import SmartSettings, Suppressed, in_peak
from simulators.smart_gate import Change, Segment, SmartGate
from tests.conftest import examples

RATING = 7_400
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # GMT: peak 08:00-11:00 and 16:00-22:00 UTC


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return MONDAY + timedelta(hours=hour, minutes=minute, seconds=second)


def rating(_at: datetime) -> int:
    return RATING


def no_edges(_a: datetime, _b: datetime) -> list[datetime]:
    return []


def gate(start: datetime, s: SmartSettings | None = None, seed: int = 1) -> SmartGate:
    current = s or SmartSettings()
    g = SmartGate("tx-1", lambda: current, random.Random(seed), start)
    g.begin(rating)
    return g


def flowing_from(segments: list[Segment]) -> datetime | None:
    return next((x.start for x in segments if x.limit_w > 0), None)


def test_a_start_off_peak_is_held_back_by_a_whole_second_delay_up_to_the_maximum() -> None:
    g = gate(at(12))
    (record,) = g.log
    assert record.change is Change.START and record.suppressed is None
    assert record.drawn_s is not None and 0 < record.drawn_s <= 600
    assert g.applied_w == 0 and g.delaying
    segments = g.walk(at(13), rating, no_edges)
    assert flowing_from(segments) == at(12) + timedelta(seconds=record.drawn_s)
    assert g.applied_w == RATING and record.served_s == record.drawn_s


def test_the_same_seed_draws_the_same_delay_and_another_seed_another() -> None:
    assert gate(at(12), seed=5).log[0].drawn_s == gate(at(12), seed=5).log[0].drawn_s
    assert len({gate(at(12), seed=n).log[0].drawn_s for n in range(10)}) > 5


def test_a_start_in_peak_waits_for_the_window_to_end_then_for_its_delay() -> None:
    g = gate(at(17))
    assert g.log == [] and g.applied_w == 0  # nothing would flow yet: no relevant time
    segments = g.walk(at(23), rating, no_edges)
    (record,) = g.log
    assert record.at == at(22) and record.change is Change.START
    assert flowing_from(segments) == at(22) + timedelta(seconds=record.drawn_s or 0)


def test_charging_stops_before_the_peak_begins_spread_over_the_maximum() -> None:
    stops = []
    for seed in range(40):
        g = gate(at(15), seed=seed)
        segments = g.walk(at(17), rating, no_edges)
        stop = max(x.end for x in segments if x.limit_w > 0)
        decrease = g.log[-1]
        assert decrease.change is Change.DECREASE and decrease.at == at(15, 50)
        assert at(15, 50) <= stop <= at(16) and stop == at(15, 50) + timedelta(seconds=decrease.drawn_s or 0)
        stops.append(stop)
    assert len(set(stops)) > 30  # spread, not all at once


def test_the_drivers_override_during_a_delay_ends_it_at_once() -> None:
    g = gate(at(12), seed=3)
    assert g.delaying
    g.walk(at(12, 0, 1), rating, no_edges)
    g.override(rating)
    (record,) = g.log
    assert record.cut_short_by is Suppressed.END_USER and record.served_s == 1.0
    assert g.applied_w == RATING and not g.delaying


def test_the_drivers_override_in_peak_charges_at_once_without_a_delay() -> None:
    g = gate(at(17))
    g.override(rating)
    (record,) = g.log
    assert (record.change, record.suppressed, record.drawn_s) == (Change.START, Suppressed.END_USER, None)
    assert flowing_from(g.walk(at(18), rating, no_edges)) == at(17)


def test_dsr_and_the_owners_override_suppress_the_delay() -> None:
    dsr = gate(at(12), SmartSettings(demand_side_response=True))
    owner = gate(at(12), SmartSettings(randomised_delay_override=True))
    assert [r.suppressed for r in (*dsr.log, *owner.log)] == [Suppressed.DSR, Suppressed.OWNER]
    assert dsr.applied_w == owner.applied_w == RATING
    # With no delay to spread it, the stop comes when the peak begins, not before.
    assert max(x.end for x in owner.walk(at(17), rating, no_edges) if x.limit_w > 0) == at(16)


def test_dsr_beginning_during_a_delay_ends_it() -> None:
    current = SmartSettings()
    g = SmartGate("tx", lambda: current, random.Random(3), at(12))
    g.begin(rating)
    g.walk(at(12, 0, 2), rating, no_edges)
    current = SmartSettings(demand_side_response=True)
    g.reconsider(rating)
    assert g.log[0].cut_short_by is Suppressed.DSR and g.applied_w == RATING


def test_without_default_hours_it_charges_through_the_peak() -> None:
    g = gate(at(15), SmartSettings(default_charging_hours=False))
    segments = g.walk(at(23), rating, no_edges)
    assert all(x.limit_w == RATING for x in segments if x.start >= at(15, 11))
    assert [r.change for r in g.log] == [Change.START]


def test_a_second_change_during_a_delay_takes_the_same_delay() -> None:
    limit = {"w": RATING}
    g = SmartGate("tx", SmartSettings, random.Random(3), at(12))
    g.begin(lambda _t: limit["w"])
    drawn = g.log[0].drawn_s or 0
    g.walk(at(12, 0, 1), lambda _t: limit["w"], no_edges)
    limit["w"] = 3_700  # a profile lowered the limit before the start took effect
    g.reconsider(lambda _t: limit["w"])
    assert len(g.log) == 1  # an equivalent delay already applies to this relevant time
    segments = g.walk(at(13), lambda _t: limit["w"], no_edges)
    assert flowing_from(segments) == at(12) + timedelta(seconds=drawn) and g.applied_w == 3_700


def test_a_rate_change_is_a_relevant_time_with_its_own_delay() -> None:
    limit = {"w": RATING}
    g = SmartGate("tx", SmartSettings, random.Random(4), at(12))
    g.begin(lambda _t: limit["w"])
    g.walk(at(13), lambda _t: limit["w"], no_edges)
    limit["w"] = 3_700
    g.reconsider(lambda _t: limit["w"])
    change = g.log[-1]
    assert change.change is Change.DECREASE and change.at == at(13)
    assert g.applied_w == (3_700 if change.drawn_s == 0 else RATING)  # the old rate holds meanwhile
    g.walk(at(13, 11), lambda _t: limit["w"], no_edges)
    assert g.applied_w == 3_700


def test_energy_in_peak_is_accounted_apart() -> None:
    g = gate(at(12))
    g.account(Segment(at(12), at(13), RATING), 7_400)
    g.account(Segment(at(17), at(18), RATING), 7_400)
    assert g.peak_wh == 7_400


@settings(max_examples=examples(200), deadline=None)
@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)),
    st.integers(min_value=0, max_value=1_800),
    st.booleans(),
    st.booleans(),
    st.integers(min_value=0, max_value=2**32),
)
def test_with_default_hours_no_power_flows_in_peak_hours(
    start: datetime, max_s: int, owner: bool, dsr: bool, seed: int
) -> None:
    s = SmartSettings(randomised_delay_max_s=max_s, randomised_delay_override=owner, demand_side_response=dsr)
    g = gate(start, s, seed)
    for segment in g.walk(start + timedelta(days=2), rating, no_edges):
        if segment.limit_w > 0:
            assert not in_peak(segment.start), segment
    for r in g.log:
        assert r.drawn_s is None or 0 <= r.drawn_s <= max_s
        assert (r.suppressed is not None) == (owner or dsr)
