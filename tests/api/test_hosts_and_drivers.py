"""What hosts and drivers do through the API, in-process: listing and editing chargers, calendars and
notes, earnings, payouts and the yearly statement; receipts; tokens lapsing on the injected clock;
rate limits with Retry-After."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.domain.accounts import KycStatus
from tests.api.world import client, world
from tests.api_helpers import PASSWORD


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The store's new tables and queries on both backends."""
    if request.param == "sqlite":
        return "sqlite://"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.mark.slow
async def test_a_host_lists_edits_and_removes_a_charger(database_url: str) -> None:
    with world(database_url) as w:
        host = w.mine.host.headers
        async with client(w.app) as http:
            body = {
                "charge_point_id": "HOME-1",
                "title": "Drive",
                "lat": 51.4,
                "lon": -2.6,
                "price_per_kwh": 30,
                "connectors": [{"connector_no": 1, "type": "type2", "max_power_w": 7400}],
                "access_notes": "side gate",
            }
            made = await http.post("/host/chargers", json=body, headers=host)
            assert made.status_code == 201
            charger, password = made.json()["charger"], made.json()["password"]
            assert 16 <= len(password) <= 40 and charger["access_notes"] == "side gate"
            assert w.app.marketplace.authenticate_charger("HOME-1", None, allow_unknown=False) is not None
            twice = await http.post("/host/chargers", json=body, headers=host)
            assert twice.status_code == 400 and "already registered" in twice.json()["detail"]
            cid = charger["id"]
            edited = await http.patch(f"/host/chargers/{cid}", json={"price_per_kwh": 45}, headers=host)
            assert edited.json()["price_per_kwh"] == 45 and edited.json()["title"] == "Drive"
            week = [{"weekday": d, "start_minute": 18 * 60, "end_minute": 1440} for d in range(7)]
            cal = await http.put(f"/host/chargers/{cid}/availability", json=week, headers=host)
            assert len(cal.json()["availability"]) == 7
            bad = await http.put(
                f"/host/chargers/{cid}/availability",
                json=[{"weekday": 0, "start_minute": 600, "end_minute": 500}],
                headers=host,
            )
            assert bad.status_code == 400 and "start before it ends" in bad.json()["detail"]
            more = await http.post(
                f"/host/chargers/{cid}/connectors",
                json={"connector_no": 2, "max_power_w": 22_000},
                headers=host,
            )
            assert [c["connector_no"] for c in more.json()["connectors"]] == [1, 2]
            last = await http.delete(f"/host/chargers/{cid}/connectors/2", headers=host)
            assert last.status_code == 200
            alone = await http.delete(f"/host/chargers/{cid}/connectors/1", headers=host)
            assert alone.status_code == 400 and "at least one connector" in alone.json()["detail"]
            booked = await http.delete(f"/host/chargers/{w.mine.charger_id}", headers=host)
            assert booked.status_code == 400 and "has bookings" in booked.json()["detail"]
            assert (await http.delete(f"/host/chargers/{cid}", headers=host)).status_code == 204
            assert (await http.get(f"/chargers/{cid}")).status_code == 404


async def test_prices_calendars_and_notes_as_a_driver_meets_them() -> None:
    with world() as w:
        host, driver = w.mine.host.headers, w.mine.driver.headers
        cid = w.mine.charger_id
        async with client(w.app) as http:
            await http.patch(f"/host/chargers/{cid}", json={"price_per_kwh": 55}, headers=host)
            start = (w.clock.now() + timedelta(hours=3)).isoformat()
            body = {
                "charger_id": cid,
                "connector_no": 1,
                "minutes": 60,
                "max_energy_wh": 10_000,
                "starts_at": start,
            }
            b = (await http.post("/bookings", json=body, headers=driver)).json()
            assert b["price_per_kwh"] == 55 and b["hold_amount"] == 605  # 11 kWh held at the new price
            assert b["access_notes"] == "gate code A"  # shown with a live booking
            done = (await http.get(f"/bookings/{w.mine.done_booking}", headers=driver)).json()
            assert done["price_per_kwh"] == 40 and done["access_notes"] is None  # kept its own price
            # Monday 09:00 UTC is 09:00 UK time (GMT in March): open only in the evening from now on.
            evening = [{"weekday": 0, "start_minute": 18 * 60, "end_minute": 1440}]
            await http.put(f"/host/chargers/{cid}/availability", json=evening, headers=host)
            late = {**body, "connector_no": 2, "starts_at": (w.clock.now() + timedelta(hours=4)).isoformat()}
            refused = await http.post("/bookings", json=late, headers=driver)
            assert refused.status_code == 409 and refused.json()["error"] == "charger_unavailable"


async def test_receipts_earnings_payouts_and_the_statement(database_url: str) -> None:
    with world(database_url) as w:
        driver, host, admin = w.mine.driver.headers, w.mine.host.headers, w.admin.headers
        async with client(w.app) as http:
            receipt = (await http.get(f"/bookings/{w.mine.done_booking}/receipt", headers=driver)).json()
            # 5 kWh at 40p = 200p; 15% fee = 30p, of which VAT (20%, inclusive) 5p; the host keeps 170p.
            assert receipt == {
                "booking_id": w.mine.done_booking,
                "energy_wh": 5_000,
                "price_per_kwh": 40,
                "energy_cost": 200,
                "idle_fee": 0,
                "cost": 200,
                "platform_fee": 30,
                "vat": 5,
                "host_share": 170,
                "unmetered": False,  # measured from its start to its stop reading
            }
            live = await http.get(f"/bookings/{w.mine.live_booking}/receipt", headers=driver)
            assert live.status_code == 404 and "no receipt yet" in live.json()["detail"]
            sessions = (await http.get("/sessions", headers=driver)).json()
            assert [(s["energy_wh"], s["cost"], s["status"]) for s in sessions] == [(5_000, 200, "stopped")]
            assert (await http.get("/sessions?live=true", headers=driver)).json() == []

            earnings = (await http.get("/host/earnings", headers=host)).json()
            assert (earnings["gross_consideration"], earnings["fees_withheld"], earnings["earned"]) == (
                200,
                30,
                170,
            )
            assert (earnings["balance"], earnings["activities"], earnings["kyc_status"]) == (
                170,
                1,
                "verified",
            )

            run = (await http.post("/admin/payouts", headers=admin)).json()
            # Host A is verified and paid; host B (KYC pending) is owed the same and skipped, with why.
            assert run["paid"] == {str(w.mine.host.hid): 170}
            assert run["skipped"] == [
                {
                    "host_id": w.theirs.host.hid,
                    "amount": 170,
                    "reason": "KYC not verified: payouts wait for verification",
                }
            ]
            mine = (await http.get("/host/payouts", headers=host)).json()
            assert [p["amount"] for p in mine] == [170]
            assert (await http.get("/host/payouts", headers=w.theirs.host.headers)).json() == []
            after = (await http.get("/host/earnings", headers=host)).json()
            assert (after["paid_out"], after["balance"]) == (170, 0)

            w.app.hosting.set_kyc(w.theirs.host.hid, KycStatus.VERIFIED)
            assert (await http.post("/admin/payouts", headers=admin)).json()["paid"] == {
                str(w.theirs.host.hid): 170
            }

            statement = (await http.get("/host/statements/2026", headers=host)).json()
            assert (statement["gross_consideration"], statement["fees_withheld"], statement["net_paid"]) == (
                200,
                30,
                170,
            )
            assert [
                (q["quarter"], q["activities"], q["gross_consideration"]) for q in statement["quarters"]
            ] == [
                (1, 1, 200),  # settled on 2 March 2026
                (2, 0, 0),
                (3, 0, 0),
                (4, 0, 0),
            ]
            empty = (await http.get("/host/statements/2025", headers=host)).json()
            assert empty["activities"] == 0 and empty["gross_consideration"] == 0


async def test_tokens_lapse_on_the_injected_clock() -> None:
    with world() as w:
        async with client(w.app) as http:
            login = await http.post("/auth/login", json={"email": w.mine.driver.email, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert (await http.get("/auth/me", headers=headers)).status_code == 200
            w.clock.advance(w.app.config.token_minutes * 60)
            lapsed = await http.get("/auth/me", headers=headers)
            assert lapsed.status_code == 401 and "expired" in lapsed.json()["detail"]
            forged = {"Authorization": "Bearer " + login.json()["access_token"][:-4] + "AAAA"}
            assert (await http.get("/auth/me", headers=forged)).status_code == 401


async def test_login_and_booking_are_rate_limited_with_retry_after() -> None:
    with world() as w:
        limits = w.app.config.limits
        async with client(w.app) as http:
            wrong = {"email": w.mine.driver.email, "password": "a wrong password"}
            codes = [
                (await http.post("/auth/login", json=wrong)).status_code
                for _ in range(limits.login_per_account.burst + 1)
            ]
            assert codes == [401] * limits.login_per_account.burst + [429]
            limited = await http.post("/auth/login", json={**wrong, "password": PASSWORD})
            assert (
                limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
            )  # even the right one
            other = await http.post(
                "/auth/login", json={"email": w.theirs.driver.email, "password": PASSWORD}
            )
            assert other.status_code == 200  # per account: the other driver is not locked out
            w.clock.advance(int(limited.headers["Retry-After"]))
            ok = await http.post("/auth/login", json={**wrong, "password": PASSWORD})
            assert ok.status_code == 200

            body = {"charger_id": w.mine.charger_id, "connector_no": 1, "minutes": 15, "max_energy_wh": 1_000}
            headers = w.mine.driver.headers
            answers = []
            for i in range(limits.booking_per_account.burst + 1):
                start = (w.clock.now() + timedelta(days=3, hours=i)).isoformat()
                answers.append(
                    await http.post("/bookings", json={**body, "starts_at": start}, headers=headers)
                )
            assert [a.status_code for a in answers] == [201] * limits.booking_per_account.burst + [429]
            assert answers[-1].json()["error"] == "rate_limited" and "Retry-After" in answers[-1].headers
