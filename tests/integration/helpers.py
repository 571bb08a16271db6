"""Checks run identically against each backend."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.benchmarks.race import race
from chargeshare.bootstrap import App
from chargeshare.domain.availability import WeeklyWindow, covers
from chargeshare.domain.booking import LIVE_STATES, overlaps
from chargeshare.domain.charger import (
    ChargerSpec,
    ChargerStatus,
    ConnectorSpec,
    ConnectorStatus,
    ConnectorType,
)
from chargeshare.domain.geo import Point, distance_m
from chargeshare.domain.search import SearchQuery
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from chargeshare.services.records import ChargerView

# Points this close to a radius boundary may fall either side by floating-point rounding.
BOUNDARY_TOLERANCE_M = 0.01


def race_for_one_connector(app: App, attempts: int, threads: int = 8) -> Counter[str]:
    """`attempts` drivers book overlapping windows on one connector from `threads` threads at once
    (the same race `chargeshare bench race` times)."""
    run = race(app, attempts, threads)
    assert not run.samples, f"bookings failed with something other than a conflict: {run.samples}"
    return run.outcomes


def assert_one_hold(app: App) -> None:
    """Losers of a race never reach the card: exactly one hold, and no overlap in the table."""
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert len(gateway.holds) == 1
    with app.store.transaction() as tx:
        live = [b for b in tx.bookings.all() if b.status in LIVE_STATES]
    assert len(live) == 1


@dataclass
class Fleet:
    views: dict[int, ChargerView]
    calendars: dict[int, list[WeeklyWindow]]
    # (connector_id, starts_at, ends_at) of live bookings
    bookings: list[tuple[int, datetime, datetime]]


def random_fleet(app: App, rng: random.Random, n: int, *, at: datetime | None = None) -> Fleet:
    """UK-ish chargers straddling the Greenwich meridian, with varied connectors, prices, states,
    calendars and bookings (bookings and calendars only when `at` is given)."""
    host = app.marketplace.add_host("h")
    calendars: dict[int, list[WeeklyWindow]] = {}
    p = Point(0.0, 0.0)
    for i in range(n):
        if i == 0 or rng.random() >= 0.1:  # a tenth share a site with the one before (equal distances)
            p = Point(round(rng.uniform(50.0, 55.0), 6), round(rng.uniform(-1.0, 1.0), 6))
        connectors = tuple(
            ConnectorSpec(no, rng.choice(list(ConnectorType)), rng.choice((3_700, 7_400, 22_000, 50_000)))
            for no in range(1, rng.choice((1, 1, 2)) + 1)
        )
        v = app.marketplace.add_charger(
            ChargerSpec(f"F{i}", host, p, Tariff(rng.randrange(20, 60)), connectors)
        )
        if rng.random() < 0.5:
            app.charging.boot(f"F{i}", V16)
            app.charging.status(f"F{i}", 0, rng.choice((ConnectorStatus.AVAILABLE, ConnectorStatus.FAULTED)))
        if at is not None and rng.random() < 0.3:
            opens = rng.randrange(0, 20) * 60
            calendars[v.charger_id] = [WeeklyWindow(d, opens, min(1440, opens + 240)) for d in range(7)]
            app.marketplace.set_availability(v.charger_id, calendars[v.charger_id])
    with app.store.transaction() as tx:
        views = {v.charger_id: v for v in tx.chargers.all()}
    bookings = []
    if at is not None:
        driver = app.marketplace.add_driver("oracle", "ORACLE")
        for v in views.values():
            if rng.random() < 0.3:
                c = v.connectors[0]
                start = at + timedelta(minutes=rng.randrange(-120, 240))
                with app.store.transaction() as tx:
                    tx.bookings.add(
                        driver_id=driver.driver_id,
                        connector_id=c.connector_id,
                        starts_at=start,
                        ends_at=start + timedelta(minutes=60),
                        max_energy_wh=1,
                        price_per_kwh=1,
                        hold_amount=1,
                        created_at=at,
                        fencing_token=None,
                    )
                bookings.append((c.connector_id, start, start + timedelta(minutes=60)))
    return Fleet(views, calendars, bookings)


def oracle(fleet: Fleet, q: SearchQuery) -> list[tuple[int, float]]:
    """Brute force over every charger: every match with its distance from the query's origin,
    nearest first, then by id (what the search returns the first `limit` of)."""
    hits: list[tuple[int, float]] = []
    box = q.bbox
    for cid, v in fleet.views.items():
        d = distance_m(q.origin, v.location)
        if box is not None:
            if not box.contains(v.location):
                continue
        else:
            assert q.radius_m is not None
            if d > q.radius_m:
                continue
        if q.max_price_per_kwh is not None and v.price_per_kwh > q.max_price_per_kwh:
            continue
        if q.online_only and v.status is not ChargerStatus.ONLINE:
            continue
        ok = False
        for c in v.connectors:
            if q.connector_type is not None and c.type is not q.connector_type:
                continue
            if q.min_power_w is not None and c.max_power_w < q.min_power_w:
                continue
            if q.online_only and c.status in (ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE):
                continue
            if (
                q.available_from is not None
                and q.available_until is not None
                and any(
                    k == c.connector_id and overlaps(s, e, q.available_from, q.available_until)
                    for k, s, e in fleet.bookings
                )
            ):
                continue
            ok = True
        if not ok:
            continue
        window = q.available_from, q.available_until
        if window[0] and window[1] and not covers(fleet.calendars.get(cid, []), window[0], window[1]):
            continue
        hits.append((cid, d))
    hits.sort(key=lambda h: (h[1], h[0]))
    return hits


def search_matches_oracle(app: App, fleet: Fleet, q: SearchQuery) -> None:
    """The search returns the oracle's first `limit`, nearest the origin first, ties by id.

    The backends measure distance in their own arithmetic (SQLite's math functions, PostGIS), so
    two chargers whose distances differ by less than `BOUNDARY_TOLERANCE_M` may come in either
    order, and one that close to a radius or to the last place may be in or out; chargers at the
    same spot are the same distance on every backend, so they come in id order."""
    found = list(app.marketplace.search(q))
    hits = oracle(fleet, q)
    want = hits[: q.limit]
    tol = BOUNDARY_TOLERANCE_M
    where = {cid: v.location for cid, v in fleet.views.items()}
    got = [(c.charger_id, distance_m(q.origin, where[c.charger_id])) for c in found]
    if q.centre is None:
        assert all(c.distance_m is None for c in found), q
    else:
        for c, (_, d) in zip(found, got, strict=True):
            assert c.distance_m is not None and abs(c.distance_m - d) < 1.0, (q, c.charger_id, d)
    matching = dict(hits)
    fringe = q.radius_m is not None and all(cid in matching or d > q.radius_m - tol for cid, d in got)
    assert set(dict(got)) <= set(matching) or fringe, f"{q}: got {got}, want {want}"
    for (a, da), (b, db) in itertools.pairwise(got):
        assert da <= db + tol, f"{q}: {a} at {da} m before {b} at {db} m"
        if where[a] == where[b]:
            assert a < b, f"{q}: {a} before {b} at the same spot"
    if len(want) < q.limit and len(got) < q.limit:
        firm = {cid for cid, d in want if q.radius_m is None or d < q.radius_m - tol}
        assert firm <= set(dict(got)), f"{q}: got {got}, want {want}"
    else:
        assert len(got) == len(want) == q.limit, f"{q}: got {got}, want {want}"
        # Nothing nearer than the last one returned was left out.
        missed = [(cid, d) for cid, d in hits if d < got[-1][1] - tol and cid not in dict(got)]
        assert not missed, f"{q}: {missed} are nearer than the last of {got}"


def random_query(rng: random.Random, at: datetime | None) -> SearchQuery:
    from chargeshare.domain.geo import BBox

    kw: dict[str, object] = {}
    if rng.random() < 0.5:
        south, west = rng.uniform(49.8, 55.2), rng.uniform(-1.5, 1.0)
        kw["bbox"] = BBox(
            west, south, min(180.0, west + rng.uniform(0, 2)), min(90.0, south + rng.uniform(0, 3))
        )
    else:
        kw["centre"] = Point(rng.uniform(50, 55), rng.uniform(-1.0, 1.0))
        kw["radius_m"] = rng.uniform(1_000, 150_000)
    if rng.random() < 0.3:
        kw["connector_type"] = rng.choice(list(ConnectorType))
    if rng.random() < 0.3:
        kw["min_power_w"] = rng.choice((3_700, 7_400, 22_000, 50_000))
    if rng.random() < 0.3:
        kw["max_price_per_kwh"] = rng.randrange(20, 60)
    if rng.random() < 0.3:
        kw["online_only"] = True
    if at is not None and rng.random() < 0.5:
        start = at + timedelta(minutes=rng.randrange(-60, 300))
        kw["available_from"] = start
        kw["available_until"] = start + timedelta(minutes=rng.randrange(15, 180))
    kw["limit"] = rng.choice((5, 20, 500))
    return SearchQuery(**kw)  # type: ignore[arg-type]
