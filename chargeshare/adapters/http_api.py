"""The HTTP and WebSocket server: one ASGI app with the REST API and the OCPP endpoint.

Routes are thin: parse, call a service, map domain errors to a status with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chargeshare import __version__
from chargeshare.adapters.ocpp_server import ChargerRegistry
from chargeshare.bootstrap import App
from chargeshare.domain import errors
from chargeshare.domain.charger import ConnectorType
from chargeshare.domain.geo import BBox, Point
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.money import split_fee
from chargeshare.domain.search import SearchQuery
from chargeshare.services.booking import BookRequest
from chargeshare.services.records import BookingRecord, ChargerView

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.DomainError], int] = {
    errors.NotFound: 404,
    errors.BookingConflict: 409,
    errors.InvalidTransition: 409,
    errors.PaymentDeclined: 402,
    errors.PaymentUnavailable: 503,
    errors.InvalidRequest: 400,
}


class ConnectorOut(BaseModel):
    connector_no: int
    type: str
    max_power_w: int
    status: str


class ChargerOut(BaseModel):
    id: int
    charge_point_id: str
    host_id: int
    title: str
    lat: float
    lon: float
    price_per_kwh: int = Field(description="pence per kWh")
    status: str
    connectors: list[ConnectorOut]
    distance_m: float | None = Field(default=None, description="from the centre, for radius searches")


class DriverIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    id_tag: str = Field(min_length=1, max_length=20)


class DriverOut(BaseModel):
    id: int
    name: str
    id_tag: str


class BookingIn(BaseModel):
    driver_id: int
    charger_id: int
    connector_no: int = 1
    minutes: int = Field(ge=1, le=24 * 60)
    max_energy_wh: int = Field(ge=1)
    starts_at: datetime | None = Field(default=None, description="omit to charge now")


class CancelIn(BaseModel):
    driver_id: int | None = Field(default=None, description="cancel as the booking's driver")
    host_id: int | None = Field(default=None, description="cancel as the charger's host")


class ReceiptOut(BaseModel):
    energy_wh: int
    cost: int = Field(description="pence captured")
    idle_fee: int = Field(description="pence for staying plugged in after charging, included in cost")
    host_share: int
    platform_fee: int


class BookingOut(BaseModel):
    id: int
    driver_id: int
    charger_id: int
    connector_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    max_energy_wh: int
    hold_amount: int
    fee: int = Field(description="no-show or late-cancellation fee charged, pence")
    cancelled_by: str | None = None
    reservation: str = Field(description="none | sent | accepted: the charger's answer to ReserveNow")
    session_id: int | None = None
    receipt: ReceiptOut | None = None


def charger_out(c: ChargerView) -> ChargerOut:
    return ChargerOut(
        id=c.charger_id,
        charge_point_id=c.charge_point_id,
        host_id=c.host_id,
        title=c.title,
        lat=c.location.lat,
        lon=c.location.lon,
        price_per_kwh=c.price_per_kwh,
        status=c.status.value,
        distance_m=None if c.distance_m is None else round(c.distance_m, 1),
        connectors=[
            ConnectorOut(
                connector_no=x.connector_no,
                type=x.type.value,
                max_power_w=x.max_power_w,
                status=x.status.value,
            )
            for x in c.connectors
        ],
    )


HOUSEKEEPING_EVERY_SIMULATED_S = 30
MIN_HOUSEKEEPING_REAL_S = 0.05


async def housekeeping(app: App) -> None:
    """Periodic work that time alone triggers: reservations coming due, no-shows expiring."""
    while True:
        await asyncio.sleep(
            max(MIN_HOUSEKEEPING_REAL_S, app.clock.real_seconds(HOUSEKEEPING_EVERY_SIMULATED_S))
        )
        try:
            app.bookings.reservations_due()
            app.bookings.expire_no_shows()
            app.settlement.process_due()
            app.charging.watchdog()
        except Exception:
            log.exception("housekeeping failed; trying again next round")


def create_api(app: App, registry: ChargerRegistry | None = None) -> FastAPI:
    registry = registry or ChargerRegistry(app)

    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(housekeeping(app))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    api = FastAPI(title="ChargeShare", version=__version__, lifespan=lifespan)
    api.state.app = app
    api.state.registry = registry

    @api.exception_handler(errors.DomainError)
    async def domain_error(_request: Request, exc: errors.DomainError) -> JSONResponse:
        status = next((s for cls, s in STATUS_OF.items() if isinstance(exc, cls)), 400)
        return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=status)

    api.include_router(_health_router(app, registry))
    api.include_router(_chargers_router(app))
    api.include_router(_drivers_router(app))
    api.include_router(_bookings_router(app))
    api.include_router(_admin_router(app))

    @api.websocket("/ocpp/{charge_point_id}")
    async def ocpp(ws: WebSocket, charge_point_id: str) -> None:
        await registry.serve(ws, charge_point_id)

    return api


def _health_router(app: App, registry: ChargerRegistry) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "database": app.store.dialect,
            "chargers_connected": len(registry.links),
        }

    return router


def _chargers_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/chargers", tags=["chargers"])

    @router.get("")
    def search(
        bbox: Annotated[
            str | None,
            Query(description="west,south,east,north in degrees", examples=["-2.7,51.4,-2.5,51.5"]),
        ] = None,
        lat: Annotated[float | None, Query(ge=-90, le=90, description="radius search centre")] = None,
        lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
        radius_m: Annotated[float | None, Query(gt=0, le=200_000)] = None,
        connector_type: ConnectorType | None = None,
        min_power_w: Annotated[int | None, Query(ge=0)] = None,
        max_price_per_kwh: Annotated[int | None, Query(ge=0, description="pence")] = None,
        available_from: datetime | None = None,
        available_until: datetime | None = None,
        available_now: Annotated[bool, Query(description="free for the next booking slot from now")] = False,
        online: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[ChargerOut]:
        if available_now:
            if available_from is not None or available_until is not None:
                raise errors.InvalidRequest("give available_now or an available_from/until window, not both")
            available_from = app.clock.now()
            available_until = available_from + timedelta(minutes=app.config.rules.min_booking_minutes)
        centre = None
        if lat is not None or lon is not None:
            if lat is None or lon is None:
                raise errors.InvalidRequest("a radius search needs lat, lon and radius_m")
            centre = Point(lat, lon)
        query = SearchQuery(
            bbox=None if bbox is None else BBox.parse(bbox),
            centre=centre,
            radius_m=radius_m,
            connector_type=connector_type,
            min_power_w=min_power_w,
            max_price_per_kwh=max_price_per_kwh,
            available_from=available_from,
            available_until=available_until,
            online_only=online,
            limit=limit,
        )
        return [charger_out(c) for c in app.marketplace.search(query)]

    @router.get("/{charger_id}")
    def get(charger_id: int) -> ChargerOut:
        with app.store.transaction() as tx:
            return charger_out(tx.charger_by_id(charger_id))

    return router


def _drivers_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/drivers", tags=["drivers"])

    @router.post("", status_code=201)
    def register(body: DriverIn) -> DriverOut:
        d = app.marketplace.add_driver(body.name, body.id_tag)
        return DriverOut(id=d.driver_id, name=d.name, id_tag=d.id_tag)

    return router


def booking_out(app: App, b: BookingRecord) -> BookingOut:
    with app.store.transaction() as tx:
        session = tx.session_for_booking(b.booking_id)
        entries = tx.entries(b.booking_id)
    receipt = None
    rules = app.config.rules
    # A cost beyond the hold is captured in more than one step: the receipt is ready once all are.
    splits = [
        split_fee(e.amount, rules.platform_fee_bps, rules.vat_bps)
        for e in entries
        if e.kind is EntryKind.CAPTURE
    ]
    captured = sum(x.total for x in splits)
    if (
        session is not None
        and session.billed_wh is not None
        and session.cost is not None
        and captured >= session.cost
    ):
        receipt = ReceiptOut(
            idle_fee=session.idle_fee,
            energy_wh=session.billed_wh,
            cost=captured,
            host_share=sum(x.host_share for x in splits),
            platform_fee=sum(x.platform_fee for x in splits),
        )
    return BookingOut(
        id=b.booking_id,
        driver_id=b.driver_id,
        charger_id=b.charger_id,
        connector_id=b.connector_id,
        starts_at=b.starts_at,
        ends_at=b.ends_at,
        status=b.status.value,
        max_energy_wh=b.max_energy_wh,
        hold_amount=b.hold_amount,
        fee=b.fee,
        cancelled_by=b.cancelled_by,
        reservation=b.reservation,
        session_id=None if session is None else session.session_id,
        receipt=receipt,
    )


def _bookings_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/bookings", tags=["bookings"])

    @router.post("", status_code=201, responses={409: {"description": "connector already booked"}})
    def book(body: BookingIn) -> BookingOut:
        record = app.bookings.book(
            BookRequest(
                driver_id=body.driver_id,
                charger_id=body.charger_id,
                connector_no=body.connector_no,
                minutes=body.minutes,
                max_energy_wh=body.max_energy_wh,
                starts_at=body.starts_at,
            )
        )
        return booking_out(app, record)

    @router.get("/{booking_id}")
    def get(booking_id: int) -> BookingOut:
        with app.store.transaction() as tx:
            record = tx.booking(booking_id)
        return booking_out(app, record)

    @router.post("/{booking_id}/cancel")
    def cancel(booking_id: int, body: CancelIn) -> BookingOut:
        return booking_out(
            app, app.bookings.cancel(booking_id, driver_id=body.driver_id, host_id=body.host_id)
        )

    return router


class PaymentStepOut(BaseModel):
    id: int
    booking_id: int
    step: str
    amount: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


class OutboxRunOut(BaseModel):
    done: int
    retried: int
    dead: int
    dead_letters_left: int


def _admin_router(app: App) -> APIRouter:
    """Operator endpoints. Not yet behind authentication: bind the server to loopback until it is."""
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.get("/payments")
    def payments(
        status: Annotated[str | None, Query(pattern="^(pending|done|dead)$")] = None,
    ) -> list[PaymentStepOut]:
        with app.store.transaction() as tx:
            items = tx.payments(status)
        return [
            PaymentStepOut(
                id=i.item_id,
                booking_id=i.booking_id,
                step=i.step,
                amount=i.amount,
                status=i.status,
                attempts=i.attempts,
                next_attempt_at=i.next_attempt_at,
                last_error=i.last_error,
            )
            for i in items
        ]

    @router.post("/payments/reconcile")
    def reconcile() -> OutboxRunOut:
        run = app.settlement.reconcile()
        with app.store.transaction() as tx:
            left = len(tx.payments("dead"))
        return OutboxRunOut(done=run.done, retried=run.retried, dead=run.dead, dead_letters_left=left)

    @router.post("/payouts")
    def payouts() -> dict[str, int]:
        return {str(host): pence for host, pence in app.settlement.pay_out_hosts().items()}

    return router
