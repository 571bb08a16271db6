"""Hostile input on the OCPP endpoint, over real loopback WebSockets: each gets OCPP's or the WebSocket
protocol's answer, never an unhandled exception or a link dropped without one (1006)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from chargeshare.bootstrap import Config, build
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.services.clock import SystemClock
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e

WAIT_S = 10
VERSIONS = [("ocpp1.6", "FormationViolation"), ("ocpp2.0.1", "FormatViolation")]


async def answer(ws: ClientConnection, frame: str | bytes) -> list[Any]:
    await ws.send(frame)
    reply: list[Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
    return reply


async def heartbeat_answered(ws: ClientConnection) -> bool:
    reply = await answer(ws, '[2,"hb","Heartbeat",{}]')
    return reply[:2] == [3, "hb"]


async def upgrade_status(url: str) -> int:
    try:
        async with connect(url, subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize(("subprotocol", "code"), VERSIONS)
async def test_a_frame_nested_too_deep_gets_a_callerror_and_the_link_lives(
    served: Served, subprotocol: str, code: str
) -> None:
    deep = 20_000
    async with connect(f"{served.ws}/DEEP", subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        nested = '[2,"deep-1","Heartbeat",{"a":' + "[" * deep + "]" * deep + "}]"
        assert (await answer(ws, nested))[:3] == [4, "deep-1", code]
        unclosed = '[2,"deep-2","Heartbeat",' + "[" * deep
        assert (await answer(ws, unclosed))[:3] == [4, "deep-2", code]
        assert await heartbeat_answered(ws)


@pytest.mark.parametrize(("subprotocol", "code"), VERSIONS)
async def test_numbers_json_does_not_have_get_a_format_callerror(
    served: Served, subprotocol: str, code: str
) -> None:
    async with connect(f"{served.ws}/NAN", subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        for n, token in enumerate(["NaN", "Infinity", "-Infinity", "1e400"]):
            frame = f'[2,"n{n}","DataTransfer",{{"vendorId":"v","data":{token}}}]'
            assert (await answer(ws, frame))[:3] == [4, f"n{n}", code]
        assert await heartbeat_answered(ws)


@pytest.mark.parametrize("subprotocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_a_binary_frame_closes_the_link_as_unsupported_data(served: Served, subprotocol: str) -> None:
    async with connect(f"{served.ws}/BIN", subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        assert await heartbeat_answered(ws)
        await ws.send(b'[2,"b1","Heartbeat",{}]')
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    async with httpx.AsyncClient(base_url=served.http) as http:
        for _ in range(300):  # bounded: the server notes the close just after sending it
            if (await http.get("/health")).json()["chargers_connected"] == 0:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the closed link is still listed as connected")
    async with connect(f"{served.ws}/BIN", subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        assert await heartbeat_answered(ws)  # the server and the charger's id are fine


# ---- charge point ids ---------------------------------------------------------------------------
BAD_IDS = {
    "NUL": "A%00B",
    "control character": "A%01B",
    "newline": "A%0AB",
    "delete": "A%7FB",
    "zero-width space": "A%E2%80%8BB",
    "longer than 48": "X" * 49,
}


@pytest.mark.parametrize("cp_id", BAD_IDS.values(), ids=BAD_IDS.keys())
async def test_charge_point_ids_that_cannot_be_stored_are_refused_at_the_upgrade(
    served: Served, cp_id: str
) -> None:
    assert await upgrade_status(f"{served.ws}/{cp_id}") == 401
    assert await upgrade_status(f"{served.ws}/{'X' * 48}") == 101


@pytest.fixture
async def on_postgres(postgres_url: str) -> AsyncIterator[str]:
    app = build(
        Config(database_url=postgres_url, allow_unknown_chargers=True, password_hash="fast"),
        clock=SystemClock(),
    )
    try:
        async with LoopbackServer(create_api(app)) as server:
            yield f"ws://127.0.0.1:{server.port}/ocpp"
    finally:
        app.close()


@pytest.mark.postgres
@pytest.mark.parametrize("cp_id", BAD_IDS.values(), ids=BAD_IDS.keys())
async def test_on_postgresql_an_id_it_cannot_store_is_refused_not_a_server_error(
    on_postgres: str, cp_id: str
) -> None:
    assert await upgrade_status(f"{on_postgres}/{cp_id}") == 401
    async with connect(f"{on_postgres}/FINE", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert await heartbeat_answered(ws)


@pytest.mark.postgres
async def test_on_postgresql_a_string_holding_nul_is_the_chargers_error(on_postgres: str) -> None:
    async with connect(f"{on_postgres}/FINE", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        frame = json.dumps([2, "nul", "Authorize", {"idTag": "A\x00B"}])
        assert (await answer(ws, frame))[:3] == [4, "nul", "PropertyConstraintViolation"]
        assert await heartbeat_answered(ws)
