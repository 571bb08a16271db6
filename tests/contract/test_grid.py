"""The grid repository's contract (feeders, sites, chargers on sites, flexibility events, connectors'
limits as decided), on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.grid_limits import Feeder, FlexEvent, Scope, Site
from chargeshare.ocpp.phases import Wiring
from tests.conftest import T0
from tests.contract.test_repositories import a_charger
from tests.services.test_grid_service import eleven_and_seven_kw_on_a_feeder

HOUR = timedelta(hours=1)


def test_feeders_and_sites_are_kept_as_given(app: App) -> None:
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("Ada")
        other = tx.accounts.add_host("Bob")
        feeder = tx.grid.add_feeder("Bristol 11kV F3", 60_000)
        site = tx.grid.add_site(host, "home", 13_800, 2_000, feeder.feeder_id)
        alone = tx.grid.add_site(other, "flat", 9_200, 0, None)
    with app.store.reading() as tx:
        assert tx.grid.feeders() == [Feeder(feeder.feeder_id, "Bristol 11kV F3", 60_000)]
        assert tx.grid.sites() == [
            Site(site.site_id, host, "home", 13_800, 2_000, feeder.feeder_id),
            Site(alone.site_id, other, "flat", 9_200, 0, None),
        ]
        assert tx.grid.sites(host_id=other) == [alone]
    with app.store.transaction() as tx:
        assert tx.grid.set_house_load(site.site_id, 4_500, T0)[0].house_load_w == 4_500
    with app.store.reading() as tx:
        assert tx.grid.sites(host_id=host)[0].house_load_w == 4_500
        assert tx.grid.sites(host_id=host)[0].house_load_at == T0


def test_a_house_load_reading_older_than_the_one_in_force_changes_nothing(app: App) -> None:
    with app.store.transaction() as tx:
        site = tx.grid.add_site(tx.accounts.add_host("Ada"), "home", 13_800, 0, None)
        assert site.house_load_at is None  # no reading yet: the first one is taken whenever measured
    kettle_on, kettle_off = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    with app.store.transaction() as tx:
        assert tx.grid.set_house_load(site.site_id, 500, kettle_off)[1]
    with app.store.transaction() as tx:
        # The kettle's reading, measured before it went off, arrives last: ignored, the newer stands.
        kept, applied = tx.grid.set_house_load(site.site_id, 3_500, kettle_on)
        assert not applied and (kept.house_load_w, kept.house_load_at) == (500, kettle_off)
    with app.store.transaction() as tx:
        # A reading measured at the same instant as the one in force replaces it (a meter's retry).
        assert tx.grid.set_house_load(site.site_id, 600, kettle_off)[1]
        later, applied = tx.grid.set_house_load(site.site_id, 2_500, kettle_off + HOUR)
        assert applied and (later.house_load_w, later.house_load_at) == (2_500, kettle_off + HOUR)
    with app.store.reading() as tx:
        (s,) = tx.grid.sites()
        assert (s.house_load_w, s.house_load_at) == (2_500, kettle_off + HOUR)


def test_a_site_of_an_unknown_host_or_feeder_or_with_no_limit_is_refused(app: App) -> None:
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("Ada")
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.grid.add_site(9_999, "home", 13_800, 0, None)
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.grid.add_site(host, "home", 13_800, 0, 9_999)
    with pytest.raises(InvalidRequest), app.store.transaction() as tx:
        tx.grid.add_site(host, "home", 0, 0, None)
    with pytest.raises(InvalidRequest), app.store.transaction() as tx:
        tx.grid.add_feeder("F", -1)
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.grid.set_house_load(9_999, 1, T0)
    with app.store.reading() as tx:
        assert tx.grid.sites() == [] and tx.grid.feeders() == []


def test_chargers_are_placed_moved_and_taken_off_sites(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP-GRID")
        host = tx.accounts.add_host("Ada")
        a = tx.grid.add_site(host, "a", 13_800, 0, None)
        b = tx.grid.add_site(host, "b", 13_800, 0, None)
        tx.grid.place(charger, a.site_id)
    with app.store.transaction() as tx:
        assert tx.grid.members() == {charger: a.site_id}
        tx.grid.place(charger, b.site_id)
    with app.store.transaction() as tx:
        assert tx.grid.members() == {charger: b.site_id}
        tx.grid.place(charger, None)
    with app.store.reading() as tx:
        assert tx.grid.members() == {}
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.grid.place(charger, 9_999)
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.grid.place(9_999, a.site_id)


def test_flex_events_are_listed_by_start_and_those_over_are_left_out(app: App) -> None:
    with app.store.transaction() as tx:
        feeder = tx.grid.add_feeder("F", 60_000)
        site = tx.grid.add_site(tx.accounts.add_host("Ada"), "home", 13_800, 0, feeder.feeder_id)
        late = tx.grid.add_flex_event(
            Scope.FEEDER, feeder.feeder_id, 30_000, T0 + 2 * HOUR, T0 + 3 * HOUR, T0
        )
        early = tx.grid.add_flex_event(Scope.SITE, site.site_id, 5_000, T0, T0 + HOUR, T0)
    with app.store.reading() as tx:
        assert tx.grid.flex_events() == [
            FlexEvent(early.event_id, Scope.SITE, site.site_id, 5_000, T0, T0 + HOUR),
            FlexEvent(late.event_id, Scope.FEEDER, feeder.feeder_id, 30_000, T0 + 2 * HOUR, T0 + 3 * HOUR),
        ]
        assert tx.grid.flex_events(ending_after=T0 + HOUR) == [late]
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.grid.add_flex_event(Scope.SITE, 9_999, 0, T0, T0 + HOUR, T0)
    with pytest.raises(InvalidRequest), app.store.transaction() as tx:
        tx.grid.add_flex_event(Scope.FEEDER, feeder.feeder_id, 0, T0, T0, T0)


def test_allocations_are_replaced_dropped_and_go_with_their_charger(app: App) -> None:
    with app.store.transaction() as tx:
        charger, (one, two) = a_charger(tx, "CP-ALLOC", 1, 2)
        tx.grid.save_allocations({one: 3_000, two: 1_380}, T0)
    with app.store.transaction() as tx:
        assert tx.grid.allocations() == {one: 3_000, two: 1_380}
        tx.grid.save_allocations({one: None, two: 0}, T0 + HOUR)
    with app.store.transaction() as tx:
        assert tx.grid.allocations() == {two: 0}
        site = tx.grid.add_site(tx.accounts.add_host("Ada"), "home", 13_800, 0, None)
        tx.grid.place(charger, site.site_id)
    with app.store.transaction() as tx:
        tx.chargers.remove("CP-ALLOC")
    with app.store.reading() as tx:
        assert tx.grid.allocations() == {} and tx.grid.members() == {}


def test_decisions_are_numbered_owed_until_acknowledged_and_go_with_their_charger(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP-OWED", 1)
        other, _ = a_charger(tx, "CP-OTHER", 1)
        assert tx.grid.delivery(charger) is None
        assert tx.grid.owe([charger, other], T0) == {charger: 1, other: 1}
    with app.store.transaction() as tx:
        assert tx.grid.owe([charger], T0 + HOUR) == {charger: 2}
        assert tx.grid.owed(T0) == [other]  # the charger's latest decision is newer than that
        assert tx.grid.owed(T0 + HOUR) == [charger, other]
        tx.grid.delivered(charger, 2, T0 + HOUR)
        tx.grid.delivered(charger, 1, T0 + HOUR)  # late: never backwards
        tx.grid.delivered(other, 5, T0 + HOUR)  # never ahead of the decision
    with app.store.transaction() as tx:
        assert tx.grid.delivery(charger) == (2, 2) and tx.grid.delivery(other) == (1, 0)
        assert tx.grid.owed(T0 + HOUR) == [other]
        tx.chargers.remove("CP-OTHER")
    with app.store.reading() as tx:
        assert tx.grid.owed(T0 + HOUR) == [] and tx.grid.delivery(other) is None


def test_a_charger_owes_since_its_first_unacknowledged_decision_or_its_last_word(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP-SINCE", 1)
        tx.grid.owe([charger], T0)
        tx.grid.owe([charger], T0 + HOUR)  # a newer decision: still owed since the first
    with app.store.transaction() as tx:
        assert tx.grid.owing() == {charger: T0}
        tx.grid.delivered(charger, 1, T0 + 2 * HOUR)  # an older one: heard from, owes the rest
    with app.store.transaction() as tx:
        assert tx.grid.owing() == {charger: T0 + 2 * HOUR}
        tx.grid.delivered(charger, 2, T0 + 3 * HOUR)
    with app.store.transaction() as tx:
        assert tx.grid.owing() == {}
        tx.grid.owe([charger], T0 + 4 * HOUR)
    with app.store.reading() as tx:
        assert tx.grid.owing() == {charger: T0 + 4 * HOUR}


def test_what_a_connector_may_hold_grows_until_all_is_acknowledged(app: App) -> None:
    with app.store.transaction() as tx:
        charger, (one, two) = a_charger(tx, "CP-HELD", 1, 2)
        tx.grid.save_allocations({one: 3_000, two: 1_380}, T0, {one: [(T0 + HOUR, 5_000)]})
        decision = tx.grid.owe([charger], T0)[charger]
    with app.store.transaction() as tx:
        assert tx.grid.held() == {}  # never acknowledged: may hold anything
        tx.grid.delivered(charger, decision, T0)
    with app.store.transaction() as tx:
        assert tx.grid.held() == {one: 5_000, two: 1_380}  # the plan's highest limit, its step's
        tx.grid.save_allocations({one: 2_000, two: 6_000}, T0 + HOUR)
        decision = tx.grid.owe([charger], T0 + HOUR)[charger]
    with app.store.transaction() as tx:
        assert tx.grid.held() == {one: 5_000, two: 6_000}  # either plan's, until acknowledged
        tx.grid.delivered(charger, decision, T0 + HOUR)
    with app.store.transaction() as tx:
        assert tx.grid.held() == {one: 2_000, two: 6_000}
        tx.grid.save_allocations({two: None}, T0 + 2 * HOUR)
    with app.store.reading() as tx:
        assert tx.grid.held() == {one: 2_000}


def test_a_negative_house_load_is_refused_even_in_an_older_reading(app: App) -> None:
    """Bad input is refused before the reading's time is compared: an older reading that is also
    negative is an error on every store, never quietly answered as not applied."""
    with app.store.transaction() as tx:
        site = tx.grid.add_site(tx.accounts.add_host("Ada"), "home", 13_800, 0, None)
        assert tx.grid.set_house_load(site.site_id, 500, T0 + HOUR)[1]
    with app.store.transaction() as tx, pytest.raises(InvalidRequest):
        tx.grid.set_house_load(site.site_id, -1, T0)
    with app.store.reading() as tx:
        (s,) = tx.grid.sites()
        assert (s.house_load_w, s.house_load_at) == (500, T0 + HOUR)


def test_a_chargers_kept_phases_and_switch_set_its_connectors_minimum(app: App) -> None:
    """The `Phases` report keeps the switch to one phase beside the phases in every store, and the
    allocation reads both: 6,000 W for an 11 kW three-phase connector and a 7.4 kW one-phase one
    is 4,140 W and 1,860 W when the first cannot switch, 3,000 W each when it can."""
    eleven_and_seven_kw_on_a_feeder(app, booked=True)
    app.reports.phases_learned("CP2", Wiring({0: 1}))
    for switches, shares in ((False, (4_140, 1_860)), (True, (3_000, 3_000))):
        assert app.reports.phases_learned("CP1", Wiring({0: 3}, switches_3to1=switches))
        assert app.reports.phases("CP1") == Wiring({0: 3}, switches_3to1=switches)
        assert not app.reports.phases_learned("CP1", Wiring({0: 3}, switches_3to1=switches))
        if not switches:
            for n in (1, 2):
                app.charging.start(f"CP{n}", 1, f"TAG{n}", 0, app.clock.now())
        for _ in range(3):  # each charger takes its limits, and raises held meanwhile follow
            app.grid.rebalance()
            for cp in ("CP1", "CP2"):
                due = app.grid.limits_due(cp)
                if due is not None:
                    app.grid.limits_delivered(cp, due.decision)
        assert [app.grid.limits_due(cp).limits_w for cp in ("CP1", "CP2")] == [  # type: ignore[union-attr]
            ((1, shares[0]),),
            ((1, shares[1]),),
        ]


def test_phases_seen_are_kept_apart_from_those_said_and_read_with_them(app: App) -> None:
    """`PhasesSeen` rises only, survives an empty boot read, and yields to a declared value, in
    every store; the allocation reads it where nothing was declared (never asked included)."""
    eleven_and_seven_kw_on_a_feeder(app, booked=True)
    for n in (1, 2):
        app.charging.start(f"CP{n}", 1, f"TAG{n}", 0, app.clock.now())
    app.reports.phases_learned("CP2", Wiring({0: 1}))

    def shares() -> list[int]:
        for _ in range(3):  # each charger takes its limits, and raises held meanwhile follow
            app.grid.rebalance()
            for cp in ("CP1", "CP2"):
                due = app.grid.limits_due(cp)
                if due is not None:
                    app.grid.limits_delivered(cp, due.decision)
        return [app.grid.limits_due(cp).limits_w[0][1] for cp in ("CP1", "CP2")]  # type: ignore[union-attr]

    assert shares() == [3_000, 3_000]
    assert app.reports.phases_seen("CP1", 1, 3)  # never asked: the allocation uses it already
    assert not app.reports.phases_seen("CP1", 1, 2)
    assert app.reports.phases("CP1") is None
    assert shares() == [4_140, 1_860]
    assert app.reports.phases_learned("CP1", Wiring())
    assert app.reports.phases("CP1") == {1: 3}
    assert app.reports.phases_learned("CP1", Wiring({0: 1}))
    assert app.reports.phases("CP1") == {0: 1}
    assert shares() == [3_000, 3_000]
