"""Grid limits in OCPP words: the charger-wide maximum is the sum of the connectors' shares, each
share a TxDefaultProfile, all with stable ids so a new decision replaces the last."""

from __future__ import annotations

from datetime import timedelta

from chargeshare.ocpp import V16
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.grid_limits import (
    CHARGER_MAX_PROFILE_ID,
    GRID_STACK_LEVEL,
    limit_commands,
    tx_default_profile_id,
)
from simulators.dialect_v16 import profile_from
from simulators.smart_charging import ProfileBook, TxContext
from tests.conftest import T0


def test_a_charger_gets_its_total_on_connector_0_and_each_share_on_its_connector() -> None:
    commands = limit_commands(((2, 1_380), (1, 4_000)), T0)
    said = [(c.connector_no, c.profile.purpose, c.profile.profile_id, c.profile.periods) for c in commands]  # type: ignore[union-attr]
    assert said == [
        (0, cmd.ProfilePurpose.CHARGER_MAX, CHARGER_MAX_PROFILE_ID, (cmd.SchedulePeriod(0, 5_380),)),
        (1, cmd.ProfilePurpose.TX_DEFAULT, tx_default_profile_id(1), (cmd.SchedulePeriod(0, 4_000),)),
        (2, cmd.ProfilePurpose.TX_DEFAULT, tx_default_profile_id(2), (cmd.SchedulePeriod(0, 1_380),)),
    ]
    assert limit_commands(((1, 4_000), (2, 1_380)), T0) == commands  # the same ids every time
    assert {c.profile.stack_level for c in commands} == {GRID_STACK_LEVEL}  # type: ignore[union-attr]
    body = commands[0].payload(V16, lambda _tx: None)
    assert body["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"] == "W"


def test_no_limits_clear_both_purposes_at_the_grid_stack_level() -> None:
    assert limit_commands((), T0) == (
        cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.CHARGER_MAX, stack_level=GRID_STACK_LEVEL),
        cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.TX_DEFAULT, stack_level=GRID_STACK_LEVEL),
    )


def test_a_later_step_is_a_second_period_and_the_charger_changes_on_time_without_more_commands() -> None:
    """A flexibility event's edge, decided ahead: each connector's profile holds it as a second
    period, the charger-wide maximum sums the connectors at every edge, and a virtual charger that
    hears nothing more is at the lowered limit from the edge on."""
    edge = T0 + timedelta(seconds=150, milliseconds=700)
    commands = limit_commands(((1, 4_000), (2, 3_000)), T0, [(1, edge, 1_380), (2, edge, 0)])
    said = {c.connector_no: c.profile.periods for c in commands}  # type: ignore[union-attr]
    assert said == {
        0: (cmd.SchedulePeriod(0, 7_000), cmd.SchedulePeriod(150, 1_380)),
        1: (cmd.SchedulePeriod(0, 4_000), cmd.SchedulePeriod(150, 1_380)),
        2: (cmd.SchedulePeriod(0, 3_000), cmd.SchedulePeriod(150, 0)),
    }
    book = ProfileBook()
    for c in commands:
        body = c.payload(V16, lambda _tx: None)
        book.install(profile_from(body["csChargingProfiles"], body["connectorId"], T0), None)
    connectors: dict[int, tuple[TxContext | None, int, int]] = {1: (None, 7_400, 1), 2: (None, 7_400, 1)}
    assert book.shared_limits_w(edge - timedelta(seconds=1), connectors, {1, 2}) == {1: 4_000, 2: 3_000}
    assert book.shared_limits_w(edge, connectors, {1, 2}) == {1: 1_380, 2: 0}


def test_a_step_only_for_some_connectors_keeps_the_others_and_sums_them() -> None:
    edge = T0 + timedelta(minutes=2)
    commands = limit_commands(((1, 4_000), (2, 3_000)), T0, [(2, edge, 1_380), (9, edge, 5)])
    said = {c.connector_no: c.profile.periods for c in commands}  # type: ignore[union-attr]
    assert said[0] == (cmd.SchedulePeriod(0, 7_000), cmd.SchedulePeriod(120, 5_380))
    assert said[1] == (cmd.SchedulePeriod(0, 4_000),)  # a step for a connector not decided is ignored


def test_a_step_already_due_replaces_the_limit_rather_than_making_a_period_at_0() -> None:
    commands = limit_commands(((1, 4_000),), T0, [(1, T0 + timedelta(milliseconds=300), 2_000)])
    said = {c.connector_no: c.profile.periods for c in commands}  # type: ignore[union-attr]
    assert said == {0: (cmd.SchedulePeriod(0, 2_000),), 1: (cmd.SchedulePeriod(0, 2_000),)}


def installed(commands: tuple[cmd.SetChargingProfile | cmd.ClearChargingProfile, ...]) -> ProfileBook:
    """What a virtual 1.6 charger holds once it took these commands, as it parsed them."""
    book = ProfileBook()
    for c in commands:
        body = c.payload(V16, lambda _tx: None)
        book.install(profile_from(body["csChargingProfiles"], body["connectorId"], T0), None)
    return book


def test_a_step_is_never_taken_up_before_its_moment_when_it_raises_the_limit() -> None:
    """An event's end decided ahead: the charger may raise its limit at the end, not before (a
    lowering may come early, a rise must not). Decided at a moment with microseconds, which the
    profile's start loses below the millisecond."""
    at = T0 + timedelta(microseconds=400_400)
    end = T0 + timedelta(seconds=150, milliseconds=700)
    book = installed(limit_commands(((1, 1_380), (2, 3_000)), at, [(1, end, 4_000), (2, end, 2_000)]))
    connectors: dict[int, tuple[TxContext | None, int, int]] = {1: (None, 7_400, 1), 2: (None, 7_400, 1)}
    before = end - timedelta(milliseconds=1)
    assert book.shared_limits_w(before, connectors, {1, 2})[1] == 1_380  # not raised yet
    assert book.shared_limits_w(before, connectors, {1, 2})[2] == 2_000  # lowered by then
    assert book.shared_limits_w(end + timedelta(seconds=1), connectors, {1, 2}) == {1: 4_000, 2: 2_000}


def test_two_steps_are_two_more_periods_and_never_go_back_in_time() -> None:
    at = T0 + timedelta(milliseconds=250)
    steps = [(1, at + timedelta(seconds=60), 2_000), (1, at + timedelta(seconds=120), 5_000)]
    (_, share) = limit_commands(((1, 7_000),), at, steps)
    assert share.profile.periods == (  # type: ignore[union-attr]
        cmd.SchedulePeriod(0, 7_000),
        cmd.SchedulePeriod(60, 2_000),
        cmd.SchedulePeriod(120, 5_000),
    )
    # A raise rounds up and a cut down: within one second the cut takes the raise's place, so the
    # schedule's offsets still rise (a period before its predecessor is refused by the schema).
    close = [(1, at + timedelta(seconds=10.5), 9_000), (1, at + timedelta(seconds=10.9), 1_500)]
    (_, share) = limit_commands(((1, 7_000),), at, close)
    offsets = [p.start_s for p in share.profile.periods]  # type: ignore[union-attr]
    assert offsets == sorted(set(offsets)) and share.profile.periods[-1].limit == 1_500  # type: ignore[union-attr]
