"""`chargeshare bench geo`: map search over a UK-wide fleet, our store against the best hand-written SQL.

For each backend a fresh database is created with the store's own schema (`SqlStore.create_schema()`)
and bulk-loaded (SQLite: `executemany` in one transaction, including the `charger_rtree` rows;
PostgreSQL: `COPY`, the generated `geom`/`location` columns fill themselves, then `ANALYZE`): chargers
with their status, connectors, hosts' calendars and live bookings (`UkFleet`).

Two query kinds (boxes, radii) with a driver's usual filters run against it, the same seeded queries
for "ours" and "best":

- ours: `store.reading()` + `tx.chargers.search(SearchQuery(...))`, the real code path (as
  `MarketplaceService.search`), hydrated into `ChargerView`s, in one reading transaction.
- best: the fastest hand-written SQL we know for the same answer (`BestSearch`: an index-ordered
  nearest-neighbour scan on PostGIS, expanding boxes on SQLite's R*Tree) through the raw DBAPI cursor
  of the same engine, in one transaction, rows as tuples.

Latency is `time.perf_counter_ns()` around each call, after a warm-up; ours and best alternate which
goes first, query by query. Every query's charger ids, in order, and their connector ids are compared
between the two. Targets: ours <= 1.5x best, and p99 <= 20 ms, at p50 and p99.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

from chargeshare.adapters.sql import SqlStore
from chargeshare.adapters.sql.schema import POWER_COLUMN, utc_to_sqlite_text
from chargeshare.adapters.sql.sqlite_geo import (
    RTREE_OFFER_COLUMNS,
    RTREE_POWER_COLUMN,
    distance_sql,
    power_floor,
    price_floor,
    rtree_offer,
)
from chargeshare.benchmarks.databases import temporary_postgres, temporary_sqlite
from chargeshare.benchmarks.stats import Latency, ratio
from chargeshare.domain.availability import WeeklyWindow, covers
from chargeshare.domain.booking import LIVE_STATES, BookingStatus
from chargeshare.domain.charger import ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import BBox, Point
from chargeshare.domain.search import SearchQuery
from chargeshare.ocpp import V16
from chargeshare.services.records import ChargerView

TARGET_RATIO = 1.5
TARGET_P99_MS = 20.0
QUERY_LIMIT = 100
BATCH = 20_000
Kind = Literal["bbox", "radius"]
KINDS: tuple[Kind, ...] = ("bbox", "radius")

# (name, lat, lon, weight): where most chargers are, roughly by population.
UK_CITIES: tuple[tuple[str, float, float, int], ...] = (
    ("London", 51.5072, -0.1276, 30),
    ("Birmingham", 52.4862, -1.8904, 8),
    ("Manchester", 53.4808, -2.2426, 8),
    ("Leeds", 53.8008, -1.5491, 5),
    ("Glasgow", 55.8642, -4.2518, 5),
    ("Liverpool", 53.4084, -2.9916, 4),
    ("Bristol", 51.4545, -2.5879, 4),
    ("Sheffield", 53.3811, -1.4701, 4),
    ("Edinburgh", 55.9533, -3.1883, 4),
    ("Newcastle", 54.9783, -1.6178, 3),
    ("Nottingham", 52.9548, -1.1581, 3),
    ("Leicester", 52.6369, -1.1398, 3),
    ("Cardiff", 51.4816, -3.1791, 3),
    ("Belfast", 54.5973, -5.9301, 3),
    ("Southampton", 50.9097, -1.4044, 3),
    ("Brighton", 50.8225, -0.1372, 3),
    ("Reading", 51.4543, -0.9781, 2),
    ("Oxford", 51.7520, -1.2577, 2),
    ("Cambridge", 52.2053, 0.1218, 2),
    ("Milton Keynes", 52.0406, -0.7594, 2),
    ("Peterborough", 52.5695, -0.2405, 2),
    ("Hull", 53.7676, -0.3274, 2),
    ("Norwich", 52.6309, 1.2974, 2),
    ("Plymouth", 50.3755, -4.1427, 2),
    ("Aberdeen", 57.1497, -2.0943, 2),
    ("Exeter", 50.7184, -3.5339, 1),
    ("Lincoln", 53.2307, -0.5406, 1),
    ("Chelmsford", 51.7356, 0.4685, 1),
    ("Canterbury", 51.2802, 1.0789, 1),
    ("Ipswich", 52.0567, 1.1482, 1),
    ("Inverness", 57.4778, -4.2247, 1),
)
UK_BOX = BBox(-8.2, 49.9, 1.8, 58.7)  # west, south, east, north
# Where the Greenwich meridian runs over England (Peacehaven to Tunstall).
MERIDIAN_LATS = (50.80, 53.70)

_OFFER_POWER = ("best_power_w", *POWER_COLUMN.values())
_CHARGER_COLUMNS = (
    "id, charge_point_id, host_id, title, lat, lon, price_per_kwh, status, ocpp_version, "
    + ", ".join(_OFFER_POWER)
)
_RTREE_COLUMNS = "id, min_lon, max_lon, min_lat, max_lat, " + ", ".join(RTREE_OFFER_COLUMNS)
_CONNECTOR_COLUMNS = "id, charger_id, connector_no, type, max_power_w, status, fence_token"
_SELECT_CHARGER = (
    "c.id, c.charge_point_id, c.host_id, c.title, c.lat, c.lon, c.price_per_kwh, c.status, "
    "c.ocpp_version, c.last_seen_at"
)


# ---- the fleet -------------------------------------------------------------------------------------
# The instant the workload's availability windows are asked about; bookings lie around it.
T0 = datetime(2025, 6, 4, 11, 0, tzinfo=UTC)  # a Wednesday, noon in London

ChargerRow = tuple[int, str, int, str, float, float, int, str, str | None]
ConnectorRow = tuple[int, int, int, str, int, str, int]
WindowRow = tuple[int, int, int, int]  # charger_id, weekday, start_minute, end_minute
BookingRow = tuple[int, int, int, datetime, datetime, str, int, int, int, datetime, int, str]

# Hosts' weekly calendars (UK local time), one picked per charger that has one.
CALENDARS: tuple[tuple[tuple[int, int, int], ...], ...] = (
    tuple((d, 7 * 60, 22 * 60) for d in range(7)),  # daytime, every day
    tuple((d, 9 * 60, 17 * 60) for d in range(5)),  # office hours
    tuple(w for d in range(7) for w in ((d, 0, 8 * 60), (d, 18 * 60, 24 * 60))),  # overnight
)


@dataclass(frozen=True)
class FleetBatch:
    chargers: list[ChargerRow]
    connectors: list[ConnectorRow]
    windows: list[WindowRow]
    bookings: list[BookingRow]


class UkFleet:
    """A seeded, UK-wide fleet generated in batches (never all in memory at once).

    80% of chargers sit within a few km of a city (weighted by size), the rest scattered up to
    ~50 km around one. 75% are online (their connectors mostly Available, some Charging, Faulted or
    Unavailable), 15% offline, 10% registered and never booted. A fifth have a weekly calendar;
    a tenth of connectors have a live booking within hours of `T0`. Ids are assigned here, 1..n for
    chargers and 1..m for connectors.
    """

    def __init__(self, chargers: int, seed: int) -> None:
        if chargers < 1:
            raise ValueError("a fleet needs at least one charger")
        self.size = chargers
        self.seed = seed
        self.hosts = max(1, chargers // 20)
        self.drivers = max(1, chargers // 50)
        self.connectors = 0  # known after a full iteration
        self.bookings = 0

    def batches(self, batch: int = BATCH) -> Iterator[FleetBatch]:
        rng = random.Random(f"fleet-{self.seed}")
        cum = _cum_weights()
        types = [t.value for t in ConnectorType]
        powers = (3_700, 7_400, 7_400, 11_000, 22_000, 50_000)
        online, offline = ChargerStatus.ONLINE.value, ChargerStatus.OFFLINE.value
        registered = ChargerStatus.REGISTERED.value
        S = ConnectorStatus
        in_use = [S.AVAILABLE.value] * 16 + [S.CHARGING.value] * 2 + [S.FAULTED.value, S.UNAVAILABLE.value]
        confirmed = BookingStatus.CONFIRMED.value
        connector_id = booking_id = 0
        for start in range(0, self.size, batch):
            chargers: list[ChargerRow] = []
            connectors: list[ConnectorRow] = []
            windows: list[WindowRow] = []
            bookings: list[BookingRow] = []
            for charger_id in range(start + 1, min(self.size, start + batch) + 1):
                p = _fleet_point(rng, cum)
                roll = rng.random()
                status = online if roll < 0.75 else offline if roll < 0.9 else registered
                version = None if status == registered else V16
                chargers.append(
                    (
                        charger_id,
                        f"UK{charger_id:08d}",
                        rng.randrange(1, self.hosts + 1),
                        "",
                        p.lat,
                        p.lon,
                        rng.randrange(20, 60),
                        status,
                        version,
                    )
                )
                for no in range(1, (2 if rng.random() < 0.3 else 1) + 1):
                    connector_id += 1
                    k_status = rng.choice(in_use) if status == online else S.UNAVAILABLE.value
                    connectors.append(
                        (connector_id, charger_id, no, rng.choice(types), rng.choice(powers), k_status, 0)
                    )
                    if rng.random() < 0.1:
                        booking_id += 1
                        begins = T0 + timedelta(minutes=15 * rng.randrange(-8, 32))
                        ends = begins + timedelta(minutes=15 * rng.randrange(2, 9))
                        bookings.append(
                            (
                                booking_id,
                                rng.randrange(1, self.drivers + 1),
                                connector_id,
                                begins,
                                ends,
                                confirmed,
                                20_000,
                                40,
                                1_000,
                                T0 - timedelta(days=1),
                                0,
                                "none",
                            )
                        )
                if rng.random() < 0.2:
                    windows.extend((charger_id, *w) for w in rng.choice(CALENDARS))
            self.connectors = connector_id
            self.bookings = booking_id
            yield FleetBatch(chargers, connectors, windows, bookings)


def _cum_weights() -> list[int]:
    total, out = 0, []
    for *_, w in UK_CITIES:
        total += w
        out.append(total)
    return out


def _clamp_uk(lat: float, lon: float) -> Point:
    return Point(
        round(min(UK_BOX.north, max(UK_BOX.south, lat)), 6), round(min(UK_BOX.east, max(UK_BOX.west, lon)), 6)
    )


def _near_city(rng: random.Random, cum: list[int], sigma_deg: float) -> Point:
    _, lat, lon, _ = rng.choices(UK_CITIES, cum_weights=cum)[0]
    return _clamp_uk(rng.gauss(lat, sigma_deg), rng.gauss(lon, sigma_deg / math.cos(math.radians(lat))))


def _fleet_point(rng: random.Random, cum: list[int]) -> Point:
    return _near_city(rng, cum, 0.06 if rng.random() < 0.8 else 0.45)


# ---- the workload ----------------------------------------------------------------------------------
def make_queries(kind: Kind, count: int, seed: int, *, salt: str = "") -> list[SearchQuery]:
    """Seeded queries: city-sized boxes (0.1-0.3 degrees a side; a quarter of them straddle the
    Greenwich meridian) or 2-20 km radius searches around points of the fleet's geography, each
    with a driver's usual filters (`_filters`)."""
    rng = random.Random(f"queries-{kind}-{seed}{salt}")
    cum = _cum_weights()
    out: list[SearchQuery] = []
    for _ in range(count):
        if kind == "bbox":
            w, h = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3)
            if rng.random() < 0.25:
                # |centre lon| < 0.04 < w/2: the box crosses 0 degrees longitude.
                centre = Point(rng.uniform(*MERIDIAN_LATS), rng.uniform(-0.04, 0.04))
            else:
                centre = _near_city(rng, cum, 0.1)
            box = BBox(
                round(centre.lon - w / 2, 6),
                round(centre.lat - h / 2, 6),
                round(centre.lon + w / 2, 6),
                round(centre.lat + h / 2, 6),
            )
            out.append(SearchQuery(bbox=box, limit=QUERY_LIMIT, **_filters(rng)))
        else:
            centre = _near_city(rng, cum, 0.25)
            radius = round(rng.uniform(2_000, 20_000), 1)
            out.append(SearchQuery(centre=centre, radius_m=radius, limit=QUERY_LIMIT, **_filters(rng)))
    return out


def _filters(rng: random.Random) -> dict[str, Any]:
    """What a driver's app adds: online chargers (80% of searches), the car's connector type (50%), a
    minimum power (30%), a price cap (25%), and a booking window within 8 hours of `T0` (30%)."""
    kw: dict[str, Any] = {"online_only": rng.random() < 0.8}
    if rng.random() < 0.5:
        kw["connector_type"] = rng.choice(list(ConnectorType))
    if rng.random() < 0.3:
        kw["min_power_w"] = rng.choice((7_400, 11_000, 22_000, 50_000))
    if rng.random() < 0.25:
        kw["max_price_per_kwh"] = rng.randrange(30, 60)
    if rng.random() < 0.3:
        since = T0 + timedelta(minutes=15 * rng.randrange(0, 32))
        kw["available_from"] = since
        kw["available_until"] = since + timedelta(minutes=15 * rng.randrange(2, 9))
    return kw


# ---- loading ---------------------------------------------------------------------------------------
ProgressFn = Callable[[int], None]

_WINDOW_COLUMNS = "charger_id, weekday, start_minute, end_minute"
_BOOKING_COLUMNS = (
    "id, driver_id, connector_id, starts_at, ends_at, status, max_energy_wh, price_per_kwh, "
    "hold_amount, created_at, fee, reservation"
)


def with_offer(b: FleetBatch) -> list[tuple[Any, ...]]:
    """The batch's charger rows with what their connectors offer, as the store keeps it
    (`schema.chargers`): the best power of any connector, then of each type (-1: none of it)."""
    kinds = list(POWER_COLUMN)
    best: dict[int, list[int]] = {}
    for k in b.connectors:
        powers = best.setdefault(k[1], [0] + [-1] * len(kinds))
        powers[0] = max(powers[0], k[4])
        at = 1 + kinds.index(ConnectorType(k[3]))
        powers[at] = max(powers[at], k[4])
    return [(*c, *best.get(c[0], [0] + [-1] * len(kinds))) for c in b.chargers]


def load_sqlite(store: SqlStore, fleet: UkFleet, advance: ProgressFn) -> None:
    """executemany in one transaction: hosts, drivers, chargers, connectors, the R*Tree rows,
    calendars and bookings (times as the store writes them: naive UTC text)."""
    raw = store.engine.raw_connection()
    try:
        db: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        cur = db.cursor()
        cur.execute("BEGIN")
        cur.executemany(
            "INSERT INTO hosts (id, name) VALUES (?, ?)",
            ((i, f"host {i}") for i in range(1, fleet.hosts + 1)),
        )
        cur.executemany(
            "INSERT INTO drivers (id, name, id_tag) VALUES (?, ?, ?)",
            ((i, f"driver {i}", f"D{i:08d}") for i in range(1, fleet.drivers + 1)),
        )
        marks = ", ".join("?" * len(_CHARGER_COLUMNS.split(",")))
        rtree_marks = ", ".join("?" * len(_RTREE_COLUMNS.split(",")))
        for b in fleet.batches():
            chargers = with_offer(b)
            cur.executemany(f"INSERT INTO chargers ({_CHARGER_COLUMNS}) VALUES ({marks})", chargers)
            cur.executemany(
                f"INSERT INTO connectors ({_CONNECTOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", b.connectors
            )
            # The box, then the offer: price and the powers (`with_offer`'s last columns).
            cur.executemany(
                f"INSERT INTO charger_rtree ({_RTREE_COLUMNS}) VALUES ({rtree_marks})",
                ((c[0], c[5], c[5], c[4], c[4], *rtree_offer(c[6], *c[9:])) for c in chargers),
            )
            cur.executemany(f"INSERT INTO availability ({_WINDOW_COLUMNS}) VALUES (?, ?, ?, ?)", b.windows)
            cur.executemany(
                f"INSERT INTO bookings ({_BOOKING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ([utc_to_sqlite_text(v) if isinstance(v, datetime) else v for v in r] for r in b.bookings),
            )
            advance(len(b.chargers))
        cur.execute("COMMIT")
        cur.close()
    finally:
        raw.close()


def load_postgres(store: SqlStore, fleet: UkFleet, advance: ProgressFn) -> None:
    """COPY into the store's tables, sequences moved past the ids used, then ANALYZE.

    The charger GiST indexes are dropped for the load and rebuilt afterwards with the store's own
    DDL and migrations (building a GiST index once is much faster than growing it a row at a time).
    """
    rebuilt = _charger_gist_indexes(store)
    raw = store.engine.raw_connection()
    try:
        pg: Any = raw.driver_connection
        with pg.cursor() as cur:
            for name, _ in rebuilt:
                cur.execute(f"DROP INDEX IF EXISTS {name}")
            with cur.copy("COPY hosts (id, name) FROM STDIN") as cp:
                for i in range(1, fleet.hosts + 1):
                    cp.write_row((i, f"host {i}"))
            with cur.copy("COPY drivers (id, name, id_tag) FROM STDIN") as cp:
                for i in range(1, fleet.drivers + 1):
                    cp.write_row((i, f"driver {i}", f"D{i:08d}"))
            for b in fleet.batches():
                with cur.copy(f"COPY chargers ({_CHARGER_COLUMNS}) FROM STDIN") as cp:
                    for row in with_offer(b):
                        cp.write_row(row)
                with cur.copy(f"COPY connectors ({_CONNECTOR_COLUMNS}) FROM STDIN") as cp:
                    for crow in b.connectors:
                        cp.write_row(crow)
                with cur.copy(f"COPY availability ({_WINDOW_COLUMNS}) FROM STDIN") as cp:
                    for wrow in b.windows:
                        cp.write_row(wrow)
                with cur.copy(f"COPY bookings ({_BOOKING_COLUMNS}) FROM STDIN") as cp:
                    for brow in b.bookings:
                        cp.write_row(brow)
                advance(len(b.chargers))
            for _, ddl in rebuilt:
                cur.execute(ddl)
            for table in ("hosts", "drivers", "chargers", "connectors", "availability", "bookings"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        pg.commit()
        with pg.cursor() as cur:
            cur.execute("ANALYZE")
        pg.commit()
    finally:
        raw.close()


def _charger_gist_indexes(store: SqlStore) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every GiST index on `chargers`, as the schema made them."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chargers' "
                "AND indexdef LIKE '%USING gist%' ORDER BY indexname"
            )
        ).all()
    return [(str(name), str(ddl)) for name, ddl in rows]


# ---- ours and raw ----------------------------------------------------------------------------------
def ours_search(store: SqlStore, query: SearchQuery) -> Sequence[ChargerView]:
    """The real code path the HTTP API and the marketplace service use."""
    with store.reading() as tx:
        return tx.chargers.search(query)


BestCharger = tuple[tuple[Any, ...], list[tuple[Any, ...]]]  # (charger row, its connector rows)

_LIVE = ", ".join(f"'{s.value}'" for s in sorted(LIVE_STATES))
_OUT_OF_USE = f"'{ConnectorStatus.FAULTED.value}', '{ConnectorStatus.UNAVAILABLE.value}'"


class BestSearch:
    """The fastest hand-written SQL we know for the same answer, on the raw DBAPI connection of the
    store's own engine: the nearest matches first (then by id), at most `limit`, connectors after.

    PostGIS: one index-ordered nearest-neighbour scan (`ORDER BY location <-> origin LIMIT n`) inside
    `ST_DWithin(location, origin, reach)`, with explicit sorts, sequential scans and JIT switched off
    for it (else the planner sorts the whole area), the price and power filters in the index.
    SQLite: expanding boxes on the R*Tree (its offer dimensions holding the price and power
    filters), the radius doubled from 300 m until the circle inside the box holds `limit` matches.
    Both fetch `limit + 1` rows (a quarter more with a booking window, whose hosts' calendars are
    checked in Python with the domain's `covers`), and fetch again, more, when ties or calendars
    leave the last place open.
    """

    def __init__(self, store: SqlStore) -> None:
        self.dialect = store.dialect
        self._fairy = store.engine.raw_connection()
        self.db: Any = self._fairy.driver_connection
        self.mark = "?" if self.dialect == "sqlite" else "%s"

    def close(self) -> None:
        self._fairy.close()

    def search(self, q: SearchQuery) -> list[BestCharger]:
        cur = self.db.cursor()
        try:
            if self.dialect == "sqlite":
                cur.execute("BEGIN")
            rows = self._nearest(cur, q)
            out = self._with_connectors(cur, rows)
            if self.dialect == "sqlite":
                cur.execute("COMMIT")
            else:
                self.db.commit()
        except BaseException:
            self.db.rollback()
            raise
        finally:
            cur.close()
        return out

    def _bind(self, args: dict[str, Any], value: Any) -> str:
        """A named placeholder for `value`, added to `args`."""
        name = f"p{len(args)}"
        args[name] = value
        return f":{name}" if self.dialect == "sqlite" else f"%({name})s"

    def _filters(self, q: SearchQuery, args: dict[str, Any]) -> str:
        m = functools.partial(self._bind, args)
        sql: list[str] = []
        if q.bbox is not None:
            b = q.bbox
            sql.append(f"c.lon BETWEEN {m(b.west)} AND {m(b.east)}")
            sql.append(f"c.lat BETWEEN {m(b.south)} AND {m(b.north)}")
        # The offer (`schema.chargers`): in the GiST index on PostGIS, in the R*Tree's dimensions
        # on SQLite (`sqlite_geo`).
        if self.dialect == "sqlite":
            if q.max_price_per_kwh is not None:
                sql.append(f"r.neg_price >= {m(price_floor(q.max_price_per_kwh))}")
            if q.connector_type is not None:
                power = RTREE_POWER_COLUMN[q.connector_type.value]
                sql.append(f"r.{power} >= {m(power_floor(q.min_power_w or 0))}")
            elif q.min_power_w is not None:
                sql.append(f"r.best_w >= {m(power_floor(q.min_power_w))}")
        else:
            # `::int`: psycopg sends a small int as smallint, and btree_gist's int4 operators take
            # no smallint, so without it the filter would leave the index.
            if q.max_price_per_kwh is not None:
                sql.append(f"c.price_per_kwh <= {m(q.max_price_per_kwh)}::int")
            if q.connector_type is not None:
                sql.append(f"c.{POWER_COLUMN[q.connector_type]} >= {m(q.min_power_w or 0)}::int")
            elif q.min_power_w is not None:
                sql.append(f"c.best_power_w >= {m(q.min_power_w)}::int")
        if q.online_only:
            # `|| ''`: SQLite's planner would otherwise scan the status index (no statistics).
            status = "c.status || ''" if self.dialect == "sqlite" else "c.status"
            sql.append(f"{status} = 'online'")
        k = ["k.charger_id = c.id"]
        if q.connector_type is not None:
            k.append(f"k.type = {m(q.connector_type.value)}")
        if q.min_power_w is not None:
            k.append(f"k.max_power_w >= {m(q.min_power_w)}")
        if q.online_only:
            k.append(f"k.status NOT IN ({_OUT_OF_USE})")
        if q.available_from is not None and q.available_until is not None:
            until, since = self._instant(q.available_until), self._instant(q.available_from)
            k.append(
                "NOT EXISTS (SELECT 1 FROM bookings b WHERE b.connector_id = k.id "
                f"AND b.status IN ({_LIVE}) AND b.starts_at < {m(until)} AND b.ends_at > {m(since)})"
            )
        sql.append(f"EXISTS (SELECT 1 FROM connectors k WHERE {' AND '.join(k)})")
        return " AND ".join(sql)

    def _instant(self, at: datetime) -> Any:
        return utc_to_sqlite_text(at) if self.dialect == "sqlite" else at

    def _nearest(self, cur: Any, q: SearchQuery) -> list[tuple[Any, ...]]:
        o, reach = q.origin, q.reach_m
        args: dict[str, Any] = {}
        m = functools.partial(self._bind, args)
        lat, lon = m(o.lat), m(o.lon)
        filters = self._filters(q, args)
        most = q.limit + 1 if q.available_from is None else q.limit * 5 // 4 + 1
        if self.dialect == "postgresql":
            point = f"ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326)::geography"
            sql = (
                f"SELECT {_SELECT_CHARGER}, c.location <-> {point} AS d FROM chargers c "
                f"WHERE ST_DWithin(c.location, {point}, {m(reach)}, false) AND {filters} "
                f"ORDER BY c.location <-> {point} LIMIT %(most)s"
            )
            radius = reach
        else:
            distance = distance_sql("c.lat", "c.lon", lat, lon)
            sql = (
                f"SELECT {_SELECT_CHARGER}, {distance} AS d FROM charger_rtree r "
                "JOIN chargers c ON c.id = r.id "
                "WHERE r.min_lon <= :e AND r.max_lon >= :w AND r.min_lat <= :n AND r.max_lat >= :s "
                f"AND d <= :cut AND {filters} ORDER BY d, c.id LIMIT :most"
            )
            radius = min(300.0, reach)
        while True:
            final = radius >= reach
            args["most"] = most
            if self.dialect == "postgresql":
                # As the store does (`search._PLAN_SETTINGS`): no sort of the area, no sequential
                # scan of the connectors, no JIT.
                cur.execute(
                    "SELECT current_setting('enable_sort'), current_setting('enable_seqscan'), "
                    "current_setting('jit'), set_config('enable_sort', 'off', true), "
                    "set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)"
                )
                sort, seqscan, jit, *_ = cur.fetchone()
                cur.execute(sql, args)
                rows = cur.fetchall()
                cur.execute(
                    "SELECT set_config('enable_sort', %s, true), set_config('enable_seqscan', %s, true), "
                    "set_config('jit', %s, true)",
                    [sort, seqscan, jit],
                )
            else:
                box, a = BBox.around(o, radius * 1.01 + 1.0), q.area
                args.update(
                    e=min(box.east, a.east),
                    w=max(box.west, a.west),
                    n=min(box.north, a.north),
                    s=max(box.south, a.south),
                    cut=reach if final else radius,
                )
                rows = cur.execute(sql, args).fetchall()
            truncated = len(rows) == most
            last = rows[-1][-1] if truncated else math.inf
            rows.sort(key=lambda r: (r[-1], r[0]))
            if q.available_from is not None and q.available_until is not None:
                rows = self._open(cur, rows, q.available_from, q.available_until)
            complete = [r for r in rows if r[-1] < last]
            if len(complete) >= q.limit or (final and not truncated):
                return complete[: q.limit]
            if truncated:
                most *= 4
            else:
                radius = min(reach, radius * 2)

    def _open(
        self, cur: Any, rows: list[tuple[Any, ...]], since: datetime, until: datetime
    ) -> list[tuple[Any, ...]]:
        """The rows whose host's weekly calendar (if any) covers the whole window."""
        if not rows:
            return rows
        ids = [r[0] for r in rows]
        columns = "charger_id, weekday, start_minute, end_minute"
        if self.dialect == "sqlite":
            cur.execute(
                f"SELECT {columns} FROM availability WHERE charger_id IN ({', '.join('?' * len(ids))})", ids
            )
        else:
            cur.execute(f"SELECT {columns} FROM availability WHERE charger_id = ANY(%s)", (ids,))
        calendars: dict[int, list[WeeklyWindow]] = {}
        for cid, day, start, end in cur.fetchall():
            calendars.setdefault(cid, []).append(WeeklyWindow(day, start, end))
        return [r for r in rows if covers(calendars.get(r[0], ()), since, until)]

    def _with_connectors(self, cur: Any, rows: list[tuple[Any, ...]]) -> list[BestCharger]:
        if not rows:
            return []
        by_id: dict[int, BestCharger] = {r[0]: (r, []) for r in rows}
        ids = list(by_id)
        columns = "id, charger_id, connector_no, type, max_power_w, status"
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(ids))
            cur.execute(
                f"SELECT {columns} FROM connectors WHERE charger_id IN ({marks}) ORDER BY connector_no", ids
            )
        else:
            cur.execute(
                f"SELECT {columns} FROM connectors WHERE charger_id = ANY(%s) ORDER BY connector_no", (ids,)
            )
        for k in cur.fetchall():
            by_id[k[1]][1].append(k)
        return [by_id[r[0]] for r in rows]


def ours_ids(views: Sequence[ChargerView]) -> list[tuple[int, tuple[int, ...]]]:
    return [(v.charger_id, tuple(c.connector_id for c in v.connectors)) for v in views]


def best_ids(found: list[BestCharger]) -> list[tuple[int, tuple[int, ...]]]:
    return [(int(row[0]), tuple(int(k[0]) for k in ks)) for row, ks in found]


# ---- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadResult:
    backend: str
    chargers: int
    connectors: int
    seconds: float

    @property
    def chargers_per_s(self) -> float:
        return self.chargers / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class KindResult:
    backend: str
    kind: Kind
    queries: int
    ours: Latency
    best: Latency
    mismatches: int
    mean_results: float

    @property
    def ratio_p50(self) -> float:
        return ratio(self.ours.p50_ms, self.best.p50_ms)

    @property
    def ratio_p99(self) -> float:
        return ratio(self.ours.p99_ms, self.best.p99_ms)

    @property
    def meets_target(self) -> bool:
        return self.ratio_p50 <= TARGET_RATIO and self.ratio_p99 <= TARGET_RATIO

    @property
    def meets_p99(self) -> bool:
        return self.ours.p99_ms <= TARGET_P99_MS


@dataclass
class GeoReport:
    params: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)
    loads: list[LoadResult] = field(default_factory=list)
    results: list[KindResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "geo",
            "target_ratio": TARGET_RATIO,
            "target_p99_ms": TARGET_P99_MS,
            "params": self.params,
            "machine": self.machine,
            "loads": [asdict(x) | {"chargers_per_s": round(x.chargers_per_s, 1)} for x in self.loads],
            "results": [
                {
                    "backend": r.backend,
                    "kind": r.kind,
                    "queries": r.queries,
                    "ours_ms": {"p50": round(r.ours.p50_ms, 4), "p99": round(r.ours.p99_ms, 4)},
                    "best_ms": {"p50": round(r.best.p50_ms, 4), "p99": round(r.best.p99_ms, 4)},
                    "ratio_p50": round(r.ratio_p50, 3),
                    "ratio_p99": round(r.ratio_p99, 3),
                    "meets_target": r.meets_target,
                    "meets_p99": r.meets_p99,
                    "mismatches": r.mismatches,
                    "mean_results": round(r.mean_results, 1),
                }
                for r in self.results
            ],
        }


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }


# ---- running ---------------------------------------------------------------------------------------
def measure(
    store: SqlStore,
    backend: str,
    kind: Kind,
    queries: Sequence[SearchQuery],
    warmup: Sequence[SearchQuery],
) -> KindResult:
    """Time ours and best on the same queries, alternating which runs first; compare their answers."""
    best = BestSearch(store)
    try:
        for q in warmup:
            ours_search(store, q)
            best.search(q)
        ours_ns: list[int] = []
        best_ns: list[int] = []
        mismatches = 0
        results = 0
        for i, q in enumerate(queries):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            got_ours: Sequence[ChargerView] = ()
            got_best: list[BestCharger] = []
            for which in order:
                if which == 0:
                    t0 = time.perf_counter_ns()
                    got_ours = ours_search(store, q)
                    ours_ns.append(time.perf_counter_ns() - t0)
                else:
                    t0 = time.perf_counter_ns()
                    got_best = best.search(q)
                    best_ns.append(time.perf_counter_ns() - t0)
            if ours_ids(got_ours) != best_ids(got_best):
                mismatches += 1
            results += len(got_ours)
    finally:
        best.close()
    return KindResult(
        backend=backend,
        kind=kind,
        queries=len(queries),
        ours=Latency.of_ns(ours_ns),
        best=Latency.of_ns(best_ns),
        mismatches=mismatches,
        mean_results=results / len(queries) if queries else 0.0,
    )


def postgres_versions(store: SqlStore) -> dict[str, str]:
    with store.engine.connect() as conn:
        return {
            "postgres": str(conn.execute(text("SHOW server_version")).scalar_one()),
            "postgis": str(conn.execute(text("SELECT postgis_lib_version()")).scalar_one()),
        }


def warmup_count(queries: int) -> int:
    return min(20, max(2, queries // 10))


@dataclass(frozen=True)
class GeoParams:
    chargers: int
    backends: tuple[str, ...]
    queries: int
    seed: int
    postgres_url: str


def run_geo(p: GeoParams, console: Console) -> GeoReport:
    """Load a fresh database per backend, then measure ours and best on each query kind."""
    shown = dict(asdict(p), postgres_url=make_url(p.postgres_url).render_as_string(hide_password=True))
    shown["backends"] = list(p.backends)
    report = GeoReport(params=shown, machine=machine_info())
    workloads = {k: make_queries(k, p.queries, p.seed) for k in KINDS}
    warmups = {k: make_queries(k, warmup_count(p.queries), p.seed, salt="-warmup") for k in KINDS}
    for backend in p.backends:
        database = temporary_sqlite() if backend == "sqlite" else temporary_postgres(p.postgres_url)
        with database as url:
            # No statement time limit: the bulk load's COPYs and index builds run as long as they need.
            store = SqlStore(url, statement_timeout_s=0)
            try:
                report.loads.append(_load(store, backend, p, console))
                if backend == "postgres":
                    report.machine.update(postgres_versions(store))
                for kind in KINDS:
                    console.print(f"{backend}: {p.queries} {kind} queries, ours and best ...")
                    report.results.append(measure(store, backend, kind, workloads[kind], warmups[kind]))
            finally:
                store.close()
    return report


def _load(store: SqlStore, backend: str, p: GeoParams, console: Console) -> LoadResult:
    fleet = UkFleet(p.chargers, p.seed)
    loader = load_sqlite if backend == "sqlite" else load_postgres
    with Progress(
        TextColumn(f"[bold]load {backend}[/]"),
        BarColumn(),
        TextColumn("{task.completed:>10,.0f} / {task.total:,.0f} chargers"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("load", total=p.chargers)
        t0 = time.perf_counter()
        store.create_schema()
        loader(store, fleet, lambda n: bar.advance(task, n))
        seconds = time.perf_counter() - t0
    return LoadResult(backend, p.chargers, fleet.connectors, round(seconds, 3))


def _ms(v: float) -> str:
    return f"{v:.2f}"


def _ratio(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.2f}"


def render(report: GeoReport, console: Console) -> None:
    loads = Table(title="Bulk load into a fresh database with the store's schema")
    for col in ("backend", "chargers", "connectors", "load s", "chargers/s"):
        loads.add_column(col, justify="left" if col == "backend" else "right")
    for x in report.loads:
        loads.add_row(
            x.backend, f"{x.chargers:,}", f"{x.connectors:,}", f"{x.seconds:.1f}", f"{x.chargers_per_s:,.0f}"
        )
    console.print(loads)
    n = {r.queries for r in report.results}
    table = Table(
        title=f"Map search, limit {QUERY_LIMIT}, {'/'.join(map(str, sorted(n)))} queries each: "
        "ours (store.search) vs the best hand-written SQL, ms p50/p99"
    )
    for col in (
        "backend",
        "query",
        "hits",
        "ours ms",
        "best ms",
        "ours/best",
        f"<={TARGET_RATIO}x",
        f"p99<={TARGET_P99_MS:.0f}ms",
        "same ids",
    ):
        table.add_column(col, justify="left" if col in ("backend", "query") else "right")
    for r in report.results:
        table.add_row(
            r.backend,
            r.kind,
            f"{r.mean_results:.0f}",
            f"{_ms(r.ours.p50_ms)}/{_ms(r.ours.p99_ms)}",
            f"{_ms(r.best.p50_ms)}/{_ms(r.best.p99_ms)}",
            f"{_ratio(r.ratio_p50)}/{_ratio(r.ratio_p99)}",
            "[green]yes[/]" if r.meets_target else "[red]no[/]",
            "[green]yes[/]" if r.meets_p99 else "[red]no[/]",
            "yes" if r.mismatches == 0 else f"[red]{r.mismatches} differ[/]",
        )
    console.print(table)
