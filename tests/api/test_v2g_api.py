"""V2G export terms through the API: the booking's driver sets them and reads them back with the
export, the host sees the same, a floor that would strand the driver is a 4xx keeping nothing, and
another driver's booking is a 404; the payout run pays a driver their export credit only once the
operator verified their payout details, and says whom it withheld and why."""

from __future__ import annotations

from tests.api.world import client, world
from tests.services.test_export_payouts import exported


async def test_a_driver_sets_export_terms_and_both_parties_read_the_export() -> None:
    with world() as w:
        booking = w.mine.live_booking
        async with client(w.app) as http:
            url = f"/bookings/{booking}/export-terms"
            refused = await http.put(
                url, json={"price_per_kwh": 25, "soc_floor_pct": 5}, headers=w.mine.driver.headers
            )
            assert refused.status_code in (400, 422), refused.text
            empty = await http.get(f"/bookings/{booking}/export", headers=w.mine.driver.headers)
            assert empty.status_code == 200 and empty.json()["terms"] is None
            put = await http.put(
                url, json={"price_per_kwh": 25, "soc_floor_pct": 40}, headers=w.mine.driver.headers
            )
            assert put.status_code == 200, put.text
            body = put.json()
            assert body["terms"]["price_per_kwh"] == 25 and body["terms"]["soc_floor_pct"] == 40
            assert (body["exported_wh"], body["credit"], body["settled"]) == (0, None, False)
            seen = await http.get(f"/bookings/{booking}/export", headers=w.mine.host.headers)
            assert seen.status_code == 200 and seen.json()["terms"] == body["terms"]
            theirs = await http.put(
                f"/bookings/{w.theirs.live_booking}/export-terms",
                json={"price_per_kwh": 25, "soc_floor_pct": 40},
                headers=w.mine.driver.headers,
            )
            assert theirs.status_code == 404


async def test_the_payout_run_pays_drivers_their_export_credits() -> None:
    with world() as w:
        dee = exported(w.app, w.clock)
        async with client(w.app) as http:
            run = (await http.post("/admin/payouts", headers=w.admin.headers)).json()
            assert run["export_credits_paid"] == {str(dee): 83}, run
            again = (await http.post("/admin/payouts", headers=w.admin.headers)).json()
            assert again["export_credits_paid"] == {}


async def test_export_credits_are_withheld_until_the_operator_verifies_the_driver() -> None:
    with world() as w:
        dee = exported(w.app, w.clock, verified=False)
        async with client(w.app) as http:
            run = (await http.post("/admin/payouts", headers=w.admin.headers)).json()
            assert run["export_credits_paid"] == {}, run
            assert run["export_credits_withheld"] == [
                {
                    "driver_id": dee,
                    "amount": 83,
                    "reason": "payout details not verified (KYC): the credit stays owed",
                }
            ], run
            url = f"/admin/drivers/{dee}/kyc"
            refused = await http.put(url, json={"status": "verified"}, headers=w.mine.driver.headers)
            assert refused.status_code == 403, refused.text
            bad = await http.put(url, json={"status": "fine"}, headers=w.admin.headers)
            assert bad.status_code == 422, bad.text
            missing = await http.put(
                "/admin/drivers/999999/kyc", json={"status": "verified"}, headers=w.admin.headers
            )
            assert missing.status_code == 404, missing.text
            ok = await http.put(url, json={"status": "verified"}, headers=w.admin.headers)
            assert ok.status_code == 200 and ok.json() == {"driver_id": dee, "kyc_status": "verified"}, (
                ok.text
            )
            paid = (await http.post("/admin/payouts", headers=w.admin.headers)).json()
            assert paid["export_credits_paid"] == {str(dee): 83} and paid["export_credits_withheld"] == []


async def test_a_host_chooses_who_buys_its_guests_export() -> None:
    with world() as w:
        async with client(w.app) as http:
            url, host = "/host/export-buyer", w.mine.host.headers
            assert (await http.get(url, headers=host)).json() == {"buyer": "grid"}  # the default
            refused = await http.put(url, json={"buyer": "neighbour"}, headers=host)
            assert refused.status_code == 422, refused.text
            assert (
                await http.put(url, json={"buyer": "home"}, headers=w.mine.driver.headers)
            ).status_code == 403
            put = await http.put(url, json={"buyer": "home"}, headers=host)
            assert put.status_code == 200 and put.json() == {"buyer": "home"}
            assert (await http.get(url, headers=host)).json() == {"buyer": "home"}
            assert (await http.get(url, headers=w.theirs.host.headers)).json() == {"buyer": "grid"}
            earnings = (await http.get("/host/earnings", headers=host)).json()
            assert earnings["home_export_bought"] == 0
            assert earnings["balance"] == earnings["earned"] - earnings["paid_out"]
