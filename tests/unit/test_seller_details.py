"""The seller details a host gives at onboarding: tax identifiers, bank accounts, addresses, and the
whole record, each refusal naming its field."""

from __future__ import annotations

import re
import string
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.bank_accounts import (
    BankAccount,
    bank_account,
    iban_check,
    normalise_account_number,
    normalise_iban,
    normalise_sort_code,
)
from chargeshare.domain.errors import InvalidField
from chargeshare.domain.seller_details import SellerKind, normalise_uk_postcode, seller_details
from chargeshare.domain.tax_identifiers import (
    TaxIdKind,
    nino_problem,
    normalise_company_number,
    normalise_nino,
    normalise_tin,
    normalise_utr,
)

TODAY = date(2026, 7, 1)

# An independent statement of HMRC's NINO rules (NIM39110) to hold the implementation to: allowed
# letters spelt out as classes, the unused and administrative prefixes as a look-ahead.
ORACLE = re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ|CR|FY|MW|NC)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")

letters = st.sampled_from(string.ascii_uppercase)
nine = st.tuples(letters, letters, st.text("0123456789", min_size=6, max_size=6), letters).map("".join)
# Built from the allowed letters, so the oracle's filter rejects only the few unused prefixes: a
# filter over `nine` kept under a tenth and tripped hypothesis's filter_too_much check.
likely_valid = st.tuples(
    st.sampled_from("ABCEGHJKLMNOPRSTWXYZ"),
    st.sampled_from("ABCEGHJKLMNPRSTWXYZ"),
    st.text("0123456789", min_size=6, max_size=6),
    st.sampled_from("ABCD"),
).map("".join)


@given(nine)
def test_a_nino_is_accepted_exactly_when_hmrcs_rules_allow_it(text: str) -> None:
    assert (nino_problem(text) is None) == bool(ORACLE.fullmatch(text))


@given(likely_valid.filter(lambda s: ORACLE.fullmatch(s) is not None), st.booleans())
def test_a_valid_nino_reads_the_same_however_it_is_spaced_or_cased(nino: str, lower: bool) -> None:
    typed = f" {nino[:2]} {nino[2:4]} {nino[4:6]} {nino[6:8]} {nino[8]} "
    assert normalise_nino(typed.lower() if lower else typed) == nino


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("QQ123456C", "never holds D, F, I, Q, U or V"),
        ("AO123456C", "O is never its second letter"),
        ("GB123456A", "HMRC does not use it"),
        ("NC123456A", "administrative reference"),
        ("AB123456E", "ends in A, B, C or D"),
        ("AB12345C", "two letters, six digits and a letter"),
        ("", "two letters, six digits and a letter"),
    ],
)
def test_a_refused_nino_says_why_and_names_its_field(text: str, says: str) -> None:
    with pytest.raises(InvalidField, match=says) as caught:
        normalise_nino(text, "tax_id")
    assert caught.value.field == "tax_id" and str(caught.value).startswith("tax_id: ")


@given(st.text("0123456789", min_size=10, max_size=10))
def test_any_ten_digits_are_a_utr(digits: str) -> None:
    spaced = f"{digits[:5]} {digits[5:]}"
    assert normalise_utr(spaced) == digits == normalise_utr(digits + "K")


@given(st.text("0123456789AB ", max_size=14).filter(lambda s: len(s.replace(" ", "")) != 10 or "A" in s))
def test_anything_but_ten_digits_is_not_a_utr(text: str) -> None:
    with pytest.raises(InvalidField, match="10 digits"):
        normalise_utr(text)


def test_a_tin_comes_with_the_country_that_issued_it() -> None:
    tin = normalise_tin("12 345 678 901", "fr", "tax_id")
    assert (tin.kind, tin.value, tin.country) == (TaxIdKind.TIN, "12345678901", "FR")
    with pytest.raises(InvalidField, match="tax_id_country: 'XX' is not an ISO 3166"):
        normalise_tin("123", "XX", "tax_id")
    with pytest.raises(InvalidField, match="tax_id_country: a UK tax identifier is given as a NINO or a UTR"):
        normalise_tin("123", "GB", "tax_id")
    with pytest.raises(InvalidField, match="tax_id: a TIN is 1 to 200"):
        normalise_tin("12#3", "FR", "tax_id")


def test_company_numbers_are_eight_characters() -> None:
    assert normalise_company_number("sc123456") == "SC123456"
    assert normalise_company_number("1234567") == "01234567"  # Companies House pads with zeros
    with pytest.raises(InvalidField, match="company_number"):
        normalise_company_number("ABC12345")


VALID_IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00", "NO93 8601 1117 947"]


@pytest.mark.parametrize("iban", VALID_IBANS)
def test_published_example_ibans_pass_their_check(iban: str) -> None:
    assert normalise_iban(iban) == iban.replace(" ", "")


@given(st.sampled_from(VALID_IBANS), st.integers(4, 40), st.integers(1, 9))
def test_any_one_digit_mistyped_in_an_iban_is_caught(iban: str, at: int, shift: int) -> None:
    compact = iban.replace(" ", "")
    digits = [i for i, c in enumerate(compact) if c.isdigit() and i >= 2]
    i = digits[at % len(digits)]
    wrong = compact[:i] + str((int(compact[i]) + shift) % 10) + compact[i + 1 :]
    assert iban_check(wrong) != 1
    with pytest.raises(InvalidField, match="iban"):
        normalise_iban(wrong)


def test_bank_accounts_are_a_sort_code_and_number_or_an_iban() -> None:
    assert normalise_sort_code("12 34 56") == "12-34-56" == normalise_sort_code("123456")
    assert normalise_account_number("1234 5678") == "12345678"
    assert bank_account("12-34-56", "12345678") == BankAccount("12-34-56", "12345678")
    assert bank_account(iban="gb82west12345698765432") == BankAccount(iban="GB82WEST12345698765432")
    assert bank_account() is None
    for given_, field in [
        ({"sort_code": "12-34-56"}, "account_number"),
        ({"account_number": "12345678"}, "sort_code"),
        ({"sort_code": "12-34-5", "account_number": "12345678"}, "sort_code"),
        ({"sort_code": "12-34-56", "account_number": "1234567"}, "account_number"),
        ({"sort_code": "12-34-56", "account_number": "12345678", "iban": VALID_IBANS[0]}, "iban"),
        ({"iban": "GB82 WEST 1234 5698 7654"}, "iban"),  # a UK IBAN is 22 characters
        ({"iban": "ZZ82 WEST 1234 5698 7654 32"}, "iban"),
    ]:
        with pytest.raises(InvalidField) as caught:
            bank_account(**given_)
        assert caught.value.field == field, given_


@pytest.mark.parametrize(
    ("typed", "postcode"),
    [("bs15tr", "BS1 5TR"), ("SW1A 1AA", "SW1A 1AA"), ("ec1a1bb", "EC1A 1BB"), ("M1 1AE", "M1 1AE")],
)
def test_uk_postcodes_are_spelt_one_way(typed: str, postcode: str) -> None:
    assert normalise_uk_postcode(typed) == postcode


@pytest.mark.parametrize("typed", ["12345", "BS1", "BS1 5T", "1BS 5TR"])
def test_what_is_not_a_uk_postcode_is_refused(typed: str) -> None:
    with pytest.raises(InvalidField, match="postcode"):
        normalise_uk_postcode(typed)


def a_person(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "individual",
        "first_names": "Hannah  Jane",
        "last_name": "Hughes",
        "birth_date": date(1980, 2, 3),
        "address_line1": "1 Harbourside",
        "city": "Bristol",
        "postcode": "bs1 5tr",
        "country": "gb",
        "tax_id_kind": "nino",
        "tax_id": "ab 12 34 56 c",
        "sort_code": "123456",
        "account_number": "12345678",
        "today": TODAY,
        **changes,
    }


def test_a_persons_details_come_back_checked_and_in_one_spelling() -> None:
    d = seller_details(**a_person())
    assert (d.kind, d.name, d.birth_date) == (SellerKind.INDIVIDUAL, "Hannah Jane Hughes", date(1980, 2, 3))
    assert (d.address.postcode, d.address.country, d.tax_id.value, d.tax_id.country) == (
        "BS1 5TR",
        "GB",
        "AB123456C",
        "GB",
    )
    assert d.bank == BankAccount("12-34-56", "12345678") and d.company_number == ""


def test_a_company_gives_its_legal_name_utr_and_number() -> None:
    d = seller_details(
        **a_person(
            kind="entity",
            first_names="",
            last_name="",
            birth_date=None,
            legal_name="Harbourside Charging Ltd",
            company_number="12345678",
            tax_id_kind="utr",
            tax_id="12345 67890",
            sort_code="",
            account_number="",
            iban=VALID_IBANS[0],
        )
    )
    assert (d.name, d.company_number, d.tax_id.kind, d.bank) == (
        "Harbourside Charging Ltd",
        "12345678",
        TaxIdKind.UTR,
        BankAccount(iban="GB82WEST12345698765432"),
    )


def test_a_seller_abroad_gives_the_tin_of_their_country() -> None:
    abroad = {"country": "FR", "postcode": "75001", "tax_id_kind": "tin", "tax_id_country": "FR"}
    d = seller_details(**a_person(**abroad, tax_id="1234567890123"))
    assert (d.tax_id.kind, d.tax_id.country, d.address.postcode) == (TaxIdKind.TIN, "FR", "75001")


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"kind": "company"}, "kind", "individual or entity"),
        ({"first_names": " "}, "first_names", "required"),
        ({"last_name": "x" * 201}, "last_name", "at most 200"),
        ({"last_name": "Hu\x00ghes"}, "last_name", "control character"),
        ({"birth_date": None}, "birth_date", "required for an individual"),
        ({"birth_date": date(2026, 7, 2)}, "birth_date", "in the future"),
        ({"birth_date": date(1899, 12, 31)}, "birth_date", "before 1900-01-01"),
        ({"legal_name": "Hannah Ltd"}, "legal_name", "first_names and last_name instead"),
        ({"company_number": "12345678"}, "company_number", "only an entity"),
        ({"address_line1": ""}, "address_line1", "required"),
        ({"city": ""}, "city", "required"),
        ({"postcode": "nowhere"}, "postcode", "not a UK postcode"),
        ({"country": "UK"}, "country", "not an ISO 3166"),
        ({"tax_id_kind": "vat"}, "tax_id_kind", "nino, utr or tin"),
        ({"tax_id": "QQ123456C"}, "tax_id", "never holds"),
        ({"tax_id_kind": "utr", "tax_id": "123"}, "tax_id", "10 digits"),
        ({"tax_id_kind": "tin", "tax_id": "123", "tax_id_country": "FR"}, "tax_id_kind", "NINO or UTR"),
        ({"country": "FR", "postcode": ""}, "tax_id_kind", "gives the TIN FR issued"),
        (
            {"country": "FR", "postcode": "", "tax_id_kind": "tin", "tax_id": "1", "tax_id_country": "DE"},
            "tax_id_country",
            "the TIN FR issued",
        ),
        (
            {"kind": "entity", "first_names": "", "last_name": "", "birth_date": None},
            "legal_name",
            "required",
        ),
        (
            {"kind": "entity", "first_names": "", "last_name": "", "legal_name": "H Ltd"},
            "birth_date",
            "only an individual",
        ),
        (
            {"kind": "entity", "first_names": "", "last_name": "", "birth_date": None, "legal_name": "H Ltd"},
            "tax_id_kind",
            "a NINO identifies a person",
        ),
        ({"account_number": ""}, "account_number", "needs its account number"),
    ],
)
def test_each_mistake_is_refused_naming_its_field(changes: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(InvalidField, match=says) as caught:
        seller_details(**a_person(**changes))
    assert caught.value.field == field
