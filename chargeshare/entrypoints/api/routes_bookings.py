"""Bookings: drivers book and cancel; hosts see and cancel bookings on their chargers. Someone else's
booking answers 404, as if it did not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from chargeshare.domain.accounts import Role
from chargeshare.entrypoints.api.deps import AppDep, Driver, DriverOrHost, IdPath
from chargeshare.entrypoints.api.schemas import BookingIn, BookingOut, OverrideOut, ReceiptOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.entrypoints.api.views import booking_out, receipt_out
from chargeshare.services.booking import BookRequest

# A client's name for one booking attempt (Stripe's convention: a UUID or any unique string).
RequestKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
]


router = APIRouter(prefix="/bookings", tags=["bookings"], route_class=StrictJsonRoute)


@router.post(
    "",
    status_code=201,
    responses={
        409: {
            "description": "connector already booked, this request still being made, the price "
            "above your limit, or the named quote expired or used"
        },
        422: {
            "description": "the Idempotency-Key was used for a different request, or the named "
            "quote is for another charger or window"
        },
    },
)
def book(app: AppDep, body: BookingIn, who: Driver, idempotency_key: RequestKey = None) -> BookingOut:
    """Book a connector for a period and place the card hold. Limited per account (429).

    Send an `Idempotency-Key` (any unique string per booking attempt) to make sending the request
    again safe when its answer was lost: the same request under the same key answers as the first
    did (the booking it made, or why not), 409 `request_in_progress` with Retry-After while the
    first is still placing the card hold, and 422 if the key was used for a different request."""
    assert who.driver_id is not None
    app.limiter.check("booking", f"driver:{who.driver_id}", app.config.limits.booking_per_account)
    record = app.bookings.book(
        BookRequest(
            driver_id=who.driver_id,
            charger_id=body.charger_id,
            connector_no=body.connector_no,
            minutes=body.minutes,
            max_energy_wh=body.max_energy_wh,
            starts_at=body.starts_at,
            override_smart_charging=body.override_smart_charging,
            max_price_per_kwh=body.max_price_per_kwh,
            quote_id=body.quote_id,
        ),
        request_key=idempotency_key,
    )
    return booking_out(app.queries.bookings.of_made(who, record, body.override_smart_charging))


@router.get("")
def mine(app: AppDep, who: DriverOrHost) -> list[BookingOut]:
    """A driver's own bookings, or those on a host's chargers, newest first."""
    return [booking_out(v) for v in app.queries.bookings.mine(who)]


@router.get("/{booking_id}")
def get(app: AppDep, booking_id: IdPath, who: DriverOrHost) -> BookingOut:
    return booking_out(app.queries.bookings.get(who, booking_id))


@router.post("/{booking_id}/cancel")
def cancel(app: AppDep, booking_id: IdPath, who: DriverOrHost) -> BookingOut:
    """Cancel before charging starts: as its driver (a fee if late) or as the charger's host (free
    for the driver)."""
    app.queries.bookings.visible(who, booking_id)
    if who.role is Role.DRIVER:
        cancelled = app.bookings.cancel(booking_id, driver_id=who.driver_id)
    else:
        cancelled = app.bookings.cancel(booking_id, host_id=who.host_id)
    return booking_out(app.queries.bookings.of_record(who, cancelled))


@router.post("/{booking_id}/override", responses={409: {"description": "the booking has ended"}})
def override(app: AppDep, booking_id: IdPath, who: Driver) -> OverrideOut:
    """Charge now: override the charger's randomised delay and default charging hours for this
    booking (your right under the UK's Smart Charge Points Regulations 2021). A session already
    running has its charger told at once, and asked again until it takes the override."""
    told = app.smart.override(who, booking_id)
    return OverrideOut(booking_id=booking_id, charger_told_now=told)


@router.get("/{booking_id}/receipt")
def receipt(app: AppDep, booking_id: IdPath, who: DriverOrHost) -> ReceiptOut:
    """Energy, price, fee and the VAT line; 404 until the session is stopped and paid."""
    return receipt_out(app.queries.bookings.receipt(who, booking_id))
