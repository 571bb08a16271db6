"""PostgreSQL + PostGIS for real: the exclusion constraint, the GiST bbox search, concurrent bookers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from chargeshare.adapters.pg_admin import temporary_database
from chargeshare.adapters.sql import schema as t
from chargeshare.bootstrap import App, Config, build
from chargeshare.services.invariants import check_store
from tests.conftest import POSTGRES_URL, REDIS_URL, T0, add_charger, examples, service_missing, sql_store
from tests.integration.helpers import (
    Fleet,
    assert_one_hold,
    race_for_one_connector,
    random_fleet,
    random_query,
    search_matches_oracle,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_app(postgres_url: str) -> Iterator[App]:
    app = build(Config(database_url=postgres_url))
    yield app
    app.close()


def test_schema_has_postgis_and_the_exclusion_constraint(pg_app: App) -> None:
    with sql_store(pg_app).engine.connect() as conn:
        assert conn.execute(text("SELECT postgis_version()")).scalar()
        names = (
            conn.execute(
                text(
                    "SELECT conname FROM pg_constraint "
                    "WHERE conrelid = 'bookings'::regclass AND contype = 'x'"
                )
            )
            .scalars()
            .all()
        )
    assert names == ["ex_bookings_no_overlap"]
    pg_app.store.create_schema()  # idempotent


def test_the_database_itself_refuses_an_overlap(pg_app: App) -> None:
    """Written around the service (no check, no lock): the constraint alone stops it."""
    add_charger(pg_app)
    d = pg_app.marketplace.add_driver("A", "A").driver_id
    t0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
    row = dict(
        driver_id=d,
        connector_id=1,
        status="confirmed",
        max_energy_wh=1,
        price_per_kwh=1,
        hold_amount=1,
        created_at=t0,
    )
    with sql_store(pg_app).engine.begin() as conn:
        conn.execute(insert(t.bookings).values(starts_at=t0, ends_at=t0 + timedelta(hours=1), **row))
        # touching periods are fine ([) ranges), and cancelled bookings do not count
        conn.execute(
            insert(t.bookings).values(
                starts_at=t0 + timedelta(hours=1), ends_at=t0 + timedelta(hours=2), **row
            )
        )
        conn.execute(
            insert(t.bookings).values(
                starts_at=t0, ends_at=t0 + timedelta(hours=2), **{**row, "status": "cancelled"}
            )
        )
    with pytest.raises(IntegrityError) as err, sql_store(pg_app).engine.begin() as conn:
        conn.execute(
            insert(t.bookings).values(
                starts_at=t0 + timedelta(minutes=30), ends_at=t0 + timedelta(minutes=90), **row
            )
        )
    assert getattr(err.value.orig, "sqlstate", None) == "23P01"


@pytest.mark.parametrize("locks", [True, False], ids=["real-redis-lock", "db-only"])
def test_concurrent_bookings_have_exactly_one_winner(
    postgres_url: str, redis_client: object, locks: bool
) -> None:
    app = build(Config(database_url=postgres_url, redis_url=REDIS_URL, locks_enabled=locks))
    try:
        outcomes = race_for_one_connector(app, attempts=1000)
        assert outcomes == {"won": 1, "conflict": 999}
        assert_one_hold(app)
        assert [r for r in check_store(app.store, app.config.rules, final=False) if not r.ok] == []
    finally:
        app.close()


@pytest.fixture(scope="module")
def pg_fleet() -> Iterator[tuple[App, Fleet]]:
    """One PostGIS database with a random fleet, shared by the examples of the oracle test."""
    try:
        db = temporary_database(POSTGRES_URL, prefix="cs_test_fleet")
        url = db.__enter__()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    app = build(Config(database_url=url))
    try:
        yield app, random_fleet(app, random.Random(3), 300, at=T0)
    finally:
        app.close()
        db.__exit__(None, None, None)


@settings(
    max_examples=examples(150), suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(st.integers(0, 2**32))
def test_search_matches_brute_force(pg_fleet: tuple[App, Fleet], seed: int) -> None:
    app, fleet = pg_fleet
    search_matches_oracle(app, fleet, random_query(random.Random(seed), T0))


def test_searches_use_the_spatial_indexes(pg_app: App) -> None:
    random_fleet(pg_app, random.Random(4), 200)
    with sql_store(pg_app).engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        box = "\n".join(
            conn.execute(
                text("EXPLAIN SELECT id FROM chargers WHERE geom && ST_MakeEnvelope(-1, 51, 0, 52, 4326)")
            ).scalars()
        )
        knn = "\n".join(
            conn.execute(
                text(
                    "EXPLAIN SELECT id FROM chargers "
                    "ORDER BY location <-> ST_MakePoint(0, 51)::geography LIMIT 5"
                )
            ).scalars()
        )
    assert "ix_chargers_geom" in box
    assert "ix_chargers_location_offer" in knn
