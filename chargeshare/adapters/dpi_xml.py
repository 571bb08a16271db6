"""A platform report as XML in the shape of the OECD's DPI XML schema (version 1.0: DPI_OECD,
MessageSpec, DPIBody, PlatformOperator, ReportableSeller with its Identity and RelevantActivities).

It follows the schema's element names and order as published; it is not validated against the
schema here, nor is it HMRC's submission format (their service wraps the message in its own
envelope). Amounts are whole pounds, as the schema's MonAmnt_Type asks; the exact pence are in the
CSV and JSON. Only reportable sellers whose details are on file appear: the others cannot be
identified, and the command says so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from chargeshare.domain.countries import UNITED_KINGDOM
from chargeshare.domain.money import Pence
from chargeshare.domain.platform_reporting import (
    PlatformOperator,
    PlatformReport,
    RelevantActivity,
    SellerReport,
    whole_pounds,
)
from chargeshare.domain.seller_details import PostalAddress, SellerDetails, SellerKind

DPI = "urn:oecd:ties:dpi:v1"
STF = "urn:oecd:ties:dpistf:v1"
CURRENCY = "GBP"
PARKING_SPACE = "DPI909"  # the schema's DPIPropertyType for a parking space
NEW_DATA, NO_DATA = "DPI401", "DPI403"  # MessageTypeIndic: new information, or nothing to report
NEW_RECORD = "OECD1"  # DocTypeIndic: a new record (not a correction)
RESIDENTIAL_OR_BUSINESS, REGISTERED_OFFICE = "OECD301", "OECD304"

ET.register_namespace("dpi", DPI)
ET.register_namespace("stf", STF)


def _el(parent: ET.Element, name: str, text: str | None = None, ns: str = DPI, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, f"{{{ns}}}{name}", attrs)
    if text is not None:
        e.text = text
    return e


def _stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%S")


def _tin(parent: ET.Element, value: str | None, issuer: str) -> None:
    if value is None:
        _el(parent, "TIN", "NOTIN", unknown="true")  # the schema's way of saying none is known
    else:
        _el(parent, "TIN", value, issuedBy=issuer)


def _address(parent: ET.Element, a: PostalAddress, legal_type: str) -> None:
    address = _el(parent, "Address", legalAddressType=legal_type)
    _el(address, "CountryCode", a.country)
    fixed = _el(address, "AddressFix")
    _el(fixed, "Street", a.line1)
    if a.postcode:
        _el(fixed, "PostCode", a.postcode)
    _el(fixed, "City", a.city)
    _el(address, "AddressFree", a.one_line())


def _doc_spec(parent: ET.Element, ref: str) -> None:
    spec = _el(parent, "DocSpec")
    _el(spec, "DocTypeIndic", NEW_RECORD, ns=STF)
    _el(spec, "DocRefId", ref, ns=STF)


def _quarters(parent: ET.Element, name: str, item: str, values: list[int], *, money: bool) -> None:
    group = _el(parent, name)
    for q, value in enumerate(values, start=1):
        if money:
            _el(group, f"{item}{q}", str(value), currCode=CURRENCY)
        else:
            _el(group, f"{item}{q}", str(value))


def _figures(parent: ET.Element, seller: SellerReport) -> None:
    quarters = seller.figures.quarters
    pounds: list[Pence] = [whole_pounds(q.net_paid) for q in quarters]
    _quarters(parent, "Consideration", "ConsQ", pounds, money=True)
    _quarters(parent, "NumberOfActivities", "NumbQ", [q.activities for q in quarters], money=False)
    _quarters(parent, "Fees", "FeesQ", [whole_pounds(q.fees_withheld) for q in quarters], money=True)
    _quarters(parent, "Taxes", "TaxQ", [0, 0, 0, 0], money=True)  # the platform withholds no tax


def _identity(parent: ET.Element, d: SellerDetails) -> None:
    identity = _el(parent, "Identity")
    if d.kind is SellerKind.INDIVIDUAL:
        standard = _el(_el(identity, "IndividualSeller"), "Standard")
        who = _el(standard, "IndSellerID")
        _el(who, "ResCountryCode", d.address.country)
        _tin(who, d.tax_id.value, d.tax_id.country)
        name = _el(who, "Name")
        _el(name, "FirstName", d.first_names)
        _el(name, "LastName", d.last_name)
        _address(who, d.address, RESIDENTIAL_OR_BUSINESS)
        birth = _el(who, "BirthInfo")
        _el(birth, "BirthDate", d.birth_date.isoformat() if d.birth_date else None)
    else:
        standard = _el(_el(identity, "EntitySeller"), "Standard")
        who = _el(standard, "EntSellerID")
        _el(who, "ResCountryCode", d.address.country)
        _tin(who, d.tax_id.value, d.tax_id.country)
        if d.company_number:
            _el(who, "IN", d.company_number, issuedBy=UNITED_KINGDOM, INType="BRN")
        _el(who, "Name", d.legal_name)
        _address(who, d.address, REGISTERED_OFFICE)
    if d.bank is not None:
        account = _el(standard, "FinancialIdentifier")
        kind = "IBAN" if d.bank.iban else "Other"  # a sort code and account number has no code of its own
        _el(account, "Identifier", d.bank.identifier, AccountNumberType=kind)


def _seller(body: ET.Element, report: PlatformReport, seller: SellerReport, stamp: str) -> None:
    assert seller.details is not None
    element = _el(body, "ReportableSeller")
    _identity(element, seller.details)
    activities = _el(element, "RelevantActivities")
    if report.rules.activity is RelevantActivity.PROPERTY:
        # One listing per seller: a home charge point is at the host's primary address (chargers
        # carry coordinates, not addresses), and all units at one address are one listing.
        listing = _el(_el(activities, "ImmovableProperty"), "PropertyListing")
        _address(listing, seller.details.address, RESIDENTIAL_OR_BUSINESS)
        _figures(listing, seller)
        _el(listing, "PropertyType", PARKING_SPACE)
    else:
        _figures(_el(activities, "SaleOfGoods"), seller)
    _doc_spec(element, f"GB{report.year}-SELLER-{seller.host_id}-{stamp}")


def report_xml(report: PlatformReport, operator: PlatformOperator, at: datetime) -> str:
    """The report as DPI XML, stamped `at` (its Timestamp, and the references made unique by it)."""
    stamp = _stamp(at)
    root = ET.Element(f"{{{DPI}}}DPI_OECD", {"version": "1.0"})
    spec = _el(root, "MessageSpec")
    if operator.tin:
        _el(spec, "SendingEntityIN", operator.tin)
    _el(spec, "TransmittingCountry", UNITED_KINGDOM)
    _el(spec, "ReceivingCountry", UNITED_KINGDOM)
    _el(spec, "MessageType", "DPI")
    _el(spec, "MessageRefId", f"GB{report.year}GB-{stamp}")
    sellers = [s for s in report.reportable if s.details is not None]
    _el(spec, "MessageTypeIndic", NEW_DATA if sellers else NO_DATA)
    _el(spec, "ReportingPeriod", f"{report.year}-12-31")
    _el(spec, "Timestamp", at.strftime("%Y-%m-%dT%H:%M:%S.000"))
    body = _el(root, "DPIBody")
    po = _el(body, "PlatformOperator")
    _el(po, "ResCountryCode", operator.country)
    _tin(po, operator.tin, operator.country)
    _el(po, "Name", operator.name)
    address = _el(po, "Address", legalAddressType=REGISTERED_OFFICE)
    _el(address, "CountryCode", operator.country)
    _el(address, "AddressFree", operator.address)
    _el(po, "AssumedReporting", "false")
    _doc_spec(po, f"GB{report.year}-OPERATOR-{stamp}")
    for seller in sellers:
        _seller(body, report, seller, stamp)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
