"""The fleet API as a business account sees it: its own fleet only, blocks booked all or nothing
(a 409 naming each clash), its occurrences, invoices and statement."""

from __future__ import annotations

from chargeshare.bootstrap import App
from tests.api.world import client, world
from tests.api_helpers import PASSWORD

BLOCK = {"weekdays": [0, 1, 2, 3, 4], "start": "20:00", "end": "06:00", "first_day": "2026-03-09"}


def business(app: App, name: str, tag: str) -> tuple[int, dict[str, str]]:
    account, fleet_id = app.auth.register_fleet(f"{name}@fleets.example", PASSWORD, name, tag)
    return fleet_id, {"Authorization": f"Bearer {app.auth.issue(account).token}"}


async def test_a_business_account_books_a_block_and_reads_only_its_own_fleet() -> None:
    with world() as w:
        mine, me = business(w.app, "vans", "VANS")
        theirs, _ = business(w.app, "lorries", "LORRIES")
        spare = w.mine.spare_charger_id
        body = {**BLOCK, "last_day": "2026-03-13", "connectors": [{"charger_id": spare, "connector_no": 1}]}
        async with client(w.app) as http:
            booked = await http.post(f"/fleets/{mine}/blocks", json=body, headers=me)
            assert booked.status_code == 201, booked.text
            assert booked.json()["contract"]["weekdays"] == [0, 1, 2, 3, 4]
            starts = [o["starts_at"] for o in booked.json()["occurrences"]]
            assert starts[0] == "2026-03-09T20:00:00Z" and len(starts) == 5
            listed = await http.get(f"/fleets/{mine}/occurrences", headers=me)
            assert [o["starts_at"] for o in listed.json()] == starts
            huge = await http.get(f"/fleets/{mine}/occurrences?contract_id={2**63}", headers=me)
            assert huge.status_code == 422  # never reaches the database's 32-bit ids
            assert (await http.get(f"/fleets/{mine}/statement", headers=me)).json()["balance"] == 0
            for path in ("", "/occurrences", "/blocks", "/invoices", "/statement"):
                assert (await http.get(f"/fleets/{theirs}{path}", headers=me)).status_code == 404
            assert (await http.post(f"/fleets/{theirs}/blocks", json=body, headers=me)).status_code == 404
            assert (await http.get("/fleets", headers=me)).status_code == 403
            driver = w.mine.driver.headers
            assert (await http.get(f"/fleets/{mine}", headers=driver)).status_code == 403
            # The business account signs in as any account does.
            login = await http.post(
                "/auth/login", json={"email": "vans@fleets.example", "password": PASSWORD}
            )
            assert login.json()["role"] == "fleet"


async def test_a_block_clashing_with_a_drivers_booking_is_a_409_naming_it_and_books_nothing() -> None:
    with world() as w:
        mine, me = business(w.app, "vans", "VANS")
        # The world's driver has connector 2 of its charger booked from 09:00 tomorrow for an hour.
        body = {
            "weekdays": [1],
            "start": "08:00",
            "end": "12:00",
            "first_day": "2026-03-03",
            "last_day": "2026-03-10",
            "connectors": [{"charger_id": w.mine.charger_id, "connector_no": 2}],
        }
        async with client(w.app) as http:
            refused = await http.post(f"/fleets/{mine}/blocks", json=body, headers=me)
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"] == "block_conflict"
            assert refused.json()["total"] == 1
            assert refused.json()["clashes"] == [
                {
                    "charger_id": w.mine.charger_id,
                    "connector_no": 2,
                    "starts_at": "2026-03-03T08:00:00Z",
                    "ends_at": "2026-03-03T12:00:00Z",
                    "reason": "booked",
                }
            ]
            assert (await http.get(f"/fleets/{mine}/occurrences", headers=me)).json() == []
            bad = await http.post(f"/fleets/{mine}/blocks", json={**body, "weekdays": [9]}, headers=me)
            assert bad.status_code == 400 and "weekdays" in bad.json()["detail"]


async def test_an_operator_issues_the_invoice_once_and_records_a_payment() -> None:
    with world() as w:
        mine, me = business(w.app, "vans", "VANS")
        admin = w.admin.headers
        async with client(w.app) as http:
            early = await http.post(f"/fleets/{mine}/invoices/2026-03", headers=admin)
            assert early.status_code == 400 and "not over" in early.json()["detail"]
            issued = await http.post(f"/fleets/{mine}/invoices/2026-02", headers=admin)
            assert issued.status_code == 200
            assert issued.json()["total"] == 0 and issued.json()["lines"] == []
            again = await http.post(f"/fleets/{mine}/invoices/2026-02", headers=admin)
            assert again.json()["id"] == issued.json()["id"]
            assert (await http.post(f"/fleets/{mine}/invoices/2026-02", headers=me)).status_code == 403
            too_much = await http.post(
                f"/fleets/{mine}/invoices/2026-02/payments", json={"amount": 1}, headers=admin
            )
            assert too_much.status_code == 400
            seen = await http.get(f"/fleets/{mine}/invoices/2026-02", headers=me)
            assert seen.json()["outstanding"] == 0


async def test_a_block_sent_again_under_its_idempotency_key_answers_with_the_first_contract() -> None:
    with world() as w:
        mine, me = business(w.app, "vans", "VANS")
        spare = w.mine.spare_charger_id
        body = {**BLOCK, "last_day": "2026-03-13", "connectors": [{"charger_id": spare, "connector_no": 1}]}
        key = {**me, "Idempotency-Key": "block-1"}
        async with client(w.app) as http:
            first = await http.post(f"/fleets/{mine}/blocks", json=body, headers=key)
            again = await http.post(f"/fleets/{mine}/blocks", json=body, headers=key)
            assert first.status_code == again.status_code == 201, again.text
            assert again.json() == first.json()
            assert len((await http.get(f"/fleets/{mine}/blocks", headers=me)).json()) == 1
            other = await http.post(
                f"/fleets/{mine}/blocks", json={**body, "last_day": "2026-03-10"}, headers=key
            )
            assert other.status_code == 422, other.text
