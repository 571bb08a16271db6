"""A connector's rating caps the phases it can charge on (6 A on each), and a limit it could not
obey is sent as 0: allocation, the profile in A or W, and the virtual charger agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.grid_limits import (
    MIN_CHARGING_W,
    Charging,
    Site,
    allocate,
    min_charging_w,
    phases_within,
)
from chargeshare.ocpp import V16
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.grid_limits import limit_commands
from chargeshare.ocpp.phases import Wiring
from chargeshare.ocpp.smart_charging import override_profile
from simulators.dialect_v16 import profile_from
from simulators.smart_charging import ProfileBook, drawn_w
from tests.conftest import T0

AMPS, WATTS = cmd.RateUnit.AMPS, cmd.RateUnit.WATTS


@given(st.integers(1, 3), st.integers(1, 50_000), st.booleans())
def test_a_connectors_minimum_never_passes_a_rating_that_carries_6_a_on_one_phase(
    phases: int, rating_w: int, switches: bool
) -> None:
    n = phases_within(phases, rating_w)
    assert 1 <= n <= phases
    assert n == 1 or n * MIN_CHARGING_W <= rating_w
    assert n == phases or (n + 1) * MIN_CHARGING_W > rating_w  # the most it carries
    least = min_charging_w(phases, switches, rating_w=rating_w)
    assert least == min_charging_w(n, switches)
    if rating_w >= MIN_CHARGING_W:
        assert least <= rating_w


def test_a_3_68_kw_connector_declared_three_phase_shares_a_3_kw_site_rather_than_pausing() -> None:
    """Its rating carries 6 A on two phases, not three: its minimum is 2,760 W, which 3,000 W
    fits, where 4,140 W (held to its rating, 3,680 W) did not and paused it for ever."""
    least = min_charging_w(3, False, rating_w=3_680)
    assert least == 2 * MIN_CHARGING_W
    got = allocate([Site(1, 1, "s", 3_000)], [], [Charging(1, 1, 3_680, T0, least)], [], T0)
    assert got.paused == frozenset()
    assert got.limits_w[1] == 3_000


def _drawn(unit: cmd.RateUnit, w: int, wired: int, rating_w: int, switches: bool, at_most: int) -> int:
    """What the virtual charger draws on connector 1 under the limit sent for `w`."""
    book = ProfileBook(switches_3to1=switches)
    wiring = Wiring({0: wired}, switches_3to1=switches)
    for command in limit_commands(((1, w),), T0, unit=unit, phases=wiring, at_most={1: at_most}):
        assert isinstance(command, cmd.SetChargingProfile)
        body = command.payload(V16, lambda _tx: None)["csChargingProfiles"]
        book.install(profile_from(body, command.connector_no, T0), None)
    return book.shared_limits_w(T0, {1: (None, rating_w, wired)}, {1})[1]


@pytest.mark.parametrize("unit", [AMPS, WATTS])
def test_a_3_68_kw_evse_under_a_three_phase_station_that_cannot_switch_charges(unit: cmd.RateUnit) -> None:
    """The station says three phases, the EVSE nothing of its own: told on its rating's two phases
    it draws what it is given (8 A on each of two in A), not 0 A for ever nor a W it cannot obey."""
    drawn = _drawn(unit, 3_680, 3, 3_680, False, phases_within(3, 3_680))
    assert drawn == 3_680


@given(
    st.integers(0, 25_000),
    st.sampled_from([1, 2, 3]),
    st.sampled_from([1, 2, 3]),
    st.booleans(),
)
def test_a_limit_sent_is_obeyable_never_above_the_decision_and_the_same_in_a_and_w(
    w: int, wired: int, at_most: int, switches: bool
) -> None:
    """In W as in A, the connector's limit is 0 or at least its minimum on the phases it is sent
    on, never above the W decided, and charges in one unit exactly when it does in the other."""
    wiring = Wiring({1: wired}, switches_3to1=switches)
    sent = {}
    for unit in (AMPS, WATTS):
        (_, tx_default) = limit_commands(((1, w),), T0, unit=unit, phases=wiring, at_most={1: at_most})
        assert isinstance(tx_default, cmd.SetChargingProfile)
        (p,) = tx_default.profile.periods
        assert p.limit is not None
        sent[unit] = p
    on = min(wired, at_most)
    in_w = sent[WATTS]
    assert in_w.limit is not None and 0 <= in_w.limit <= w
    assert in_w.limit == 0 or in_w.limit >= min_charging_w(on, switches)
    assert (in_w.limit > 0) == (sent[AMPS].limit > 0)  # type: ignore[operator]
    # The virtual charger wired as said draws under it what it was sent, within its rating.
    rating = 22_000 if at_most == 3 else at_most * MIN_CHARGING_W
    drew = drawn_w(in_w.limit, "W", in_w.phases, wired, rating, switches)
    assert (drew > 0) == (in_w.limit > 0)


def test_a_stale_limit_under_6_a_on_each_of_three_phases_is_sent_as_0_w() -> None:
    """Decided as one phase (wiring not yet known), sent once three are known to a charger that
    cannot switch: 2,000 W is sent 0 W, as in A it is 0 A, rather than a limit it cannot obey."""
    three = Wiring({0: 3})
    (_, tx_default) = limit_commands(((1, 2_000),), T0, phases=three)
    assert isinstance(tx_default, cmd.SetChargingProfile)
    assert [p.limit for p in tx_default.profile.periods] == [0]
    # A charger that switches takes it on one phase.
    (_, switched) = limit_commands(((1, 2_000),), T0, phases=Wiring({0: 3}, switches_3to1=True))
    assert isinstance(switched, cmd.SetChargingProfile)
    assert [(p.limit, p.phases) for p in switched.profile.periods] == [(2_000, 1)]


def test_the_drivers_override_in_a_for_a_3_68_kw_evse_declared_three_phase_is_not_0_a() -> None:
    """The override is the rating in A on the connector's phases: 3,680 W on three is 5 A each,
    under 6 A, so 0 A; on the two its rating carries 6 A on it is 8 A each, all of it drawn."""
    (p,) = override_profile(3_680, 5, AMPS, 3).periods
    assert (p.limit, p.phases) == (8, 2)
    assert p.limit is not None
    assert drawn_w(p.limit, "A", p.phases, 3, 3_680, False) == 3_680
