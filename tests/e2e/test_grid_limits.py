"""Site limits end to end, over real loopback WebSockets and HTTP: a charger on a site hears its
connectors' limits when it connects, and a new share as soon as a session starts under the site,
which its composite schedule then shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from chargeshare.bootstrap import Config, build
from chargeshare.domain.grid_limits import MIN_CHARGING_W
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp import commands as cmd
from simulators.charger import VirtualCharger
from simulators.power import Vehicle
from tests.api_helpers import driver, host
from tests.clocks import HandClock
from tests.conftest import T0
from tests.e2e.conftest import Served, list_home_charger, serving
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@dataclass
class OnASite(Served):
    charger_id: int
    registry: ChargerRegistry


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[OnASite]:
    """GL1, two 7.4 kW connectors, on a 10 kW site whose house draws 3 kW; on SQLite, then on
    PostgreSQL (each round reads the charger's units from the store)."""
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    app = build(Config(database_url=url, password_hash="fast"), clock=HandClock(T0))
    owner = host(app, "Gwen")
    charger_id = list_home_charger(app, "GL1", owner.hid)
    site = app.grid.add_site(owner.hid, "home", 10_000, house_load_w=3_000)
    app.grid.place(charger_id, site.site_id)
    registry = ChargerRegistry(app, call_timeout_s=5)
    async with serving(app, registry) as s:
        yield OnASite(app, s.port, charger_id, registry)


@pytest.mark.parametrize("version", [V16, V201])
async def test_the_charger_hears_its_limits_on_connecting_and_a_share_when_a_car_starts(
    served: OnASite, version: OcppVersion
) -> None:
    ann = driver(served.app, "Ann", "TAG-ANN")
    charger = VirtualCharger("GL1", served.ws, served.app.clock, [7_400, 7_400], protocol=version)
    await charger.start()
    try:
        c1, c2 = charger.connectors[1], charger.connectors[2]
        await eventually(
            lambda: (charger.limit_w(c1), charger.limit_w(c2)) == (MIN_CHARGING_W, MIN_CHARGING_W),
            "the idle connectors' limits on connecting",
        )
        async with httpx.AsyncClient(base_url=served.http) as http:
            booked = await http.post(
                "/bookings",
                json={
                    "charger_id": served.charger_id,
                    "connector_no": 1,
                    "minutes": 60,
                    "max_energy_wh": 10_000,
                },
                headers=ann.headers,
            )
            assert booked.status_code == 201, booked.text
        await charger.plug_in(1, "TAG-ANN", Vehicle(60_000, 20_000, 7_400), 10_000)
        # What the house leaves of the site's 10 kW.
        await eventually(lambda: charger.limit_w(c1) == 7_000, "the started car's share")
        assert charger.power_w(c1) == 7_000
        # The backend reads the charger's composite schedule back: the limit it decided is in force.
        composite = await served.registry.get_composite_schedule("GL1", 1, 600, cmd.RateUnit.WATTS)
        assert isinstance(composite, cmd.Done) and composite.details is not None
        assert [p.limit for p in composite.details.periods] == [7_000]
    finally:
        await charger.stop()


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_charger_taking_amps_only_is_sent_amps_and_its_car_stays_under_the_site(
    served: OnASite, version: OcppVersion
) -> None:
    """It refuses any profile in W, as real A-only chargers do: a backend that sent W would never
    get its limits taken, and the car would draw its full rating past the site's limit."""
    ann = driver(served.app, "Ann", "TAG-ANN")
    charger = VirtualCharger("GL1", served.ws, served.app.clock, [7_400, 7_400], protocol=version)
    charger.take_amps_only()
    await charger.start()
    try:
        c1, c2 = charger.connectors[1], charger.connectors[2]
        # The 1,380 W minimum is 6 A on one phase: exactly, so the idle connectors keep it.
        await eventually(
            lambda: (charger.limit_w(c1), charger.limit_w(c2)) == (MIN_CHARGING_W, MIN_CHARGING_W),
            "the idle connectors' limits in A on connecting",
        )
        assert served.app.reports.rate_units("GL1") == frozenset({"A"})
        async with httpx.AsyncClient(base_url=served.http) as http:
            booked = await http.post(
                "/bookings",
                json={
                    "charger_id": served.charger_id,
                    "connector_no": 1,
                    "minutes": 60,
                    "max_energy_wh": 10_000,
                },
                headers=ann.headers,
            )
            assert booked.status_code == 201, booked.text
        await charger.plug_in(1, "TAG-ANN", Vehicle(60_000, 20_000, 7_400), 10_000)
        # The 7,000 W the house leaves is 30 A (30.4 floored): 6,900 W, never above.
        await eventually(lambda: charger.limit_w(c1) == 30 * 230, "the started car's share in A")
        assert charger.power_w(c1) + 3_000 <= 10_000
        composite = await served.registry.get_composite_schedule("GL1", 1, 600, cmd.RateUnit.AMPS)
        assert isinstance(composite, cmd.Done) and composite.details is not None
        assert [p.limit for p in composite.details.periods] == [30]
    finally:
        await charger.stop()


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_three_phase_charger_taking_amps_only_is_sent_amps_on_its_three_phases(
    served: OnASite, version: OcppVersion
) -> None:
    """Two 11 kW connectors wired to three phases, which it says: the 7,000 W the house leaves is
    10 A on each of the three (6,900 W). Held to one phase it would draw only the 16 A a phase of
    it carries (3,666 W), a little over half."""
    ann = driver(served.app, "Ann", "TAG-ANN")
    charger = VirtualCharger("GL1", served.ws, served.app.clock, [11_000, 11_000], protocol=version)
    charger.take_amps_only()
    await charger.start()
    try:
        c1, c2 = charger.connectors[1], charger.connectors[2]
        # The 1,380 W minimum is 2 A on three phases, which no car takes: 6 A on one instead.
        await eventually(
            lambda: (charger.limit_w(c1), charger.limit_w(c2)) == (MIN_CHARGING_W, MIN_CHARGING_W),
            "the idle connectors' limits in A on connecting",
        )
        # 2.0.1 says it for the station and for each EVSE.
        wiring = served.app.reports.phases("GL1")
        assert wiring == ({1: 3, 2: 3} if version == V16 else {0: 3, 1: 3, 2: 3})
        assert wiring.switches_3to1
        async with httpx.AsyncClient(base_url=served.http) as http:
            booked = await http.post(
                "/bookings",
                json={
                    "charger_id": served.charger_id,
                    "connector_no": 1,
                    "minutes": 60,
                    "max_energy_wh": 10_000,
                },
                headers=ann.headers,
            )
            assert booked.status_code == 201, booked.text
        await charger.plug_in(1, "TAG-ANN", Vehicle(60_000, 20_000, 11_000), 10_000)
        await eventually(lambda: charger.limit_w(c1) == 10 * 230 * 3, "the started car's share on 3 phases")
        assert charger.power_w(c1) == 6_900 and charger.power_w(c1) + 3_000 <= 10_000
        composite = await served.registry.get_composite_schedule("GL1", 1, 600, cmd.RateUnit.AMPS)
        assert isinstance(composite, cmd.Done) and composite.details is not None
        assert [p.limit for p in composite.details.periods] == [10]
    finally:
        await charger.stop()
