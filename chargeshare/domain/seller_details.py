"""What a host (a "seller" to the tax rules) gives at onboarding so the platform can report their
income to HMRC: legal name, primary address, date of birth (a person), a tax identifier, and the
bank account their earnings go to where the platform holds one.

`seller_details` takes the fields as typed and returns them checked and in one spelling, or raises
`InvalidField` naming the first field that is wrong. The rules follow the OECD model rules' due
diligence (Section II) as the UK applies them: a person's residence is their primary address, and
the tax identifier is the one their country of residence issues (in the UK a NINO or a UTR).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from chargeshare.domain.bank_accounts import BankAccount, bank_account
from chargeshare.domain.countries import UNITED_KINGDOM
from chargeshare.domain.errors import InvalidField
from chargeshare.domain.tax_identifiers import (
    TaxIdentifier,
    TaxIdKind,
    normalise_company_number,
    normalise_country,
    tax_identifier,
)

MAX_TEXT = 200  # the OECD DPI schema's names and address parts are at most 200 characters
MAX_POSTCODE = 20
OLDEST_BIRTH_DATE = date(1900, 1, 1)
# A UK postcode: an outward code (area, district) and an inward code (sector, unit); GIR 0AA is the
# one historic exception.
_UK_POSTCODE = re.compile(r"([A-Z]{1,2}\d[A-Z\d]?)(\d[A-Z]{2})|(GIR)(0AA)")
_SPACES = re.compile(r"\s+")


class SellerKind(StrEnum):
    INDIVIDUAL = "individual"
    ENTITY = "entity"  # a company, partnership or trust


@dataclass(frozen=True)
class PostalAddress:
    line1: str
    line2: str
    city: str
    postcode: str  # required in the UK, normalised to "BS1 5TR"; may be empty elsewhere
    country: str  # ISO 3166-1 alpha-2

    def one_line(self) -> str:
        return ", ".join(p for p in (self.line1, self.line2, self.city, self.postcode, self.country) if p)


@dataclass(frozen=True)
class SellerDetails:
    kind: SellerKind
    first_names: str  # individuals: given names as on their identity documents
    last_name: str  # individuals
    legal_name: str  # entities: the registered name
    birth_date: date | None  # individuals only
    address: PostalAddress  # an individual's primary residence, an entity's registered office
    tax_id: TaxIdentifier
    company_number: str  # entities: the Companies House number, where registered; else ""
    bank: BankAccount | None

    @property
    def name(self) -> str:
        return self.legal_name if self.kind is SellerKind.ENTITY else f"{self.first_names} {self.last_name}"


def _text(value: str, field: str, *, required: bool, limit: int = MAX_TEXT) -> str:
    text = _SPACES.sub(" ", value).strip()
    if required and not text:
        raise InvalidField(field, "required")
    if len(text) > limit:
        raise InvalidField(field, f"at most {limit} characters")
    if not text.isprintable():
        raise InvalidField(field, "holds a control character")
    return text


def normalise_uk_postcode(text: str, field: str = "postcode") -> str:
    compact = _SPACES.sub("", text).upper()
    found = _UK_POSTCODE.fullmatch(compact)
    if found is None:
        raise InvalidField(field, f"{text!r} is not a UK postcode (like BS1 5TR)")
    outward, inward = (found[1], found[2]) if found[1] else (found[3], found[4])
    return f"{outward} {inward}"


def postal_address(line1: str, line2: str, city: str, postcode: str, country: str) -> PostalAddress:
    code = normalise_country(country, "country")
    if code == UNITED_KINGDOM:
        post = normalise_uk_postcode(postcode)
    else:
        post = _text(postcode, "postcode", required=False, limit=MAX_POSTCODE).upper()
    return PostalAddress(
        _text(line1, "address_line1", required=True),
        _text(line2, "address_line2", required=False),
        _text(city, "city", required=True),
        post,
        code,
    )


def _birth_date(born: date | None, today: date) -> date:
    if born is None:
        raise InvalidField("birth_date", "required for an individual")
    if born > today:
        raise InvalidField("birth_date", f"{born.isoformat()} is in the future")
    if born < OLDEST_BIRTH_DATE:
        raise InvalidField("birth_date", f"{born.isoformat()} is before {OLDEST_BIRTH_DATE.isoformat()}")
    return born


def _tax_id(kind: SellerKind, tax_id_kind: str, value: str, country: str, home: str) -> TaxIdentifier:
    try:
        id_kind = TaxIdKind(tax_id_kind)
    except ValueError:
        raise InvalidField("tax_id_kind", "one of nino, utr or tin") from None
    if id_kind is TaxIdKind.NINO and kind is SellerKind.ENTITY:
        raise InvalidField("tax_id_kind", "a NINO identifies a person: give a company's UTR")
    found = tax_identifier(id_kind, _text(value, "tax_id", required=True), country)
    # The rules want the identifier of the seller's country of residence: the UK's for a UK address.
    if found.country != home:
        if home == UNITED_KINGDOM:
            raise InvalidField("tax_id_kind", "a seller living in the UK gives their NINO or UTR")
        if found.kind is not TaxIdKind.TIN:
            raise InvalidField("tax_id_kind", f"a seller living in {home} gives the TIN {home} issued (tin)")
        raise InvalidField(
            "tax_id_country", f"give the TIN {home} issued: the country of the seller's primary address"
        )
    return found


def seller_details(
    *,
    kind: SellerKind | str,
    address_line1: str,
    city: str,
    country: str,
    tax_id_kind: str,
    tax_id: str,
    today: date,
    first_names: str = "",
    last_name: str = "",
    legal_name: str = "",
    birth_date: date | None = None,
    address_line2: str = "",
    postcode: str = "",
    tax_id_country: str = "",
    company_number: str = "",
    sort_code: str = "",
    account_number: str = "",
    iban: str = "",
) -> SellerDetails:
    """The seller's details as given, checked field by field and normalised."""
    try:
        seller = SellerKind(kind)
    except ValueError:
        raise InvalidField("kind", "individual or entity") from None
    if seller is SellerKind.INDIVIDUAL:
        if legal_name.strip():
            raise InvalidField("legal_name", "an individual gives first_names and last_name instead")
        if company_number.strip():
            raise InvalidField("company_number", "only an entity has a company number")
        names = (
            _text(first_names, "first_names", required=True),
            _text(last_name, "last_name", required=True),
        )
        legal, born, company = "", _birth_date(birth_date, today), ""
    else:
        if first_names.strip() or last_name.strip():
            raise InvalidField("first_names", "an entity gives its legal_name instead")
        if birth_date is not None:
            raise InvalidField("birth_date", "only an individual has a date of birth")
        names, legal, born = ("", ""), _text(legal_name, "legal_name", required=True), None
        company = normalise_company_number(company_number) if company_number.strip() else ""
    address = postal_address(address_line1, address_line2, city, postcode, country)
    return SellerDetails(
        kind=seller,
        first_names=names[0],
        last_name=names[1],
        legal_name=legal,
        birth_date=born,
        address=address,
        tax_id=_tax_id(seller, tax_id_kind, tax_id, tax_id_country, address.country),
        company_number=company,
        bank=bank_account(sort_code, account_number, iban),
    )
