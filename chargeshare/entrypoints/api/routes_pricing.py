"""Prices: a host's pricing (flat, or dynamic within their bounds) and a charger's quote for a
window. The host's settings are only ever the calling host's own; quotes are public, as listings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.domain.dynamic_pricing import HostPricing, PricingMode, SmartTariff
from chargeshare.entrypoints.api.deps import AppDep, Driver, Host, IdPath
from chargeshare.entrypoints.api.schemas import (
    AwareInstant,
    HeldQuoteIn,
    HeldQuoteOut,
    HostPricingIn,
    HostPricingOut,
    Problem,
    QuoteOut,
)
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.services.pricing import Quote
from chargeshare.services.rules import MarketplaceRules

# A window as long as the longest booking (with the default rules).
Minutes = Annotated[int, Query(ge=1, le=MarketplaceRules().max_booking_minutes)]


def pricing_out(host_id: int, s: HostPricing | None) -> HostPricingOut:
    if s is None:
        return HostPricingOut(host_id=host_id, mode="flat", configured=False)
    return HostPricingOut(
        host_id=host_id,
        mode=s.mode.value,
        configured=True,
        floor_per_kwh=s.floor_per_kwh,
        ceiling_per_kwh=s.ceiling_per_kwh,
        own_day_per_kwh=s.own_tariff.day_per_kwh,
        own_night_per_kwh=s.own_tariff.night_per_kwh,
    )


def quote_out(q: Quote) -> QuoteOut:
    return QuoteOut(
        charger_id=q.charger_id,
        starts_at=q.starts_at,
        ends_at=q.ends_at,
        price_per_kwh=q.price.per_kwh,
        mode=q.price.mode.value,
        adjustments_bps=dict(q.price.adjustments),
        bounded_by=q.price.bounded_by,
        utilisation_permille=q.utilisation_permille,
    )


router = APIRouter(tags=["pricing"], route_class=StrictJsonRoute)


@router.get("/host/pricing")
def host_view(app: AppDep, who: Host) -> HostPricingOut:
    """Your pricing: flat (each charger's listed price) until you choose dynamic."""
    assert who.host_id is not None, "a host token always names its host"
    return pricing_out(who.host_id, app.pricing.settings(who.host_id))


@router.put("/host/pricing")
def host_set(app: AppDep, body: HostPricingIn, who: Host) -> HostPricingOut:
    """Choose flat or dynamic pricing, its floor and ceiling, and your own tariff (dynamic
    prices never go below it plus a margin). Bookings already made keep their price."""
    assert who.host_id is not None, "a host token always names its host"
    settings = HostPricing(
        PricingMode(body.mode),
        body.floor_per_kwh,
        body.ceiling_per_kwh,
        SmartTariff(body.own_day_per_kwh, body.own_night_per_kwh),
    )
    app.pricing.set_settings(who.host_id, settings)
    return pricing_out(who.host_id, settings)


@router.post(
    "/chargers/{charger_id}/quotes",
    status_code=201,
    responses={429: {"model": Problem, "description": "too many quotes held: see Retry-After"}},
)
def hold(app: AppDep, charger_id: IdPath, body: HeldQuoteIn, who: Driver) -> HeldQuoteOut:
    """A quote held for you until `expires_at`: a booking naming its `quote_id`, of this charger
    and window, is made at exactly its price, even if the price has moved since. It is used
    by one booking at most. Limited per account (429)."""
    assert who.driver_id is not None
    app.limiter.check("held_quote", f"driver:{who.driver_id}", app.config.limits.held_quote_per_account)
    q, held = app.pricing.hold(who.driver_id, charger_id, body.starts_at, body.minutes)
    return HeldQuoteOut(
        **quote_out(q).model_dump(),
        quote_id=held.quote_id,
        driver_id=held.driver_id,
        charge_now=held.immediate,
        quoted_at=held.quoted_at,
        expires_at=held.expires_at,
    )


@router.get("/chargers/{charger_id}/quote")
def quote(
    app: AppDep,
    charger_id: IdPath,
    starts_at: AwareInstant | None = None,
    minutes: Minutes = 60,
) -> QuoteOut:
    """The price per kWh a booking of this charger from `starts_at` (default now) for `minutes`
    would be charged if made now: fixed once booked."""
    return quote_out(app.pricing.quote(charger_id, starts_at, minutes))
