"""HMRC platform reporting's pure rules: UK quarters, the de minimis, who is reported with what, and
the check of a report against the ledger, which a tampered ledger fails."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain import ledger
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting, host_payable, payable_host
from chargeshare.domain.money import split_fee
from chargeshare.domain.platform_reporting import (
    PlatformReport,
    RelevantActivity,
    ReportingRules,
    build_report,
    days_in,
    days_registered,
    excluded_by_de_minimis,
    whole_pounds,
)
from chargeshare.domain.report_reconciliation import reconcile
from chargeshare.domain.statement import QuarterFigures, year_and_quarter

GOODS = ReportingRules(activity=RelevantActivity.GOODS)


@pytest.mark.parametrize(
    ("at", "year_quarter"),
    [
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), (2026, 1)),  # GMT: the year starts at 00:00 UTC
        (datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), (2025, 4)),
        (datetime(2026, 3, 31, 22, 59, 59, tzinfo=UTC), (2026, 1)),  # 23:59:59 BST on 31 March
        (datetime(2026, 3, 31, 23, 0, tzinfo=UTC), (2026, 2)),  # already 1 April in the UK
        (datetime(2026, 6, 30, 23, 0, tzinfo=UTC), (2026, 3)),
        (datetime(2026, 9, 30, 22, 30, tzinfo=UTC), (2026, 3)),
        (datetime(2026, 9, 30, 23, 30, tzinfo=UTC), (2026, 4)),
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), (2026, 4)),  # GMT again: the year ends with UTC's
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), (2027, 1)),
    ],
)
def test_quarters_are_the_uk_calendars(at: datetime, year_quarter: tuple[int, int]) -> None:
    assert year_and_quarter(at) == year_quarter


@given(st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)))
def test_a_uk_year_holds_the_same_instants_as_the_utc_year(at: datetime) -> None:
    # Why the reportable period needs no care at its ends: the UK is on GMT in December and January.
    assert year_and_quarter(at)[0] == at.year


def test_renting_a_charge_points_parking_space_has_no_de_minimis() -> None:
    rules = ReportingRules()
    assert rules.activity is RelevantActivity.PROPERTY
    assert not excluded_by_de_minimis(1, 100, rules, registered_days=365, year_days=365)


@pytest.mark.parametrize(
    ("activities", "pence", "excluded"),
    [(29, 170_000, True), (0, 0, True), (30, 0, False), (29, 170_001, False), (30, 170_001, False)],
)
def test_a_small_seller_of_goods_is_excluded_only_when_both_tests_are_met(
    activities: int, pence: int, excluded: bool
) -> None:
    assert excluded_by_de_minimis(activities, pence, GOODS, registered_days=365, year_days=365) is excluded


@given(
    st.integers(0, 100),
    st.integers(0, 400_000),
    st.integers(0, 366),
    st.sampled_from([365, 366]),
    st.integers(0, 60),
    st.integers(0, 300_000),
)
def test_part_of_a_year_shrinks_both_thresholds_in_proportion(
    activities: int, pence: int, registered: int, year_days: int, limit: int, limit_pence: int
) -> None:
    rules = ReportingRules(RelevantActivity.GOODS, limit, limit_pence)
    registered = min(registered, year_days)
    share = Fraction(registered, year_days)  # the UK's regulation 10, in exact fractions
    expected = activities < limit * share and pence <= limit_pence * share
    assert excluded_by_de_minimis(
        activities, pence, rules, registered_days=registered, year_days=year_days
    ) is (expected)


def test_days_registered_count_from_the_sign_up_date() -> None:
    assert days_in(2026) == 365 and days_in(2028) == 366
    assert days_registered(2026, None) == 365 == days_registered(2026, date(2025, 5, 1))
    assert days_registered(2026, date(2026, 12, 31)) == 1
    assert days_registered(2026, date(2026, 7, 2)) == 183
    assert days_registered(2026, date(2027, 1, 1)) == 0


def test_thresholds_cannot_be_negative() -> None:
    with pytest.raises(InvalidRequest):
        ReportingRules(de_minimis_consideration=-1)


def test_amounts_go_to_the_xml_in_whole_pounds() -> None:
    assert [whole_pounds(p) for p in (0, 49, 50, 149, 150, 170_049, -150)] == [0, 0, 1, 1, 2, 1_700, -2]


def test_payable_accounts_name_their_host() -> None:
    assert payable_host(host_payable(42)) == 42
    assert payable_host("host:x:payable") is None and payable_host("platform:revenue") is None


# ---- a year of a small ledger ------------------------------------------------------------------------
FEE_BPS, VAT_BPS = 1500, 2000


class Books:
    """Entries made by the ledger's own functions: what settlement writes."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        self.next_booking = 0

    def session(self, host: int, cost: int, at: datetime) -> int:
        self.next_booking += 1
        b = self.next_booking
        hold = ledger.place_hold(f"b{b}:hold", b, 1, cost + 100, at - timedelta(hours=1))
        capture, split = ledger.capture_and_split(
            hold,
            [],
            capture_id=f"b{b}:capture",
            split_id=f"b{b}:split",
            amount=cost,
            split=split_fee(cost, FEE_BPS, VAT_BPS),
            host_id=host,
            at=at,
        )
        self.entries += [hold, capture, split]
        return b

    def payout(self, host: int, amount: int, at: datetime) -> None:
        self.entries.append(ledger.payout(f"p{len(self.entries)}", host, amount, at))


def at(month: int, day: int, hour: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def a_year() -> Books:
    books = Books()
    books.session(1, 1_000, at(12, 30, year=2025))  # last year: owed at the start of this one
    books.session(1, 2_000, at(2, 10))
    books.session(1, 400, datetime(2026, 3, 31, 23, 30, tzinfo=UTC))  # Q2 in the UK
    books.session(2, 10_000, at(8, 1))
    books.session(1, 600, at(11, 5))
    books.payout(1, 850, at(1, 5))
    books.payout(1, 1_000, at(6, 1))
    books.session(2, 500, at(1, 2, year=2027))  # next year
    return books


PROPERTY = ReportingRules()


def report_of(books: Books, rules: ReportingRules = PROPERTY) -> PlatformReport:
    return build_report(
        2026, rules, books.entries, host_names={1: "Ann", 2: "Bo"}, details={}, registered_on={}
    )


def test_the_report_carries_each_active_sellers_quarters_net_of_fees() -> None:
    report = report_of(a_year())
    assert [s.host_id for s in report.sellers] == [1, 2]
    ann = report.sellers[0]
    # 2,000p paid in Q1: the platform keeps 15% (300p), the host is credited 1,700p.
    assert [(q.quarter, q.net_paid, q.fees_withheld, q.activities) for q in ann.figures.quarters] == [
        (1, 1_700, 300, 1),
        (2, 340, 60, 1),
        (3, 0, 0, 0),
        (4, 510, 90, 1),
    ]
    assert (ann.consideration, ann.fees, ann.activities, ann.reportable) == (2_550, 450, 3, True)
    assert report.missing_details == report.sellers  # nobody has given their details in this test
    assert reconcile(report, a_year().entries) == []


def test_under_the_goods_reading_the_de_minimis_excludes_small_sellers() -> None:
    report = report_of(a_year(), GOODS)
    ann, bo = report.sellers
    assert ann.excluded_because is not None and "fewer than 30 sales" in ann.excluded_because
    assert (bo.consideration, bo.activities, bo.reportable) == (8_500, 1, False)
    assert report.reportable == () == report.missing_details
    assert reconcile(report, a_year().entries) == []  # excluded sellers' figures still reconcile


def test_a_seller_over_the_threshold_stays_reportable_under_the_goods_reading() -> None:
    books = a_year()
    books.session(2, 200_000, at(10, 1))
    bo = report_of(books, GOODS).sellers[1]
    assert bo.consideration > 170_000 and bo.reportable


# ---- mutant ledgers: each tampering is caught by the check it concerns --------------------------------
def test_a_credit_to_a_host_by_anything_but_a_split_is_a_consideration_discrepancy() -> None:
    books = a_year()
    report = report_of(books)
    stray = JournalEntry(
        "stray",
        EntryKind.PROCESSOR_FEE,  # the wrong kind: the report does not read it as earnings
        (Posting(ledger.PROCESSOR_FEES, 500), Posting(host_payable(1), -500)),
        at(5, 5),
        None,
    )
    found = reconcile(report, [*books.entries, stray])
    assert [(d.host_id, d.check, d.quarter, d.reported, d.ledger) for d in found][:1] == [
        (1, "consideration", 2, 340, 840)
    ]
    assert "host 1, consideration in Q2: reported £3.40, the ledger says £8.40" in str(found[0])


def test_a_split_with_no_capture_behind_it_is_a_fees_discrepancy() -> None:
    books = a_year()
    split = ledger.capture_and_split(
        ledger.place_hold("x:hold", 99, 1, 1_000, at(8, 1)),
        [],
        capture_id="x:capture",
        split_id="x:split",
        amount=1_000,
        split=split_fee(1_000, FEE_BPS, VAT_BPS),
        host_id=2,
        at=at(8, 2),
    )[1]
    books.entries.append(split)  # credited the host, but nobody paid
    found = reconcile(report_of(books), books.entries)
    assert [(d.host_id, d.check, d.quarter) for d in found] == [(2, "fees", 3)]


def test_a_payout_beyond_what_was_credited_is_a_payouts_discrepancy() -> None:
    books = a_year()
    books.payout(2, 9_000, at(12, 1))  # 8,500p credited to host 2 all year
    found = reconcile(report_of(books), books.entries)
    assert [(d.host_id, d.check, d.detail) for d in found] == [
        (2, "payouts", "paid out more than was credited")
    ]


def test_a_report_that_drifts_from_the_books_is_caught_per_quarter() -> None:
    books = a_year()
    report = report_of(books)
    ann = report.sellers[0]
    q1 = ann.figures.quarters[0]
    gross = QuarterFigures(
        1, q1.gross_consideration, 0, q1.gross_consideration, q1.activities
    )  # gross as net
    tampered = dataclasses.replace(
        report,
        sellers=(
            dataclasses.replace(
                ann, figures=dataclasses.replace(ann.figures, quarters=(gross, *ann.figures.quarters[1:]))
            ),
            report.sellers[1],
        ),
    )
    checks = {(d.check, d.quarter) for d in reconcile(tampered, books.entries)}
    assert checks == {("consideration", 1), ("fees", 1), ("payouts", None)}


def test_a_seller_left_out_of_the_report_is_caught() -> None:
    books = a_year()
    report = report_of(books)
    found = reconcile(dataclasses.replace(report, sellers=report.sellers[:1]), books.entries)
    assert {(d.host_id, d.check) for d in found} == {(2, "consideration"), (2, "fees"), (2, "payouts")}
