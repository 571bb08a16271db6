"""Records to response bodies."""

from __future__ import annotations

from chargeshare.domain.availability import WeeklyWindow
from chargeshare.entrypoints.api.schemas import (
    BookingOut,
    ChargerOut,
    ConnectorOut,
    HostChargerOut,
    ReceiptOut,
    SessionOut,
    WindowIO,
)
from chargeshare.services.queries.booking_views import BookingView
from chargeshare.services.queries.session_views import SessionView
from chargeshare.services.receipts import Receipt
from chargeshare.services.records import ChargerView


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


def host_charger_out(c: ChargerView, notes: str, windows: list[WeeklyWindow]) -> HostChargerOut:
    return HostChargerOut(
        **charger_out(c).model_dump(),
        boot_policy=c.boot_policy,
        access_notes=notes,
        availability=[
            WindowIO(weekday=w.weekday, start_minute=w.start_minute, end_minute=w.end_minute) for w in windows
        ],
        ocpp_version=c.ocpp_version,
        last_seen_at=c.last_seen_at,
    )


def receipt_out(r: Receipt) -> ReceiptOut:
    return ReceiptOut(
        booking_id=r.booking_id,
        energy_wh=r.energy_wh,
        price_per_kwh=r.price_per_kwh,
        energy_cost=r.energy_cost,
        idle_fee=r.idle_fee,
        cost=r.cost,
        platform_fee=r.platform_fee,
        vat=r.vat,
        host_share=r.host_share,
        unmetered=r.unmetered,
    )


def booking_out(v: BookingView) -> BookingOut:
    b = v.booking
    return BookingOut(
        id=b.booking_id,
        driver_id=b.driver_id,
        charger_id=b.charger_id,
        connector_id=b.connector_id,
        starts_at=b.starts_at,
        ends_at=b.ends_at,
        status=b.status.value,
        max_energy_wh=b.max_energy_wh,
        price_per_kwh=b.price_per_kwh,
        hold_amount=b.hold_amount,
        fee=b.fee,
        cancelled_by=b.cancelled_by,
        reservation=b.reservation,
        connector_held=b.connector_held,
        session_id=v.session_id,
        receipt=None if v.receipt is None else receipt_out(v.receipt),
        access_notes=v.access_notes or None,
        override_smart_charging=v.override_smart_charging,
    )


def session_out(v: SessionView) -> SessionOut:
    return SessionOut(
        id=v.session_id,
        booking_id=v.booking_id,
        charger_id=v.charger_id,
        status=v.status.value,
        started_at=v.started_at,
        stopped_at=v.stopped_at,
        energy_wh=v.energy_wh,
        cost=v.cost,
    )
