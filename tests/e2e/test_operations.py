"""`serve`'s operations endpoints over real HTTP and WebSockets: Prometheus metrics that follow what
chargers and the store do, liveness, and readiness that names the dependency that is down."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from ocpp.v16 import call as call16
from prometheus_client.parser import text_string_to_metric_families

from chargeshare.entrypoints.api.routes_health import readiness
from chargeshare.services.booking import BookRequest
from tests.conftest import add_charger
from tests.e2e.conftest import Served
from tests.e2e.ocpp_clients import boot16, boot201, library_cp16, library_cp201

pytestmark = pytest.mark.e2e


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(base_url=served.http) as http:
        r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_metrics_follow_chargers_frames_and_the_store(served: Served) -> None:
    app = served.app
    charger = add_charger(app, "M16")
    add_charger(app, "M201")
    driver = app.marketplace.add_driver("D", "TAG")
    app.bookings.book(BookRequest(driver.driver_id, charger, 1, 60, 10_000))
    before = await scrape(served)
    assert before[("chargeshare_chargers_connected", (("version", "1.6"),))] == 0
    assert before[("chargeshare_bookings", (("status", "confirmed"),))] == 1
    async with library_cp16(served.ws, "M16") as cp16, library_cp201(served.ws, "M201") as cp201:
        await boot16(cp16)
        await boot201(cp201)
        for _ in range(3):
            await cp16.call(call16.Heartbeat())
        await cp16.call(
            call16.StopTransaction(meter_stop=5, timestamp="2026-01-01T00:00:00Z", transaction_id=999)
        )
        during = await scrape(served)
    assert during[("chargeshare_chargers_connected", (("version", "1.6"),))] == 1
    assert during[("chargeshare_chargers_connected", (("version", "2.0.1"),))] == 1
    frames = {labels: v for (name, labels), v in during.items() if name == "chargeshare_ocpp_frames_total"}
    assert frames[(("action", "Heartbeat"), ("outcome", "result"))] == 3
    assert frames[(("action", "BootNotification"), ("outcome", "result"))] == 2
    assert frames[(("action", "StopTransaction"), ("outcome", "result"))] == 1
    assert during[("chargeshare_ocpp_ack_seconds_count", ())] == 6
    assert during[("chargeshare_unit_of_work_seconds_count", ())] > 0
    assert during[("chargeshare_payment_steps", (("status", "done"),))] >= 1  # the booking's hold
    for _ in range(200):  # the server sees the links close a moment later
        after = await scrape(served)
        if after[("chargeshare_chargers_connected", (("version", "1.6"),))] == 0:
            break
        await asyncio.sleep(0.02)
    assert after[("chargeshare_chargers_connected", (("version", "1.6"),))] == 0


async def test_liveness_and_readiness(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.http) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readiness_names_what_is_down(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(served.app.store, "reading", broken)
    checks = readiness(served.app)
    assert checks["database"].startswith("ConnectionError: database unreachable")
    async with httpx.AsyncClient(base_url=served.http) as http:
        r = await http.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not ready"
