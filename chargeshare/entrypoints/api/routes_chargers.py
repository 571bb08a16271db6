"""The public map: search chargers by box or radius with filters, and look one up. No sign-in needed:
listings are public; hosts' notes and calendars are not shown here."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.domain import errors
from chargeshare.domain.charger import ConnectorType
from chargeshare.domain.geo import BBox, Point
from chargeshare.domain.search import SearchQuery
from chargeshare.entrypoints.api.deps import AppDep, IdPath
from chargeshare.entrypoints.api.schemas import ChargerOut, Instant
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.entrypoints.api.views import charger_out

router = APIRouter(prefix="/chargers", tags=["chargers"], route_class=StrictJsonRoute)


@router.get("")
def search(
    app: AppDep,
    bbox: Annotated[
        str | None,
        Query(description="west,south,east,north in degrees", examples=["-2.7,51.4,-2.5,51.5"]),
    ] = None,
    lat: Annotated[
        float | None, Query(ge=-90, le=90, allow_inf_nan=False, description="radius search centre")
    ] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180, allow_inf_nan=False)] = None,
    radius_m: Annotated[float | None, Query(gt=0, le=200_000, allow_inf_nan=False)] = None,
    connector_type: ConnectorType | None = None,
    min_power_w: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    max_price_per_kwh: Annotated[int | None, Query(ge=0, le=1_000_000, description="pence")] = None,
    available_from: Instant | None = None,
    available_until: Instant | None = None,
    available_now: Annotated[bool, Query(description="free for the next booking slot from now")] = False,
    online: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ChargerOut]:
    """Chargers in the box (`bbox`) or within `radius_m` of `lat`,`lon` that pass every filter,
    nearest first: to the centre of a radius search, to the middle of a box (great-circle
    distance), ties by charger id; at most `limit`. `distance_m` is given for radius searches."""
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
def get(app: AppDep, charger_id: IdPath) -> ChargerOut:
    return charger_out(app.queries.chargers.public(charger_id))
