"""The HTTP and WebSocket server: one ASGI app with the REST API, live push and the OCPP endpoint.

One router per resource; routes are thin: check who is calling, call a service, map domain errors to
a status with a reason (`{"error": code, "detail": sentence}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from chargeshare import __version__
from chargeshare.adapters.command_routing import router_for
from chargeshare.adapters.event_fanout import EventHub, channel_for
from chargeshare.adapters.payments_worker import PaymentsWorker
from chargeshare.adapters.shared_clock import FollowedClock
from chargeshare.adapters.sql import SqlStore
from chargeshare.bootstrap import App
from chargeshare.domain import errors
from chargeshare.domain.rate_limit import retry_after_header
from chargeshare.entrypoints.api import (
    routes_admin,
    routes_admin_commands,
    routes_admin_reports,
    routes_auth,
    routes_bookings,
    routes_chargers,
    routes_events,
    routes_files,
    routes_fleets,
    routes_grid,
    routes_grid_buyer,
    routes_health,
    routes_host_chargers,
    routes_host_money,
    routes_host_seller_details,
    routes_pricing,
    routes_sessions,
    routes_smart_charging,
    routes_tokens,
    routes_v2g,
)
from chargeshare.entrypoints.api.deps import RegistryDep
from chargeshare.entrypoints.api.fleet_schemas import block_conflict_out
from chargeshare.entrypoints.api.housekeeping import housekeeping
from chargeshare.entrypoints.api.schemas import Problem
from chargeshare.entrypoints.metrics import Metrics
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.services.fleet import BlockConflict
from chargeshare.services.live_push import LivePush

STATUS_OF: dict[type[errors.DomainError], int] = {
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.RateLimited: 429,
    errors.NotFound: 404,
    errors.BookingConflict: 409,
    errors.InvalidTransition: 409,
    errors.ConcurrentChange: 409,
    errors.PriceAboveLimit: 409,
    errors.QuoteExpired: 409,
    errors.QuoteMismatch: 422,
    errors.PaymentDeclined: 402,
    errors.PaymentUnavailable: 503,
    errors.Busy: 503,
    errors.IdempotencyKeyReused: 422,
    errors.InvalidRequest: 400,
}

HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}

_problem: dict[str, Any] = {"model": Problem}
SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {**_problem, "description": "no token, or a wrong or expired one"},
    403: {**_problem, "description": "this role may not do that"},
}
COMMON: dict[int | str, dict[str, Any]] = {
    400: {**_problem, "description": "the request breaks a rule; `detail` says which"},
    404: {**_problem, "description": "no such thing, or not yours"},
}


OCPP_PATH = re.compile(r"/ocpp/([^/]+)")


class _Api(FastAPI):
    """FastAPI, except that a charger's WebSocket goes straight to the registry.

    Through the middleware stack and router, every connection kept some 20 coroutine frames and their
    closures alive (about 200 objects for the garbage collector to scan, per charger), and each frame
    to or from the charger was passed through all of them. Anything the plain pattern does not cover
    (a root path, say) still takes the route declared in `_routes`, which does the same."""

    ocpp_registry: ChargerRegistry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not scope.get("root_path"):
            match = OCPP_PATH.fullmatch(scope["path"])
            if match is not None:
                scope["app"] = self
                await self.ocpp_registry.serve(WebSocket(scope, receive, send), match.group(1))
                return
        await super().__call__(scope, receive, send)


async def _ocpp(ws: WebSocket, charge_point_id: str, registry: RegistryDep) -> None:
    await registry.serve(ws, charge_point_id)


@cache
def _routes() -> tuple[BaseRoute, ...]:
    """Every route of the API, built once per process: building a route (its dependencies, its
    models' validators) costs far more than an app, and each app (a test's, say) shares them. The
    routes hold nothing of one app: a route reaches its app's `App`, registry, metrics and hub
    through the request (`deps`)."""
    shared = APIRouter()
    signed_in = {**COMMON, **SIGNED_IN}
    limited: dict[int | str, dict[str, Any]] = {
        429: {**_problem, "description": "too many requests: see Retry-After"}
    }
    shared.include_router(routes_health.router)
    shared.include_router(
        routes_auth.router,
        responses={
            **signed_in,
            **limited,
            503: {**_problem, "description": "too many passwords being checked at once: see Retry-After"},
        },
    )
    shared.include_router(routes_chargers.router, responses=COMMON)
    shared.include_router(routes_host_chargers.router, responses=signed_in)
    shared.include_router(
        routes_bookings.router,
        responses={
            **signed_in,
            **limited,
            402: {**_problem, "description": "card declined"},
            409: {**_problem, "description": "booked already, or not allowed in its state"},
            503: {**_problem, "description": "the payment provider is unavailable; nothing was booked"},
        },
    )
    for router in (
        routes_sessions.router,
        routes_host_money.router,
        routes_host_seller_details.router,
        routes_admin.router,
        routes_admin_commands.router,
        routes_admin_reports.router,
    ):
        shared.include_router(router, responses=signed_in)
    shared.include_router(
        routes_files.router,
        responses={**signed_in, 409: {**_problem, "description": "that location has its upload already"}},
    )
    for router in (
        routes_tokens.router,
        routes_smart_charging.router,
        routes_pricing.router,
        routes_fleets.router,
        routes_grid.router,
        routes_v2g.router,
        routes_v2g.host_router,
        routes_grid_buyer.router,
    ):
        shared.include_router(router, responses=signed_in)
    shared.include_router(routes_events.router)

    shared.add_api_websocket_route("/ocpp/{charge_point_id}", _ocpp)
    return tuple(shared.routes)


def create_api(app: App, registry: ChargerRegistry | None = None) -> FastAPI:
    router = None
    if registry is None:
        # With Redis, commands reach chargers whichever process holds their link.
        router = router_for(app.config.redis_url, app.config.database_url)
        registry = ChargerRegistry(app, router=router)
    hub = EventHub(app.config.redis_url, channel_for(app.config.database_url))
    payments = PaymentsWorker(app.settlement, app.clock)
    metrics = Metrics(app, registry.connected)
    registry.metrics = metrics
    if isinstance(app.store, SqlStore):
        app.store.unit_observers.append(metrics.unit_of_work_seconds.observe)
    LivePush(app.store, app.config.rules, hub.publish, hub.heard).subscribe(app.bus)

    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        ready = asyncio.Event()
        payments.start()
        tasks = [asyncio.create_task(housekeeping(app)), asyncio.create_task(hub.relay(ready))]
        if isinstance(app.clock, FollowedClock):  # a simulation's backend: it holds time while starved
            tasks.append(asyncio.create_task(app.clock.keep_pace()))
        if app.config.redis_url is not None:
            # Serve only once subscribed, so no push published meanwhile is missed.
            await asyncio.wait_for(ready.wait(), timeout=10)
        await registry.start()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await registry.stop()
            if router is not None:
                await router.close()
            await asyncio.to_thread(payments.stop)
            hub.close()
            if isinstance(app.store, SqlStore):
                with contextlib.suppress(ValueError):
                    app.store.unit_observers.remove(metrics.unit_of_work_seconds.observe)

    api = _Api(title="ChargeShare", version=__version__, lifespan=lifespan, routes=list(_routes()))
    api.ocpp_registry = registry
    api.state.app = app
    api.state.registry = registry
    api.state.hub = hub
    api.state.metrics = metrics
    api.state.payments = payments

    @api.exception_handler(errors.DomainError)
    async def domain_error(_request: Request, exc: errors.DomainError) -> JSONResponse:
        status = next((s for cls, s in STATUS_OF.items() if isinstance(exc, cls)), 400)
        headers = {}
        if isinstance(exc, errors.Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, errors.RateLimited | errors.Busy | errors.RequestInProgress):
            headers["Retry-After"] = retry_after_header(exc.retry_after_s)
        body: dict[str, Any] = {"error": exc.code, "detail": str(exc)}
        if isinstance(exc, BlockConflict):  # which occurrences clash, so the fleet can act on them
            body = block_conflict_out(exc).model_dump(mode="json")
        return JSONResponse(body, status_code=status, headers=headers)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own refusals (a body that is not JSON, an unknown path) in the same shape.
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(
            {"error": code, "detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    return api
