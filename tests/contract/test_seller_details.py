"""Hosts' seller details (HMRC platform reporting) as every store keeps them: the in-memory fake,
SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.domain.seller_details import SellerDetails, seller_details
from tests.conftest import T0


def person(**changes: Any) -> SellerDetails:
    fields: dict[str, Any] = {
        "kind": "individual",
        "first_names": "Hannah Jane",
        "last_name": "Hughes",
        "birth_date": date(1980, 2, 29),
        "address_line1": "1 Harbourside",
        "address_line2": "Flat 2",
        "city": "Bristol",
        "postcode": "BS1 5TR",
        "country": "GB",
        "tax_id_kind": "nino",
        "tax_id": "AB123456C",
        "sort_code": "12-34-56",
        "account_number": "12345678",
        "today": T0.date(),
        **changes,
    }
    return seller_details(**fields)


COMPANY = {
    "kind": "entity",
    "first_names": "",
    "last_name": "",
    "birth_date": None,
    "address_line2": "",
    "legal_name": "Harbourside Charging Ltd",
    "company_number": "SC123456",
    "tax_id_kind": "utr",
    "tax_id": "1234567890",
    "sort_code": "",
    "account_number": "",
    "iban": "GB82WEST12345698765432",
}


def test_details_are_kept_as_given_and_read_back_equal(app: App) -> None:
    with app.store.transaction() as tx:
        ann, bo, cy = (tx.accounts.add_host(n) for n in ("Ann", "Bo", "Cy"))
        assert tx.accounts.seller_details(ann) is None
        tx.accounts.set_seller_details(ann, person(), T0)
        tx.accounts.set_seller_details(bo, person(**COMPANY), T0)
        abroad = person(
            country="FR", postcode="", tax_id_kind="tin", tax_id="12345678901", tax_id_country="FR"
        )
        tx.accounts.set_seller_details(cy, dataclasses.replace(abroad, bank=None), T0)
    with app.store.reading() as tx:
        assert tx.accounts.seller_details(ann) == person()
        assert tx.accounts.seller_details(bo) == person(**COMPANY)
        got = tx.accounts.seller_details(cy)
        assert got is not None and got.bank is None and got.birth_date == date(1980, 2, 29)
        assert got.tax_id.country == "FR" and got.address.postcode == ""
        assert tx.accounts.all_seller_details() == {ann: person(), bo: person(**COMPANY), cy: got}


def test_new_details_replace_the_old_and_others_are_untouched(app: App) -> None:
    with app.store.transaction() as tx:
        ann, bo = tx.accounts.add_host("Ann"), tx.accounts.add_host("Bo")
        tx.accounts.set_seller_details(ann, person(), T0)
        tx.accounts.set_seller_details(bo, person(last_name="Bowen"), T0)
    moved = person(
        address_line1="9 Quay Street", sort_code="", account_number="", iban="GB82WEST12345698765432"
    )
    with app.store.transaction() as tx:
        tx.accounts.set_seller_details(ann, moved, T0)
    with app.store.reading() as tx:
        assert tx.accounts.seller_details(ann) == moved
        assert tx.accounts.seller_details(bo) == person(last_name="Bowen")
        assert list(tx.accounts.all_seller_details()) == [ann, bo]


def test_an_unknown_host_has_no_details_to_read_or_write(app: App) -> None:
    with app.store.transaction() as tx:
        with pytest.raises(NotFound):
            tx.accounts.seller_details(404)
        with pytest.raises(NotFound):
            tx.accounts.set_seller_details(404, person(), T0)
        assert tx.accounts.all_seller_details() == {}


def test_a_failed_unit_of_work_keeps_the_details_before_it(app: App) -> None:
    with app.store.transaction() as tx:
        ann = tx.accounts.add_host("Ann")
        tx.accounts.set_seller_details(ann, person(), T0)
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        tx.accounts.set_seller_details(ann, person(last_name="Changed"), T0)
        raise RuntimeError("rolled back")
    with app.store.reading() as tx:
        assert tx.accounts.seller_details(ann) == person()
