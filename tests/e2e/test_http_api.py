"""The REST API over real HTTP on loopback, signed in as the apps are."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests import api_helpers as accounts
from tests.conftest import add_charger
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e


async def test_health_and_openapi(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.http) as http:
        health = (await http.get("/health")).json()
        assert health["status"] == "ok" and health["database"] == "sqlite"
        spec = (await http.get("/openapi.json")).json()
        assert {"/health", "/chargers", "/bookings", "/bookings/{booking_id}/cancel", "/auth/login"} <= set(
            spec["paths"]
        )
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


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


async def test_sign_up_log_in_and_book(served: Served) -> None:
    charger = add_charger(served.app)
    async with httpx.AsyncClient(base_url=served.http) as http:
        signup = {"email": "Ann@Example.com", "password": "long enough pw", "name": "Ann", "id_tag": "ANN1"}
        r = await http.post("/auth/register/driver", json=signup)
        assert r.status_code == 201 and r.json()["role"] == "driver"
        again = await http.post("/auth/register/driver", json={**signup, "id_tag": "ANN2"})
        assert again.status_code == 400 and "exists" in again.json()["detail"]  # case-insensitive email
        wrong = await http.post("/auth/login", json={"email": "ann@example.com", "password": "not the pw!"})
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        ok = await http.post("/auth/login", json={"email": " ann@example.COM", "password": "long enough pw"})
        assert ok.status_code == 200
        headers = {"Authorization": f"Bearer {ok.json()['access_token']}"}
        me = (await http.get("/auth/me", headers=headers)).json()
        assert (me["email"], me["id_tag"]) == ("ann@example.com", "ANN1")
        body = {"charger_id": charger, "connector_no": 1, "minutes": 60, "max_energy_wh": 10_000}
        assert (await http.post("/bookings", json=body)).status_code == 401
        booked = await http.post("/bookings", json=body, headers=headers)
        assert booked.status_code == 201 and booked.json()["driver_id"] == me["driver_id"]


async def test_booking_conflict_is_409_and_cancel_frees_the_slot(served: Served) -> None:
    charger = add_charger(served.app)
    a, b = accounts.driver(served.app, "A", "A1"), accounts.driver(served.app, "B", "B1")
    async with httpx.AsyncClient(base_url=served.http) as http:
        body = {"charger_id": charger, "connector_no": 1, "minutes": 60, "max_energy_wh": 10_000}
        first = await http.post("/bookings", json=body, headers=a.headers)
        assert first.status_code == 201 and first.json()["status"] == "confirmed"
        assert first.json()["hold_amount"] == 330  # 10 kWh x 30p + 10% headroom
        second = await http.post("/bookings", json=body, headers=b.headers)
        assert second.status_code == 409 and second.json()["error"] == "booking_conflict"
        wrong = await http.post(f"/bookings/{first.json()['id']}/cancel", headers=b.headers)
        assert wrong.status_code == 404
        ok = await http.post(f"/bookings/{first.json()['id']}/cancel", headers=a.headers)
        assert ok.status_code == 200 and ok.json()["status"] == "cancelled"
        again = await http.post(f"/bookings/{first.json()['id']}/cancel", headers=a.headers)
        assert again.status_code == 409
        assert (await http.post("/bookings", json=body, headers=b.headers)).status_code == 201
        naive = await http.post(
            "/bookings", json={**body, "starts_at": "2030-01-01T10:00:00"}, headers=b.headers
        )
        assert naive.status_code == 400
        assert (await http.get("/bookings/999", headers=a.headers)).status_code == 404


async def test_concurrent_http_bookings_have_one_winner(served: Served) -> None:
    charger = add_charger(served.app)
    drivers = [accounts.driver(served.app, f"d{i}", f"T{i}") for i in range(40)]
    async with httpx.AsyncClient(base_url=served.http, timeout=30) as http:
        body = {"charger_id": charger, "connector_no": 1, "minutes": 45, "max_energy_wh": 5_000}
        replies = await asyncio.gather(
            *(http.post("/bookings", json=body, headers=d.headers) for d in drivers)
        )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] + [409] * 39


async def test_a_charge_now_quote_held_over_http_prices_the_booking(served: Served) -> None:
    charger = add_charger(served.app, price=30)
    a = accounts.driver(served.app, "A", "A1")
    async with httpx.AsyncClient(base_url=served.http) as http:
        held = await http.post(f"/chargers/{charger}/quotes", json={"minutes": 60}, headers=a.headers)
        assert held.status_code == 201 and held.json()["charge_now"] is True, held.text
        with served.app.store.reading() as tx:
            host = tx.chargers.by_id(charger).host_id
        served.app.hosting.update_charger(charger, host, price_per_kwh=80)  # the price moves on
        body = {
            "charger_id": charger,
            "minutes": 60,
            "max_energy_wh": 10_000,
            "quote_id": held.json()["quote_id"],
        }
        booked = await http.post("/bookings", json=body, headers=a.headers)
        assert booked.status_code == 201 and booked.json()["price_per_kwh"] == 30, booked.text
        cancelled = await http.post(f"/bookings/{booked.json()['id']}/cancel", headers=a.headers)
        assert cancelled.status_code == 200
        again = await http.post("/bookings", json=body, headers=a.headers)
        assert again.status_code == 409 and again.json()["error"] == "quote_used", again.text
