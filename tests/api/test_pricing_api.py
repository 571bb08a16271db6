"""A host chooses dynamic pricing through the API and a driver is quoted: the host's own only,
bad bounds a 400 that keeps nothing, and a quote within the bounds."""

from __future__ import annotations

from datetime import datetime, timedelta
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


async def test_a_driver_books_at_the_quote_held_for_them_after_the_price_rose() -> None:
    with world() as w:
        charger, driver = w.mine.charger_id, w.mine.driver.headers
        async with client(w.app) as http:
            await http.put("/host/pricing", json=DYNAMIC, headers=w.mine.host.headers)
            slot: dict[str, str | int] = {"starts_at": "2026-03-05T10:00:00Z", "minutes": 60}
            anonymous = await http.post(f"/chargers/{charger}/quotes", json=slot)
            assert anonymous.status_code == 401, anonymous.text
            held = await http.post(f"/chargers/{charger}/quotes", json=slot, headers=driver)
            assert held.status_code == 201, held.text
            quote = held.json()
            assert quote["charge_now"] is False and quote["mode"] == "dynamic"
            assert datetime.fromisoformat(quote["expires_at"]) == w.clock.now() + timedelta(minutes=10)
            # The host's floor rises past the quote: the price a booking is made at now is higher.
            await http.put(
                "/host/pricing",
                json={**DYNAMIC, "floor_per_kwh": 30, "ceiling_per_kwh": 40},
                headers=w.mine.host.headers,
            )
            now = (await http.get(f"/chargers/{charger}/quote", params=slot)).json()
            assert now["price_per_kwh"] > quote["price_per_kwh"]
            body = {"charger_id": charger, "max_energy_wh": 5_000, **slot, "quote_id": quote["quote_id"]}
            theirs = await http.post("/bookings", json=body, headers=w.theirs.driver.headers)
            assert theirs.status_code == 404, theirs.text  # someone else's quote: as if there were none
            other = await http.post("/bookings", json={**body, "minutes": 90}, headers=driver)
            assert other.status_code == 422 and other.json()["error"] == "quote_mismatch", other.text
            key = {"Idempotency-Key": "attempt-1"}
            made = await http.post("/bookings", json=body, headers={**driver, **key})
            assert made.status_code == 201, made.text
            assert made.json()["price_per_kwh"] == quote["price_per_kwh"]
            again = await http.post("/bookings", json=body, headers={**driver, **key})
            assert again.status_code == 201 and again.json()["id"] == made.json()["id"], again.text
            used = await http.post(
                "/bookings",
                json={**body, "connector_no": 2},
                headers={**driver, "Idempotency-Key": "attempt-2"},
            )
            assert used.status_code == 409 and used.json()["error"] == "quote_used", used.text
            late = (await http.post(f"/chargers/{charger}/quotes", json=slot, headers=driver)).json()
            w.clock.advance(10 * 60)
            expired = await http.post(
                "/bookings", json={**body, "connector_no": 2, "quote_id": late["quote_id"]}, headers=driver
            )
            assert expired.status_code == 409 and expired.json()["error"] == "quote_expired", expired.text


async def test_a_booking_naming_a_quote_the_sweep_deleted_is_a_404() -> None:
    """The sweep deletes a quote no booking used once it expired longer ago than the retention: a
    booking naming it is answered as for a quote that never was. The quote a booking was made with
    stays, and a copy of that booking's request still answers with the booking."""
    with world() as w:
        charger, driver = w.mine.charger_id, w.mine.driver.headers
        async with client(w.app) as http:
            slot: dict[str, str | int] = {"starts_at": "2026-03-05T10:00:00Z", "minutes": 60}
            used = (await http.post(f"/chargers/{charger}/quotes", json=slot, headers=driver)).json()
            later: dict[str, str | int] = {"starts_at": "2026-03-06T10:00:00Z", "minutes": 60}
            unused = (await http.post(f"/chargers/{charger}/quotes", json=later, headers=driver)).json()
            body = {"charger_id": charger, "max_energy_wh": 5_000, **slot, "quote_id": used["quote_id"]}
            key = {"Idempotency-Key": "with-quote"}
            made = await http.post("/bookings", json=body, headers={**driver, **key})
            assert made.status_code == 201, made.text
            w.app.pricing.retention = timedelta(0)  # so the sign-in tokens outlive the wait
            w.clock.advance(10 * 60 + 1)
            assert w.app.housekeeping.sweep().counts["held_quotes_deleted"] == 1
            gone = await http.post(
                "/bookings", json={**body, **later, "quote_id": unused["quote_id"]}, headers=driver
            )
            assert gone.status_code == 404 and gone.json()["error"] == "not_found", gone.text
            again = await http.post("/bookings", json=body, headers={**driver, **key})
            assert again.status_code == 201 and again.json()["id"] == made.json()["id"], again.text
