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
