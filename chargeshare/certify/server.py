"""The certifier's own endpoint: a Central System that registers the charger under test, serves
ws://HOST:PORT/ocpp/{id} with the backend's registry, and records every frame."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse

from chargeshare.bootstrap import App
from chargeshare.certify.context import Settings
from chargeshare.certify.harness import CertificationRegistry, TestBench
from chargeshare.certify.wirelog import WireLog
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import DomainError, NotFound
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


CERTIFICATION_IMAGE = b"ChargeShare certification test image: not firmware, never to be run\n" * 64


def served_locations(app: App, settings: Settings, charger_id: str, ocpp_url: str) -> Settings:
    """Without a firmware URL or an upload location given, the certifier serves its own: a test
    image to download, and a location for one diagnostics upload, on the endpoint's HTTP side
    (`ocpp_url`, as the charger reaches it, less its /ocpp)."""
    base = re.sub(r"^ws", "http", ocpp_url.rstrip("/")).removesuffix("/ocpp")
    if settings.firmware_url is None:
        image = app.files.publish_firmware("certification-image.bin", CERTIFICATION_IMAGE)
        settings = replace(settings, firmware_url=f"{base}/files/{image.token}")
    if settings.diagnostics_url is None:
        settings = replace(settings, diagnostics_url=f"{base}/files/{app.files.log_slot(charger_id).token}")
    return settings


def ocpp_endpoint(registry: CertificationRegistry) -> FastAPI:
    """The charger's WebSocket, and the locations it downloads firmware from and uploads logs to."""
    from chargeshare.entrypoints.api import STATUS_OF
    from chargeshare.entrypoints.api.routes_files import charger_router

    api = FastAPI(title="ChargeShare certification")
    api.state.app = registry.app  # where the files routes find the store
    api.include_router(charger_router)

    @api.exception_handler(DomainError)
    async def refused(_request: Request, exc: DomainError) -> JSONResponse:
        status = next((s for cls, s in STATUS_OF.items() if isinstance(exc, cls)), 400)
        return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=status)

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
