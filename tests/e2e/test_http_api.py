"""The REST API over real HTTP on loopback."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import add_charger
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e


async def test_health_and_openapi(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.http) as http:
        health = (await http.get("/health")).json()
        assert health["status"] == "ok" and health["database"] == "sqlite"
        spec = (await http.get("/openapi.json")).json()
        assert {"/health", "/chargers", "/bookings", "/bookings/{booking_id}/cancel"} <= set(spec["paths"])


async def test_bbox_search(served: Served) -> None:
    add_charger(served.app, "IN", lat=51.45, lon=-0.01)
    add_charger(served.app, "EAST", lat=51.45, lon=0.01)  # across the Greenwich meridian
    add_charger(served.app, "FAR", lat=53.0, lon=-2.0)
    async with httpx.AsyncClient(base_url=served.http) as http:
        r = await http.get("/chargers", params={"bbox": "-0.1,51.4,0.1,51.5"})
        assert r.status_code == 200
        assert sorted(c["charge_point_id"] for c in r.json()) == ["EAST", "IN"]
        for bad in ("1,2,3", "x,1,2,3", "0.1,51.4,-0.1,51.5"):
            r = await http.get("/chargers", params={"bbox": bad})
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", bad
        missing = await http.get("/chargers")
        assert missing.status_code == 400 and "exactly one" in missing.json()["detail"]


async def test_booking_conflict_is_409_and_cancel_frees_the_slot(served: Served) -> None:
    charger = add_charger(served.app)
    async with httpx.AsyncClient(base_url=served.http) as http:
        a = (await http.post("/drivers", json={"name": "A", "id_tag": "A1"})).json()["id"]
        b = (await http.post("/drivers", json={"name": "B", "id_tag": "B1"})).json()["id"]
        dup = await http.post("/drivers", json={"name": "C", "id_tag": "A1"})
        assert dup.status_code == 400
        body = {"charger_id": charger, "connector_no": 1, "minutes": 60, "max_energy_wh": 10_000}
        first = await http.post("/bookings", json={"driver_id": a, **body})
        assert first.status_code == 201 and first.json()["status"] == "confirmed"
        assert first.json()["hold_amount"] == 330  # 10 kWh x 30p + 10% headroom
        second = await http.post("/bookings", json={"driver_id": b, **body})
        assert second.status_code == 409 and second.json()["error"] == "booking_conflict"
        wrong = await http.post(f"/bookings/{first.json()['id']}/cancel", json={"driver_id": b})
        assert wrong.status_code == 404
        ok = await http.post(f"/bookings/{first.json()['id']}/cancel", json={"driver_id": a})
        assert ok.status_code == 200 and ok.json()["status"] == "cancelled"
        again = await http.post(f"/bookings/{first.json()['id']}/cancel", json={"driver_id": a})
        assert again.status_code == 409
        assert (await http.post("/bookings", json={"driver_id": b, **body})).status_code == 201
        naive = await http.post(
            "/bookings", json={"driver_id": b, **body, "starts_at": "2030-01-01T10:00:00"}
        )
        assert naive.status_code == 400
        assert (await http.get("/bookings/999")).status_code == 404


async def test_concurrent_http_bookings_have_one_winner(served: Served) -> None:
    charger = add_charger(served.app)
    async with httpx.AsyncClient(base_url=served.http, timeout=30) as http:
        ids = [
            (await http.post("/drivers", json={"name": f"d{i}", "id_tag": f"T{i}"})).json()["id"]
            for i in range(40)
        ]
        body = {"charger_id": charger, "connector_no": 1, "minutes": 45, "max_energy_wh": 5_000}
        replies = await asyncio.gather(*(http.post("/bookings", json={"driver_id": d, **body}) for d in ids))
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] + [409] * 39
