"""Hosts' seller details (HMRC platform reporting) as rows of `host_seller_details`, one per host."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from chargeshare.adapters.sql import schema as t
from chargeshare.domain.bank_accounts import BankAccount
from chargeshare.domain.seller_details import PostalAddress, SellerDetails, SellerKind
from chargeshare.domain.tax_identifiers import TaxIdentifier, TaxIdKind


def row_of(host_id: int, d: SellerDetails, at: datetime) -> dict[str, Any]:
    bank = d.bank
    return {
        "host_id": host_id,
        "kind": d.kind.value,
        "first_names": d.first_names,
        "last_name": d.last_name,
        "legal_name": d.legal_name,
        "birth_date": d.birth_date,
        "address_line1": d.address.line1,
        "address_line2": d.address.line2,
        "city": d.address.city,
        "postcode": d.address.postcode,
        "country": d.address.country,
        "tax_id_kind": d.tax_id.kind.value,
        "tax_id": d.tax_id.value,
        "tax_id_country": d.tax_id.country,
        "company_number": d.company_number,
        "sort_code": None if bank is None or bank.iban else bank.sort_code,
        "account_number": None if bank is None or bank.iban else bank.account_number,
        "iban": None if bank is None or not bank.iban else bank.iban,
        "updated_at": at,
    }


def details_of(r: Any) -> SellerDetails:  # a RowMapping
    bank = None
    if r["iban"]:
        bank = BankAccount(iban=r["iban"])
    elif r["sort_code"]:
        bank = BankAccount(r["sort_code"], r["account_number"])
    return SellerDetails(
        kind=SellerKind(r["kind"]),
        first_names=r["first_names"],
        last_name=r["last_name"],
        legal_name=r["legal_name"],
        birth_date=r["birth_date"],
        address=PostalAddress(r["address_line1"], r["address_line2"], r["city"], r["postcode"], r["country"]),
        tax_id=TaxIdentifier(TaxIdKind(r["tax_id_kind"]), r["tax_id"], r["tax_id_country"]),
        company_number=r["company_number"],
        bank=bank,
    )


def read_one(conn: Connection, host_id: int) -> SellerDetails | None:
    sd = t.host_seller_details
    r = conn.execute(select(sd).where(sd.c.host_id == host_id)).mappings().first()
    return None if r is None else details_of(r)


def read_all(conn: Connection) -> dict[int, SellerDetails]:
    sd = t.host_seller_details
    rows = conn.execute(select(sd).order_by(sd.c.host_id)).mappings()
    return {int(r["host_id"]): details_of(r) for r in rows}


def write(conn: Connection, host_id: int, details: SellerDetails, at: datetime) -> None:
    """Replace the host's row: a delete and an insert in the caller's transaction, the same on both
    databases (the host's row lock, or SQLite's one writer, keeps two writers apart)."""
    sd = t.host_seller_details
    conn.execute(delete(sd).where(sd.c.host_id == host_id))
    conn.execute(insert(sd).values(**row_of(host_id, details, at)))
