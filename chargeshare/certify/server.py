"""The certifier's own endpoint: a Central System that registers the charger under test, serves
ws://HOST:PORT/ocpp/{id} with the backend's registry, and records every frame."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket

from chargeshare.bootstrap import App
from chargeshare.certify.harness import CertificationRegistry, TestBench
from chargeshare.certify.wirelog import WireLog
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import NotFound
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp.frames import MAX_FRAME_BYTES


@dataclass(frozen=True)
class Credentials:
    charge_point_id: str
    password: str | None


def register(app: App, cp_id: str, password: str | None) -> Credentials:
    """Register the charger under test with its password (a charger registered before keeps its
    record and gets the new password); None registers it without one (a development fleet)."""
    try:
        with app.store.transaction() as tx:
            tx.chargers.get(cp_id)
    except NotFound:
        host = app.marketplace.add_host("Certification bench")
        spec = ChargerSpec(
            cp_id,
            host,
            Point(51.5, -0.12),
            Tariff(1),
            (ConnectorSpec(1, ConnectorType.TYPE2, 7_400),),
            title="Charger under certification",
        )
        app.marketplace.add_charger(spec, password=password)
    else:
        if password is not None:
            app.marketplace.set_charger_password(cp_id, password)
    return Credentials(cp_id, password)


def ocpp_endpoint(registry: CertificationRegistry) -> FastAPI:
    api = FastAPI(title="ChargeShare certification")

    @api.websocket("/ocpp/{charge_point_id}")
    async def ocpp(ws: WebSocket, charge_point_id: str) -> None:
        await registry.serve(ws, charge_point_id)

    return api


class CertificationServer:
    """Serve the endpoint in the running loop (port 0: the OS picks one)."""

    def __init__(
        self, app: App, cp_id: str, tags: set[str], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = app
        self.bench = TestBench(tags)
        self.registry = CertificationRegistry(app, self.bench)
        self.log = WireLog(cp_id)
        self._untap = self.registry.add_tap(self.log.tap)
        config = uvicorn.Config(
            ocpp_endpoint(self.registry),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            ws_max_size=MAX_FRAME_BYTES,
            ws_ping_interval=None,
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def ocpp_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ocpp"

    async def __aenter__(self) -> CertificationServer:
        self._task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 10
        while not self.server.started:
            if self._task.done() or time.monotonic() > deadline:
                raise RuntimeError("the certification endpoint did not start")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._untap()
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)
