"""The map search: one statement per shape of query (which filters it uses), built once.

SQLite: an R*Tree box prefilter and the haversine in SQL arithmetic (`sqlite_geo`); a radius search
with a booking window tries smaller circles first. PostGIS: the `geom &&` envelope, `ST_DWithin` on
the sphere and KNN `<->` on the GiST-indexed geography column. Hosts' weekly calendars are applied
after the SQL filters.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from geoalchemy2 import Geography
from sqlalchemy import Connection, Float, Integer, bindparam, cast, func, literal_column, select

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.rows import CHARGER_COLUMNS, hydrate, live_overlap, one_of
from chargeshare.adapters.sql.sqlite_geo import distance_expr
from chargeshare.domain.availability import WeeklyWindow, covers
from chargeshare.domain.booking import LIVE_STATES
from chargeshare.domain.charger import ChargerStatus, ConnectorStatus
from chargeshare.domain.geo import BBox
from chargeshare.domain.search import SearchQuery
from chargeshare.services.records import ChargerView

Calendars = Callable[[Sequence[int]], dict[int, list[WeeklyWindow]]]

# Fractions of a radius search's radius tried first on SQLite (see `search`): at most a third more
# work when none holds enough matches, a small fraction of it when one does.
_INNER_RINGS = (0.125, 0.25, 0.5)


class _SearchShape(NamedTuple):
    """Which filters a map search uses: each shape gets one statement, built once, with bound values."""

    dialect: str
    centre: bool
    max_price: bool
    online_only: bool
    connector_type: bool
    min_power: bool
    window: bool
    limited: bool


@functools.lru_cache(maxsize=256)
def _statement(shape: _SearchShape) -> DirectStatement:
    c, k, b = t.chargers.c, t.connectors.c, t.bookings.c
    west, east = bindparam("west", type_=Float), bindparam("east", type_=Float)
    south, north = bindparam("south", type_=Float), bindparam("north", type_=Float)
    conds: list[Any] = [c.lon >= west, c.lon <= east, c.lat >= south, c.lat <= north]
    distance: Any = None
    knn: Any = None
    lat, lon = bindparam("centre_lat", type_=Float), bindparam("centre_lon", type_=Float)
    radius = bindparam("radius", type_=Float)
    if shape.dialect == "postgresql":
        envelope = func.ST_MakeEnvelope(west, south, east, north, 4326)
        conds.append(literal_column("chargers.geom").op("&&")(envelope))
        if shape.centre:
            location = literal_column("chargers.location", Geography(srid=4326))
            point = cast(func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326), Geography(srid=4326))
            # Sphere, not spheroid, so both backends measure distance the same way.
            conds.append(func.ST_DWithin(location, point, radius, False))
            distance = func.ST_Distance(location, point, False)
            knn = location.op("<->")(point)
    else:
        rt = t.charger_rtree.c
        conds.append(
            c.id.in_(
                select(rt.id).where(
                    rt.min_lon <= east, rt.max_lon >= west, rt.min_lat <= north, rt.max_lat >= south
                )
            )
        )
        if shape.centre:
            distance = distance_expr(c.lat, c.lon, lat, lon)
            conds.append(distance <= radius)
            knn = distance
    if shape.max_price:
        conds.append(c.price_per_kwh <= bindparam("max_price"))
    if shape.online_only:
        status: Any = c.status
        if shape.dialect == "sqlite":
            # `status || ''` keeps SQLite's planner off ix_chargers_status_seen (the watchdog's
            # index): without statistics it would scan every online charger instead of the R*Tree
            # box, which made a search at 10,000 chargers cost the whole fleet.
            status = c.status.concat(literal_column("''"))
        conds.append(status == ChargerStatus.ONLINE.value)
    connector_conds: list[Any] = [k.charger_id == c.id]
    if shape.connector_type:
        connector_conds.append(k.type == bindparam("connector_type"))
    if shape.min_power:
        connector_conds.append(k.max_power_w >= bindparam("min_power"))
    if shape.online_only:
        out_of_use = [ConnectorStatus.FAULTED.value, ConnectorStatus.UNAVAILABLE.value]
        connector_conds.append(~one_of(k.status, out_of_use))
    if shape.window:
        window = (
            bindparam("window_from", type_=t.UTCDateTime()),
            bindparam("window_until", type_=t.UTCDateTime()),
        )
        clash = select(b.id).where(*live_overlap(k.id, *window, LIVE_STATES))
        connector_conds.append(~clash.exists())
    conds.append(select(k.id).where(*connector_conds).exists())

    columns: list[Any] = [*CHARGER_COLUMNS] if distance is None else [*CHARGER_COLUMNS, distance]
    stmt = select(*columns).where(*conds)
    stmt = stmt.order_by(c.id) if distance is None else stmt.order_by(knn, c.id)
    if shape.limited:
        stmt = stmt.limit(bindparam("most", type_=Integer))
    return DirectStatement(stmt)


def search(conn: Connection, dialect: str, query: SearchQuery, calendars: Calendars) -> list[ChargerView]:
    """Chargers matching the query: by id for a box, nearest first (then id) for a radius.
    `calendars` gives hosts' weekly windows, applied after the SQL filters."""
    if dialect == "sqlite" and query.centre is not None and query.radius_m is not None:
        # SQLite has no nearest-first index: it measures every charger in the box, then sorts. Try
        # smaller circles first: when one already holds `limit` matches, they are exactly the first
        # `limit` of the whole radius (everything beyond it is farther), at a fraction of the work.
        for fraction in _INNER_RINGS:
            radius = query.radius_m * fraction
            inner = dataclasses.replace(query, radius_m=radius)
            # The box is padded: a ring's matches must all be found for the argument to hold.
            found = _search_once(
                conn, dialect, calendars, inner, BBox.around(query.centre, radius * 1.01 + 1.0)
            )
            if len(found) >= query.limit:
                return found
    return _search_once(conn, dialect, calendars, query, query.area)


def _search_once(
    conn: Connection, dialect: str, calendars: Calendars, query: SearchQuery, area: BBox
) -> list[ChargerView]:
    window = query.available_from, query.available_until
    timed = window[0] is not None and window[1] is not None
    calendar = window[0] is not None
    shape = _SearchShape(
        dialect,
        query.centre is not None,
        query.max_price_per_kwh is not None,
        query.online_only,
        query.connector_type is not None,
        query.min_power_w is not None,
        timed,
        not calendar,
    )
    params: dict[str, Any] = {
        "west": area.west,
        "east": area.east,
        "south": area.south,
        "north": area.north,
        "max_price": query.max_price_per_kwh,
        "connector_type": None if query.connector_type is None else query.connector_type.value,
        "min_power": query.min_power_w,
        "window_from": window[0],
        "window_until": window[1],
        "most": query.limit,
    }
    if query.centre is not None:
        params.update(centre_lat=query.centre.lat, centre_lon=query.centre.lon, radius=query.radius_m)
    stmt = _statement(shape)
    distance = query.centre is not None
    picked: list[Any] = []
    for candidates in stmt.batches(conn, params, max(query.limit, 100)):
        if calendar:
            assert window[0] is not None and window[1] is not None
            cal = calendars([r[0] for r in candidates])
            candidates = [r for r in candidates if covers(cal.get(r[0], []), window[0], window[1])]
        picked.extend(candidates[: query.limit - len(picked)])
        if len(picked) >= query.limit:
            break
    return hydrate(conn, picked, with_distance=distance)
