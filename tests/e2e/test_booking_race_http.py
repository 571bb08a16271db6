"""1,000 drivers race for one connector over real HTTP, on each backend, with and without the lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from chargeshare.bootstrap import Config, build
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.services.invariants import check_store
from tests import api_helpers as accounts
from tests.conftest import REDIS_URL, add_charger
from tests.integration.helpers import assert_one_hold

pytestmark = pytest.mark.e2e

ATTEMPTS = 1_000
IN_FLIGHT = 32  # concurrent requests at any moment (bounded, like a real client pool; under the
# server's 40 worker threads, so no request waits for a thread while holding a connection)


async def race_over_http(config: Config) -> list[int]:
    app = build(config)
    try:
        charger = add_charger(app, "HTTPRACE")
        drivers = [accounts.driver(app, f"d{i}", f"H{i}").headers for i in range(ATTEMPTS)]
        async with LoopbackServer(create_api(app)) as server:
            limits = httpx.Limits(max_connections=IN_FLIGHT)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.port}", timeout=60, limits=limits
            ) as http:
                body = {"charger_id": charger, "connector_no": 1, "minutes": 45, "max_energy_wh": 5_000}
                replies = await asyncio.gather(
                    *(http.post("/bookings", json=body, headers=d) for d in drivers)
                )
        assert_one_hold(app)
        assert [r.name for r in check_store(app.store, app.config.rules, final=False) if not r.ok] == []
        return sorted(r.status_code for r in replies)
    finally:
        app.close()


@pytest.mark.parametrize("locks", [True, False], ids=["fakeredis-lock", "db-only"])
async def test_sqlite(tmp_path: Path, locks: bool) -> None:
    codes = await race_over_http(
        Config(database_url=f"sqlite:///{tmp_path / 'race.db'}", locks_enabled=locks, password_hash="fast")
    )
    assert codes == [201] + [409] * (ATTEMPTS - 1)


@pytest.mark.postgres
@pytest.mark.parametrize("locks", [True, False], ids=["real-redis-lock", "db-only"])
async def test_postgres(postgres_url: str, redis_client: object, locks: bool) -> None:
    codes = await race_over_http(
        Config(database_url=postgres_url, redis_url=REDIS_URL, locks_enabled=locks, password_hash="fast")
    )
    assert codes == [201] + [409] * (ATTEMPTS - 1)
