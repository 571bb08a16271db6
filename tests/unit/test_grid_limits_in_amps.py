"""Grid limits to a charger that takes A only: per phase on the phases named, floored so the charger
never draws more than the W decided; 0 stays 0, and less than 6 A (no car charges on it) is 0."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.grid_limits import MIN_AMPS, MIN_CHARGING_W, VOLTS
from chargeshare.ocpp import V16, V201
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.grid_limits import (
    AMPS_PHASES,
    amps_within,
    limit_commands,
    obeyable_w,
)
from chargeshare.ocpp.phases import Wiring
from chargeshare.ocpp.rate_units import amps_only, from_read, key, parse
from chargeshare.ocpp.smart_charging import override_profile
from chargeshare.ocpp.v2g import export_profile
from simulators.dialect_v16 import profile_from
from simulators.smart_charging import ProfileBook, TxContext, drawn_w, to_watts
from tests.conftest import T0

AMPS = cmd.RateUnit.AMPS


@given(st.integers(min_value=0, max_value=200_000), st.sampled_from([1, 2, 3]))
def test_a_limit_in_amps_never_lets_the_charger_draw_more_than_the_watts(w: int, phases: int) -> None:
    amps = amps_within(w, phases)
    assert amps * VOLTS * phases <= w
    assert amps == 0 or amps >= MIN_AMPS  # never a current no car can take
    if amps:  # and the most that fits: one more amp would pass the limit
        assert (amps + 1) * VOLTS * phases > w


def test_the_minimum_is_6_a_on_one_phase_and_0_stays_0() -> None:
    assert amps_within(0) == 0
    assert amps_within(MIN_CHARGING_W) == MIN_AMPS  # 1,380 W is 6 A at 230 V exactly
    assert amps_within(MIN_CHARGING_W - 1) == 0  # 5 A would be less than any car takes: paused
    assert amps_within(7_000) == 30  # 30.4 A floored
    # On three phases the 1,380 W minimum would be 2 A each: not a current a car takes, so 0.
    assert amps_within(MIN_CHARGING_W, 3) == 0


@given(
    st.lists(st.integers(min_value=0, max_value=22_000), min_size=1, max_size=3),
    st.lists(st.integers(min_value=0, max_value=22_000), max_size=3),
)
def test_every_profile_in_amps_read_back_as_a_charger_does_stays_within_its_watts(
    shares: list[int], later: list[int]
) -> None:
    limits_w = tuple((no, w) for no, w in enumerate(shares, start=1))
    steps = [(1 + i % len(shares), T0 + timedelta(minutes=1 + i), w) for i, w in enumerate(later)]
    in_w = limit_commands(limits_w, T0, steps)
    in_a = limit_commands(limits_w, T0, steps, unit=AMPS)
    assert len(in_w) == len(in_a)
    for w_command, a_command in zip(in_w, in_a, strict=True):
        assert isinstance(w_command, cmd.SetChargingProfile) and isinstance(a_command, cmd.SetChargingProfile)
        assert a_command.profile.rate_unit is AMPS
        assert [p.start_s for p in a_command.profile.periods] == [
            p.start_s for p in w_command.profile.periods
        ]
        for a, w in zip(a_command.profile.periods, w_command.profile.periods, strict=True):
            assert a.phases == AMPS_PHASES  # said: a charger assumes 3 phases when it is not
            assert a.limit is not None and w.limit is not None
            # As a charger converts it (the virtual one's rule): A x 230 V x the phases named.
            assert to_watts(a.limit, "A", a.phases or 3) <= w.limit


def test_a_virtual_charger_takes_the_amps_profile_as_no_more_than_the_watts() -> None:
    (_maximum, share) = limit_commands(((1, 7_000),), T0, unit=AMPS)
    assert isinstance(share, cmd.SetChargingProfile)
    body = share.payload(V16, lambda _tx: None)["csChargingProfiles"]
    assert body["chargingSchedule"]["chargingRateUnit"] == "A"
    assert body["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 30, "numberPhases": 1}
    ]
    book = ProfileBook()
    book.install(profile_from(body, 1, T0), None)
    # An 11 kW connector wired to 3 phases is held to one by the profile's numberPhases, and on it
    # to the 16 A (15.9) a phase of it carries: a third of its rating, whatever the room.
    assert book.limit_w(1, T0, None, 11_000, 3) == 11_000 // 3 < 30 * 230 <= 7_000
    # Sent on the three phases it is wired to, it draws 10 A on each: 6,900 W.
    (_maximum, share) = limit_commands(((1, 7_000),), T0, unit=AMPS, phases={0: 3})
    assert isinstance(share, cmd.SetChargingProfile)
    body = share.payload(V16, lambda _tx: None)["csChargingProfiles"]
    assert body["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 10, "numberPhases": 3}
    ]
    book = ProfileBook()
    book.install(profile_from(body, 1, T0), None)
    assert book.limit_w(1, T0, None, 11_000, 3) == 10 * 230 * 3 <= 7_000


@given(st.integers(min_value=0, max_value=200_000), st.sampled_from([1, 2, 3]), st.booleans())
def test_a_limit_goes_on_the_phases_wired_while_each_gets_6_a_else_on_one_if_it_switches(
    w: int, wired: int, switches: bool
) -> None:
    """A x 230 V x phases within the W, the largest A that fits on the phases named; all the wired
    phases while each takes the 6 A minimum; below it one phase (where 6 A or more may still fit)
    only for a charger that switches three phases to one, else 0 A on all it has: told one phase,
    it could only pause or draw on all of them."""
    wiring = Wiring({1: wired}, switches_3to1=switches)
    (p,) = limit_commands(((1, w),), T0, unit=AMPS, phases=wiring)[1].profile.periods  # type: ignore[union-attr]
    assert p.limit is not None and p.phases is not None
    assert p.limit * VOLTS * p.phases <= w
    assert p.limit == amps_within(w, p.phases)
    assert p.phases == (wired if amps_within(w, wired) or not switches else AMPS_PHASES)
    if p.limit:  # the most that fits: one more amp on each phase named would pass the limit
        assert (p.limit + 1) * VOLTS * p.phases > w
    # In W the switch is said the same way; no other limit in W names phases. A limit the
    # connector could not obey is 0 W, as it is 0 A.
    (q,) = limit_commands(((1, w),), T0, phases=wiring)[1].profile.periods  # type: ignore[union-attr]
    assert q.limit == obeyable_w(w, wired, switches) and (q.limit > 0) == (p.limit > 0)
    assert q.phases == (AMPS_PHASES if q.limit > 0 and p.phases < wired else None)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=22_000), st.sampled_from([1, 3])), min_size=1, max_size=3
    ),
    st.lists(st.integers(min_value=0, max_value=22_000), max_size=3),
    st.sampled_from([1, 3]),
    st.booleans(),
)
def test_every_connector_wired_as_said_draws_within_its_watts(
    shares: list[tuple[int, int]], later: list[int], whole: int, switches: bool
) -> None:
    """Read back as a connector wired to its phases draws (the virtual charger's rule: the phases
    named that it has, each at most its rated current; fewer than it has only if it switches),
    every period and the maximum stay within."""
    limits_w = tuple((no, w) for no, (w, _) in enumerate(shares, start=1))
    wiring = Wiring(
        {0: whole} | {no: ph for no, (_, ph) in enumerate(shares, start=1) if no % 2}, switches_3to1=switches
    )
    steps = [(1 + i % len(shares), T0 + timedelta(minutes=1 + i), w) for i, w in enumerate(later)]
    in_w = limit_commands(limits_w, T0, steps)
    in_a = limit_commands(limits_w, T0, steps, unit=AMPS, phases=wiring)
    for w_command, a_command in zip(in_w, in_a, strict=True):
        assert isinstance(w_command, cmd.SetChargingProfile) and isinstance(a_command, cmd.SetChargingProfile)
        no = a_command.connector_no
        wired = 3 if no == 0 else wiring.get(no, whole)
        for a, w in zip(a_command.profile.periods, w_command.profile.periods, strict=True):
            assert a.limit is not None and w.limit is not None and a.phases is not None
            assert drawn_w(a.limit, "A", a.phases, wired, 22_000, switches) <= w.limit
            assert drawn_w(w.limit, "W", w.phases, wired, 22_000, switches) <= w.limit


def test_declared_units_in_either_versions_words() -> None:
    assert parse("Current") == {AMPS}
    assert parse("A") == {AMPS}
    assert parse("Current,Power") == parse("A, W") == parse("A;W") == {AMPS, cmd.RateUnit.WATTS}
    assert parse("") == parse("Amperes?") == frozenset()
    assert amps_only(parse("Current")) and amps_only(parse("A"))
    assert not amps_only(parse("Current,Power")) and not amps_only(parse("W"))
    assert not amps_only(frozenset())  # unknown keeps W
    said = (
        cmd.SettingValue(cmd.SettingKey("TxUpdatedInterval", "SampledDataCtrlr"), cmd.Status.ACCEPTED, "60"),
        cmd.SettingValue(key(V201), cmd.Status.ACCEPTED, "A"),
    )
    assert from_read(V201, said) == {AMPS}
    assert from_read(V16, (cmd.SettingValue(key(V16), cmd.Status.UNKNOWN_VARIABLE),)) == frozenset()


@given(
    st.integers(min_value=0, max_value=50_000),
    st.lists(st.tuples(st.integers(0, 3_600), st.integers(1, 3_600)), max_size=3),
)
def test_the_override_and_the_v2g_profile_in_amps_never_pass_the_rating_either_way(
    rating_w: int, windows: list[tuple[int, int]]
) -> None:
    """Charging, setpoint and discharge limit alike: A x 230 V on the one phase named is at most the
    rating, a discharge written negative, and under 6 A it is 0."""
    override = override_profile(rating_w, 5, AMPS)
    exported = export_profile(1, 5, rating_w, tuple((a, a + d) for a, d in windows), T0, AMPS).profile
    for profile in (override, exported):
        assert profile.rate_unit is AMPS
        for p in profile.periods:
            assert p.phases == AMPS_PHASES
            for figure, sign in ((p.limit, 1), (p.setpoint, -1), (p.discharge_limit, -1)):
                if figure is not None:
                    assert figure * sign >= 0
                    assert to_watts(abs(figure), "A", AMPS_PHASES) <= rating_w
                    assert abs(figure) == 0 or abs(figure) >= MIN_AMPS
    assert override.periods[0].limit == amps_within(rating_w)


@pytest.mark.parametrize(
    ("limit", "unit", "named", "switches", "drawn"),
    [
        (6, "A", 1, True, 6 * 230),  # switches to the one phase named
        (6, "A", 1, False, 0),  # cannot: told one phase, no draw on three obeys
        (6, "A", None, False, 6 * 230 * 3),
        (2_000, "W", None, True, 2_000),
        (2_000, "W", 1, True, 2_000),
        (2_000, "W", None, False, 0),  # under 6 A on each of three phases: no car takes it
        (4_140, "W", None, False, 4_140),
        (9_000, "W", 1, True, 22_000 // 3),  # on one phase, at most a phase's rated current
    ],
)
def test_a_three_phase_connector_obeys_a_switch_to_one_phase_only_if_it_can(
    limit: int, unit: str, named: int | None, switches: bool, drawn: int
) -> None:
    assert drawn_w(limit, unit, named, 3, 22_000, switches) == drawn


@given(
    st.sampled_from([0, 4_140, 5_000, 11_000]),
    st.sampled_from([0, 1_380, 2_000, 3_680]),
    st.sampled_from([None, 0, 4_140]),
    st.booleans(),
)
def test_a_one_phase_connector_beside_a_paused_three_phase_one_charges(
    three: int, one: int, later: int | None, switches: bool
) -> None:
    """A charger with a three-phase connector and a one-phase one: each given its minimum or more
    (4,140 W on three phases unless the charger switches, 1,380 W on one) draws, in A as in W,
    under the charger-wide maximum too, and the whole within the sum: the maximum goes on the
    phases of the connectors given something then, not on all the charger has."""
    wiring = Wiring({1: 3, 2: 1}, switches_3to1=switches)
    connectors: dict[int, tuple[TxContext | None, int, int]] = {1: (None, 22_000, 3), 2: (None, 7_400, 1)}
    steps = [] if later is None else [(1, T0 + timedelta(minutes=1), later)]
    for unit in (AMPS, cmd.RateUnit.WATTS):
        book = ProfileBook(switches_3to1=switches)
        for command in limit_commands(((1, three), (2, one)), T0, steps, unit=unit, phases=wiring):
            assert isinstance(command, cmd.SetChargingProfile)
            body = command.payload(V16, lambda _tx: None)["csChargingProfiles"]
            book.install(profile_from(body, command.connector_no, T0), None)
        got = book.shared_limits_w(T0, connectors, {1, 2})
        assert sum(got.values()) <= three + one
        assert (got[1] > 0, got[2] > 0) == (three > 0, one > 0), (unit, got)
