"""Boot policy over real WebSockets and HTTP: a host's new charger boots Pending and stays out of
service until its host accepts it; a Rejected one is refused likewise."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from ocpp.exceptions import SecurityError
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargeshare.domain.credentials import basic_auth_header
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.services.clock import ScaledClock
from simulators.charger import VirtualCharger
from tests import api_helpers as accounts
from tests.api_helpers import Caller
from tests.e2e.conftest import Served
from tests.e2e.ocpp_clients import boot16, boot201, library_cp16, library_cp201

pytestmark = pytest.mark.e2e

LISTING = {
    "charge_point_id": "NEWCP",
    "title": "driveway",
    "lat": 51.45,
    "lon": -2.59,
    "price_per_kwh": 30,
    "connectors": [{"connector_no": 1, "type": "type2", "max_power_w": 7400}],
}
BBOX = "/chargers?bbox=-3,51,-2,52"
WAIT_S = 10.0


async def listed(http: httpx.AsyncClient, host: Caller) -> tuple[int, str]:
    """A host lists a new charger over the API: its id and OCPP password."""
    created = await http.post("/host/chargers", json=LISTING, headers=host.headers)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["charger"]["boot_policy"] == "Pending"
    return body["charger"]["id"], body["password"]


async def on_the_map(http: httpx.AsyncClient) -> set[str]:
    found = await http.get(BBOX)
    return {c["charge_point_id"] for c in found.json()}


async def test_a_new_charger_is_pending_until_its_host_accepts_it_16(served: Served) -> None:
    host, driver = accounts.host(served.app, "Hana"), accounts.driver(served.app, "Dee", "DEE1")
    async with httpx.AsyncClient(base_url=served.http) as http:
        charger_id, password = await listed(http, host)
        auth = {"Authorization": basic_auth_header("NEWCP", password)}
        async with library_cp16(served.ws, "NEWCP", additional_headers=auth) as cp:
            first = await boot16(cp)
            assert (first.status, first.interval) == (
                "Pending",
                served.app.charging.rules.boot_retry_interval_s,
            )
            with pytest.raises(SecurityError):
                await cp.call(call16.Authorize(id_tag="DEE1"), suppress=False)
            with pytest.raises(SecurityError):
                await cp.call(call16.StartTransaction(1, "DEE1", 0, "2026-12-03T10:00:00Z"), suppress=False)
            # Heard, but neither brings it into service.
            await cp.call(call16.StatusNotification(1, "NoError", "Available"), suppress=False)
            assert (await cp.call(call16.Heartbeat())).current_time
            mine = (await http.get(f"/host/chargers/{charger_id}", headers=host.headers)).json()
            assert (mine["status"], mine["boot_policy"]) == ("registered", "Pending")
            assert "NEWCP" not in await on_the_map(http)
            booking = {"charger_id": charger_id, "minutes": 60, "max_energy_wh": 10_000}
            refused = await http.post("/bookings", json=booking, headers=driver.headers)
            assert refused.status_code == 409 and "not in service" in refused.text
            # What the host looks at before accepting: the Pending boot, kept with its reports.
            with served.app.store.reading() as tx:
                kept = [r.summary for r in tx.reports.of(charger_id)]
            assert any(s.startswith("Pending: V M") for s in kept), kept

            accepted = await http.put(
                f"/host/chargers/{charger_id}/boot-policy",
                json={"boot_policy": "Accepted"},
                headers=host.headers,
            )
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["boot_requested"] is True
            assert [a for a, _ in cp.script.received] == ["TriggerMessage"]
            assert cp.script.received[0][1]["requested_message"] == "BootNotification"

            second = await boot16(cp)
            assert (second.status, second.interval) == (
                "Accepted",
                served.app.charging.rules.heartbeat_interval_s,
            )
            await cp.call(call16.StatusNotification(1, "NoError", "Available"), suppress=False)
            assert "NEWCP" in await on_the_map(http)
            made = await http.post("/bookings", json=booking, headers=driver.headers)
            assert made.status_code == 201, made.text


async def test_a_rejected_charger_is_refused_and_taken_off_the_map_201(served: Served) -> None:
    host, admin = accounts.host(served.app, "Hana"), accounts.admin(served.app)
    async with httpx.AsyncClient(base_url=served.http) as http:
        charger_id, password = await listed(http, host)
        await http.put(
            f"/host/chargers/{charger_id}/boot-policy", json={"boot_policy": "Accepted"}, headers=host.headers
        )
        auth = {"Authorization": basic_auth_header("NEWCP", password)}
        async with library_cp201(served.ws, "NEWCP", additional_headers=auth) as cp:
            assert (await boot201(cp)).status == "Accepted"
            assert "NEWCP" in await on_the_map(http)

            rejected = await http.put(
                f"/admin/chargers/{charger_id}/boot-policy",
                json={"boot_policy": "Rejected"},
                headers=admin.headers,
            )
            assert rejected.status_code == 200, rejected.text
            assert (rejected.json()["boot_policy"], rejected.json()["status"]) == ("Rejected", "registered")
            assert "NEWCP" not in await on_the_map(http)

            assert (await boot201(cp)).status == "Rejected"
            with pytest.raises(SecurityError):
                await cp.call(
                    call201.Authorize(id_token={"id_token": "DEE1", "type": "Central"}), suppress=False
                )
            # A heartbeat from it is answered but does not bring it back into service.
            await cp.call(call201.Heartbeat())
            mine = (await http.get(f"/host/chargers/{charger_id}", headers=host.headers)).json()
            assert (mine["status"], mine["boot_policy"]) == ("registered", "Rejected")


@pytest.mark.parametrize("protocol", [V16, V201])
async def test_the_virtual_charger_waits_while_pending_and_boots_when_asked(
    served: Served, protocol: OcppVersion
) -> None:
    host = accounts.host(served.app, "Hana")
    async with httpx.AsyncClient(base_url=served.http) as http:
        charger_id, password = await listed(http, host)
        vc = VirtualCharger(
            "NEWCP",
            served.ws,
            ScaledClock(datetime.now(UTC), 1.0),
            [7_400],
            protocol=protocol,
            password=password,
            call_timeout_s=5,
        )
        starting = asyncio.create_task(vc.start())
        try:
            async with asyncio.timeout(WAIT_S):
                while vc.boot_status != "Pending":
                    await asyncio.sleep(0.01)
            assert not starting.done()  # nothing but its boot is sent while Pending
            accepted = await http.put(
                f"/host/chargers/{charger_id}/boot-policy",
                json={"boot_policy": "Accepted"},
                headers=host.headers,
            )
            assert accepted.json()["boot_requested"] is True
            await asyncio.wait_for(starting, WAIT_S)  # booted again at once, not after 60 s
            assert vc.boots == 2 and vc.boot_accepted
            mine = (await http.get(f"/host/chargers/{charger_id}", headers=host.headers)).json()
            assert mine["status"] == "online"
        finally:
            if not starting.done():
                starting.cancel()
            await vc.stop()
