"""OCPP over real loopback WebSockets, spoken by an independent client built on the `ocpp` library."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import enums as enums16
from ocpp.v16.datatypes import MeterValue, SampledValue
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201.datatypes import ChargingStationType
from ocpp.v201.enums import BootReasonEnumType
from websockets.asyncio.client import connect

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import Config, build
from chargeshare.domain.charger import ChargerStatus
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import SystemClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger
from tests.e2e.conftest import Served
from tests.waiting import settled

pytestmark = pytest.mark.e2e


def now() -> str:
    return datetime.now(UTC).isoformat()


class LibraryChargePoint(Cp16):  # type: ignore[misc]
    remote_stops: list[int]

    @on(enums16.Action.remote_stop_transaction)  # type: ignore[untyped-decorator]
    def remote_stop(self, transaction_id: int, **_: Any) -> Any:
        self.remote_stops.append(transaction_id)
        return result16.RemoteStopTransaction(status=enums16.RemoteStartStopStatus.accepted)


@contextlib.asynccontextmanager
async def library_cp(served: Served, cp_id: str) -> AsyncIterator[LibraryChargePoint]:
    async with connect(f"{served.ws}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = LibraryChargePoint(cp_id, ws)
        cp.remote_stops = []
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


async def test_independent_client_boot_authorize_start_meter_stop_is_billed_once(served: Served) -> None:
    app = served.app
    charger_id = add_charger(app, "LIB1", price=40)
    driver = app.marketplace.add_driver("D", "CARD1")
    booking = app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 10_000))
    async with library_cp(served, "LIB1") as cp:
        boot = await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        assert boot.status == "Accepted" and boot.interval > 0
        with app.store.transaction() as tx:
            assert tx.chargers.get("LIB1").status is ChargerStatus.ONLINE
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        auth = await cp.call(call16.Authorize(id_tag="CARD1"))
        assert auth.id_tag_info["status"] == "Accepted"
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="CARD1", meter_start=500, timestamp=now())
        )
        assert started.id_tag_info["status"] == "Accepted"
        again = await cp.call(
            call16.StartTransaction(
                connector_id=1,
                id_tag="CARD1",
                meter_start=500,
                timestamp=started_ts(app, started.transaction_id),
            )
        )
        assert again.transaction_id == started.transaction_id  # a retried start is the same transaction
        for reading in (2_000, 4_000, 3_000):  # the last is an old, replayed reading
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=started.transaction_id,
                    meter_value=[
                        MeterValue(
                            timestamp=now(), sampled_value=[SampledValue(value=str(reading), unit="Wh")]
                        )
                    ],
                )
            )
        for _ in range(2):  # a duplicate stop must not bill twice
            stopped = await cp.call(
                call16.StopTransaction(
                    meter_stop=6_500, timestamp=now(), transaction_id=started.transaction_id
                )
            )
            assert stopped.id_tag_info["status"] == "Accepted"
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    await settled(app)
    assert gateway.total_captured == 240  # 6.000 kWh x 40p, once
    assert all(r.ok for r in check_store(app.store, app.config.rules, now=app.clock.now()))
    with app.store.transaction() as tx:
        assert tx.bookings.get(booking.booking_id).status.value == "completed"


def started_ts(served_app: Any, transaction_id: int) -> str:
    with served_app.store.transaction() as tx:
        s = tx.sessions.get(transaction_id)
    assert s is not None
    return str(s.started_at.isoformat())


async def test_energy_limit_makes_the_backend_send_remote_stop(served: Served) -> None:
    app = served.app
    charger_id = add_charger(app, "LIB2")
    driver = app.marketplace.add_driver("D", "CARD2")
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 1_000))
    async with library_cp(served, "LIB2") as cp:
        await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="CARD2", meter_start=0, timestamp=now())
        )
        await cp.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=started.transaction_id,
                meter_value=[
                    MeterValue(timestamp=now(), sampled_value=[SampledValue(value="1.2", unit="kWh")])
                ],
            )
        )
        for _ in range(100):
            if cp.remote_stops:
                break
            await asyncio.sleep(0.02)
        assert cp.remote_stops == [started.transaction_id]


async def test_a_client_offering_no_ocpp_subprotocol_is_refused(served: Served) -> None:
    with pytest.raises(websockets.InvalidStatus) as err:
        async with connect(f"{served.ws}/X", subprotocols=["ocpp1.5"]):  # type: ignore[list-item]
            pass
    assert err.value.response.status_code == 403


async def test_only_one_path_segment_names_a_charger(served: Served) -> None:
    # The OCPP socket skips FastAPI's router; a URL its route would not match is still refused.
    for path in ("/A/B", "/", ""):
        with pytest.raises(websockets.InvalidStatus) as err:
            async with connect(f"{served.ws}{path}", subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                pass
        assert err.value.response.status_code == 403


async def test_an_escaped_charge_point_id_is_read_as_the_route_read_it() -> None:
    app = build(Config(database_url="sqlite://", allow_unknown_chargers=True), clock=SystemClock())
    api = create_api(app)
    try:
        async with LoopbackServer(api) as server:
            url = f"ws://127.0.0.1:{server.port}/ocpp/CP%201"
            async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps([2, "1", "Heartbeat", {}]))
                assert json.loads(await ws.recv())[0] == 3
                assert list(api.state.registry.links) == ["CP 1"]
    finally:
        app.close()


async def test_garbage_gets_callerrors_and_the_connection_survives(served: Served) -> None:
    async with connect(f"{served.ws}/RAW", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp1.6"
        for bad, code in [
            ("{nope", "FormationViolation"),
            ('[2, "a", "Heartbeat"]', "FormationViolation"),
            ('[2, "b", "StartTransaction", {"connectorId": "x"}]', "TypeConstraintViolation"),
            ('[2, "c", "Teleport", {}]', "NotImplemented"),
        ]:
            await ws.send(bad)
            reply = json.loads(await ws.recv())
            assert reply[0] == 4 and reply[2] == code, (bad, reply)
        await ws.send('[2, "ok", "Heartbeat", {}]')
        reply = json.loads(await ws.recv())
        assert reply[:2] == [3, "ok"] and "currentTime" in reply[2]
    with served.app.store.transaction() as tx:
        assert tx.sessions.all() == [] and tx.bookings.all() == []


async def test_oversized_frames_are_refused(served: Served) -> None:
    async with connect(f"{served.ws}/BIG", subprotocols=["ocpp1.6"], max_size=None) as ws:  # type: ignore[list-item]
        await ws.send('[2, "1", "DataTransfer", {"vendorId": "v", "data": "' + "x" * 100_000 + '"}]')
        with pytest.raises(websockets.ConnectionClosed) as err:
            await ws.recv()
    assert err.value.rcvd is not None and err.value.rcvd.code == 1009


async def test_ocpp201_client_boots_over_the_same_endpoint(served: Served) -> None:
    add_charger(served.app, "V201")
    async with connect(f"{served.ws}/V201", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp2.0.1"
        cp = Cp201("V201", ws)
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(
                call201.BootNotification(
                    charging_station=ChargingStationType(model="M", vendor_name="V"),
                    reason=BootReasonEnumType.power_up,
                )
            )
            assert boot.status == "Accepted"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    with served.app.store.transaction() as tx:
        assert tx.chargers.get("V201").ocpp_version == "2.0.1"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["ocpp2.0.1", "ocpp2.1"], "ocpp2.1"),  # the newest we speak, whatever the charger's order
        (["ocpp2.1", "ocpp1.6"], "ocpp2.1"),
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),
        (["ocpp2.2", "ocpp2.0.1"], "ocpp2.0.1"),  # one we do not speak is passed over
    ],
)
async def test_the_newest_version_offered_is_chosen_and_recorded(
    served: Served, offered: list[str], chosen: str
) -> None:
    add_charger(served.app, "NEG")
    async with connect(f"{served.ws}/NEG", subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == chosen
        boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
        await ws.send(json.dumps([2, "b1", "BootNotification", boot]))
        reply = json.loads(await ws.recv())
        assert reply[:2] == [3, "b1"] and reply[2]["status"] == "Accepted"
    with served.app.store.transaction() as tx:
        assert tx.chargers.get("NEG").ocpp_version == chosen.removeprefix("ocpp")


async def test_a_frame_tap_sees_both_directions_in_order() -> None:
    app = build(Config(database_url="sqlite://", allow_unknown_chargers=True), clock=SystemClock())
    registry = ChargerRegistry(app)
    seen: list[tuple[str, str, str]] = []
    stop_watching = registry.add_tap(lambda cp, direction, text: seen.append((cp, direction, text)))
    async with LoopbackServer(create_api(app, registry)) as server:
        url = f"ws://127.0.0.1:{server.port}/ocpp/TAP1"
        async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await ws.send('[2,"h1","Heartbeat",{}]')
            await ws.recv()
            stop_watching()
            await ws.send('[2,"h2","Heartbeat",{}]')
            await ws.recv()
    app.close()
    assert [(cp, d) for cp, d, _ in seen] == [("TAP1", "in"), ("TAP1", "out")]
    assert json.loads(seen[1][2])[:2] == [3, "h1"]


async def test_ocpp16_notifications_are_acknowledged_and_data_transfer_refused(served: Served) -> None:
    add_charger(served.app, "N16")
    async with library_cp(served, "N16") as cp:
        await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        for request in (
            call16.FirmwareStatusNotification(status="Installed"),
            call16.DiagnosticsStatusNotification(status="Uploaded"),
        ):
            assert await cp.call(request) is not None
        refusal = await cp.call(call16.DataTransfer(vendor_id="acme", message_id="x", data="{}"))
        assert refusal.status == "UnknownVendorId"
        await cp.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))
    with served.app.store.transaction() as tx:
        assert tx.chargers.get("N16").connectors[0].status.value == "Faulted"
