"""A host chooses dynamic pricing through the API and a driver is quoted: the host's own only,
bad bounds a 400 that keeps nothing, and a quote within the bounds."""

from __future__ import annotations

from typing import Any

from tests.api.world import client, world

DYNAMIC: dict[str, Any] = {
    "mode": "dynamic",
    "floor_per_kwh": 20,
    "ceiling_per_kwh": 22,
    "own_day_per_kwh": 25,
    "own_night_per_kwh": 7,
}


async def test_a_host_sets_dynamic_pricing_and_its_chargers_are_quoted_within_it() -> None:
    with world() as w:
        mine, theirs = w.mine.host.headers, w.theirs.host.headers
        async with client(w.app) as http:
            before = await http.get("/host/pricing", headers=mine)
            assert before.status_code == 200 and before.json()["configured"] is False
            flat = await http.get(f"/chargers/{w.mine.charger_id}/quote")
            assert flat.status_code == 200, flat.text
            assert flat.json()["mode"] == "flat"
            put = await http.put("/host/pricing", json=DYNAMIC, headers=mine)
            assert put.status_code == 200, put.text
            assert (await http.get("/host/pricing", headers=mine)).json() == put.json()
            assert (await http.get("/host/pricing", headers=theirs)).json()["configured"] is False
            quoted = await http.get(f"/chargers/{w.mine.charger_id}/quote", params={"minutes": 120})
            body = quoted.json()
            assert body["mode"] == "dynamic" and 20 <= body["price_per_kwh"] <= 22, body
            assert set(body["adjustments_bps"]) == {"time_of_day", "utilisation", "carbon", "weather"}


async def test_bounds_that_make_no_sense_are_a_400_and_keep_nothing() -> None:
    with world() as w:
        mine = w.mine.host.headers
        async with client(w.app) as http:
            for change in ({"floor_per_kwh": 30}, {"mode": "surge"}, {"own_day_per_kwh": -1}):
                refused = await http.put("/host/pricing", json={**DYNAMIC, **change}, headers=mine)
                assert refused.status_code in (400, 422), refused.text
            assert (await http.get("/host/pricing", headers=mine)).json()["configured"] is False
            bad = await http.get(f"/chargers/{w.mine.charger_id}/quote", params={"minutes": 0})
            assert bad.status_code in (400, 422)
            missing = await http.get("/chargers/999999/quote")
            assert missing.status_code == 404


async def test_a_booking_above_the_price_the_driver_accepts_is_a_409_saying_so() -> None:
    with world() as w:
        async with client(w.app) as http:
            await http.put("/host/pricing", json=DYNAMIC, headers=w.mine.host.headers)
            slot: dict[str, str | int] = {"starts_at": "2026-03-05T10:00:00Z", "minutes": 60}
            quoted = (await http.get(f"/chargers/{w.mine.charger_id}/quote", params=slot)).json()
            body = {"charger_id": w.mine.charger_id, "max_energy_wh": 5_000, **slot}
            dear = await http.post(
                "/bookings",
                json={**body, "max_price_per_kwh": quoted["price_per_kwh"] - 1},
                headers=w.mine.driver.headers,
            )
            assert dear.status_code == 409 and dear.json()["error"] == "price_above_limit", dear.text
            made = await http.post(
                "/bookings",
                json={**body, "max_price_per_kwh": quoted["price_per_kwh"]},
                headers=w.mine.driver.headers,
            )
            assert made.status_code == 201, made.text
            assert made.json()["price_per_kwh"] == quoted["price_per_kwh"]
