"""The DES charger keeps the smart charging regulations as the live one does: a start waits its
delay (drawn from the run's seed), the driver's override and DSR come over the in-process link as
the registry would send them, and the charger wakes at each edge to report it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import simpy

from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.smart_charge_points import SmartSettings, Suppressed
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.services.booking import BookRequest
from simulators.des.central import DesCentral
from simulators.des.charger import DesCharger
from simulators.des.clock import SimClock
from simulators.firmware import ConnectorState
from simulators.power import Vehicle

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, off-peak


@pytest.fixture(params=[V16, V201], ids=["ocpp16", "ocpp201"])
def world(request: pytest.FixtureRequest) -> Iterator[tuple[simpy.Environment, App, DesCharger]]:
    env = simpy.Environment()
    app = build(Config(database_url="sqlite://", locks_enabled=False), clock=SimClock(env, NOON))
    host = app.marketplace.add_host("Hana")
    app.marketplace.add_charger(
        ChargerSpec(
            "CP1", host, Point(51.45, -2.59), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7_400),)
        )
    )
    charger = DesCharger(
        env,
        DesCentral(env, app),
        "CP1",
        [7_400],
        epoch=NOON,
        meter_interval_s=900,
        protocol=OcppVersion(request.param),
        seed=4,
        smart_charge_point=True,
    )
    charger.connect()
    try:
        yield env, app, charger
    finally:
        app.close()


def charge(env: simpy.Environment, app: App, charger: DesCharger, *, override: bool) -> None:
    driver = app.marketplace.add_driver("Dev", "TAG").driver_id
    app.bookings.book(BookRequest(driver, 1, 1, 120, 20_000, override_smart_charging=override))
    charger.plug_in(1, "TAG", Vehicle(60_000, 20_000, 7_400), 20_000)


def test_a_start_waits_its_delay_and_the_meter_stands_still_meanwhile(
    world: tuple[simpy.Environment, App, DesCharger],
) -> None:
    env, app, charger = world
    charge(env, app, charger, override=False)
    c = charger.connectors[1]
    (start,) = charger.smart_gates[0].log
    assert start.drawn_s is not None and start.drawn_s > 0
    env.run(until=start.drawn_s - 1)
    assert c.state is ConnectorState.SUSPENDED_EVSE and c.meter.register_wh == 0
    # The charger woke when the delay ended, and again at each reading: an hour after, 7.4 kWh.
    env.run(until=start.drawn_s + 3_600 + 1)
    assert charger.connectors[1].state is ConnectorState.CHARGING
    assert charger.connectors[1].meter.register_wh == 7_400


def test_the_overriding_drivers_start_is_not_delayed(
    world: tuple[simpy.Environment, App, DesCharger],
) -> None:
    env, app, charger = world
    charge(env, app, charger, override=True)
    env.run(until=1)  # the override goes out one virtual instant after the start's answer
    (start,) = charger.smart_gates[0].log
    assert (start.cut_short_by, start.served_s) == (Suppressed.END_USER, 0.0)
    assert charger.connectors[1].state is ConnectorState.CHARGING


def test_settings_reach_the_charger_and_dsr_suppresses_the_delay(
    world: tuple[simpy.Environment, App, DesCharger],
) -> None:
    env, app, charger = world
    app.smart.set_owner_choices(
        1, randomised_delay_max_s=1_200, randomised_delay_override=False, default_charging_hours=True
    )
    app.smart.set_demand_side_response(1, True)
    env.run(until=1)
    assert charger.settings.smart() == SmartSettings(1_200, demand_side_response=True)
    charge(env, app, charger, override=False)
    (start,) = charger.smart_gates[0].log
    assert start.suppressed is Suppressed.DSR and charger.connectors[1].state is ConnectorState.CHARGING
