"""A platform report written out: the XML's shape for an entity selling goods and for nothing to
report, the CSV's statuses, and a seller's copy."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

from chargeshare.adapters.dpi_files import report_csv, seller_copy
from chargeshare.adapters.dpi_xml import report_xml
from chargeshare.domain import ledger
from chargeshare.domain.money import split_fee
from chargeshare.domain.platform_reporting import (
    PlatformOperator,
    PlatformReport,
    RelevantActivity,
    ReportingRules,
    build_report,
)
from chargeshare.domain.seller_details import SellerDetails, seller_details

DPI = "{urn:oecd:ties:dpi:v1}"
STF = "{urn:oecd:ties:dpistf:v1}"
AT = datetime(2027, 1, 20, 9, 30, tzinfo=UTC)
OPERATOR = PlatformOperator("ChargeShare Ltd", "1234567890", "1 Quay Street, Bristol BS1 4DJ")

COMPANY = seller_details(
    kind="entity",
    legal_name="Harbourside Charging Ltd",
    company_number="SC123456",
    address_line1="2 Harbourside",
    city="Bristol",
    postcode="BS1 5TR",
    country="GB",
    tax_id_kind="utr",
    tax_id="1234567890",
    iban="GB82 WEST 1234 5698 7654 32",
    today=date(2027, 1, 1),
)


def report(rules: ReportingRules, details: dict[int, SellerDetails], pence: int = 250_050) -> PlatformReport:
    hold = ledger.place_hold("b1:hold", 1, 9, pence, datetime(2026, 8, 1, tzinfo=UTC))
    capture, split = ledger.capture_and_split(
        hold,
        [],
        capture_id="b1:capture",
        split_id="b1:split",
        amount=pence,
        split=split_fee(pence, 1500, 2000),
        host_id=1,
        at=datetime(2026, 8, 1, 2, tzinfo=UTC),
    )
    entries = [hold, capture, split]
    return build_report(2026, rules, entries, host_names={1: "H"}, details=details, registered_on={})


def test_an_entity_selling_goods_is_reported_with_its_company_number_and_iban() -> None:
    goods = ReportingRules(RelevantActivity.GOODS)
    root = ET.fromstring(report_xml(report(goods, {1: COMPANY}), OPERATOR, AT))
    spec = root.find(f"{DPI}MessageSpec")
    assert spec is not None
    assert [c.tag.removeprefix(DPI) for c in spec] == [
        "SendingEntityIN",
        "TransmittingCountry",
        "ReceivingCountry",
        "MessageType",
        "MessageRefId",
        "MessageTypeIndic",
        "ReportingPeriod",
        "Timestamp",
    ]
    assert (spec.findtext(f"{DPI}MessageTypeIndic"), spec.findtext(f"{DPI}Timestamp")) == (
        "DPI401",
        "2027-01-20T09:30:00.000",
    )
    po = root.find(f"{DPI}DPIBody/{DPI}PlatformOperator")
    assert po is not None and po.findtext(f"{DPI}TIN") == "1234567890"
    seller = root.find(f"{DPI}DPIBody/{DPI}ReportableSeller")
    assert seller is not None
    who = seller.find(f"{DPI}Identity/{DPI}EntitySeller/{DPI}Standard/{DPI}EntSellerID")
    assert who is not None
    assert [c.tag.removeprefix(DPI) for c in who] == ["ResCountryCode", "TIN", "IN", "Name", "Address"]
    number = who.find(f"{DPI}IN")
    assert number is not None and (number.text, number.get("INType")) == ("SC123456", "BRN")
    iban = seller.find(f".//{DPI}FinancialIdentifier/{DPI}Identifier")
    assert iban is not None and (iban.text, iban.get("AccountNumberType")) == (
        "GB82WEST12345698765432",
        "IBAN",
    )
    goods_el = seller.find(f"{DPI}RelevantActivities/{DPI}SaleOfGoods")
    assert goods_el is not None
    assert [c.tag.removeprefix(DPI) for c in goods_el] == [
        "Consideration",
        "NumberOfActivities",
        "Fees",
        "Taxes",
    ]
    # 2,500.50 paid in Q3: 375.07 fees (rounded down), 2,125.43 credited: 2,125 and 375 whole pounds.
    assert goods_el.findtext(f"{DPI}Consideration/{DPI}ConsQ3") == "2125"
    assert goods_el.findtext(f"{DPI}Fees/{DPI}FeesQ3") == "375"
    assert seller.findtext(f"{DPI}DocSpec/{STF}DocTypeIndic") == "OECD1"


def test_nothing_to_report_is_said_with_no_seller_in_the_message() -> None:
    small = report(ReportingRules(RelevantActivity.GOODS), {1: COMPANY}, pence=1_000)  # under the de minimis
    root = ET.fromstring(report_xml(small, PlatformOperator(), AT))
    assert root.findtext(f"{DPI}MessageSpec/{DPI}MessageTypeIndic") == "DPI403"
    assert root.find(f"{DPI}DPIBody/{DPI}ReportableSeller") is None
    tin = root.find(f"{DPI}DPIBody/{DPI}PlatformOperator/{DPI}TIN")
    assert tin is not None and (tin.text, tin.get("unknown")) == ("NOTIN", "true")
    assert [r["status"] for r in csv.DictReader(io.StringIO(report_csv(small)))] == ["excluded"]


def test_a_seller_without_details_is_in_the_csv_and_not_the_xml() -> None:
    missing = report(ReportingRules(), {})
    assert [r["status"] for r in csv.DictReader(io.StringIO(report_csv(missing)))] == ["missing details"]
    root = ET.fromstring(report_xml(missing, OPERATOR, AT))
    assert root.find(f"{DPI}DPIBody/{DPI}ReportableSeller") is None


def test_a_sellers_copy_shows_pence_and_the_whole_pounds_reported() -> None:
    r = report(ReportingRules(), {1: COMPANY})
    copy = seller_copy(r, r.sellers[0], OPERATOR)
    assert "ChargeShare Ltd: what we reported to HMRC about you for 2026" in copy
    assert "Harbourside Charging Ltd" in copy and "Company number:   SC123456" in copy
    assert "£2,125.43" in copy and "Q3 £2,125" in copy
