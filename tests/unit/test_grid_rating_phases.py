"""A connector's rating caps the phases it can charge on (6 A on each): allocation, the profile in
A or W, and the virtual charger agree."""

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
from simulators.dialect_v16 import profile_from
from simulators.smart_charging import ProfileBook
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
