"""SQLite as the embedded default runs it: a file, several threads, the R*Tree index."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeshare.adapters.sql import search as map_search
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import EARTH_RADIUS_M, BBox, Point, distance_m
from chargeshare.domain.search import SearchQuery
from chargeshare.domain.tariff import Tariff
from chargeshare.services.invariants import check_store
from tests.conftest import T0, examples
from tests.integration.helpers import (
    BOUNDARY_TOLERANCE_M,
    Fleet,
    assert_one_hold,
    race_for_one_connector,
    random_fleet,
    random_query,
    search_matches_oracle,
)
from tests.unit.test_geo import destination


def edge_spec(cp_id: str, host: int, p: Point) -> ChargerSpec:
    return ChargerSpec(cp_id, host, p, Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7_400),))


@pytest.mark.parametrize("locks", [True, False], ids=["with-lock", "db-only"])
@pytest.mark.slow
def test_concurrent_bookings_have_exactly_one_winner(tmp_path: Path, locks: bool) -> None:
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'race.db'}", locks_enabled=locks))
    try:
        outcomes = race_for_one_connector(app, attempts=1000)
        assert outcomes == {"won": 1, "conflict": 999}
        assert_one_hold(app)
        failed = [r for r in check_store(app.store, app.config.rules, final=False) if not r.ok]
        assert failed == []
    finally:
        app.close()


@pytest.fixture(scope="module")
def fleet_app() -> Iterator[tuple[App, Fleet]]:
    app = build(Config(database_url="sqlite://"))
    fleet = random_fleet(app, random.Random(1), 400, at=T0)
    yield app, fleet
    app.close()


@settings(
    max_examples=examples(150), suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(st.integers(0, 2**32))
@pytest.mark.slow
def test_search_matches_brute_force(fleet_app: tuple[App, Fleet], seed: int) -> None:
    app, fleet = fleet_app
    search_matches_oracle(app, fleet, random_query(random.Random(seed), T0))


@pytest.fixture(scope="module")
def empty_app() -> Iterator[App]:
    app = build(Config(database_url="sqlite://"))
    yield app
    app.close()


@settings(
    max_examples=examples(60), suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    st.floats(-75.0, 75.0),
    st.floats(-170.0, 170.0),
    st.floats(1_000, 200_000),
    st.lists(
        st.tuples(st.floats(0.9999, 1.0001), st.floats(-0.01, 0.01), st.sampled_from([1, -1])), max_size=6
    ),
)
def test_radius_search_finds_every_charger_near_the_circles_edge(
    empty_app: App, lat: float, lon: float, r: float, spots: list[tuple[float, float, int]]
) -> None:
    """Chargers just inside and outside the circle where it is widest east-west (poleward of its
    centre) against the haversine oracle: every one within the radius is found, nearest first."""
    centre = Point(lat, lon)
    tangent = math.acos(math.tan(r / EARTH_RADIUS_M) * math.tan(math.radians(lat)))
    points = [destination(centre, f * r, side * tangent + off) for f, off, side in spots]
    with empty_app.store.transaction() as tx:
        host = tx.accounts.add_host("host")
        ids = [tx.chargers.add(edge_spec(f"E{i}", host, p)) for i, p in enumerate(points)]
    try:
        with empty_app.store.reading() as tx:
            found = [c.charger_id for c in tx.chargers.search(SearchQuery(centre=centre, radius_m=r))]
        oracle = sorted((distance_m(centre, p), cid) for cid, p in zip(ids, points, strict=True))
        firm = [cid for d, cid in oracle if d < r - BOUNDARY_TOLERANCE_M]
        maybe = {cid for d, cid in oracle if abs(d - r) <= BOUNDARY_TOLERANCE_M}
        assert [cid for cid in found if cid not in maybe] == firm, (centre, r, oracle, found)
    finally:
        with empty_app.store.transaction() as tx:
            for i in range(len(ids)):
                tx.chargers.remove(f"E{i}")


def test_points_on_the_box_edge_are_inside(fleet_app: tuple[App, Fleet]) -> None:
    app, fleet = fleet_app
    cid, view = next(iter(fleet.views.items()))
    p = view.location
    exact = SearchQuery(bbox=BBox(p.lon, p.lat, p.lon, p.lat))
    assert [c.charger_id for c in app.marketplace.search(exact)] == [cid]


@settings(
    max_examples=examples(150), suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(st.integers(0, 2**32))
@pytest.mark.slow
def test_growing_circles_give_exactly_the_whole_area_answer(fleet_app: tuple[App, Fleet], seed: int) -> None:
    """SQLite searches growing circles around the origin; what it returns must be what one query
    over the whole area returns, row for row, distances included."""
    app, _fleet = fleet_app
    rng = random.Random(seed)
    q = random_query(rng, T0)
    if q.available_from is None and rng.random() < 0.5:  # with and without a booking window
        start = T0 + timedelta(minutes=rng.randrange(-60, 300))
        q = dataclasses.replace(q, available_from=start, available_until=start + timedelta(hours=2))
    if rng.random() < 0.5:
        q = dataclasses.replace(q, limit=rng.choice((1, 5, 20)))
    with app.store.reading() as tx:
        rings = list(tx.chargers.search(q))
        with mock.patch.object(map_search, "_FIRST_RING_M", math.inf):
            one_pass = list(tx.chargers.search(q))
    assert rings == one_pass
