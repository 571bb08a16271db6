"""A host's home buying its guests' V2G export, through the services on the fakes: the host's
choice, fixed on a booking's export when it starts; the driver credited and the host charged in
one entry; the host's payout paying only what is left of its earnings; the invariants."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import KycStatus, Principal, Role
from chargeshare.domain.errors import Forbidden, InvalidRequest
from chargeshare.domain.ledger import (
    GRID_EXPORT_BUYER,
    EntryKind,
    JournalEntry,
    driver_export_credit,
    host_payable,
    posted_balances,
)
from chargeshare.domain.v2g import ExportBuyer
from chargeshare.ocpp import V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger


def as_host(host_id: int) -> Principal:
    return Principal(account_id=0, role=Role.HOST, host_id=host_id)


def as_driver(driver_id: int) -> Principal:
    return Principal(account_id=0, role=Role.DRIVER, driver_id=driver_id)


def failing(app: App) -> list[str]:
    return [r.name for r in check_store(app.store, app.config.rules, final=False) if not r.ok]


class Site:
    def __init__(self, app: App, clock: ManualClock) -> None:
        self.app, self.clock = app, clock
        self.charger = add_charger(app, "V2G1", price=40)
        app.charging.boot("V2G1", V21)
        self.dee = app.marketplace.add_driver("Dee", "DEE").driver_id
        with app.store.reading() as tx:
            self.host_id = tx.chargers.get("V2G1").host_id

    def session(
        self, import_wh: int, *, between: ExportBuyer | None = None
    ) -> tuple[int, list[JournalEntry]]:
        """A booking exporting 3,333 Wh at 25p (83p) and importing `import_wh`; the host chooses
        `between` once its export has started."""
        app, clock = self.app, self.clock
        booking = app.bookings.book(BookRequest(self.dee, self.charger, 1, 60, 30_000)).booking_id
        app.v2g.set_terms(as_driver(self.dee), booking, 25, 40)
        clock.advance(60)
        session = app.charging.start("V2G1", 1, "DEE", 1_000, clock.now()).transaction_id
        app.charging.meter_export("V2G1", session, 50_000, 80)  # the export starts: buyer fixed
        if between is not None:
            app.v2g.set_buyer(as_host(self.host_id), between)
        app.charging.meter_export("V2G1", session, 53_333, 62)
        app.charging.stop("V2G1", session, 1_000 + import_wh, clock.now())
        clock.advance(3_600)
        with app.store.reading() as tx:
            return booking, list(tx.ledger.entries(booking_id=booking))

    def balances(self) -> dict[str, int]:
        with self.app.store.reading() as tx:
            return posted_balances(tx.ledger.entries())


def credits(entries: list[JournalEntry]) -> list[JournalEntry]:
    return [e for e in entries if e.kind in (EntryKind.EXPORT_CREDIT, EntryKind.HOME_EXPORT_CREDIT)]


def test_the_grid_buys_by_default_and_a_host_choosing_home_is_charged_its_guests_export(
    app: App, clock: ManualClock
) -> None:
    site = Site(app, clock)
    assert app.v2g.buyer(as_host(site.host_id)) is ExportBuyer.GRID
    _, entries = site.session(20_000)
    assert [(e.kind, e.postings[0].account) for e in credits(entries)] == [
        (EntryKind.EXPORT_CREDIT, GRID_EXPORT_BUYER)
    ]
    assert app.v2g.set_buyer(as_host(site.host_id), "home") is ExportBuyer.HOME
    booking, entries = site.session(20_000)
    (entry,) = credits(entries)
    assert entry.kind is EntryKind.HOME_EXPORT_CREDIT
    assert {p.account: p.amount for p in entry.postings} == {
        host_payable(site.host_id): 83,
        driver_export_credit(site.dee): -83,
    }
    assert app.v2g.export(as_driver(site.dee), booking).record.buyer is ExportBuyer.HOME
    balances = site.balances()
    assert balances[GRID_EXPORT_BUYER] == 83  # the first session's only
    assert balances[driver_export_credit(site.dee)] == -166
    # Two sessions' 20 kWh at 40p: 680p each to the host, less the 83p its home bought.
    assert balances[host_payable(site.host_id)] == -680 * 2 + 83
    app.hosting.set_kyc(site.host_id, KycStatus.VERIFIED)
    assert app.settlement.pay_out_hosts().paid == {site.host_id: 1_277}
    assert failing(app) == []


@pytest.mark.parametrize(("first", "then"), [(None, ExportBuyer.HOME), (ExportBuyer.HOME, ExportBuyer.GRID)])
def test_a_change_mid_session_leaves_the_sessions_export_with_its_first_buyer(
    app: App, clock: ManualClock, first: ExportBuyer | None, then: ExportBuyer
) -> None:
    site = Site(app, clock)
    if first is not None:
        app.v2g.set_buyer(as_host(site.host_id), first)
    booking, entries = site.session(500, between=then)
    kept = ExportBuyer.GRID if first is None else first
    (entry,) = credits(entries)
    assert entry.kind is (
        EntryKind.EXPORT_CREDIT if kept is ExportBuyer.GRID else EntryKind.HOME_EXPORT_CREDIT
    )
    assert app.v2g.export(as_driver(site.dee), booking).record.buyer is kept
    assert app.v2g.buyer(as_host(site.host_id)) is then  # the next export goes to the new choice
    assert failing(app) == []


def test_a_host_whose_earnings_do_not_cover_its_homes_purchase_is_paid_nothing_until_they_do(
    app: App, clock: ManualClock
) -> None:
    site = Site(app, clock)
    app.hosting.set_kyc(site.host_id, KycStatus.VERIFIED)
    app.v2g.set_buyer(as_host(site.host_id), "home")
    site.session(500)  # 500 Wh at 40p: 17p to the host, 83p charged to it
    assert site.balances()[host_payable(site.host_id)] == -17 + 83  # the host owes 66p
    earnings = app.hosting.earnings(site.host_id)
    assert (earnings.earned, earnings.home_export_bought, earnings.balance) == (17, 83, -66)
    assert app.settlement.pay_out_hosts().paid == {}
    assert failing(app) == []
    app.v2g.set_buyer(as_host(site.host_id), "grid")
    site.session(20_000)  # 680p earned: the debt is netted off before anything is paid
    assert app.settlement.pay_out_hosts().paid == {site.host_id: 680 - 66}
    assert failing(app) == []


def test_only_a_host_chooses_and_only_grid_or_home(app: App, clock: ManualClock) -> None:
    site = Site(app, clock)
    with pytest.raises(Forbidden):
        app.v2g.set_buyer(as_driver(site.dee), "home")
    with pytest.raises(InvalidRequest):
        app.v2g.set_buyer(as_host(site.host_id), "neighbour")
    assert app.v2g.buyer(as_host(site.host_id)) is ExportBuyer.GRID


def test_a_home_purchase_after_a_payout_leaves_the_host_owing_and_breaks_no_invariant(
    app: App, clock: ManualClock
) -> None:
    """A host paid all it had earned, whose home then buys a guest's export, owes the platform: the
    payout paid what was owed when it was made, so no invariant may call it an overpayment."""
    site = Site(app, clock)
    app.hosting.set_kyc(site.host_id, KycStatus.VERIFIED)
    site.session(20_000)  # sold to the grid: 680p earned
    app.settlement.process_due()
    assert app.settlement.pay_out_hosts().paid == {site.host_id: 680}
    app.v2g.set_buyer(as_host(site.host_id), "home")
    site.session(0)  # the home buys 83p of export; nothing imported
    app.settlement.process_due()
    assert site.balances()[host_payable(site.host_id)] == 83  # the host owes it
    assert app.settlement.pay_out_hosts().paid == {}
    assert failing(app) == []


def test_a_home_purchase_at_the_instant_of_a_payout_before_it_breaks_no_invariant(
    app: App, clock: ManualClock
) -> None:
    """On a manual clock a payout and the home's purchase that follows it share an instant: the
    check must take them in the order written, not the purchase first."""
    site = Site(app, clock)
    app.hosting.set_kyc(site.host_id, KycStatus.VERIFIED)
    site.session(20_000)  # sold to the grid: 680p earned
    app.settlement.process_due()
    app.v2g.set_buyer(as_host(site.host_id), "home")
    booking = app.bookings.book(BookRequest(site.dee, site.charger, 1, 60, 30_000)).booking_id
    app.v2g.set_terms(as_driver(site.dee), booking, 25, 40)
    clock.advance(60)
    session = app.charging.start("V2G1", 1, "DEE", 1_000, clock.now()).transaction_id
    app.charging.meter_export("V2G1", session, 50_000, 80)
    assert app.settlement.pay_out_hosts().paid == {site.host_id: 680}
    app.charging.meter_export("V2G1", session, 53_333, 62)
    app.charging.stop("V2G1", session, 1_000, clock.now())  # the home buys 83p of export
    app.settlement.process_due()
    with app.store.reading() as tx:
        at = {e.kind: e.created_at for e in tx.ledger.entries(account=host_payable(site.host_id))}
    assert at[EntryKind.PAYOUT] == at[EntryKind.HOME_EXPORT_CREDIT]
    assert site.balances()[host_payable(site.host_id)] == 83  # the host owes it
    assert failing(app) == []
