"""The DES charger obeys a feeder's limits as the DES central sends them: two cars share the
feeder, a flexibility event found by the sweep pauses the later start and holds the other to what
is left, and its end gives both their shares back; the meters show exactly that energy."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import simpy

from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.grid_limits import Scope
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.services.booking import BookRequest
from simulators.des.central import DesCentral
from simulators.des.charger import DesCharger
from simulators.des.clock import SimClock
from simulators.firmware import ConnectorState
from simulators.power import Vehicle

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOUR = 3_600


@pytest.fixture(params=[V16, V201], ids=["ocpp16", "ocpp201"])
def world(request: pytest.FixtureRequest) -> Iterator[tuple[simpy.Environment, App, list[DesCharger]]]:
    yield from feeder_of_two(OcppVersion(request.param))


@pytest.fixture(params=[V16, V201], ids=["ocpp16", "ocpp201"])
def amps_world(request: pytest.FixtureRequest) -> Iterator[tuple[simpy.Environment, App, list[DesCharger]]]:
    yield from feeder_of_two(OcppVersion(request.param), amps_only=True)


def feeder_of_two(
    version: OcppVersion,
    *,
    amps_only: bool = False,
    rating_w: int = 7_400,
    feeder_w: int = 8_000,
    phases_said: bool = True,
    switching: bool = True,
) -> Generator[tuple[simpy.Environment, App, list[DesCharger]], None, None]:
    """Two single-connector chargers (7.4 kW: one phase; above: three), each on its own site,
    under one feeder (8 kW)."""
    env = simpy.Environment()
    app = build(Config(database_url="sqlite://", locks_enabled=False), clock=SimClock(env, NOON))
    central = DesCentral(env, app)
    feeder = app.grid.add_feeder("F1", feeder_w)
    chargers = []
    for n in (1, 2):
        host = app.marketplace.add_host(f"h{n}")
        view = app.marketplace.add_charger(
            ChargerSpec(
                f"CP{n}",
                host,
                Point(51.45, -2.59),
                Tariff(30),
                (ConnectorSpec(1, ConnectorType.TYPE2, rating_w),),
            )
        )
        site = app.grid.add_site(host, f"s{n}", 13_800, feeder_id=feeder.feeder_id)
        app.grid.place(view.charger_id, site.site_id)
        charger = DesCharger(
            env,
            central,
            f"CP{n}",
            [rating_w],
            epoch=NOON,
            meter_interval_s=900,
            protocol=version,
        )
        if amps_only:
            charger.take_amps_only()
        charger.wire_phases(None, said=phases_said)
        charger.switch_phases(switching)
        charger.connect()
        chargers.append(charger)
    try:
        yield env, app, chargers
    finally:
        app.close()


def both_plugged_in(app: App, cp1: DesCharger, cp2: DesCharger, *, car_w: int) -> None:
    """A driver each (D1, D2 with TAG1, TAG2) books connector 1 of charger 1 and 2 for 4 hours and
    plugs in a car taking `car_w`."""
    for n, charger in ((1, cp1), (2, cp2)):
        driver = app.marketplace.add_driver(f"D{n}", f"TAG{n}").driver_id
        app.bookings.book(BookRequest(driver, n, 1, 240, 40_000))
        charger.plug_in(1, f"TAG{n}", Vehicle(80_000, 10_000, car_w), 40_000)


def sweep(env: simpy.Environment, app: App) -> None:
    """The housekeeping sweep now, and the commands it decides, sent one virtual instant later."""
    app.housekeeping.sweep()
    env.run(until=env.now + 0.001)


def test_two_cars_share_the_feeder_and_a_flexibility_event_pauses_the_later(
    world: tuple[simpy.Environment, App, list[DesCharger]],
) -> None:
    env, app, (cp1, cp2) = world
    both_plugged_in(app, cp1, cp2, car_w=7_400)
    app.grid.add_flex_event(Scope.FEEDER, 1, 2_000, NOON + timedelta(hours=1), NOON + timedelta(hours=2))
    # Each sweep runs on the hour; a new limit makes the charger take its meters up to that moment.
    env.run(until=HOUR)
    sweep(env, app)
    assert [c.connectors[1].meter.register_wh for c in (cp1, cp2)] == [4_000, 4_000]
    assert [c.connectors[1].state for c in (cp1, cp2)] == [
        ConnectorState.CHARGING,
        ConnectorState.SUSPENDED_EVSE,
    ]
    env.run(until=2 * HOUR)
    sweep(env, app)
    assert [c.connectors[1].meter.register_wh for c in (cp1, cp2)] == [6_000, 4_000]
    assert [c.connectors[1].state for c in (cp1, cp2)] == [ConnectorState.CHARGING] * 2
    env.run(until=3 * HOUR + 1)
    assert [c.connectors[1].meter.register_wh for c in (cp1, cp2)] == [10_000, 8_000]


def test_chargers_taking_amps_only_are_sent_amps_and_draw_no_more_than_their_watts(
    amps_world: tuple[simpy.Environment, App, list[DesCharger]],
) -> None:
    """They refuse profiles in W: a backend sending W would leave both at their 7.4 kW rating."""
    env, app, (cp1, cp2) = amps_world
    both_plugged_in(app, cp1, cp2, car_w=7_400)
    app.grid.add_flex_event(Scope.FEEDER, 1, 2_000, NOON + timedelta(hours=1), NOON + timedelta(hours=2))
    env.run(until=HOUR)
    sweep(env, app)
    # 4,000 W each is 17 A (17.4 floored): 3,910 W.
    assert [c.connectors[1].meter.register_wh for c in (cp1, cp2)] == [3_910, 3_910]
    assert [app.reports.rate_units(c.cp_id) for c in (cp1, cp2)] == [frozenset({"A"})] * 2
    env.run(until=2 * HOUR)
    sweep(env, app)
    # The event's 2,000 W is 8 A (8.7 floored) for the earlier car, the later paused.
    assert [c.connectors[1].meter.register_wh for c in (cp1, cp2)] == [3_910 + 1_840, 3_910]


@pytest.mark.parametrize("version", [V16, V201], ids=["ocpp16", "ocpp201"])
@pytest.mark.parametrize(
    ("said", "each_wh"), [(True, 11 * 230 * 3), (False, 11_000 // 3)], ids=["said", "unsaid"]
)
def test_three_phase_chargers_taking_amps_only_draw_their_share_on_the_phases_they_say(
    version: OcppVersion, said: bool, each_wh: int
) -> None:
    """Two 11 kW chargers under 16 kW: 8,000 W each is 11 A on each of three phases (7,590 W).
    One that does not say its phases is sent 34 A on one, and draws the 16 A a phase of it
    carries: 3,666 W. Neither passes the feeder."""
    world = feeder_of_two(version, amps_only=True, rating_w=11_000, feeder_w=16_000, phases_said=said)
    env, app, (cp1, cp2) = next(world)
    try:
        both_plugged_in(app, cp1, cp2, car_w=11_000)
        env.run(until=HOUR + 1)  # the meters taken at the hour
        assert [c.connectors[1].meter.register_wh for c in (cp1, cp2)] == [each_wh] * 2
        assert sum(c.power_w(c.connectors[1]) for c in (cp1, cp2)) == 2 * each_wh <= 16_000
        kept = {1: 3} if version == V16 else {0: 3, 1: 3}  # 2.0.1: the station's and its EVSE's
        assert [app.reports.phases(c.cp_id) for c in (cp1, cp2)] == [kept if said else {}] * 2
    finally:
        world.close()


@pytest.mark.parametrize("version", [V16, V201], ids=["ocpp16", "ocpp201"])
@pytest.mark.parametrize("amps_only", [False, True], ids=["watts", "amps"])
@pytest.mark.parametrize(
    ("switching", "each_wh"), [(True, (3_450, 3_450)), (False, (6_900, 0))], ids=["switching", "fixed"]
)
def test_three_phase_chargers_that_cannot_switch_to_one_phase_get_6_a_on_each_or_wait(
    version: OcppVersion, amps_only: bool, switching: bool, each_wh: tuple[int, int]
) -> None:
    """Two 11 kW three-phase chargers under 7,000 W: 3,500 W each is under 6 A on each phase.
    Chargers that switch to one phase are told so and draw 15 A on one (3,450 W each; in W the
    3,500 W whole); ones that cannot are never told less than 6 A on each of three (4,140 W) or 0:
    two minimums do not fit, so the second car waits and the first takes the feeder (10 A on each
    phase, 6,900 W; in W 7,000 W). The feeder holds."""
    world = feeder_of_two(version, amps_only=amps_only, rating_w=11_000, feeder_w=7_000, switching=switching)
    env, app, (cp1, cp2) = next(world)
    try:
        both_plugged_in(app, cp1, cp2, car_w=11_000)
        env.run(until=HOUR + 1)  # the meters taken at the hour
        expected = each_wh if amps_only else (3_500, 3_500) if switching else (7_000, 0)
        assert tuple(c.connectors[1].meter.register_wh for c in (cp1, cp2)) == expected
        assert sum(c.power_w(c.connectors[1]) for c in (cp1, cp2)) == sum(expected) <= 7_000
        assert [app.reports.phases(c.cp_id).switches_3to1 for c in (cp1, cp2)] == [switching] * 2  # type: ignore[union-attr]
    finally:
        world.close()
