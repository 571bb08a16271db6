"""A connector charges on the phases it declares if its rating carries 6 A on each of them, else on
one (no UK supply is two-phase), and a limit it could not obey is sent as 0: allocation, the profile
in A or W, the driver's override and the virtual charger agree."""

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


# Ratings around each phase count's minimum, the fleet's, and any.
RATINGS_W = st.one_of(
    st.sampled_from([0, 1_000, 1_379, 1_380, 2_759, 2_760, 3_680, 3_700, 4_139, 4_140, 7_400, 11_000]),
    st.integers(0, 50_000),
)


@given(st.integers(1, 3), RATINGS_W, st.booleans())
def test_a_connector_charges_on_the_phases_it_declares_or_on_one(
    phases: int, rating_w: int, switches: bool
) -> None:
    """On every declared phase if its rating carries 6 A on each of them, else on one: a UK supply
    has one phase or three, so a three-phase connector is never taken as two-phase."""
    n = phases_within(phases, rating_w)
    assert n == (phases if phases * MIN_CHARGING_W <= rating_w else 1)
    least = min_charging_w(phases, switches, rating_w=rating_w)
    assert least == min_charging_w(n, switches)
    if rating_w >= MIN_CHARGING_W:
        assert least <= rating_w


@given(RATINGS_W)
def test_a_three_phase_connector_is_never_taken_as_two_phase(rating_w: int) -> None:
    assert phases_within(3, rating_w) in (1, 3)
    assert min_charging_w(3, False, rating_w=rating_w) in (MIN_CHARGING_W, 3 * MIN_CHARGING_W)


@pytest.mark.parametrize(("site_w", "given_w"), [(3_000, 3_000), (2_000, 2_000)])
def test_a_3_68_kw_connector_declared_three_phase_charges_on_one_phases_minimum(
    site_w: int, given_w: int
) -> None:
    """A 16 A one-phase EVSE under a station that says three: its minimum is one phase's 1,380 W,
    so a 2,000 W site gives it 2,000 W where 2,760 W (two phases) paused it."""
    least = min_charging_w(3, False, rating_w=3_680)
    assert least == MIN_CHARGING_W
    got = allocate([Site(1, 1, "s", site_w)], [], [Charging(1, 1, 3_680, T0, least)], [], T0)
    assert got.paused == frozenset()
    assert got.limits_w[1] == given_w


def _carried(rating_w: int) -> int:
    """What the grid service says a connector's rating carries 6 A on (`phases_at_most`)."""
    return min(3, rating_w // MIN_CHARGING_W)


def _sent(
    unit: cmd.RateUnit, w: int, declared: int, switches: bool, at_most: int
) -> tuple[cmd.SetChargingProfile, ...]:
    commands = limit_commands(
        ((1, w),),
        T0,
        unit=unit,
        phases=Wiring({0: declared}, switches_3to1=switches),
        at_most={1: at_most},
    )
    assert all(isinstance(c, cmd.SetChargingProfile) for c in commands)
    return commands  # type: ignore[return-value]


def _drawn(commands: tuple[cmd.SetChargingProfile, ...], wired: int, rating_w: int, switches: bool) -> int:
    """What a virtual charger whose connector 1 is wired to `wired` phases draws under `commands`."""
    book = ProfileBook(switches_3to1=switches)
    for command in commands:
        body = command.payload(V16, lambda _tx: None)["csChargingProfiles"]
        book.install(profile_from(body, command.connector_no, T0), None)
    return book.shared_limits_w(T0, {1: (None, rating_w, wired)}, {1})[1]


@pytest.mark.parametrize("unit", [AMPS, WATTS])
def test_a_16_a_one_phase_evse_under_a_three_phase_station_draws_its_whole_decision(
    unit: cmd.RateUnit,
) -> None:
    """The station says three phases, its 3.68 kW EVSE nothing of its own: it is a one-phase EVSE
    (no UK supply has two), sent 16 A on one phase in A, and draws all 3,680 W decided; split as
    8 A on each of two, its one phase drew 1,840 W. Taken as declared, the virtual charger agrees."""
    sent = _sent(unit, 3_680, 3, False, _carried(3_680))
    (period,) = sent[1].profile.periods
    if unit is AMPS:
        assert (period.limit, period.phases) == (16, 1)
    assert _drawn(sent, 1, 3_680, False) == 3_680
    assert _drawn(sent, 3, 3_680, False) == 3_680


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
    sent = {}
    for unit in (AMPS, WATTS):
        (_, tx_default) = _sent(unit, w, wired, switches, at_most)
        (p,) = tx_default.profile.periods
        assert p.limit is not None
        sent[unit] = p
    on = wired if wired <= at_most else 1  # declared if its rating carries 6 A on each, else one
    assert sent[AMPS].phases in (on, 1)
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


def test_the_drivers_override_in_a_for_a_3_68_kw_evse_declared_three_phase_is_16_a_on_one() -> None:
    """The override is the rating in A on the connector's phases: 3,680 W on three is 5 A each,
    under 6 A, so 0 A; split on two, its one phase drew 8 A; on one it is 16 A, all of it drawn,
    by a one-phase EVSE and by the virtual charger taking it as declared."""
    (p,) = override_profile(3_680, 5, AMPS, 3).periods
    assert (p.limit, p.phases) == (16, 1)
    assert p.limit is not None
    assert drawn_w(p.limit, "A", p.phases, 1, 3_680, False) == 3_680
    assert drawn_w(p.limit, "A", p.phases, 3, 3_680, False) == 3_680


@given(RATINGS_W.filter(lambda w: w >= 1_000), st.sampled_from([1, 3]), st.booleans())
def test_the_virtual_charger_draws_its_whole_rating_in_a_above_it(
    rating_w: int, wired: int, switches: bool
) -> None:
    """Under far more amps than its rating carries, a connector draws its rating to the watt, in
    whole-number arithmetic (as a float, 7,400 W on one phase came out 7,399 W)."""
    assert drawn_w(1_000, "A", None, wired, rating_w, switches) == rating_w
