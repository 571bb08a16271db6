"""Who is calling: bearer tokens to principals, role checks, and the caller's address for limits; and
what the routes serve from, read from the ASGI app's state (`create_api` puts it there).

The routers are built once per process and shared by every ASGI app made from them, so a route
reaches its `App`, registry, metrics and event hub through these dependencies, never a closure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chargeshare.adapters.event_fanout import EventHub
from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.errors import Forbidden, Unauthorized
from chargeshare.entrypoints.metrics import Metrics
from chargeshare.entrypoints.ocpp_server import ChargerRegistry

MAX_ID = 2**31 - 1  # ids are 32-bit in the database: larger ones are "not found", never an overflow
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
ConnectorNo = Annotated[int, Path(ge=1, le=99)]

bearer = HTTPBearer(auto_error=False, description="an access token from POST /auth/login")


# Coroutines, so they run on the event loop: a sync dependency takes a request thread, and a route
# with none (/health) answers while every such thread is busy.
async def the_app(conn: HTTPConnection) -> App:
    app: App = conn.app.state.app
    return app


async def the_registry(conn: HTTPConnection) -> ChargerRegistry:
    registry: ChargerRegistry = conn.app.state.registry
    return registry


async def the_metrics(conn: HTTPConnection) -> Metrics:
    metrics: Metrics = conn.app.state.metrics
    return metrics


async def the_hub(conn: HTTPConnection) -> EventHub:
    hub: EventHub = conn.app.state.hub
    return hub


AppDep = Annotated[App, Depends(the_app)]
RegistryDep = Annotated[ChargerRegistry, Depends(the_registry)]
MetricsDep = Annotated[Metrics, Depends(the_metrics)]
HubDep = Annotated[EventHub, Depends(the_hub)]


def principal(
    app: AppDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if creds is None:
        raise Unauthorized("sign in first: send 'Authorization: Bearer <access token>'")
    return app.auth.verify(creds.credentials)


def _role(*allowed: Role) -> Callable[[Principal], Principal]:
    def check(p: Annotated[Principal, Depends(principal)]) -> Principal:
        if p.role not in allowed:
            raise Forbidden(f"this needs the {' or '.join(r.value for r in allowed)} role")
        return p

    return check


Anyone = Annotated[Principal, Depends(principal)]
Driver = Annotated[Principal, Depends(_role(Role.DRIVER))]
Host = Annotated[Principal, Depends(_role(Role.HOST))]
Admin = Annotated[Principal, Depends(_role(Role.ADMIN))]
DriverOrHost = Annotated[Principal, Depends(_role(Role.DRIVER, Role.HOST))]
FleetOrAdmin = Annotated[Principal, Depends(_role(Role.FLEET, Role.ADMIN))]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
