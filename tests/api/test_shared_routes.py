"""The API's routes are built once per process and shared by every app made from them; each app still
answers from its own `App` (its store, its registry), never another's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute

from chargeshare.bootstrap import App, Config
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.services.clock import ManualClock
from tests import api_helpers as accounts
from tests.conftest import T0, build_for_tests

FASTAPI_OWN = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _api_routes(api: FastAPI) -> list[BaseRoute]:
    """The app's routes, bar the schema and docs pages FastAPI adds to each app."""
    return [r for r in api.routes if getattr(r, "path", None) not in FASTAPI_OWN]


@pytest.fixture
def two_apps() -> Iterator[tuple[App, App]]:
    a = build_for_tests(Config(database_url="sqlite://", password_hash="fast"), clock=ManualClock(T0))
    b = build_for_tests(Config(database_url="sqlite://", password_hash="fast"), clock=ManualClock(T0))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_two_apps_share_the_same_route_objects(two_apps: tuple[App, App]) -> None:
    first, second = (_api_routes(create_api(app)) for app in two_apps)
    assert len(first) == len(second) > 0
    assert all(x is y for x, y in zip(first, second, strict=True))


async def test_each_app_answers_from_its_own_store(two_apps: tuple[App, App]) -> None:
    a, b = two_apps
    host = accounts.host(a, "host")
    spec = ChargerSpec(
        "CP1", host.hid, Point(51.45, -2.59), Tariff(40), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
    )
    charger_id = a.marketplace.add_charger(spec).charger_id
    api_a, api_b = create_api(a), create_api(b)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api_a), base_url="http://api") as on_a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api_b), base_url="http://api") as on_b,
    ):
        assert (await on_a.get(f"/chargers/{charger_id}")).status_code == 200
        assert (await on_b.get(f"/chargers/{charger_id}")).status_code == 404
        # The host's token is a's: b has no such account.
        assert (await on_a.get("/auth/me", headers=host.headers)).json()["host_id"] == host.hid
        assert (await on_b.get("/host/chargers", headers=host.headers)).status_code == 401
        assert [c["id"] for c in (await on_a.get("/host/chargers", headers=host.headers)).json()] == [
            charger_id
        ]
