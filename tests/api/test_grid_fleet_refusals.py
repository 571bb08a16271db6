"""Requests the grid, pricing and fleet endpoints must refuse with a clear 4xx (issue 19's
adversarial review): times without a zone, months past the calendar, limits no car can charge under."""

from __future__ import annotations

from chargeshare.domain.grid_limits import MIN_CHARGING_W
from tests.api.test_fleets_api import business
from tests.api.world import client, world


async def test_a_flex_event_or_a_quote_with_a_time_without_its_zone_is_a_422() -> None:
    with world() as w:
        admin = w.admin.headers
        async with client(w.app) as http:
            feeder = (
                await http.post("/admin/feeders", json={"name": "F", "limit_w": 60_000}, headers=admin)
            ).json()
            event = {"scope": "feeder", "target_id": feeder["feeder_id"], "limit_w": 10_000}
            naive = {**event, "starts_at": "2026-06-01T18:00:00", "ends_at": "2026-06-01T19:00:00Z"}
            refused = await http.post("/admin/flex-events", json=naive, headers=admin)
            assert refused.status_code == 422, refused.text
            assert "time zone" in refused.text
            assert (await http.get("/admin/flex-events", headers=admin)).json() == []
            summer = {**event, "starts_at": "2026-06-01T18:00:00+01:00", "ends_at": "2026-06-01T19:00:00Z"}
            made = await http.post("/admin/flex-events", json=summer, headers=admin)
            assert made.status_code == 201, made.text
            assert made.json()["starts_at"] == "2026-06-01T17:00:00Z"
            quote = f"/chargers/{w.mine.charger_id}/quote"
            bare = await http.get(quote, params={"starts_at": "2026-06-01T18:00:00"})
            assert bare.status_code == 422 and "time zone" in bare.text
            zoned = await http.get(quote, params={"starts_at": "2026-06-01T18:00:00Z"})
            assert zoned.status_code == 200, zoned.text


async def test_an_invoice_month_past_the_calendar_is_a_422_not_a_500() -> None:
    with world() as w:
        mine, _ = business(w.app, "vans", "VANS")
        admin = w.admin.headers
        async with client(w.app) as http:
            for month in ("9999-12", "0001-01", "1899-12", "2026-13", "2026-00"):
                for path in (f"/fleets/{mine}/invoices/{month}", f"/fleets/{mine}/invoices/{month}/payments"):
                    answer = await http.post(path, json={"amount": 1}, headers=admin)
                    assert answer.status_code == 422, (path, answer.text)
                    assert "month" in answer.text
                got = await http.get(f"/fleets/{mine}/invoices/{month}", headers=admin)
                assert got.status_code == 422, got.text


async def test_a_site_or_feeder_no_charger_could_draw_under_is_refused() -> None:
    with world() as w:
        admin, host = w.admin.headers, w.mine.host.headers
        async with client(w.app) as http:
            low = MIN_CHARGING_W - 1
            site = await http.post("/host/sites", json={"name": "x", "limit_w": low}, headers=host)
            assert site.status_code in (400, 422) and f"{MIN_CHARGING_W} W" in site.text
            feeder = await http.post("/admin/feeders", json={"name": "F", "limit_w": low}, headers=admin)
            assert feeder.status_code in (400, 422) and f"{MIN_CHARGING_W} W" in feeder.text
            assert (await http.get("/admin/feeders", headers=admin)).json() == []
            least = await http.post(
                "/host/sites", json={"name": "x", "limit_w": MIN_CHARGING_W}, headers=host
            )
            assert least.status_code == 201, least.text
