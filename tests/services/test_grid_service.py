"""The grid service on the in-memory store: connectors' limits decided again when a session starts
or stops, a site's house load changes, a flexibility event begins or ends (the sweep), or a charger
leaves its site; each change announced per charger, and owed again to a charger that connects."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import NotFound
from chargeshare.domain.geo import Point
from chargeshare.domain.grid_limits import MIN_CHARGING_W, Scope
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, V201, csms_v16, csms_v201
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.commands import RateUnit, SetChargingProfile
from chargeshare.ocpp.grid_limits import limit_commands
from chargeshare.ocpp.phases import Wiring
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import GridLimitsDue
from chargeshare.services.grid import HOLD_RAISES_FOR, LOOK_AHEAD
from simulators.dialect_v16 import profile_from
from simulators.smart_charging import ProfileBook
from tests.conftest import add_charger


def start(app: App, cp_id: str, n: int, clock: ManualClock) -> int:
    """A driver books CP<n>'s connector and starts charging on it; the session's id."""
    driver = app.marketplace.add_driver(f"D{n}", f"TAG{n}").driver_id
    with app.store.reading() as tx:
        charger_id = tx.chargers.get(cp_id).charger_id
    app.bookings.book(BookRequest(driver, charger_id, 1, 60, 10_000))
    return app.charging.start(cp_id, 1, f"TAG{n}", 0, clock.now()).transaction_id


@pytest.fixture
def heard(app: App) -> list[GridLimitsDue]:
    found: list[GridLimitsDue] = []
    app.bus.subscribe(GridLimitsDue, found.append)
    return found


@pytest.fixture
def online(app: App, heard: list[GridLimitsDue]) -> None:
    """Every charger takes its limits at once and acknowledges them, as one online would."""
    app.bus.subscribe(GridLimitsDue, lambda e: app.grid.limits_delivered(e.charge_point_id, e.decision))


def took_all(app: App, cp_ids: list[str]) -> None:
    """Each charger acknowledged its latest limits, as one online would."""
    for cp_id in cp_ids:
        due = app.grid.limits_due(cp_id)
        if due is not None:
            app.grid.limits_delivered(cp_id, due.decision)


def a_feeder_of_three(app: App, limit_w: int = 12_000) -> list[int]:
    feeder = app.grid.add_feeder("F1", limit_w)
    chargers = []
    for n in (1, 2, 3):
        charger = add_charger(app, f"CP{n}", power_w=7_400)
        site = app.grid.add_site(
            app.marketplace.add_host(f"h{n}"), f"s{n}", 13_800, feeder_id=feeder.feeder_id
        )
        app.grid.place(charger, site.site_id)
        chargers.append(charger)
    return chargers


def eleven_and_seven_kw_on_a_feeder(app: App, *, booked: bool = False) -> None:
    """CP1 (11 kW) and CP2 (7.4 kW), each on a 13,800 W site of its own under one 6,000 W feeder;
    with `booked`, each with a driver's booking (D1, D2 with TAG1, TAG2) on connector 1."""
    feeder = app.grid.add_feeder("F1", 6_000)
    for n, rating in ((1, 11_000), (2, 7_400)):
        charger = add_charger(app, f"CP{n}", power_w=rating)
        site = app.grid.add_site(
            app.marketplace.add_host(f"h{n}"), f"s{n}", 13_800, feeder_id=feeder.feeder_id
        )
        app.grid.place(charger, site.site_id)
        if booked:
            driver = app.marketplace.add_driver(f"D{n}", f"TAG{n}").driver_id
            app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))


def both_charging_at_3_000_w(app: App, clock: ManualClock, cp1_wiring: Wiring) -> None:
    """The feeder above with CP1 wired as `cp1_wiring` and CP2 on one phase, both charging: each
    is decided half of the 6,000 W feeder."""
    eleven_and_seven_kw_on_a_feeder(app)
    assert app.reports.phases_learned("CP1", cp1_wiring)
    assert app.reports.phases_learned("CP2", Wiring({0: 1}))
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    assert [app.grid.limits_due(cp).limits_w for cp in ("CP1", "CP2")] == [  # type: ignore[union-attr]
        ((1, 3_000),),
        ((1, 3_000),),
    ]


@pytest.mark.usefixtures("online")
def test_idle_connectors_on_a_site_get_the_minimum_and_starts_share_the_feeder(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    a_feeder_of_three(app)
    assert {e.charge_point_id: e.limits_w for e in heard} == {
        f"CP{n}": ((1, MIN_CHARGING_W),) for n in (1, 2, 3)
    }
    heard.clear()
    start(app, "CP1", 1, clock)
    assert [(e.charge_point_id, e.limits_w) for e in heard] == [("CP1", ((1, 7_400),))]
    start(app, "CP2", 2, clock)
    start(app, "CP3", 3, clock)
    assert {e.charge_point_id: e.limits_w for e in heard[1:]} == {
        "CP1": ((1, 4_000),),
        "CP2": ((1, 4_000),),
        "CP3": ((1, 4_000),),
    }
    assert app.grid.limits_due("CP2") == GridLimitsDue(
        clock.now(), "CP2", ((1, 4_000),), [e for e in heard if e.charge_point_id == "CP2"][-1].decision
    )


@pytest.mark.usefixtures("online")
def test_an_idle_connector_under_a_full_feeder_waits_at_zero_until_its_start_is_decided(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    a_feeder_of_three(app)
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)  # 6,000 W each: the feeder's 12,000 W is taken
    latest = {e.charge_point_id: e.limits_w for e in heard}
    assert latest["CP3"] == ((1, 0),)
    assert sum(w for limits in latest.values() for _, w in limits) <= 12_000
    start(app, "CP3", 3, clock)
    assert {e.charge_point_id: e.limits_w for e in heard}["CP3"] == ((1, 4_000),)


def test_a_raise_waits_until_the_lowering_under_its_feeder_is_acknowledged(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """Chargers take their commands in no set order: were CP2 raised to its share while CP1 was
    still at its whole rating, the feeder would be over its limit until CP1 heard."""
    a_feeder_of_three(app)
    took_all(app, ["CP1", "CP2", "CP3"])
    start(app, "CP1", 1, clock)
    took_all(app, ["CP1"])
    heard.clear()
    start(app, "CP2", 2, clock)
    assert {e.charge_point_id: e.limits_w for e in heard} == {"CP1": ((1, 6_000),), "CP3": ((1, 0),)}
    heard.clear()
    app.grid.limits_delivered("CP1", app.grid.limits_due("CP1").decision)  # type: ignore[union-attr]
    assert heard == []  # CP3's lowering is still on its way
    app.grid.limits_delivered("CP3", app.grid.limits_due("CP3").decision)  # type: ignore[union-attr]
    assert [(e.charge_point_id, e.limits_w) for e in heard] == [("CP2", ((1, 6_000),))]


def test_a_lowering_never_acknowledged_holds_a_raise_for_a_bounded_time(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    a_feeder_of_three(app)
    took_all(app, ["CP1", "CP2", "CP3"])
    start(app, "CP1", 1, clock)
    took_all(app, ["CP1"])
    start(app, "CP2", 2, clock)  # CP1 and CP3 lowered, and offline: they never answer
    heard.clear()
    held_until = clock.now() + HOLD_RAISES_FOR
    while clock.now() + timedelta(seconds=31) < held_until:  # sent again every 30 s meanwhile
        clock.advance(30)
        app.housekeeping.sweep()
    clock.advance(int((held_until - clock.now()).total_seconds()) - 1)
    app.housekeeping.sweep()
    assert {e.charge_point_id for e in heard} == {"CP1", "CP3"}
    clock.advance(1)
    app.housekeeping.sweep()
    # Unheard since, they are counted at the most they may hold: CP1 its car's 7,400 W, CP3 its
    # idle connector's 1,380 W. CP2 takes the rest.
    assert ("CP2", ((1, 12_000 - 7_400 - MIN_CHARGING_W),)) in [
        (e.charge_point_id, e.limits_w) for e in heard
    ]


def test_a_charger_refusing_its_limits_holds_a_raise_from_its_first_refusal_not_its_latest(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """CP1 is online but never takes a profile: a newer decision for it must not restart the hold
    on its neighbours' raises, or they could be held for as long as decisions keep coming."""
    a_feeder_of_three(app)
    took_all(app, ["CP1", "CP2", "CP3"])
    start(app, "CP1", 1, clock)
    took_all(app, ["CP1"])  # the last thing CP1 takes: its car's whole 7,400 W
    refused_from = clock.now()
    start(app, "CP2", 2, clock)  # CP1 lowered; CP2's raise held for it
    took_all(app, ["CP2", "CP3"])
    clock.advance(4 * 60)
    start(app, "CP3", 3, clock)  # a newer decision for CP1, which it refuses too
    took_all(app, ["CP2", "CP3"])
    heard.clear()
    clock.advance(int((refused_from + HOLD_RAISES_FOR - clock.now()).total_seconds()))
    app.housekeeping.sweep()
    latest = {e.charge_point_id: dict(e.limits_w)[1] for e in heard}
    # CP2 and CP3 share what CP1, counted at the 7,400 W it may still draw, leaves.
    assert latest["CP2"] == latest["CP3"] == (12_000 - 7_400) // 2


def test_a_charger_unheard_past_the_hold_keeps_its_share_counted(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """CP1 goes silent holding 7,400 W. Once the hold is over, its neighbours' raises go out, but
    never into the power it may still draw: the feeder stays within its limit."""
    a_feeder_of_three(app)
    took_all(app, ["CP1", "CP2", "CP3"])
    start(app, "CP1", 1, clock)
    took_all(app, ["CP1"])
    start(app, "CP2", 2, clock)
    start(app, "CP3", 3, clock)
    for _ in range(3):
        took_all(app, ["CP2", "CP3"])
    clock.advance(int(HOLD_RAISES_FOR.total_seconds()))
    for _ in range(3):
        app.housekeeping.sweep()
        took_all(app, ["CP2", "CP3"])
    drawn = {cp_id: app.grid.limits_due(cp_id) for cp_id in ("CP2", "CP3")}
    assert all(due is not None and due.limits_w[0][1] > 0 for due in drawn.values())
    assert 7_400 + sum(due.limits_w[0][1] for due in drawn.values() if due is not None) <= 12_000


@pytest.mark.usefixtures("online")
def test_a_stop_gives_its_share_back_and_an_unchanged_limit_is_not_sent_again(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    a_feeder_of_three(app)
    first = start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    heard.clear()
    app.charging.stop("CP1", first, 1_000, clock.now())
    # CP3's idle connector had no room while two cars shared the feeder; now it has.
    assert [(e.charge_point_id, e.limits_w) for e in heard] == [
        ("CP1", ((1, MIN_CHARGING_W),)),
        ("CP2", ((1, 7_400),)),
        ("CP3", ((1, MIN_CHARGING_W),)),
    ]
    heard.clear()
    assert app.grid.rebalance() == [] and heard == []


def test_a_flexibility_event_lowers_the_shares_for_its_window_as_the_sweep_finds_it(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    a_feeder_of_three(app)
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    begins = clock.now() + timedelta(minutes=30)
    app.grid.add_flex_event(
        Scope.FEEDER, app.grid.feeders()[0].feeder_id, 2_500, begins, begins + timedelta(hours=1)
    )
    heard.clear()
    took_all(app, ["CP1", "CP2", "CP3"])
    clock.advance(30 * 60)
    run = app.housekeeping.sweep()
    assert run.counts["grid_limits_due"] == 2
    # Not enough for two minimums: the later start is paused.
    assert {e.charge_point_id: e.limits_w for e in heard} == {"CP1": ((1, 2_500),), "CP2": ((1, 0),)}
    clock.advance(3_600)
    app.housekeeping.sweep()
    # Both unheard since: CP2 is raised once it is heard, not while CP1 may hold anything older.
    assert app.grid.limits_due("CP2") == GridLimitsDue(clock.now(), "CP2", ((1, 0),), 3)
    took_all(app, ["CP2"])
    assert app.grid.limits_due("CP2") == GridLimitsDue(clock.now(), "CP2", ((1, 6_000),), 4)


@pytest.mark.usefixtures("online")
def test_an_event_edge_within_the_look_ahead_is_put_on_the_chargers_before_it(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """Told ahead, a charger changes on time even when the sweep at the edge runs late or the
    commands then are slow: what it holds already says what to do from the edge on."""
    a_feeder_of_three(app)
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    feeder = app.grid.feeders()[0].feeder_id
    begins = clock.now() + LOOK_AHEAD + timedelta(minutes=2)
    app.grid.add_flex_event(Scope.FEEDER, feeder, 2_500, begins, begins + timedelta(minutes=3))
    took_all(app, ["CP1", "CP2", "CP3"])
    heard.clear()
    assert app.housekeeping.sweep().counts["grid_limits_due"] == 0  # beyond the look-ahead yet
    clock.advance(150)
    app.housekeeping.sweep()
    assert {e.charge_point_id: (e.limits_w, e.steps) for e in heard} == {
        "CP1": (((1, 6_000),), ((1, begins, 2_500),)),
        "CP2": (((1, 6_000),), ((1, begins, 0),)),
    }
    assert app.grid.limits_due("CP2").steps == ((1, begins, 0),)  # type: ignore[union-attr]
    # Past the edge with no sweep yet: a charger connecting now is told the step as its limit.
    clock.advance(int((begins - clock.now()).total_seconds()))
    due = app.grid.limits_due("CP2")
    assert due is not None and (due.limits_w, due.steps) == (((1, 0),), ())
    # The sweep at the edge: the step is the limit, and the event's end is the next step.
    heard.clear()
    app.housekeeping.sweep()
    ends = begins + timedelta(minutes=3)
    assert {e.charge_point_id: (e.limits_w, e.steps) for e in heard} == {
        "CP1": (((1, 2_500),), ((1, ends, 6_000),)),
        "CP2": (((1, 0),), ((1, ends, 6_000),)),
    }
    heard.clear()
    assert app.housekeeping.sweep().counts["grid_limits_due"] == 0  # nothing new: nothing sent


def test_a_house_load_and_a_charger_leaving_its_site_are_followed(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    charger = add_charger(app, power_w=7_400)
    site = app.grid.add_site(app.marketplace.add_host("h"), "home", 13_800, house_load_w=2_000)
    app.grid.place(charger, site.site_id)
    start(app, "CP1", 1, clock)
    app.grid.set_house_load(site.site_id, 9_000)
    assert heard[-1].limits_w == ((1, 4_800),)
    app.grid.place(charger, None)
    assert heard[-1] == GridLimitsDue(clock.now(), "CP1", (), heard[-1].decision)
    assert app.grid.limits_due("CP1") == heard[-1]  # owed until the charger clears them
    app.grid.limits_delivered("CP1", heard[-1].decision)
    assert app.grid.limits_due("CP1") is None


def test_a_host_places_only_their_own_charger_on_their_own_site(app: App) -> None:
    charger = add_charger(app)
    someone = app.marketplace.add_host("someone")
    theirs = app.grid.add_site(someone, "theirs", 13_800)
    with pytest.raises(NotFound):
        app.grid.place(charger, theirs.site_id, host_id=someone)
    owner = app.marketplace.add_host("owner")
    with pytest.raises(NotFound):
        app.grid.place(charger, theirs.site_id, host_id=owner)
    assert app.grid.members() == {}


def test_a_change_left_to_the_sweep_is_decided_and_announced_there(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    charger = add_charger(app, power_w=7_400)
    site = app.grid.add_site(app.marketplace.add_host("h"), "home", 13_800)
    app.grid.place(charger, site.site_id, decide=False)
    assert heard == [] and app.grid.limits_due("CP1") is None
    app.housekeeping.sweep()
    assert [(e.charge_point_id, e.limits_w) for e in heard] == [("CP1", ((1, MIN_CHARGING_W),))]


def test_limits_a_charger_never_took_stay_owed_and_the_sweep_sends_them_again(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    charger = add_charger(app, "CP1", power_w=7_400, online=False)
    site = app.grid.add_site(app.marketplace.add_host("h"), "home", 13_800)
    app.grid.place(charger, site.site_id)  # decided and published, but nobody took it
    (first,) = heard
    assert first.decision == 1
    clock.advance((app.grid.resend_after - timedelta(seconds=1)).total_seconds())
    assert app.housekeeping.sweep().counts["grid_limits_owed"] == 0  # may still be on its way
    clock.advance(1)
    app.housekeeping.sweep()
    assert [(e.limits_w, e.decision) for e in heard[1:]] == [(((1, MIN_CHARGING_W),), 1)]
    app.grid.limits_delivered("CP1", 1)
    clock.advance(app.grid.resend_after.total_seconds())
    assert app.housekeeping.sweep().counts["grid_limits_owed"] == 0
    assert app.grid.limits_due("CP1") == GridLimitsDue(clock.now(), "CP1", ((1, MIN_CHARGING_W),), 1)


def test_a_charger_taken_off_its_site_while_offline_is_owed_the_clearing(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    charger = add_charger(app, "CP1", power_w=7_400, online=False)
    site = app.grid.add_site(app.marketplace.add_host("h"), "home", 13_800)
    app.grid.place(charger, site.site_id)
    app.grid.limits_delivered("CP1", 1)
    app.grid.place(charger, None)
    assert app.grid.limits_due("CP1") == GridLimitsDue(clock.now(), "CP1", (), 2)
    app.grid.limits_delivered("CP1", 1)  # an older acknowledgement arriving late changes nothing
    assert app.grid.limits_due("CP1") is not None
    app.grid.limits_delivered("CP1", 2)
    assert app.grid.limits_due("CP1") is None


@pytest.mark.usefixtures("online")
@pytest.mark.parametrize(("switches", "shares"), [(False, (4_140, 1_860)), (True, (3_000, 3_000))])
def test_a_three_phase_connector_that_cannot_switch_is_given_6_a_on_each_phase_or_nothing(
    app: App, clock: ManualClock, heard: list[GridLimitsDue], switches: bool, shares: tuple[int, int]
) -> None:
    """6,000 W of feeder for an 11 kW three-phase charger and a 7.4 kW one-phase one. Shared
    equally, 3,000 W is under 6 A on each of three phases: a charger that cannot switch to one
    phase could only pause under it. So it gets its minimum, 4,140 W, and the other the rest; one
    that says it switches shares equally on one phase."""
    eleven_and_seven_kw_on_a_feeder(app)
    assert app.reports.phases_learned("CP1", Wiring({0: 3}, switches_3to1=switches))
    assert app.reports.phases_learned("CP2", Wiring({0: 1}))
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    assert [app.grid.limits_due(cp).limits_w for cp in ("CP1", "CP2")] == [  # type: ignore[union-attr]
        ((1, shares[0]),),
        ((1, shares[1]),),
    ]


@pytest.mark.usefixtures("online")
@pytest.mark.parametrize("unit", [cmd.RateUnit.AMPS, cmd.RateUnit.WATTS])
@pytest.mark.parametrize("feeder_w", [3_000, 2_000])
def test_a_3_68_kw_evse_under_a_station_of_three_phases_that_cannot_switch_charges_on_one(
    app: App, clock: ManualClock, heard: list[GridLimitsDue], unit: cmd.RateUnit, feeder_w: int
) -> None:
    """The station says three phases, its 3.68 kW EVSE nothing of its own. Its rating carries 6 A
    on two phases, not three, and no UK supply is two-phase: it is a one-phase EVSE, whose minimum
    is 1,380 W. A 2,000 W feeder gives it 2,000 W (not paused for want of two phases' 2,760 W),
    sent on one phase, all of which the EVSE on its one phase draws (in A to the whole amp)."""
    feeder = app.grid.add_feeder("F1", feeder_w)
    charger = add_charger(app, "CP1", power_w=3_680)
    site = app.grid.add_site(app.marketplace.add_host("h1"), "s1", 13_800, feeder_id=feeder.feeder_id)
    app.grid.place(charger, site.site_id)
    wiring = Wiring({0: 3})
    assert app.reports.phases_learned("CP1", wiring)
    start(app, "CP1", 1, clock)
    due = app.grid.limits_due("CP1")
    assert due is not None
    assert due.limits_w == ((1, feeder_w),)
    assert due.phases_at_most == ((1, 2),)
    commands = limit_commands(
        due.limits_w, due.at, unit=unit, phases=wiring, at_most=dict(due.phases_at_most)
    )
    for wired in (1, 3):  # a one-phase EVSE, and the virtual charger taking it as declared
        book = ProfileBook(switches_3to1=False)
        for command in commands:
            assert isinstance(command, cmd.SetChargingProfile)
            assert all(p.phases in (None, 1) for p in command.profile.periods)
            body = command.payload(V16, lambda _tx: None)["csChargingProfiles"]
            book.install(profile_from(body, command.connector_no, due.at), None)
        drawn = book.shared_limits_w(due.at, {1: (None, 3_680, wired)}, {1})[1]
        assert drawn == (feeder_w // 230 * 230 if unit is cmd.RateUnit.AMPS else feeder_w)


@pytest.mark.usefixtures("online")
def test_a_connector_rated_under_one_phases_minimum_holds_nothing_under_a_feeder(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """A 1,000 W connector (the least rating a host may give) is sent 0 under any limit, as a car
    takes no less than 1,380 W: it is given 0, so a car started after it on a 2,000 W feeder
    charges on all of it rather than waiting behind 1,000 W held for a connector that never draws."""
    feeder = app.grid.add_feeder("F1", 2_000)
    for n, rating in ((1, 1_000), (2, 7_400)):
        charger = add_charger(app, f"CP{n}", power_w=rating)
        app.reports.phases_learned(f"CP{n}", Wiring({0: 1}))
        site = app.grid.add_site(
            app.marketplace.add_host(f"h{n}"), f"s{n}", 13_800, feeder_id=feeder.feeder_id
        )
        app.grid.place(charger, site.site_id)
    start(app, "CP1", 1, clock)
    clock.advance(60)
    start(app, "CP2", 2, clock)
    assert [app.grid.limits_due(cp).limits_w for cp in ("CP1", "CP2")] == [  # type: ignore[union-attr]
        ((1, 0),),
        ((1, 2_000),),
    ]


@pytest.mark.usefixtures("online")
def test_a_start_is_paused_rather_than_squeeze_a_three_phase_connector_below_its_minimum(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """5,000 W: 4,140 W for the three-phase car started first leaves 860 W, under a one-phase car's
    1,380 W: the later start waits at 0 W, and the feeder is never passed."""
    feeder = app.grid.add_feeder("F1", 5_000)
    for n, rating in ((1, 11_000), (2, 7_400)):
        charger = add_charger(app, f"CP{n}", power_w=rating)
        app.reports.phases_learned(f"CP{n}", Wiring({0: 3 if n == 1 else 1}))  # as its boot said
        site = app.grid.add_site(
            app.marketplace.add_host(f"h{n}"), f"s{n}", 13_800, feeder_id=feeder.feeder_id
        )
        app.grid.place(charger, site.site_id)
    # Idle, each is given its own minimum where the feeder has room for it (lower ids first).
    assert [app.grid.limits_due(cp).limits_w for cp in ("CP1", "CP2")] == [  # type: ignore[union-attr]
        ((1, 4_140),),
        ((1, 0),),  # 860 W left: under a car's minimum
    ]
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)
    assert [app.grid.limits_due(cp).limits_w for cp in ("CP1", "CP2")] == [  # type: ignore[union-attr]
        ((1, 5_000),),
        ((1, 0),),
    ]


@pytest.mark.usefixtures("online")
def test_a_charger_that_stops_switching_to_one_phase_is_decided_for_again(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """CP1 said it switches three phases to one, so it shares the 6,000 W feeder equally at 3,000 W.
    A later read says it does not: 3,000 W is under 6 A on each of its phases, sent as 0 (paused),
    so it must be decided for again (its minimum, 4,140 W, and CP2 the rest), not left paused
    beside the capacity held for it."""
    both_charging_at_3_000_w(app, clock, Wiring({0: 3}, switches_3to1=True))
    heard.clear()
    assert app.reports.phases_learned("CP1", Wiring({0: 3}))
    told = {(e.charge_point_id, e.limits_w) for e in heard}
    assert ("CP1", ((1, 4_140),)) in told
    assert ("CP2", ((1, 1_860),)) in told


def three_phase_frame(connector_no: int) -> dict[str, object]:
    """A 1.6 MeterValues carrying 16 A on each of three phases."""
    values = [
        {"value": "16.0", "measurand": "Current.Import", "phase": line, "unit": "A"}
        for line in ("L1", "L2", "L3")
    ]
    return {
        "connectorId": connector_no,
        "meterValue": [{"timestamp": "2026-12-07T12:00:00Z", "sampledValue": values}],
    }


@pytest.mark.usefixtures("online")
def test_a_connector_seen_drawing_on_three_phases_is_given_their_minimum_unless_declared_otherwise(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """As `test_a_three_phase_connector_that_cannot_switch_...`, but CP1's boot says nothing of its
    phases: held to one, it shares equally, until its per-phase current shows three phases drawing.
    Then its minimum, 4,140 W, and its profile in A on three phases; a later empty boot read leaves
    that standing, and a declared one phase wins over it."""
    eleven_and_seven_kw_on_a_feeder(app)
    assert app.reports.phases_learned("CP1", Wiring())  # asked; said nothing
    assert app.reports.phases_learned("CP2", Wiring({0: 1}))
    start(app, "CP1", 1, clock)
    start(app, "CP2", 2, clock)

    def shares() -> list[tuple[tuple[int, int], ...]]:
        app.grid.rebalance()
        return [app.grid.limits_due(cp).limits_w for cp in ("CP1", "CP2")]  # type: ignore[union-attr]

    assert shares() == [((1, 3_000),), ((1, 3_000),)]
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    table["MeterValues"](three_phase_frame(1))
    assert app.reports.phases("CP1") == {1: 3}
    assert shares() == [((1, 4_140),), ((1, 1_860),)]
    due = app.grid.limits_due("CP1")
    assert due is not None
    commands = limit_commands(
        due.limits_w, clock.now(), unit=RateUnit.AMPS, phases=app.reports.phases("CP1") or {}
    )
    tx_default = [c for c in commands if isinstance(c, SetChargingProfile) and c.connector_no == 1]
    assert [(p.limit, p.phases) for c in tx_default for p in c.profile.periods] == [(6, 3)]

    assert not app.reports.phases_learned("CP1", Wiring())  # the next boot says nothing again
    assert shares() == [((1, 4_140),), ((1, 1_860),)]
    assert app.reports.phases_learned("CP1", Wiring({1: 1}))  # declared: it wins
    assert app.reports.phases("CP1") == {1: 1}
    assert shares() == [((1, 3_000),), ((1, 3_000),)]


def test_what_is_seen_only_rises_and_is_kept_only_for_a_registered_connector(app: App) -> None:
    add_charger(app, "CP1")
    assert app.reports.phases("CP1") is None  # never asked
    assert app.reports.phases_seen("CP1", 1, 2)
    assert app.reports.phases("CP1") is None  # seen, yet still asked: what it says may win
    assert not app.reports.phases_seen("CP1", 1, 1)  # a one-phase car on it later
    assert not app.reports.phases_seen("CP1", 1, 2)
    assert app.reports.phases_seen("CP1", 1, 3)
    assert not app.reports.phases_seen("CP1", 0, 3)  # the main meter
    assert not app.reports.phases_seen("CP1", 1, 4)
    assert not app.reports.phases_seen("NOPE", 1, 3)
    assert app.reports.phases_learned("CP1", Wiring())
    assert app.reports.phases("CP1") == {1: 3}


def three_phase_event(meter_value: object) -> dict[str, object]:
    """A 2.0.1 TransactionEvent Updated naming no EVSE, for a transaction not ours."""
    return {
        "eventType": "Updated",
        "timestamp": "2026-12-07T12:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 3,
        "transactionInfo": {"transactionId": "not-ours"},
        "meterValue": meter_value,
    }


@pytest.mark.parametrize("action", ["MeterValues", "TransactionEvent"])
def test_a_201_charger_is_seen_drawing_on_its_evses_phases(
    app: App, action: str, caplog: pytest.LogCaptureFixture
) -> None:
    """2.0.1 numbers with a multiplier; a TransactionEvent naming no EVSE is its one connector's.
    An unregistered charger's are kept nowhere, and quietly."""
    add_charger(app, "CP1")
    values = [
        {
            "value": 160,
            "measurand": "Current.Import",
            "phase": line,
            "unitOfMeasure": {"unit": "A", "multiplier": -1},
        }
        for line in ("L1", "L2", "L3")
    ]
    meter_value = [{"timestamp": "2026-12-07T12:00:00Z", "sampledValue": values}]
    table = csms_v201.handlers(app.charging, "CP1", app.reports)
    if action == "MeterValues":
        table[action]({"evseId": 1, "meterValue": meter_value})
    else:
        table[action](three_phase_event(meter_value))
    assert app.reports.phases_learned("CP1", Wiring())
    assert app.reports.phases("CP1") == {1: 3}
    with caplog.at_level(logging.WARNING, logger="chargeshare.ocpp.phases"):
        stranger = csms_v201.handlers(app.charging, "NOPE", app.reports)
        with contextlib.suppress(NotFound):
            if action == "MeterValues":
                stranger[action]({"evseId": 1, "meterValue": meter_value})
            else:
                stranger[action](three_phase_event(meter_value))
    assert not caplog.records
    assert app.reports.phases("NOPE") is None


def test_a_multi_evse_station_is_seen_drawing_on_the_evse_of_the_transaction(
    app: App, clock: ManualClock
) -> None:
    """2.0.1 names the EVSE only in a transaction's first event: a periodic Updated one naming none
    is the EVSE of the session its transaction id opened. An event of a transaction not (yet) ours
    keeps nothing, and leaves the next one to find its EVSE."""
    host = app.marketplace.add_host("host of CP1")
    connectors = tuple(ConnectorSpec(n, ConnectorType.TYPE2, 11_000) for n in (1, 2))
    view = app.marketplace.add_charger(ChargerSpec("CP1", host, Point(51.45, -2.59), Tariff(30), connectors))
    app.charging.boot("CP1", V201)
    values = [
        {"value": 16, "measurand": "Current.Import", "phase": line, "unitOfMeasure": {"unit": "A"}}
        for line in ("L1", "L2", "L3")
    ]
    meter_value = [{"timestamp": "2026-12-07T12:00:00Z", "sampledValue": values}]
    table = csms_v201.handlers(app.charging, "CP1", app.reports)
    updated = {**three_phase_event(meter_value), "transactionInfo": {"transactionId": "T2"}}
    table["TransactionEvent"](updated)  # before its session is ours: nowhere to keep it
    assert app.reports.phases_learned("CP1", Wiring())
    assert app.reports.phases("CP1") == {}
    driver = app.marketplace.add_driver("D2", "TAG2").driver_id
    app.bookings.book(BookRequest(driver, view.charger_id, 2, 60, 10_000))
    app.charging.start("CP1", 2, "TAG2", 0, clock.now(), charger_tx_id="T2")
    table["TransactionEvent"]({**updated, "seqNo": 4})
    assert app.reports.phases("CP1") == {2: 3}


@pytest.mark.usefixtures("online")
def test_a_connector_seen_on_more_phases_after_its_limits_were_taken_is_decided_for_again(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """Seen drawing on three phases after acknowledging its limits, CP1 is decided for at once: its
    minimum, 4,140 W, and CP2 lowered to what is left, with no start, stop or sweep between: CP1
    told once, its raise following CP2's acknowledgement."""
    both_charging_at_3_000_w(app, clock, Wiring())
    heard.clear()
    csms_v16.handlers(app.charging, "CP1", app.reports)["MeterValues"](three_phase_frame(1))
    told = {(e.charge_point_id, e.limits_w) for e in heard}
    assert ("CP1", ((1, 4_140),)) in told
    assert ("CP2", ((1, 1_860),)) in told
    assert [e.charge_point_id for e in heard].count("CP1") == 1


@pytest.mark.usefixtures("online")
@pytest.mark.parametrize("how", ["seen", "declared"])
def test_a_charger_whose_phases_rise_is_told_again_even_where_its_watts_stay(
    app: App, clock: ManualClock, heard: list[GridLimitsDue], how: str
) -> None:
    """Room for its whole 11 kW either way: its limit in W is unchanged, but its profile in A was
    on one phase, so it is told again under a new decision; a fall or no change tells nothing."""
    charger = add_charger(app, "CP1", power_w=11_000)
    site = app.grid.add_site(app.marketplace.add_host("h1"), "s1", 40_000)
    app.grid.place(charger, site.site_id)
    assert app.reports.phases_learned("CP1", Wiring())
    start(app, "CP1", 1, clock)
    before = app.grid.limits_due("CP1")
    assert before is not None
    heard.clear()
    if how == "seen":
        csms_v16.handlers(app.charging, "CP1", app.reports)["MeterValues"](three_phase_frame(1))
    else:
        assert app.reports.phases_learned("CP1", Wiring({0: 3}))
    assert [(e.charge_point_id, e.limits_w) for e in heard] == [("CP1", before.limits_w)]
    assert heard[0].decision > before.decision
    heard.clear()
    assert app.reports.phases_learned("CP1", Wiring({0: 1}))  # fewer: what it holds stays within
    assert heard == []


def test_a_charger_whose_phases_rise_is_told_its_new_decision_once(
    app: App, clock: ManualClock, heard: list[GridLimitsDue]
) -> None:
    """The report's commit owes the charger its new decision; the grid tells it that one at once,
    and the sweep again only once it has gone unacknowledged past `resend_after`. A charger on no
    limited site owes and is told nothing."""
    charger = add_charger(app, "CP1", power_w=11_000)
    site = app.grid.add_site(app.marketplace.add_host("h1"), "s1", 40_000)
    app.grid.place(charger, site.site_id)
    add_charger(app, "CP2", power_w=11_000)
    for cp in ("CP1", "CP2"):
        assert app.reports.phases_learned(cp, Wiring())
    start(app, "CP1", 1, clock)
    took_all(app, ["CP1"])
    heard.clear()
    assert app.reports.phases_learned("CP1", Wiring({0: 3}))
    assert app.reports.phases_learned("CP2", Wiring({0: 3}))
    with app.store.reading() as tx:
        decision, delivered = tx.grid.delivery(charger) or (0, 0)
    assert decision > delivered
    assert [(e.charge_point_id, e.decision) for e in heard] == [("CP1", decision)]
    assert app.grid.limits_due("CP2") is None
    heard.clear()
    app.housekeeping.sweep(payments=False)
    assert heard == []  # on its way: not sent again yet
    clock.advance(app.grid.resend_after.total_seconds())
    app.housekeeping.sweep(payments=False)
    assert [(e.charge_point_id, e.decision) for e in heard] == [("CP1", decision)]
