from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from chargeshare.adapters.http_api import create_api
from chargeshare.adapters.loopback import LoopbackServer
from chargeshare.bootstrap import App, Config, build
from chargeshare.services.clock import SystemClock


@dataclass
class Served:
    app: App
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    # As `chargeshare serve` by default: unregistered chargers may connect (and change nothing).
    app = build(
        Config(database_url="sqlite://", allow_unknown_chargers=True, password_hash="fast"),
        clock=SystemClock(),
    )
    async with LoopbackServer(create_api(app)) as server:
        yield Served(app, server.port)
    app.close()
