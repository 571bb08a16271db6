"""What a driver's map asks for: an area (box or radius) and filters.

The answer: every charger in the area that passes the filters, nearest the query's origin first (a
radius search's centre, a box's middle; great-circle distance on a spherical Earth, `geo`), ties by
charger id, at most `limit` of them. Nearest first is what a map wants (the pins around where the
driver looks) and what a spatial index can produce without reading the whole area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.charger import ConnectorType
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.geo import EARTH_RADIUS_M, BBox, Point, distance_m
from chargeshare.domain.instants import RANGE, in_range

MAX_RADIUS_M = 200_000
MAX_LIMIT = 500
# Added to a box's reach (`SearchQuery.reach_m`) so that rounding in another implementation of the
# same distance cannot leave a corner outside it.
_REACH_PAD_M = 1.0


@dataclass(frozen=True)
class SearchQuery:
    bbox: BBox | None = None
    centre: Point | None = None
    radius_m: float | None = None
    connector_type: ConnectorType | None = None
    min_power_w: int | None = None
    max_price_per_kwh: int | None = None
    # A connector must be free (no live booking, inside the host's calendar) for the whole window.
    available_from: datetime | None = None
    available_until: datetime | None = None
    online_only: bool = False
    limit: int = 100

    def __post_init__(self) -> None:
        radius = self.centre is not None or self.radius_m is not None
        if (self.bbox is None) == (not radius):
            raise InvalidRequest("search by bbox, or by centre and radius: exactly one of them")
        if radius and (self.centre is None or self.radius_m is None):
            raise InvalidRequest("a radius search needs both a centre and a radius")
        if self.radius_m is not None and not 0 < self.radius_m <= MAX_RADIUS_M:
            raise InvalidRequest(f"radius must be between 0 and {MAX_RADIUS_M} metres")
        if not 0 < self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
        if (self.available_from is None) != (self.available_until is None):
            raise InvalidRequest("an availability window needs both a start and an end")
        if self.available_from is not None and self.available_until is not None:
            if self.available_from.tzinfo is None or self.available_until.tzinfo is None:
                raise InvalidRequest("availability times must be timezone-aware")
            if not (in_range(self.available_from) and in_range(self.available_until)):
                raise InvalidRequest(f"availability times must lie {RANGE}")
            if self.available_until <= self.available_from:
                raise InvalidRequest("an availability window must end after it starts")
        if self.min_power_w is not None and self.min_power_w < 0:
            raise InvalidRequest("min_power_w cannot be negative")
        if self.max_price_per_kwh is not None and self.max_price_per_kwh < 0:
            raise InvalidRequest("max_price_per_kwh cannot be negative")

    @property
    def area(self) -> BBox:
        """The box that holds every possible match (the radius's bounding box for radius searches)."""
        if self.bbox is not None:
            return self.bbox
        assert self.centre is not None and self.radius_m is not None
        return BBox.around(self.centre, self.radius_m)

    @property
    def origin(self) -> Point:
        """Where results are measured from, nearest first: the centre, or the middle of the box."""
        if self.centre is not None:
            return self.centre
        assert self.bbox is not None
        b = self.bbox
        return Point((b.south + b.north) / 2, (b.west + b.east) / 2)

    @property
    def reach_m(self) -> float:
        """No match is farther than this from `origin`: the radius, or the box's farthest corner."""
        if self.radius_m is not None:
            return self.radius_m
        assert self.bbox is not None
        b, o = self.bbox, self.origin
        if b.east - b.west > 180:
            # Past half the globe's width a box's farthest point need not be a corner.
            return math.pi * EARTH_RADIUS_M
        corners = (Point(lat, lon) for lat in (b.south, b.north) for lon in (b.west, b.east))
        return max(distance_m(o, p) for p in corners) + _REACH_PAD_M
