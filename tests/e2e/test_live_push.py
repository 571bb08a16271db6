"""Live push over real WebSockets: each app hears its own state changes and nobody else's, tokens are
checked (and lapse on the injected clock), and pushes cross server processes through real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import BootPolicy, ChargerSpec, ConnectorSpec, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.ocpp import V16
from chargeshare.services.clock import ManualClock
from tests import api_helpers as accounts
from tests.clocks import HandClock
from tests.conftest import REDIS_URL, T0
from tests.e2e.conftest import Served, as_serve_runs, serving

pytestmark = pytest.mark.e2e

WAIT_S = 10


def hosted_charger(app: App, host_id: int, cp_id: str = "PUSH1", price: int = 40) -> int:
    spec = ChargerSpec(
        cp_id, host_id, Point(51.45, -2.59), Tariff(price), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
    )
    view, _password = app.hosting.add_charger(spec)
    app.hosting.set_boot_policy(host_id, view.charger_id, BootPolicy.ACCEPTED)  # a new listing is Pending
    app.charging.boot(cp_id, V16)
    app.charging.status(cp_id, 0, ConnectorStatus.AVAILABLE)
    return view.charger_id


@asynccontextmanager
async def events(port: int, headers: dict[str, str]) -> AsyncIterator[ClientConnection]:
    token = headers["Authorization"].removeprefix("Bearer ")
    async with connect(f"ws://127.0.0.1:{port}/ws/events?token={token}") as ws:
        hello = await next_message(ws)
        assert hello["type"] == "hello"
        yield ws


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
    return message


async def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of `kind`, skipping ticks (whose number depends on timing)."""
    while True:
        m = await next_message(ws)
        if m["type"] == kind:
            return m
        assert m["type"] == "charging.tick", f"expected {kind}, got {m}"


@pytest.fixture
async def on_hand_clock() -> AsyncIterator[Served]:
    """Served on a clock the test moves, so readings are as far apart as it says."""
    async with serving(build(as_serve_runs(), clock=HandClock(T0))) as s:
        yield s


async def test_driver_and_host_hear_the_whole_session_and_others_hear_nothing(on_hand_clock: Served) -> None:
    served = on_hand_clock
    app = served.app
    clock = app.clock
    assert isinstance(clock, HandClock)
    host, other_host = accounts.host(app, "Hana"), accounts.host(app, "Otto")
    driver, other = accounts.driver(app, "Dee", "DEE1"), accounts.driver(app, "Olly", "OLLY1")
    charger = hosted_charger(app, host.hid)
    other_charger = hosted_charger(app, other_host.hid, "PUSH2")
    body = {"charger_id": charger, "minutes": 60, "max_energy_wh": 10_000}
    async with (
        events(served.port, driver.headers) as d_ws,
        events(served.port, host.headers) as h_ws,
        events(served.port, other.headers) as o_ws,
        events(served.port, other_host.headers) as oh_ws,
        httpx.AsyncClient(base_url=served.http) as http,
    ):
        booked = (await http.post("/bookings", json=body, headers=driver.headers)).json()
        for ws in (d_ws, h_ws):
            m = await next_of(ws, "booking.confirmed")
            assert (m["booking_id"], m["status"]) == (booked["id"], "confirmed")

        start = app.charging.start("PUSH1", 1, "DEE1", 0, clock.now()).transaction_id
        await asyncio.to_thread(app.charging.meter, "PUSH1", start, 1_000)
        clock.advance(60)
        await asyncio.to_thread(app.charging.meter, "PUSH1", start, 2_500)
        assert (await next_of(d_ws, "charging.started"))["session_id"] == start
        ticks = [await next_message(d_ws), await next_message(d_ws)]
        assert [t["energy_wh"] for t in ticks] == [1_000, 2_500]
        assert [t["cost"] for t in ticks] == [40, 100]  # at 40p/kWh
        assert [t["power_w"] for t in ticks] == [0, 90_000]  # kW needs two readings: 1.5 kWh in a minute

        app.charging.stop("PUSH1", start, 3_000, clock.now())
        stopped = await next_of(d_ws, "charging.stopped")
        assert (stopped["energy_wh"], stopped["cost"]) == (3_000, 120)
        receipt = (await next_of(d_ws, "receipt.ready"))["receipt"]
        rest = (await http.get(f"/bookings/{booked['id']}/receipt", headers=driver.headers)).json()
        assert receipt == {k: v for k, v in rest.items() if k != "booking_id"}
        assert (receipt["energy_wh"], receipt["cost"], receipt["platform_fee"], receipt["vat"]) == (
            3_000,
            120,
            18,
            3,
        )
        for kind in ("charging.started", "charging.stopped", "receipt.ready"):
            await next_of(h_ws, kind)

        app.charging.disconnected("PUSH1")
        offline = await next_of(h_ws, "charger.offline")
        assert offline["charge_point_id"] == "PUSH1"

        # The others' first messages are about their own business: nothing of the above reached them.
        theirs = {"charger_id": other_charger, "minutes": 30, "max_energy_wh": 5_000}
        assert (await http.post("/bookings", json=theirs, headers=other.headers)).status_code == 201
        assert (await next_message(o_ws))["type"] == "booking.confirmed"
        assert (await next_message(oh_ws))["type"] == "booking.confirmed"


async def test_what_an_app_sends_is_ignored_even_binary(served: Served) -> None:
    driver = accounts.driver(served.app, "Bea", "BEA1")
    charger = hosted_charger(served.app, accounts.host(served.app, "Hal").hid)
    async with events(served.port, driver.headers) as ws, httpx.AsyncClient(base_url=served.http) as http:
        await ws.send(b"\x00\x01")
        await ws.send("hello?")
        body = {"charger_id": charger, "minutes": 60, "max_energy_wh": 10_000}
        assert (await http.post("/bookings", json=body, headers=driver.headers)).status_code == 201
        assert (await next_of(ws, "booking.confirmed"))["status"] == "confirmed"


async def test_a_bad_token_is_refused_with_a_reason(served: Served) -> None:
    async with connect(f"ws://127.0.0.1:{served.port}/ws/events?token=not.a.token") as ws:
        m = await next_message(ws)
        assert m["type"] == "error" and m["error"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_token_that_lapses_while_connected_ends_the_stream() -> None:
    clock = ManualClock(T0)
    app = build(Config(database_url="sqlite://", password_hash="fast", token_minutes=30), clock=clock)
    try:
        host = accounts.host(app, "Hana")
        async with LoopbackServer(create_api(app)) as server, events(server.port, host.headers) as ws:
            clock.advance(31 * 60)
            hosted_charger(app, host.hid)  # its coming online is news for the host, but the token lapsed
            m = await next_message(ws)
            assert m["type"] == "error" and "expired" in m["detail"]
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT_S)
    finally:
        app.close()


@pytest.mark.redis
async def test_pushes_cross_server_processes_through_redis(tmp_path: Path, redis_client: object) -> None:
    """Two app instances (as two server processes would be: own buses, engines and connections) share
    a database and Redis. A booking made through one is heard by apps connected to the other."""
    config = Config(
        database_url=f"sqlite:///{tmp_path / 'shared.db'}",
        redis_url=REDIS_URL,
        jwt_secret="one secret shared by every process of the deployment",
        password_hash="fast",
    )
    a, b = build(config), build(config)
    try:
        host, driver = accounts.host(a, "Hana"), accounts.driver(a, "Dee", "DEE1")
        charger = hosted_charger(a, host.hid)
        async with (
            LoopbackServer(create_api(a)) as server_a,
            LoopbackServer(create_api(b)) as server_b,
            events(server_b.port, driver.headers) as d_on_b,
            events(server_a.port, host.headers) as h_on_a,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server_a.port}") as http_a,
        ):
            body = {"charger_id": charger, "minutes": 60, "max_energy_wh": 10_000}
            booked = (await http_a.post("/bookings", json=body, headers=driver.headers)).json()
            for ws in (d_on_b, h_on_a):  # each connection hears it once, whichever process holds it
                m = await next_message(ws)
                assert (m["type"], m["booking_id"]) == ("booking.confirmed", booked["id"])
            cancelled = await http_a.post(f"/bookings/{booked['id']}/cancel", headers=driver.headers)
            assert cancelled.status_code == 200
            assert (await next_message(d_on_b))["type"] == "booking.ended"
            assert (await next_message(h_on_a))["type"] == "booking.ended"
    finally:
        a.close()
        b.close()
