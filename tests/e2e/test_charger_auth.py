"""Charger authentication on the WebSocket upgrade (HTTP Basic, OCPP security profile 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.asyncio.client import connect

from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.credentials import basic_auth_header
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer

pytestmark = pytest.mark.e2e
PASSWORD = "correct-horse-battery"


@pytest.fixture
async def strict() -> AsyncIterator[tuple[App, str]]:
    app = build(Config(database_url="sqlite://"))  # unknown chargers refused
    host = app.marketplace.add_host("h")
    spec = ChargerSpec(
        "SECURE", host, Point(51.5, -0.1), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
    )
    app.marketplace.add_charger(spec, password=PASSWORD)
    async with LoopbackServer(create_api(app)) as server:
        yield app, f"ws://127.0.0.1:{server.port}/ocpp"
    app.close()


async def status_of(url: str, headers: dict[str, str]) -> int:
    try:
        async with connect(url, subprotocols=["ocpp1.6"], additional_headers=headers):  # type: ignore[list-item]
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


async def test_the_right_password_connects_and_anything_else_is_refused(strict: tuple[App, str]) -> None:
    _, url = strict
    assert await status_of(f"{url}/SECURE", {"Authorization": basic_auth_header("SECURE", PASSWORD)}) == 101
    assert await status_of(f"{url}/SECURE", {"Authorization": basic_auth_header("SECURE", "x" * 20)}) == 401
    assert await status_of(f"{url}/SECURE", {"Authorization": basic_auth_header("OTHER", PASSWORD)}) == 401
    assert await status_of(f"{url}/SECURE", {"Authorization": "Basic !!!not-base64"}) == 401
    assert await status_of(f"{url}/SECURE", {}) == 401
    assert await status_of(f"{url}/STRANGER", {}) == 401  # unknown ids are refused by default


def test_passwords_are_stored_hashed_and_checked_for_length(app: App) -> None:
    from chargeshare.domain.errors import InvalidRequest

    host = app.marketplace.add_host("h")
    spec = ChargerSpec(
        "H1", host, Point(51.5, -0.1), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
    )
    with pytest.raises(InvalidRequest):
        app.marketplace.add_charger(spec, password="short")
    app.marketplace.add_charger(spec, password=PASSWORD)
    with app.store.transaction() as tx:
        stored = tx.chargers.credentials("H1").password_hash
    assert stored is not None and PASSWORD not in stored and stored.startswith("pbkdf2_sha256$")
