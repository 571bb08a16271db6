"""Points, boxes and great-circle distance for the map search."""

from __future__ import annotations

import math
from dataclasses import dataclass

from chargeshare.domain.errors import InvalidRequest

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise InvalidRequest(f"point out of range: lat={self.lat} lon={self.lon}")


@dataclass(frozen=True)
class BBox:
    """A lat/lon rectangle, west/south/east/north in degrees (no antimeridian crossing)."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        if not (-180 <= self.west <= self.east <= 180 and -90 <= self.south <= self.north <= 90):
            raise InvalidRequest(
                "bbox must be west,south,east,north with west<=east and south<=north, in degrees"
            )

    @classmethod
    def parse(cls, text: str) -> BBox:
        parts = text.split(",")
        if len(parts) != 4:
            raise InvalidRequest("bbox must be four numbers: west,south,east,north")
        try:
            w, s, e, n = (float(p) for p in parts)
        except ValueError as exc:
            raise InvalidRequest(f"bbox has a value that is not a number: {text!r}") from exc
        if not all(math.isfinite(v) for v in (w, s, e, n)):
            raise InvalidRequest("bbox values must be finite")
        return cls(w, s, e, n)

    @classmethod
    def around(cls, centre: Point, radius_m: float) -> BBox:
        """The smallest box holding every point within `radius_m` of `centre` (clamped to the globe).

        A circle is widest in longitude not at its centre's latitude but poleward of it, where its
        edge meets a meridian at a tangent: `asin(sin d / cos lat)` from the centre, d the angular
        radius. A circle reaching a pole spans every longitude."""
        d = radius_m / EARTH_RADIUS_M
        # Rounding may put a point on the circle a hair outside; a nanodegree (0.1 mm) holds it.
        dlat = math.degrees(d) + 1e-9
        south, north = centre.lat - dlat, centre.lat + dlat
        coslat = math.cos(math.radians(centre.lat))
        ratio = math.sin(d) / coslat if coslat > 0 else math.inf
        if south <= -90 or north >= 90 or ratio >= 1 or d >= math.pi / 2:
            west, east = -180.0, 180.0
        else:
            dlon = math.degrees(math.asin(ratio)) + 1e-9
            west, east = centre.lon - dlon, centre.lon + dlon
        return cls(max(-180.0, west), max(-90.0, south), min(180.0, east), min(90.0, north))

    def contains(self, p: Point) -> bool:
        return self.west <= p.lon <= self.east and self.south <= p.lat <= self.north


def distance_m(a: Point, b: Point) -> float:
    """Haversine distance on a spherical Earth, in metres."""
    return haversine_m(a.lat, a.lon, b.lat, b.lon)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """`distance_m` on bare degrees: SQLite calls it for every charger a map search looks at, where
    building two Points per row cost twice the arithmetic."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
