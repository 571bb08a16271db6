"""Operations endpoints for operators, load balancers and Prometheus (no secrets, no auth):
`/health` (a summary), `/healthz` (the process answers), `/readyz` (its database, and Redis when
configured, answer too) and `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chargeshare import __version__
from chargeshare.bootstrap import App
from chargeshare.entrypoints.api.deps import AppDep, MetricsDep, RegistryDep
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.entrypoints.metrics import CONTENT_TYPE


class HealthOut(BaseModel):
    status: str
    version: str
    database: str
    chargers_connected: int


class ReadyOut(BaseModel):
    status: str  # "ready" or "not ready"
    checks: dict[str, str]  # what was checked: "ok" or why not


def readiness(app: App) -> dict[str, str]:
    """Each dependency a request needs, "ok" or the reason it failed."""
    checks: dict[str, str] = {}
    try:
        app.queries.admin.check_database()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is for the operator
        checks["database"] = f"{type(exc).__name__}: {exc}"[:200]
    if app.config.redis_url is not None and app.redis is not None:
        try:
            checks["redis"] = "ok" if app.redis.ping() else "no answer to PING"
        except Exception as exc:
            checks["redis"] = f"{type(exc).__name__}: {exc}"[:200]
    return checks


router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


# On the event loop, not in the request threads: it touches nothing but memory, and answers even
# while every request thread waits on a slow payment provider or database.
@router.get("/health")
async def health(app: AppDep, registry: RegistryDep) -> HealthOut:
    return HealthOut(
        status="ok",
        version=__version__,
        database=app.store.dialect,
        chargers_connected=len(registry.links),
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: answered by the event loop itself, touching nothing else."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(app: AppDep) -> Any:
    checks = readiness(app)
    ready = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
def prometheus(metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
