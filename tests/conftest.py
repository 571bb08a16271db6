"""Shared fixtures. Real services are used when reachable; with CHARGESHARE_REQUIRE_SERVICES=1 (CI)
a missing PostgreSQL/PostGIS or Redis is a failure, never a skip."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import settings

from chargeshare.adapters.sql import SqlStore
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from chargeshare.services.clock import Clock, ManualClock

POSTGRES_URL = os.environ.get(
    "CHARGESHARE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/chargeshare_test"
)
REDIS_URL = os.environ.get("CHARGESHARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("CHARGESHARE_REQUIRE_SERVICES") == "1"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SQLITE_MEMORY = "sqlite://"
# The quick loop's hypothesis profile: a fifth of the default's examples. The full run (no -m) keeps the
# default, so every property still gets its whole count there.
QUICK_HYPOTHESIS = "quick"
settings.register_profile(QUICK_HYPOTHESIS, max_examples=20)


def examples(count: int) -> int:
    """A test's own example count, scaled as the loaded profile scales hypothesis's default (100)."""
    loaded: int = settings().max_examples
    return max(1, count * loaded // 100)


def sql_store(app: App) -> SqlStore:
    """The app's store, which this test needs to be the SQL one (it reaches the engine)."""
    assert isinstance(app.store, SqlStore), f"this test needs a SQL store, not {app.store.dialect}"
    return app.store


@cache
def _sqlite_template() -> SqlStore:
    """An in-memory SQLite brought to the head revision once per session, kept open to copy from."""
    template = SqlStore(SQLITE_MEMORY)
    template.create_schema()
    return template


def build_for_tests(config: Config, *, clock: Clock | None = None, like: SqlStore | None = None) -> App:
    """`build(config)`, except that SQLite in memory gets its schema copied page by page from a
    session's template (or its schema and rows from `like`, another in-memory store): creating it
    costs more than most tests using it. File databases (and tests/integration/test_migrations.py)
    still create theirs."""
    if config.database_url != SQLITE_MEMORY:
        assert like is None, "only SQLite in memory is copied"
        return build(config, clock=clock)
    app = build(config, clock=clock, create_schema=False)
    target = sql_store(app).engine.raw_connection()  # the store's one connection (a StaticPool)
    source = (like or _sqlite_template()).engine.raw_connection()
    try:
        source.driver_connection.backup(target.driver_connection)  # type: ignore[union-attr]
    finally:
        source.close()
        target.close()
    return app


def service_missing(what: str, why: object) -> NoReturn:
    message = f"{what} is not reachable: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (CHARGESHARE_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(message)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def app(clock: ManualClock) -> Iterator[App]:
    a = build(Config(database_url="memory://"), clock=clock)
    yield a
    a.close()


def add_charger(
    app: App,
    cp_id: str = "CP1",
    *,
    lat: float = 51.45,
    lon: float = -2.59,
    price: int = 30,
    power_w: int = 7400,
    online: bool = True,
) -> int:
    """A registered charger; `online` also boots it and reports its connector Available."""
    host = app.marketplace.add_host(f"host of {cp_id}")
    view = app.marketplace.add_charger(
        ChargerSpec(
            cp_id, host, Point(lat, lon), Tariff(price), (ConnectorSpec(1, ConnectorType.TYPE2, power_w),)
        )
    )
    if online:
        app.charging.boot(cp_id, V16)
        app.charging.status(cp_id, 0, ConnectorStatus.AVAILABLE)
    return view.charger_id


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema-less database for each test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    admin_url = base.set(database="postgres")
    name = f"cs_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_client() -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        service_missing("Redis", exc)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What importing and collecting made (modules, functions, parameters) lives to the end of the
    run: frozen, the cyclic GC's full passes (several during a run, five more at its end) skip it."""
    gc.freeze()


# Every test in these folders talks over real sockets on loopback. A `pytestmark` in their conftest
# would mark nothing (pytest reads it only in test modules), so the path decides here.
E2E_DIRS = tuple(Path(__file__).parent / name for name in ("e2e", "charger"))
# Folders whose every test is slow: over real sockets, or killing real processes.
SLOW_DIRS = (*E2E_DIRS, Path(__file__).parent / "crash")
QUICK_LOOP = "not slow"


def quick_loop(config: pytest.Config) -> bool:
    return " ".join(str(config.getoption("markexpr") or "").split()) == QUICK_LOOP


def pytest_configure(config: pytest.Config) -> None:
    """The quick loop runs fewer hypothesis examples, unless a profile was named on the command line.
    Test modules are imported after this, so `examples` in their decorators sees the loaded profile."""
    if quick_loop(config) and not config.getoption("hypothesis_profile", None):
        settings.load_profile(QUICK_HYPOTHESIS)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The quick loop does not import the folders it would deselect whole: their modules (websockets,
    the ocpp library's three versions, process harnesses) cost seconds of its minute to collect."""
    if quick_loop(config) and any(collection_path == folder for folder in SLOW_DIRS):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`e2e` for every test in E2E_DIRS; over real sockets or on real PostgreSQL is `slow` too, as is
    every test in SLOW_DIRS, so `-m "not slow"` is the quick loop."""
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in E2E_DIRS):
            item.add_marker(pytest.mark.e2e)
        slow_here = any(item.path.is_relative_to(folder) for folder in SLOW_DIRS)
        if slow_here or item.get_closest_marker("e2e") or item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.slow)
