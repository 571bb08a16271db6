"""A host gives their seller details (HMRC platform reporting) through the API: kept normalised,
each mistake a 400 naming its field, only their own, and a change after verification sends KYC back
to pending."""

from __future__ import annotations

from typing import Any

from tests.api.world import client, world

GIVEN: dict[str, Any] = {
    "kind": "individual",
    "first_names": "Hannah",
    "last_name": "Hughes",
    "birth_date": "1980-02-03",
    "address_line1": "1 Harbourside",
    "city": "Bristol",
    "postcode": "bs15tr",
    "country": "gb",
    "tax_id_kind": "nino",
    "tax_id": "ab 12 34 56 c",
    "sort_code": "123456",
    "account_number": "12345678",
}


async def test_a_host_gives_details_and_reads_them_back_normalised() -> None:
    with world() as w:
        mine, theirs = w.mine.host.headers, w.theirs.host.headers
        async with client(w.app) as http:
            before = await http.get("/host/seller-details", headers=mine)
            assert before.status_code == 200 and before.json() is None
            put = await http.put("/host/seller-details", json=GIVEN, headers=mine)
            assert put.status_code == 200, put.text
            kept = put.json()
            assert (kept["name"], kept["postcode"], kept["country"], kept["tax_id"]) == (
                "Hannah Hughes",
                "BS1 5TR",
                "GB",
                "AB123456C",
            )
            assert (kept["sort_code"], kept["iban"], kept["tax_id_country"]) == ("12-34-56", "", "GB")
            # Host A was verified; new details are checked again before the next payout.
            assert kept["kyc_status"] == "pending"
            assert (await http.get("/host/seller-details", headers=mine)).json() == kept
            assert (await http.get("/host/seller-details", headers=theirs)).json() is None


async def test_each_mistake_is_a_400_naming_the_field_and_keeps_nothing() -> None:
    with world() as w:
        host = w.mine.host.headers
        async with client(w.app) as http:
            for change, field in [
                ({"tax_id": "QQ123456C"}, "tax_id"),
                ({"postcode": "nowhere"}, "postcode"),
                ({"birth_date": "2999-01-01"}, "birth_date"),
                ({"iban": "GB00WEST12345698765432"}, "iban"),
                ({"country": "XX"}, "country"),
            ]:
                refused = await http.put("/host/seller-details", json={**GIVEN, **change}, headers=host)
                assert refused.status_code == 400, (change, refused.text)
                body = refused.json()
                assert body["error"] == "invalid_field" and body["detail"].startswith(f"{field}: "), body
            shapeless = await http.put("/host/seller-details", json={**GIVEN, "kind": "robot"}, headers=host)
            assert shapeless.status_code == 422
            assert (await http.get("/host/seller-details", headers=host)).json() is None
            assert w.app.hosting.host(w.mine.host.hid).kyc_status == "verified"  # untouched
