"""HMRC platform reporting through the services on the in-memory store: hosts give their seller
details, and a year of sessions, fees and payouts made through the real booking, charging and
settlement services on a ManualClock reports per UK quarter and reconciles with the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import KycStatus, Principal, Role
from chargeshare.domain.ledger import EXPORT_CREDIT_KINDS, EntryKind, JournalEntry, Posting, host_payable
from chargeshare.domain.platform_reporting import RelevantActivity, ReportingRules
from chargeshare.domain.seller_details import SellerDetails, seller_details
from chargeshare.ocpp import V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.platform_reporting import PlatformReportingService
from tests.conftest import add_charger


@pytest.fixture
def clock() -> ManualClock:
    """The year before the reported one ends in December: start there."""
    return ManualClock(datetime(2025, 12, 1, 8, tzinfo=UTC))


def details(last_name: str = "Hughes", sort_code: str = "12-34-56") -> SellerDetails:
    return seller_details(
        kind="individual",
        first_names="Hannah",
        last_name=last_name,
        birth_date=date(1980, 2, 3),
        address_line1="1 Harbourside",
        city="Bristol",
        postcode="BS1 5TR",
        country="GB",
        tax_id_kind="nino",
        tax_id="AB123456C",
        sort_code=sort_code,
        account_number="12345678",
        today=date(2026, 1, 1),
    )


def test_details_are_kept_and_a_change_sends_a_verified_host_back_to_pending(app: App) -> None:
    host = app.marketplace.add_host("Hannah")
    assert app.hosting.seller_details(host) is None
    assert app.hosting.set_seller_details(host, details()).kyc_status == "pending"
    app.hosting.set_kyc(host, KycStatus.VERIFIED)
    # The same details again change nothing the operator checked.
    assert app.hosting.set_seller_details(host, details()).kyc_status == "verified"
    # A new bank account is what a takeover of the account would change: checked again first.
    assert app.hosting.set_seller_details(host, details(sort_code="65-43-21")).kyc_status == "pending"
    assert app.hosting.seller_details(host) == details(sort_code="65-43-21")


# ---- a year through the services ----------------------------------------------------------------------
def goto(clock: ManualClock, when: datetime) -> None:
    assert when >= clock.now(), (when, clock.now())
    clock.advance((when - clock.now()).total_seconds())


@dataclass
class Charger:
    cp_id: str
    charger_id: int
    host_id: int
    register_wh: int = 0
    sessions: list[datetime] = field(default_factory=list)


class Year:
    """Drivers charging on three hosts' chargers, through bookings, sessions and settlement."""

    def __init__(self, app: App, clock: ManualClock) -> None:
        self.app, self.clock = app, clock
        self.driver = app.marketplace.add_driver("Dee", "TAG-1").driver_id
        self.chargers = {}
        for cp_id in ("BUSY", "SMALL", "GONE"):
            charger_id = add_charger(app, cp_id, price=40, power_w=22_000)
            with app.store.reading() as tx:  # the host add_charger made for it
                host_id = tx.chargers.by_id(charger_id).host_id
            app.hosting.set_kyc(host_id, KycStatus.VERIFIED)
            self.chargers[cp_id] = Charger(cp_id, charger_id, host_id)

    def charge(self, cp_id: str, stops_at: datetime, wh: int) -> None:
        """A booking made just before, a session of `wh` stopped at `stops_at`, settled at once."""
        c = self.chargers[cp_id]
        goto(self.clock, stops_at - timedelta(minutes=40))
        self.app.bookings.book(BookRequest(self.driver, c.charger_id, 1, 60, 50_000))
        self.clock.advance(60)
        started = self.app.charging.start(cp_id, 1, "TAG-1", c.register_wh, self.clock.now())
        goto(self.clock, stops_at)
        c.register_wh += wh
        self.app.charging.stop(cp_id, started.transaction_id, c.register_wh, self.clock.now())
        c.sessions.append(stops_at)

    def no_show(self, cp_id: str, starts_at: datetime) -> None:
        """Booked and never used: the no-show fee is captured and shared with the host."""
        goto(self.clock, starts_at - timedelta(hours=1))
        c = self.chargers[cp_id]
        self.app.bookings.book(BookRequest(self.driver, c.charger_id, 1, 60, 10_000, starts_at=starts_at))
        goto(self.clock, starts_at + timedelta(minutes=30))
        assert self.app.bookings.expire_no_shows()
        c.sessions.append(self.clock.now())

    def pay_out(self, when: datetime) -> None:
        goto(self.clock, when)
        self.app.settlement.pay_out_hosts()


def a_year(app: App, clock: ManualClock) -> Year:
    goto(clock, datetime(2025, 12, 1, 8, tzinfo=UTC))
    year = Year(app, clock)
    year.charge("GONE", datetime(2025, 12, 20, 18, tzinfo=UTC), 30_000)  # owed on 1 January
    year.charge("BUSY", datetime(2025, 12, 31, 23, 50, tzinfo=UTC), 10_000)  # last year's Q4
    day = datetime(2026, 1, 1, 10, tzinfo=UTC)
    while day.year == 2026:
        if day.day == 1:  # monthly payouts
            year.pay_out(day)
        if day.day == 15:
            year.charge("SMALL", day + timedelta(hours=2), 8_000)
        if day.timetuple().tm_yday % 4 == 1:  # every fourth day: 92 sessions
            year.charge("BUSY", day + timedelta(hours=8), 5_000 + 1_000 * (day.day % 7))
        if (day.month, day.day) == (3, 31):
            year.charge("SMALL", datetime(2026, 3, 31, 23, 30, tzinfo=UTC), 4_000)  # 00:30 BST: Q2
        if (day.month, day.day) == (7, 10):
            year.no_show("BUSY", day + timedelta(hours=12))
        day += timedelta(days=1)
    year.charge("BUSY", datetime(2026, 12, 31, 23, 50, tzinfo=UTC), 6_000)  # 2026's last
    year.charge("BUSY", datetime(2027, 1, 1, 0, 50, tzinfo=UTC), 6_000)  # 2027's first
    return year


def test_a_year_of_sessions_fees_and_payouts_reports_and_reconciles(app: App, clock: ManualClock) -> None:
    year = a_year(app, clock)
    busy, small = year.chargers["BUSY"].host_id, year.chargers["SMALL"].host_id
    app.hosting.set_seller_details(busy, details())
    checked = app.platform_reporting.report(2026)
    assert checked.discrepancies == ()
    report = checked.report
    assert [s.host_id for s in report.sellers] == [busy, small]  # GONE earned nothing in 2026
    by_host = {s.host_id: s for s in report.sellers}
    # SMALL: one session on the 15th of each month, and one at 00:30 UK time on 1 April.
    assert [q.activities for q in by_host[small].figures.quarters] == [3, 4, 3, 3]
    in_2026 = [t for t in year.chargers["BUSY"].sessions if t.year == 2026]
    assert by_host[busy].activities == len(in_2026)  # sessions and the no-show's fee
    assert all(q.net_paid > 0 and q.fees_withheld > 0 for q in by_host[busy].figures.quarters)
    for s in report.sellers:
        assert s.consideration + s.fees == s.figures.gross_consideration
        assert s.fees == sum(q.fees_withheld for q in s.figures.quarters)
    # SMALL never gave its details: the report cannot be filed until it does.
    assert [s.host_id for s in report.missing_details] == [small] and not checked.ok
    assert by_host[busy].details == details()
    failed = [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok]
    assert failed == []

    # Read as sales of goods, SMALL's thirteen sales and few pounds fall under the de minimis.
    goods = PlatformReportingService(app.store, ReportingRules(RelevantActivity.GOODS)).report(2026)
    assert [s.host_id for s in goods.report.reportable] == [busy] and goods.ok
    assert goods.report.sellers[1].excluded_because is not None

    # The neighbouring years reconcile too: 2025's payable balance is what 2026 starts from.
    for other in (2025, 2027):
        assert app.platform_reporting.report(other).discrepancies == ()


def test_a_ledger_credited_outside_settlement_fails_the_check(app: App, clock: ManualClock) -> None:
    year = Year(app, clock)
    for month in (4, 5, 6):
        year.charge("BUSY", datetime(2026, month, 3, 18, tzinfo=UTC), 7_000)
    year.pay_out(datetime(2026, 7, 1, 9, tzinfo=UTC))
    assert app.platform_reporting.report(2026).discrepancies == ()
    busy = year.chargers["BUSY"].host_id
    stray = JournalEntry(
        "manual-adjustment",
        EntryKind.PAYOUT,  # a payout the wrong way round: it credits the host
        (Posting("platform:bank", 5_000), Posting(host_payable(busy), -5_000)),
        datetime(2026, 5, 5, 12, tzinfo=UTC),
        None,
    )
    with app.store.transaction() as tx:
        tx.ledger.add([stray])
    found = app.platform_reporting.report(2026).discrepancies
    assert {(d.host_id, d.check, d.quarter) for d in found} == {
        (busy, "consideration", 2),
        (busy, "fees", 2),
        (busy, "payouts", None),
    }


@pytest.mark.parametrize("buyer", ["grid", "home"])
def test_export_credits_leave_the_hosts_reports_reconciled_to_the_ledger(
    app: App, clock: ManualClock, buyer: str
) -> None:
    """A V2G guest's export credit is owed by the grid buyer to the driver, or charged to the host
    when its home buys it: the host's consideration and fees are what they were, and its payouts
    (less what its home bought) still agree with the journal."""
    year = Year(app, clock)
    busy = year.chargers["BUSY"]
    app.charging.boot("BUSY", V21)
    app.v2g.set_buyer_for(busy.host_id, buyer)
    for month in (4, 5, 6):
        goto(clock, datetime(2026, month, 3, 17, 20, tzinfo=UTC))
        booking = app.bookings.book(BookRequest(year.driver, busy.charger_id, 1, 60, 50_000)).booking_id
        app.v2g.set_terms(Principal(0, Role.DRIVER, driver_id=year.driver), booking, 20, 40)
        clock.advance(60)
        started = app.charging.start("BUSY", 1, "TAG-1", busy.register_wh, clock.now()).transaction_id
        app.charging.meter_export("BUSY", started, 10_000 * month, 80)
        goto(clock, datetime(2026, month, 3, 18, tzinfo=UTC))
        app.charging.meter_export("BUSY", started, 10_000 * month + 4_321, 60)
        busy.register_wh += 2_000
        app.charging.stop("BUSY", started, busy.register_wh, clock.now())
    year.pay_out(datetime(2026, 7, 1, 9, tzinfo=UTC))
    with app.store.reading() as tx:
        credits = [e.amount for e in tx.ledger.entries() if e.kind in EXPORT_CREDIT_KINDS]
    assert credits == [86, 86, 86]  # 4,321 Wh x 20p per kWh = 86.42p, rounded down
    checked = app.platform_reporting.report(2026)
    assert checked.discrepancies == ()
    (seller,) = checked.report.sellers
    assert seller.host_id == busy.host_id and seller.figures.gross_consideration == 3 * 80  # import only
    assert [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok] == []
