"""V2G export on a booking: its driver sets the export terms; its driver or its charger's host reads
the export as metered and credited. Someone else's booking answers 404."""

from __future__ import annotations

from fastapi import APIRouter

from chargeshare.domain.command_backoff import Refusals
from chargeshare.entrypoints.api.deps import AppDep, Driver, DriverOrHost, Host, IdPath
from chargeshare.entrypoints.api.schemas import (
    ExportBuyerIn,
    ExportBuyerOut,
    ExportOut,
    ExportTermsIn,
    ExportTermsOut,
    RefusalsOut,
)
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.services.v2g import ExportView


def export_out(v: ExportView) -> ExportOut:
    r = v.record
    terms = None
    if v.terms is not None:
        terms = ExportTermsOut(
            price_per_kwh=v.terms.price_per_kwh, soc_floor_pct=v.terms.soc_floor_pct, set_at=v.terms.set_at
        )
    return ExportOut(
        booking_id=v.booking_id,
        terms=terms,
        exported_wh=r.metered_wh if r.exported_wh is None else r.exported_wh,
        credit=r.credit,
        soc_pct=r.soc_pct,
        lowest_soc_pct=r.lowest_soc_pct,
        settled=r.settled,
        buyer=str(r.buyer),
        charger_refusals=refusals_out(v.refusals),
    )


def refusals_out(r: Refusals | None) -> RefusalsOut | None:
    if r is None:
        return None
    return RefusalsOut(count=r.count, last_at=r.last_at, retry_at=r.retry_at, given_up=r.given_up)


router = APIRouter(prefix="/bookings", tags=["v2g"], route_class=StrictJsonRoute)


@router.put("/{booking_id}/export-terms", responses={409: {"description": "the booking has ended"}})
def set_terms(app: AppDep, booking_id: IdPath, body: ExportTermsIn, who: Driver) -> ExportOut:
    """Offer your car's energy back during the booking: the export price per kWh and the lowest
    state of charge it may be discharged to. Takes effect from the session's start."""
    app.v2g.set_terms(who, booking_id, body.price_per_kwh, body.soc_floor_pct)
    return export_out(app.v2g.export(who, booking_id))


@router.get("/{booking_id}/export")
def export(app: AppDep, booking_id: IdPath, who: DriverOrHost) -> ExportOut:
    """The booking's export terms, energy exported and the credit once the session stopped."""
    return export_out(app.v2g.export(who, booking_id))


# The calling host's choice of who buys its chargers' guests' export (no host id to change).
host_router = APIRouter(prefix="/host", tags=["v2g"], route_class=StrictJsonRoute)


@host_router.get("/export-buyer")
def buyer(app: AppDep, who: Host) -> ExportBuyerOut:
    """Who buys your guests' export: the grid buyer (the default) or your home."""
    return ExportBuyerOut(buyer=str(app.v2g.buyer(who)))


@host_router.put("/export-buyer")
def set_buyer(app: AppDep, body: ExportBuyerIn, who: Host) -> ExportBuyerOut:
    """Choose who buys your guests' export. Home: each credit is charged to your earnings. It
    applies to exports that start from now on; one already started keeps its buyer."""
    return ExportBuyerOut(buyer=str(app.v2g.set_buyer(who, body.buyer)))
