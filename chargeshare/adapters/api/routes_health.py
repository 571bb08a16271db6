"""GET /health: liveness for operators and load balancers (no secrets, no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from chargeshare import __version__
from chargeshare.adapters.api.strict_json import StrictJsonRoute
from chargeshare.adapters.ocpp_server import ChargerRegistry
from chargeshare.bootstrap import App


class HealthOut(BaseModel):
    status: str
    version: str
    database: str
    chargers_connected: int


def router(app: App, registry: ChargerRegistry) -> APIRouter:
    r = APIRouter(tags=["health"], route_class=StrictJsonRoute)

    @r.get("/health")
    def health() -> HealthOut:
        return HealthOut(
            status="ok",
            version=__version__,
            database=app.store.dialect,
            chargers_connected=len(registry.links),
        )

    return r
