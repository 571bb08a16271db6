"""SQLite as the embedded default runs it: a file, several threads, the R*Tree index."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.geo import BBox, Point
from chargeshare.services.invariants import check_store
from tests.integration.helpers import bbox_matches_oracle, race_for_one_connector, random_fleet


@pytest.fixture
def file_app(tmp_path: Path) -> Iterator[App]:
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'cs.db'}"))
    yield app
    app.close()


@pytest.mark.parametrize("locks", [True, False], ids=["with-lock", "db-only"])
def test_concurrent_bookings_have_exactly_one_winner(tmp_path: Path, locks: bool) -> None:
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'race.db'}", locks_enabled=locks))
    try:
        outcomes = race_for_one_connector(app, attempts=200)
        assert outcomes == {"won": 1, "conflict": 199}
        failed = [r for r in check_store(app.store, 1500, final=False) if not r.ok]
        assert failed == []
    finally:
        app.close()


@pytest.fixture(scope="module")
def fleet_app() -> Iterator[tuple[App, list[tuple[int, Point]]]]:
    app = build(Config(database_url="sqlite://"))
    fleet = random_fleet(app, random.Random(1), 400)
    yield app, fleet
    app.close()


coord = st.floats(-1.5, 1.5, allow_nan=False)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(50, 55), st.floats(0, 3), coord, st.floats(0, 2))
def test_bbox_search_matches_brute_force(
    fleet_app: tuple[App, list[tuple[int, Point]]], south: float, height: float, west: float, width: float
) -> None:
    app, fleet = fleet_app
    box = BBox(west, south, min(180, west + width), min(90, south + height))
    bbox_matches_oracle(app, fleet, box)


def test_points_on_the_box_edge_are_inside(fleet_app: tuple[App, list[tuple[int, Point]]]) -> None:
    app, fleet = fleet_app
    cid, p = fleet[0]
    exact = BBox(p.lon, p.lat, p.lon, p.lat)
    assert [c.charger_id for c in app.marketplace.search(exact)] == [cid]
