"""The smart charging regulations end to end, over real loopback WebSockets and HTTP: the host's
settings reach the virtual charger when it boots and whenever they change, and a driver who booked
with the override charges in peak hours at once, because the backend sends the override TxProfile
as soon as it has answered the start."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from chargeshare.bootstrap import Config, build
from chargeshare.domain.smart_charge_points import SmartSettings, Suppressed
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, V201, OcppVersion
from simulators.charger import VirtualCharger
from simulators.firmware import ConnectorState
from simulators.power import Vehicle
from tests.api_helpers import Caller, driver, host
from tests.clocks import HandClock
from tests.e2e.conftest import Served, list_home_charger, serving
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

MONDAY_EVENING = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # GMT: in the evening peak


@dataclass
class Evening(Served):
    """The backend on a Monday evening, with Hana's charger SC1 listed (not yet connected)."""

    host: Caller
    charger_id: int


@pytest.fixture
async def served() -> AsyncIterator[Evening]:
    app = build(Config(database_url="sqlite://", password_hash="fast"), clock=HandClock(MONDAY_EVENING))
    owner = host(app, "Hana")
    charger_id = list_home_charger(app, "SC1", owner.hid)
    async with serving(app, ChargerRegistry(app, call_timeout_s=5)) as s:
        yield Evening(app, s.port, owner, charger_id)


@contextlib.asynccontextmanager
async def connected(
    served: Evening, version: OcppVersion, *, amps_only: bool = False
) -> AsyncIterator[VirtualCharger]:
    charger = VirtualCharger(
        "SC1", served.ws, served.app.clock, [7_400, 7_400], protocol=version, seed=4, smart_charge_point=True
    )
    if amps_only:
        charger.take_amps_only()
    await charger.start()
    try:
        yield charger
    finally:
        await charger.stop()


@pytest.mark.parametrize("version", [V16, V201])
async def test_the_hosts_settings_reach_the_charger_at_boot_and_on_change(
    served: Evening, version: OcppVersion
) -> None:
    # Chosen while the charger is away: it hears them when it boots.
    served.app.smart.set_owner_choices(
        served.charger_id,
        randomised_delay_max_s=1_200,
        randomised_delay_override=False,
        default_charging_hours=True,
    )
    async with connected(served, version) as charger:
        await eventually(
            lambda: charger.settings.smart().randomised_delay_max_s == 1_200, "the boot's settings"
        )
        body = {
            "randomised_delay_max_s": 90,
            "randomised_delay_override": True,
            "default_charging_hours": False,
        }
        async with httpx.AsyncClient(base_url=served.http) as http:
            put = await http.put(
                f"/host/chargers/{served.charger_id}/smart-charging", json=body, headers=served.host.headers
            )
            assert put.status_code == 200, put.text
        wanted = SmartSettings(90, randomised_delay_override=True, default_charging_hours=False)
        await eventually(lambda: charger.settings.smart() == wanted, "the host's change at the charger")


@pytest.mark.parametrize("amps_only", [False, True], ids=["W", "A only"])
@pytest.mark.parametrize("version", [V16, V201])
async def test_a_driver_who_booked_the_override_charges_in_peak_hours_at_once(
    served: Evening, version: OcppVersion, amps_only: bool
) -> None:
    """A charger taking A only refuses a profile in W: it is sent the override in A."""
    dee, eve = driver(served.app, "Dee", "TAG-DEE"), driver(served.app, "Eve", "TAG-EVE")
    async with connected(served, version, amps_only=amps_only) as charger:
        async with httpx.AsyncClient(base_url=served.http) as http:
            booked = await http.post(
                "/bookings",
                json={
                    "charger_id": served.charger_id,
                    "minutes": 60,
                    "max_energy_wh": 10_000,
                    "override_smart_charging": True,
                },
                headers=dee.headers,
            )
            assert booked.status_code == 201 and booked.json()["override_smart_charging"], booked.text
        c = charger.connectors[1]
        await eventually(lambda: c.state is ConnectorState.RESERVED, "the booking's reservation")
        await charger.plug_in(1, "TAG-DEE", Vehicle(60_000, 20_000, 7_400), 10_000)
        await eventually(lambda: c.state is ConnectorState.CHARGING, "the override to let it charge in peak")
        (start,) = charger.smart_gates[0].log
        assert (start.suppressed, start.drawn_s) == (Suppressed.END_USER, None)
        # Another driver, booking without the override, waits out the peak on the other connector.
        async with httpx.AsyncClient(base_url=served.http) as http:
            plain = await http.post(
                "/bookings",
                json={
                    "charger_id": served.charger_id,
                    "connector_no": 2,
                    "minutes": 60,
                    "max_energy_wh": 10_000,
                },
                headers=eve.headers,
            )
            assert plain.status_code == 201 and not plain.json()["override_smart_charging"], plain.text
        other = charger.connectors[2]
        await eventually(lambda: other.state is ConnectorState.RESERVED, "the second reservation")
        await charger.plug_in(2, "TAG-EVE", Vehicle(60_000, 20_000, 7_400), 10_000)
        assert other.state is ConnectorState.SUSPENDED_EVSE and charger.smart_gates[1].log == []
        assert c.state is ConnectorState.CHARGING
