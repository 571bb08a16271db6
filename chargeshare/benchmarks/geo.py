"""`chargeshare bench geo`: map search over a UK-wide fleet, our store against hand-written SQL.

For each backend a fresh database is created with the store's own schema (`SqlStore.create_schema()`)
and bulk-loaded (SQLite: `executemany` in one transaction, including the `charger_rtree` rows;
PostgreSQL: `COPY`, the generated `geom`/`location` columns fill themselves, then `ANALYZE`).

Two query kinds run against it, the same seeded queries for "ours" and "raw":

- ours: `store.reading()` + `tx.chargers.search(SearchQuery(...))`, the real code path (as
  `MarketplaceService.search`): the charger rows with the same prefilter, order and LIMIT, then their
  connectors, hydrated into `ChargerView`s, in one reading transaction.
- raw: hand-written SQL through the raw DBAPI cursor of the same engine, in one transaction
  (`BEGIN` ... `COMMIT` on SQLite, psycopg's implicit transaction + `commit()` on PostgreSQL), as
  TWO queries: (1) the charger columns with the same spatial prefilter, the same "has a connector"
  semi-join, the same order and LIMIT; (2) their connectors by `charger_id IN (...)` ordered by
  `connector_no`, grouped per charger in a dict (tuples, no dataclasses).

Latency is `time.perf_counter_ns()` around each call, after a warm-up; ours and raw alternate which
goes first, query by query. Every query's charger ids (and connector ids) are compared between the two.
"""

from __future__ import annotations

import math
import os
import platform
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

from chargeshare.adapters.sql import SqlStore
from chargeshare.adapters.sql.schema import POSTGRES_DDL
from chargeshare.adapters.sql.sqlite_geo import distance_sql
from chargeshare.benchmarks.databases import temporary_postgres, temporary_sqlite
from chargeshare.benchmarks.stats import Latency, ratio
from chargeshare.domain.charger import ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import BBox, Point
from chargeshare.domain.search import SearchQuery
from chargeshare.services.records import ChargerView

TARGET_RATIO = 1.5
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

_CHARGER_COLUMNS = "id, charge_point_id, host_id, title, lat, lon, price_per_kwh, status"
_CONNECTOR_COLUMNS = "id, charger_id, connector_no, type, max_power_w, status, fence_token"
_SELECT_CHARGER = (
    "c.id, c.charge_point_id, c.host_id, c.title, c.lat, c.lon, c.price_per_kwh, c.status, "
    "c.ocpp_version, c.last_seen_at"
)


# ---- the fleet -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetBatch:
    chargers: list[tuple[int, str, int, str, float, float, int, str]]
    connectors: list[tuple[int, int, int, str, int, str, int]]


class UkFleet:
    """A seeded, UK-wide fleet generated in batches (never all in memory at once).

    80% of chargers sit within a few km of a city (weighted by size), the rest scattered up to
    ~50 km around one. Ids are assigned here, 1..n for chargers and 1..m for connectors.
    """

    def __init__(self, chargers: int, seed: int) -> None:
        if chargers < 1:
            raise ValueError("a fleet needs at least one charger")
        self.size = chargers
        self.seed = seed
        self.hosts = max(1, chargers // 20)
        self.connectors = 0  # known after a full iteration

    def batches(self, batch: int = BATCH) -> Iterator[FleetBatch]:
        rng = random.Random(f"fleet-{self.seed}")
        cum = _cum_weights()
        types = [t.value for t in ConnectorType]
        powers = (3_700, 7_400, 7_400, 11_000, 22_000, 50_000)
        registered = ChargerStatus.REGISTERED.value
        unavailable = ConnectorStatus.UNAVAILABLE.value
        connector_id = 0
        for start in range(0, self.size, batch):
            chargers: list[tuple[int, str, int, str, float, float, int, str]] = []
            connectors: list[tuple[int, int, int, str, int, str, int]] = []
            for charger_id in range(start + 1, min(self.size, start + batch) + 1):
                p = _fleet_point(rng, cum)
                chargers.append(
                    (
                        charger_id,
                        f"UK{charger_id:08d}",
                        rng.randrange(1, self.hosts + 1),
                        "",
                        p.lat,
                        p.lon,
                        rng.randrange(20, 60),
                        registered,
                    )
                )
                for no in range(1, (2 if rng.random() < 0.3 else 1) + 1):
                    connector_id += 1
                    connectors.append(
                        (connector_id, charger_id, no, rng.choice(types), rng.choice(powers), unavailable, 0)
                    )
            self.connectors = connector_id
            yield FleetBatch(chargers, connectors)


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
    Greenwich meridian) or 2-20 km radius searches around points of the fleet's geography."""
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
            out.append(SearchQuery(bbox=box, limit=QUERY_LIMIT))
        else:
            centre = _near_city(rng, cum, 0.25)
            out.append(
                SearchQuery(centre=centre, radius_m=round(rng.uniform(2_000, 20_000), 1), limit=QUERY_LIMIT)
            )
    return out


# ---- loading ---------------------------------------------------------------------------------------
ProgressFn = Callable[[int], None]


def load_sqlite(store: SqlStore, fleet: UkFleet, advance: ProgressFn) -> None:
    """executemany in one transaction: hosts, chargers, connectors and the R*Tree rows."""
    raw = store.engine.raw_connection()
    try:
        db: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        cur = db.cursor()
        cur.execute("BEGIN")
        cur.executemany(
            "INSERT INTO hosts (id, name) VALUES (?, ?)",
            ((i, f"host {i}") for i in range(1, fleet.hosts + 1)),
        )
        for b in fleet.batches():
            cur.executemany(
                f"INSERT INTO chargers ({_CHARGER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", b.chargers
            )
            cur.executemany(
                f"INSERT INTO connectors ({_CONNECTOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", b.connectors
            )
            cur.executemany(
                "INSERT INTO charger_rtree (id, min_lon, max_lon, min_lat, max_lat) VALUES (?, ?, ?, ?, ?)",
                ((c[0], c[5], c[5], c[4], c[4]) for c in b.chargers),
            )
            advance(len(b.chargers))
        cur.execute("COMMIT")
        cur.close()
    finally:
        raw.close()


def load_postgres(store: SqlStore, fleet: UkFleet, advance: ProgressFn) -> None:
    """COPY into the store's tables, sequences moved past the ids used, then ANALYZE.

    The two GiST indexes are dropped for the load and rebuilt afterwards with the store's own DDL
    (building a GiST index once is much faster than growing it a row at a time).
    """
    index_ddl = [ddl for ddl in POSTGRES_DDL if ddl.startswith("CREATE INDEX")]
    raw = store.engine.raw_connection()
    try:
        pg: Any = raw.driver_connection
        with pg.cursor() as cur:
            cur.execute("DROP INDEX IF EXISTS ix_chargers_geom")
            cur.execute("DROP INDEX IF EXISTS ix_chargers_location")
            with cur.copy("COPY hosts (id, name) FROM STDIN") as cp:
                for i in range(1, fleet.hosts + 1):
                    cp.write_row((i, f"host {i}"))
            for b in fleet.batches():
                with cur.copy(f"COPY chargers ({_CHARGER_COLUMNS}) FROM STDIN") as cp:
                    for row in b.chargers:
                        cp.write_row(row)
                with cur.copy(f"COPY connectors ({_CONNECTOR_COLUMNS}) FROM STDIN") as cp:
                    for crow in b.connectors:
                        cp.write_row(crow)
                advance(len(b.chargers))
            for ddl in index_ddl:
                cur.execute(ddl)
            for table in ("hosts", "chargers", "connectors"):
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


# ---- ours and raw ----------------------------------------------------------------------------------
def ours_search(store: SqlStore, query: SearchQuery) -> Sequence[ChargerView]:
    """The real code path the HTTP API and the marketplace service use."""
    with store.reading() as tx:
        return tx.chargers.search(query)


RawCharger = tuple[tuple[Any, ...], list[tuple[Any, ...]]]  # (charger row, its connector rows)


class RawSearch:
    """Hand-written SQL of the same shape as the store's search, on the raw DBAPI connection of the
    store's own engine: one query for the charger columns, one for their connectors."""

    def __init__(self, store: SqlStore) -> None:
        self.dialect = store.dialect
        self._fairy = store.engine.raw_connection()
        self.db: Any = self._fairy.driver_connection

    def close(self) -> None:
        self._fairy.close()

    def search(self, q: SearchQuery) -> list[RawCharger]:
        if self.dialect == "sqlite":
            return self._sqlite(q)
        return self._postgres(q)

    def _sqlite(self, q: SearchQuery) -> list[RawCharger]:
        a = q.area
        rtree = (
            "c.id IN (SELECT id FROM charger_rtree "
            "WHERE min_lon <= ? AND max_lon >= ? AND min_lat <= ? AND max_lat >= ?)"
        )
        has_connector = "EXISTS (SELECT 1 FROM connectors k WHERE k.charger_id = c.id)"
        if q.centre is None:
            sql = (
                f"SELECT {_SELECT_CHARGER} FROM chargers c "
                f"WHERE c.lon BETWEEN ? AND ? AND c.lat BETWEEN ? AND ? AND {rtree} AND {has_connector} "
                "ORDER BY c.id LIMIT ?"
            )
            params: tuple[Any, ...] | dict[str, Any] = (
                a.west,
                a.east,
                a.south,
                a.north,
                a.east,
                a.west,
                a.north,
                a.south,
                q.limit,
            )
        else:
            # The store's own distance (SQLite math functions, sqlite_geo), with named parameters.
            distance = distance_sql("c.lat", "c.lon", ":clat", ":clon")
            named_rtree = (
                "c.id IN (SELECT id FROM charger_rtree "
                "WHERE min_lon <= :e AND max_lon >= :w AND min_lat <= :n AND max_lat >= :s)"
            )
            sql = (
                f"SELECT {_SELECT_CHARGER}, {distance} AS distance FROM chargers c "
                f"WHERE {named_rtree} AND {distance} <= :radius AND {has_connector} "
                "ORDER BY distance, c.id LIMIT :most"
            )
            params = {
                "clat": q.centre.lat,
                "clon": q.centre.lon,
                "e": a.east,
                "w": a.west,
                "n": a.north,
                "s": a.south,
                "radius": q.radius_m,
                "most": q.limit,
            }
        cur = self.db.cursor()
        try:
            cur.execute("BEGIN")
            rows = cur.execute(sql, params).fetchall()
            out = self._with_connectors(cur, rows, "?")
            cur.execute("COMMIT")
        finally:
            cur.close()
        return out

    def _postgres(self, q: SearchQuery) -> list[RawCharger]:
        has_connector = "EXISTS (SELECT 1 FROM connectors k WHERE k.charger_id = c.id)"
        if q.centre is None:
            a = q.area
            sql = (
                f"SELECT {_SELECT_CHARGER} FROM chargers c "
                "WHERE c.lon BETWEEN %(w)s AND %(e)s AND c.lat BETWEEN %(s)s AND %(n)s "
                "AND c.geom && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326) "
                f"AND {has_connector} ORDER BY c.id LIMIT %(limit)s"
            )
            params: dict[str, Any] = {"w": a.west, "s": a.south, "e": a.east, "n": a.north, "limit": q.limit}
        else:
            point = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"
            sql = (
                f"SELECT {_SELECT_CHARGER}, ST_Distance(c.location, {point}, false) AS distance "
                f"FROM chargers c WHERE ST_DWithin(c.location, {point}, %(r)s, false) AND {has_connector} "
                f"ORDER BY c.location <-> {point}, c.id LIMIT %(limit)s"
            )
            params = {"lon": q.centre.lon, "lat": q.centre.lat, "r": q.radius_m, "limit": q.limit}
        try:
            with self.db.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
                out = self._with_connectors(cur, rows, "pg")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise
        return out

    @staticmethod
    def _with_connectors(cur: Any, rows: list[tuple[Any, ...]], style: str) -> list[RawCharger]:
        if not rows:
            return []
        by_id: dict[int, RawCharger] = {r[0]: (r, []) for r in rows}
        ids = list(by_id)
        columns = "id, charger_id, connector_no, type, max_power_w, status"
        if style == "?":
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


def raw_ids(found: list[RawCharger]) -> list[tuple[int, tuple[int, ...]]]:
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
    raw: Latency
    mismatches: int
    mean_results: float

    @property
    def ratio_p50(self) -> float:
        return ratio(self.ours.p50_ms, self.raw.p50_ms)

    @property
    def ratio_p99(self) -> float:
        return ratio(self.ours.p99_ms, self.raw.p99_ms)

    @property
    def meets_target(self) -> bool:
        return self.ratio_p50 <= TARGET_RATIO and self.ratio_p99 <= TARGET_RATIO


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
            "params": self.params,
            "machine": self.machine,
            "loads": [asdict(x) | {"chargers_per_s": round(x.chargers_per_s, 1)} for x in self.loads],
            "results": [
                {
                    "backend": r.backend,
                    "kind": r.kind,
                    "queries": r.queries,
                    "ours_ms": {"p50": round(r.ours.p50_ms, 4), "p99": round(r.ours.p99_ms, 4)},
                    "raw_ms": {"p50": round(r.raw.p50_ms, 4), "p99": round(r.raw.p99_ms, 4)},
                    "ratio_p50": round(r.ratio_p50, 3),
                    "ratio_p99": round(r.ratio_p99, 3),
                    "meets_target": r.meets_target,
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
    """Time ours and raw on the same queries, alternating which runs first; compare their answers."""
    raw = RawSearch(store)
    try:
        for q in warmup:
            ours_search(store, q)
            raw.search(q)
        ours_ns: list[int] = []
        raw_ns: list[int] = []
        mismatches = 0
        results = 0
        for i, q in enumerate(queries):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            got_ours: Sequence[ChargerView] = ()
            got_raw: list[RawCharger] = []
            for which in order:
                if which == 0:
                    t0 = time.perf_counter_ns()
                    got_ours = ours_search(store, q)
                    ours_ns.append(time.perf_counter_ns() - t0)
                else:
                    t0 = time.perf_counter_ns()
                    got_raw = raw.search(q)
                    raw_ns.append(time.perf_counter_ns() - t0)
            if ours_ids(got_ours) != raw_ids(got_raw):
                mismatches += 1
            results += len(got_ours)
    finally:
        raw.close()
    return KindResult(
        backend=backend,
        kind=kind,
        queries=len(queries),
        ours=Latency.of_ns(ours_ns),
        raw=Latency.of_ns(raw_ns),
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
    """Load a fresh database per backend, then measure ours and raw on each query kind."""
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
                    console.print(f"{backend}: {p.queries} {kind} queries, ours and raw ...")
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
        "ours (store.search) vs raw SQL, ms p50/p99"
    )
    for col in (
        "backend",
        "query",
        "hits",
        "ours ms",
        "raw ms",
        "ours/raw",
        f"<={TARGET_RATIO}x",
        "same ids",
    ):
        table.add_column(col, justify="left" if col in ("backend", "query") else "right")
    for r in report.results:
        table.add_row(
            r.backend,
            r.kind,
            f"{r.mean_results:.0f}",
            f"{_ms(r.ours.p50_ms)}/{_ms(r.ours.p99_ms)}",
            f"{_ms(r.raw.p50_ms)}/{_ms(r.raw.p99_ms)}",
            f"{_ratio(r.ratio_p50)}/{_ratio(r.ratio_p99)}",
            "[green]yes[/]" if r.meets_target else "[red]no[/]",
            "yes" if r.mismatches == 0 else f"[red]{r.mismatches} differ[/]",
        )
    console.print(table)
