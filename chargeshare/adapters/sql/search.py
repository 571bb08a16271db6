"""The map search: the matching chargers nearest the query's origin first, one statement per shape.

What it returns is `SearchQuery`'s promise: every charger in the area passing the filters, ordered by
great-circle distance from the origin (a radius search's centre, a box's middle), ties by id, the
first `limit`. Neither backend looks at more than it must to know those are the first:

- PostGIS: one index-ordered nearest-neighbour scan of the GiST index on (location, offer)
  (`ORDER BY location <-> origin LIMIT n`), bounded by `ST_DWithin(location, origin, reach)`. The
  price and power filters are checked in the index (each charger's offer, `schema.chargers`), the
  rest on each charger the scan yields, so it stops after the first `n` that pass. The planner,
  estimating far fewer rows past the filters than there are, would rather fetch
  every charger in the area and sort them (hundreds of milliseconds at a million chargers in a
  city), so the search's transaction disables explicit sorts, sequential scans and JIT for itself
  (`set_config(..., true)`). The index orders by distance alone; ties are put in id order here,
  and a tie across the cut fetches more.
- SQLite: no index orders by distance, so the search asks the R*Tree for growing circles around the
  origin: the chargers within radius r of it lie inside `BBox.around(origin, r)`, so when a circle
  already holds `limit` matches they are exactly the first `limit` of the whole area (everything
  outside is farther), at the cost of the circle's chargers rather than the area's. Each circle is
  sized from the matches the last one found, assuming they are spread evenly. The price and power
  filters are R*Tree constraints too (the offer as three more dimensions, `sqlite_geo`), so a
  charger that cannot match is passed over in the R*Tree's C scan without its row being read.

Hosts' weekly calendars are applied after the SQL filters; when they remove some, more rows are
fetched.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from geoalchemy2 import Geography
from sqlalchemy import Connection, Float, Integer, bindparam, cast, func, literal_column, select, text

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.rows import CHARGER_COLUMNS, hydrate, live_overlap, one_of
from chargeshare.adapters.sql.sqlite_geo import RTREE_POWER_COLUMN, distance_expr, power_floor, price_floor
from chargeshare.domain.availability import WeeklyWindow, covers
from chargeshare.domain.booking import LIVE_STATES
from chargeshare.domain.charger import BootPolicy, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import BBox
from chargeshare.domain.search import SearchQuery
from chargeshare.services.records import ChargerView

Calendars = Callable[[Sequence[int]], dict[int, list[WeeklyWindow]]]

# SQLite's first circle, in metres: a city block holds a search's matches at a million chargers; an
# emptier area costs a few more circles, each a cheap R*Tree probe.
_FIRST_RING_M = 300.0
# How much a circle may grow at once: more wastes work on a circle far larger than needed, less
# costs more statements where chargers are sparse.
_MAX_GROWTH = 4.0
# After a circle with fewer matches than this the density guess is mostly noise; growing further
# costs little (the R*Tree checks the price and power itself), another circle costs a statement.
_FEW_FOUND, _FEW_FOUND_GROWTH = 10, 8.0
# Rows fetched beyond `limit` when hosts' calendars will drop some (about a fifth of chargers have
# one, most windows fall inside it); `_MAX_GROWTH` times as many each time it was not enough.
_CALENDAR_SLACK = 1.25
# The PostGIS search statement's plan: order from the index, not a sort; the connectors checked by
# their index, never a scan of the table (estimating one charger past the filters, the planner may
# take a semi-join on a sequential scan, cheap for one and seconds for a hundred); no JIT for a
# millisecond query. Set for the transaction before it and put back after it: the statements that
# follow (the calendars, the connectors) need their sorts.
_PLAN_SETTINGS = text(
    "SELECT current_setting('enable_sort'), current_setting('enable_seqscan'), current_setting('jit'), "
    "set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true), "
    "set_config('jit', 'off', true)"
)
_RESTORE_SETTINGS = text(
    "SELECT set_config('enable_sort', :sort, true), set_config('enable_seqscan', :seqscan, true), "
    "set_config('jit', :jit, true)"
)


class _SearchShape(NamedTuple):
    """Which filters a map search uses: each shape gets one statement, built once, with bound values."""

    dialect: str
    box: bool
    max_price: bool
    online_only: bool
    connector_type: str | None  # its value: each type's offer is a column of its own
    min_power: bool
    window: bool


@functools.lru_cache(maxsize=256)
def _statement(shape: _SearchShape) -> DirectStatement:
    """The matches within `reach` of the origin (SQLite: within `cut` of it, inside the R*Tree box
    `west..north`), nearest first, at most `most`. PostGIS orders by distance alone (the index's
    order); SQLite by distance, then id."""
    c, k, b = t.chargers.c, t.connectors.c, t.bookings.c
    lat, lon = bindparam("origin_lat", type_=Float), bindparam("origin_lon", type_=Float)
    conds: list[Any] = []
    if shape.box:
        # The exact box: the spatial prefilters below hold every charger in it, and more.
        conds += [
            c.lon >= bindparam("box_west", type_=Float),
            c.lon <= bindparam("box_east", type_=Float),
            c.lat >= bindparam("box_south", type_=Float),
            c.lat <= bindparam("box_north", type_=Float),
        ]
    # The offer: a charger none of whose connectors has the type and power cannot match. Checked
    # in the index (PostGIS) or the R*Tree's own scan (SQLite, `sqlite_geo`), before the charger's
    # row is read.
    offer_conds: list[Any] = []
    if shape.dialect == "sqlite":
        rt = t.charger_rtree.c
        if shape.max_price:
            offer_conds.append(rt.neg_price >= bindparam("price_floor", type_=Float))
        if shape.connector_type is not None:
            power = rt[RTREE_POWER_COLUMN[shape.connector_type]]
            offer_conds.append(power >= bindparam("power_floor", type_=Float))
        elif shape.min_power:
            offer_conds.append(rt.best_w >= bindparam("power_floor", type_=Float))
    else:
        if shape.max_price:
            offer_conds.append(c.price_per_kwh <= bindparam("max_price"))
        if shape.connector_type is not None:
            kind = ConnectorType(shape.connector_type)
            offer_conds.append(c[t.POWER_COLUMN[kind]] >= bindparam("offer_power", type_=Integer))
        elif shape.min_power:
            offer_conds.append(c.best_power_w >= bindparam("offer_power", type_=Integer))
    if shape.dialect == "postgresql":
        conds += offer_conds
        location = literal_column("chargers.location", Geography(srid=4326))
        origin = cast(func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326), Geography(srid=4326))
        # Sphere, not spheroid, so both backends measure distance the same way; `<->` on geography
        # is the same distance on the sphere, and the one the index orders by.
        conds.append(func.ST_DWithin(location, origin, bindparam("reach", type_=Float), False))
        distance: Any = location.op("<->", return_type=Float)(origin)
        order: list[Any] = [distance]
    else:
        west, east = bindparam("west", type_=Float), bindparam("east", type_=Float)
        south, north = bindparam("south", type_=Float), bindparam("north", type_=Float)
        conds.append(
            c.id.in_(
                select(rt.id).where(
                    rt.min_lon <= east,
                    rt.max_lon >= west,
                    rt.min_lat <= north,
                    rt.max_lat >= south,
                    *offer_conds,
                )
            )
        )
        distance = distance_expr(c.lat, c.lon, lat, lon)
        conds.append(distance <= bindparam("cut", type_=Float))
        order = [distance, c.id]
    conds.append(c.boot_policy == BootPolicy.ACCEPTED.value)  # only chargers in service are found
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
    stmt = select(*CHARGER_COLUMNS, distance).where(*conds).order_by(*order)
    return DirectStatement(stmt.limit(bindparam("most", type_=Integer)))


def search(conn: Connection, dialect: str, query: SearchQuery, calendars: Calendars) -> list[ChargerView]:
    """Chargers matching the query, nearest its origin first, then by id (`SearchQuery`).
    `calendars` gives hosts' weekly windows, applied after the SQL filters."""
    origin = query.origin
    reach = query.reach_m
    calendar = query.available_from is not None
    shape = _SearchShape(
        dialect,
        query.bbox is not None,
        query.max_price_per_kwh is not None,
        query.online_only,
        None if query.connector_type is None else query.connector_type.value,
        query.min_power_w is not None,
        calendar,
    )
    params: dict[str, Any] = {
        "origin_lat": origin.lat,
        "origin_lon": origin.lon,
        "reach": reach,
        "max_price": query.max_price_per_kwh,
        "connector_type": None if query.connector_type is None else query.connector_type.value,
        "min_power": query.min_power_w,
        # A type's column is -1 where the charger has none of it, so a type alone asks for 0 W.
        "offer_power": query.min_power_w or 0,
        "power_floor": power_floor(query.min_power_w or 0),
        "price_floor": None if query.max_price_per_kwh is None else price_floor(query.max_price_per_kwh),
        "window_from": query.available_from,
        "window_until": query.available_until,
    }
    if query.bbox is not None:
        box = query.bbox
        params.update(box_west=box.west, box_east=box.east, box_south=box.south, box_north=box.north)
    # PostGIS needs no circles: its scan stops by itself.
    ring = reach if dialect == "postgresql" else min(_FIRST_RING_M, reach)
    stmt = _statement(shape)
    most = math.ceil(query.limit * _CALENDAR_SLACK) + 1 if calendar else query.limit + 1
    while True:
        final = ring >= reach
        if dialect == "sqlite":
            # Padded: a charger on the circle must be inside the box for the argument to hold.
            around = BBox.around(origin, ring * 1.01 + 1.0)
            area = query.area
            params.update(
                west=max(around.west, area.west),
                east=min(around.east, area.east),
                south=max(around.south, area.south),
                north=min(around.north, area.north),
                cut=reach if final else ring,
            )
        params["most"] = most
        if dialect == "postgresql":
            sort, seqscan, jit, *_ = conn.execute(_PLAN_SETTINGS).one()
            rows = stmt.rows(conn, params)
            conn.execute(_RESTORE_SETTINGS, {"sort": sort, "seqscan": seqscan, "jit": jit})
        else:
            rows = stmt.rows(conn, params)
        truncated = len(rows) == most
        # Every charger nearer than the last row fetched was fetched, so those are complete.
        nearer_than = rows[-1][-1] if truncated else math.inf
        rows.sort(key=lambda r: (r[-1], r[0]))
        if calendar:
            assert query.available_from is not None and query.available_until is not None
            since, until = query.available_from, query.available_until
            cal = calendars([r[0] for r in rows])
            rows = [r for r in rows if covers(cal.get(r[0], []), since, until)]
        complete = [r for r in rows if r[-1] < nearer_than] if truncated else rows
        if len(complete) >= query.limit or (final and not truncated):
            picked = complete[: query.limit]
            break
        if truncated:
            most = math.ceil(most * _MAX_GROWTH)
        else:
            # Grow the circle to where, at the density this one showed, `limit` matches would be.
            found = max(len(rows), 1)
            most_growth = _FEW_FOUND_GROWTH if found < _FEW_FOUND else _MAX_GROWTH
            ring = min(reach, ring * min(most_growth, max(1.5, 1.2 * math.sqrt(query.limit / found))))
    return hydrate(conn, picked, with_distance=query.centre is not None)
