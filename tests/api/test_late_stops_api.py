"""`GET /admin/late-stops`: the operator's page of sessions whose stop came after the sweep closed
them; bounds on the page are a 4xx."""

from __future__ import annotations

from tests.api.world import client, world
from tests.services.test_late_stop_views import two_late_stops


async def test_an_operator_pages_through_the_late_stops() -> None:
    with world() as w:
        rebilled, kept = two_late_stops(w.app, w.clock)
        async with client(w.app) as http:
            page = await http.get("/admin/late-stops", headers=w.admin.headers)
            assert page.status_code == 200, page.text
            first, second = page.json()
            assert first == {
                "session_id": rebilled,
                "booking_id": first["booking_id"],
                "charge_point_id": "CP1",
                "outcome": "rebilled",
                "late_stop_wh": 2_000,
                "billed_wh": 1_000,
                "cost": 40,
                "unbilled_wh": 0,
                "unbilled_p": 0,
                "late_export_wh": None,
                "uncredited_export_wh": 0,
                "uncredited_export_p": 0,
                "rebilled_at": first["at"],
                "at": first["at"],
            }
            assert (second["session_id"], second["outcome"], second["unbilled_wh"]) == (kept, "unbilled", 700)
            assert (second["late_export_wh"], second["uncredited_export_wh"]) == (55_000, 3_000)
            assert (second["unbilled_p"], second["uncredited_export_p"], second["rebilled_at"]) == (
                28,
                75,
                None,
            )
            assert second["at"].startswith("2026-03-02T")
            one = await http.get("/admin/late-stops?limit=1", headers=w.admin.headers)
            assert [x["session_id"] for x in one.json()] == [rebilled]
            after = await http.get(f"/admin/late-stops?after={rebilled}", headers=w.admin.headers)
            assert [x["session_id"] for x in after.json()] == [kept]
            for bad in ("limit=0", "limit=501", "after=-1", "limit=x"):
                refused = await http.get(f"/admin/late-stops?{bad}", headers=w.admin.headers)
                assert refused.status_code in (400, 422), (bad, refused.text)
            driver = await http.get("/admin/late-stops", headers=w.mine.driver.headers)
            assert driver.status_code == 403
