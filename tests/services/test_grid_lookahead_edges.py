"""Adversarial cases for a flexibility event's edges decided ahead (`LOOK_AHEAD`): what a charger
holds from the last commands it was sent must keep the feeder within its limit at every edge in the
look-ahead, with no sweep in between (the sweep late, the machine loaded)."""

from __future__ import annotations

from datetime import datetime, timedelta

from chargeshare.bootstrap import App
from chargeshare.domain.grid_limits import Scope
from chargeshare.ocpp import V16
from chargeshare.ocpp.grid_limits import limit_commands
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import GridLimitsDue
from simulators.dialect_v16 import profile_from
from simulators.smart_charging import ProfileBook, TxContext
from tests.conftest import T0
from tests.services.test_grid_service import a_feeder_of_three, start, took_all


def held_w(due: GridLimitsDue, at: datetime) -> int:
    """The charger's limit at `at` from the profiles `due` puts on it, with nothing sent since."""
    book = ProfileBook()
    for command in limit_commands(due.limits_w, due.at, due.steps):
        body = command.payload(V16, lambda _tx: None)
        book.install(profile_from(body["csChargingProfiles"], body["connectorId"], T0), None)
    connectors: dict[int, tuple[TxContext | None, int, int]] = {
        no: (None, 7_400, 1) for no, _ in due.limits_w
    }
    return sum(book.shared_limits_w(at, connectors, set(connectors)).values())


def settled(app: App) -> None:
    """Every charger acknowledged its latest limits, as ones online would, a few rounds over (an
    acknowledgement may let a raise held for another charger's lowering go out)."""
    for _ in range(5):
        took_all(app, ["CP1", "CP2", "CP3"])


def told(app: App) -> dict[str, GridLimitsDue]:
    """What each charger on the feeder holds from its latest decision (as sent, or on connecting)."""
    last = {cp_id: app.grid.limits_due(cp_id) for cp_id in ("CP1", "CP2", "CP3")}
    assert all(due is not None for due in last.values())
    return {cp_id: due for cp_id, due in last.items() if due is not None}


def test_two_edges_within_the_look_ahead_are_both_on_the_chargers(app: App, clock: ManualClock) -> None:
    a_feeder_of_three(app)
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    settled(app)
    feeder = app.grid.feeders()[0].feeder_id
    now = clock.now()
    lowered, cut = now + timedelta(minutes=1), now + timedelta(minutes=3)
    app.grid.add_flex_event(Scope.FEEDER, feeder, 9_000, lowered, now + timedelta(minutes=10))
    app.grid.add_flex_event(Scope.FEEDER, feeder, 4_000, cut, now + timedelta(minutes=4))
    settled(app)
    last = told(app)
    for moment, feeder_w in ((lowered, 9_000), (cut, 4_000)):
        held = {cp_id: held_w(due, moment + timedelta(seconds=1)) for cp_id, due in last.items()}
        assert sum(held.values()) <= feeder_w, (moment, held)


def test_an_edge_elsewhere_does_not_hide_the_next_edge_of_this_feeder(app: App, clock: ManualClock) -> None:
    a_feeder_of_three(app)
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    settled(app)
    feeder = app.grid.feeders()[0].feeder_id
    elsewhere = app.grid.sites()[2].site_id  # CP3's site: nobody charges there
    now = clock.now()
    cut = now + timedelta(minutes=3)
    app.grid.add_flex_event(Scope.FEEDER, feeder, 4_000, cut, now + timedelta(minutes=30))
    settled(app)
    app.grid.add_flex_event(
        Scope.SITE, elsewhere, 3_000, now + timedelta(minutes=1), now + timedelta(hours=1)
    )
    settled(app)
    held = {cp_id: held_w(due, cut + timedelta(seconds=1)) for cp_id, due in told(app).items()}
    assert sum(held.values()) <= 4_000, held


def within_in_any_order(
    old: dict[str, GridLimitsDue], new: dict[str, GridLimitsDue], limit_at: dict[datetime, int]
) -> None:
    """Whichever chargers have taken their newest commands and whichever still hold the old ones,
    the feeder stays within its limit at each moment."""
    cp_ids = sorted(old)
    for moment, limit_w in limit_at.items():
        for mask in range(1 << len(cp_ids)):
            took = [cp_id for i, cp_id in enumerate(cp_ids) if mask >> i & 1]
            held = {cp_id: held_w((new if cp_id in took else old)[cp_id], moment) for cp_id in cp_ids}
            assert sum(held.values()) <= limit_w, (moment, took, held)


def test_a_raising_step_waits_like_a_raise_for_another_chargers_lowering(
    app: App, clock: ManualClock
) -> None:
    """CP1 charges alone through a coming event; CP2's car starts before it. CP2's steps (down at
    the event's start, up at its end) must not go above what it held while CP1 is being lowered."""
    a_feeder_of_three(app)
    start(app, "CP1", 1, clock)
    settled(app)
    feeder = app.grid.feeders()[0].feeder_id
    now = clock.now()
    begins, ends = now + timedelta(minutes=1), now + timedelta(minutes=4)
    app.grid.add_flex_event(Scope.FEEDER, feeder, 4_000, begins, ends)
    settled(app)
    old = told(app)
    start(app, "CP2", 2, clock)  # nobody has acknowledged it yet
    second = timedelta(seconds=1)
    limit_at = {now + second: 12_000, begins + second: 4_000, ends + second: 12_000}
    within_in_any_order(old, told(app), limit_at)


def test_a_hold_counts_a_step_already_passed_as_the_limit_held(app: App, clock: ManualClock) -> None:
    """After an event's start and before the sweep decides again, a car starting elsewhere raises
    only what the chargers hold now (the step), not their limits from before the edge."""
    a_feeder_of_three(app)
    start(app, "CP1", 1, clock)
    settled(app)
    feeder = app.grid.feeders()[0].feeder_id
    begins = clock.now() + timedelta(minutes=1)
    app.grid.add_flex_event(Scope.FEEDER, feeder, 4_000, begins, begins + timedelta(hours=1))
    settled(app)
    old = told(app)
    clock.advance(90)  # past the edge, no sweep since
    start(app, "CP2", 2, clock)
    within_in_any_order(old, told(app), {clock.now() + timedelta(seconds=1): 4_000})
