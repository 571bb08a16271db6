from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.services.clock import SystemClock


class OnLoopback:
    """What serves HTTP and OCPP on a loopback port: its two base URLs."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"


@dataclass
class Served(OnLoopback):
    app: App
    port: int


@contextlib.asynccontextmanager
async def serving(app: App, registry: ChargerRegistry | None = None) -> AsyncIterator[Served]:
    """`app` served in this event loop on a free loopback port, and closed afterwards."""
    try:
        async with LoopbackServer(create_api(app, registry)) as server:
            yield Served(app, server.port)
    finally:
        app.close()


def as_serve_runs(database_url: str = "sqlite://") -> Config:
    """As `chargeshare serve` by default: unregistered chargers may connect (and change nothing)."""
    return Config(database_url=database_url, allow_unknown_chargers=True, password_hash="fast")


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving(build(as_serve_runs(), clock=SystemClock())) as s:
        yield s


@dataclass
class Central(OnLoopback):
    """A served app with its charger registry, for tests that send the backend's commands."""

    app: App
    registry: ChargerRegistry
    port: int


@pytest.fixture
async def central() -> AsyncIterator[Central]:
    """As `serve` runs, unregistered chargers allowed, commands timing out after 5 s."""
    app = build(Config(database_url="sqlite://", allow_unknown_chargers=True), clock=SystemClock())
    registry = ChargerRegistry(app, call_timeout_s=5)
    async with LoopbackServer(create_api(app, registry)) as server:
        yield Central(app, registry, server.port)
    app.close()


def list_home_charger(app: App, cp_id: str, host_id: int) -> int:
    """A host's charger in Bristol with two 7.4 kW Type 2 connectors at 30p/kWh; its id."""
    connectors = (ConnectorSpec(1, ConnectorType.TYPE2, 7_400), ConnectorSpec(2, ConnectorType.TYPE2, 7_400))
    spec = ChargerSpec(cp_id, host_id, Point(51.45, -2.59), Tariff(30), connectors)
    return app.marketplace.add_charger(spec).charger_id
