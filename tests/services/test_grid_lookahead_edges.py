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
