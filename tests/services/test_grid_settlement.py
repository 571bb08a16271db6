"""The grid buyer's settlement through the services: a month's statement of export credits that
reconciles to the ledger, its payment recorded once (and only for its total, once the month is
over), and the invariant that holds settled months to their credits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain import ledger
from chargeshare.domain.errors import InvalidField
from chargeshare.domain.grid_settlement import (
    GridSettlement,
    buyer_movement,
    export_credits_in,
    settlement_entry,
)
from chargeshare.domain.ledger import GRID_EXPORT_BUYER, PLATFORM_BANK, EntryKind
from chargeshare.ocpp import V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.ports import Store, UnitOfWork
from tests.conftest import add_charger
from tests.services.test_export_payouts import exported
from tests.services.test_v2g_service import driver, failing

APRIL = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
APRIL_BEGINS = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)  # midnight BST


def to_april(clock: ManualClock) -> None:
    clock.advance((APRIL - clock.now()).total_seconds())


def settlement_entries(app: App) -> list[ledger.JournalEntry]:
    with app.store.reading() as tx:
        return [e for e in tx.ledger.entries() if e.kind is EntryKind.GRID_SETTLEMENT]


def balances(app: App) -> dict[str, int]:
    with app.store.reading() as tx:
        return ledger.posted_balances(tx.ledger.entries())


def test_a_months_statement_lists_its_export_credits_and_reconciles_to_the_ledger(
    app: App, clock: ManualClock
) -> None:
    dee = exported(app, clock, "V2G1", "DEE")
    eve = exported(app, clock, "V2G2", "EVE")
    to_april(clock)
    exported(app, clock, "V2G3", "FAY")  # April's: not on March's statement
    march = app.grid_settlement.statement("2026-03")
    assert [(x.exported_wh, x.price_per_kwh, x.amount) for x in march.lines] == [(3_333, 25, 83)] * 2
    assert march.total == 166 and march.over and march.settlement is None
    assert [x.entry_id for x in march.lines] == ["export-1", "export-2"]
    with app.store.reading() as tx:
        entries = tx.ledger.entries()
        bookings = {tx.bookings.get(x.booking_id).driver_id for x in march.lines}
    assert bookings == {dee, eve}
    assert buyer_movement(export_credits_in(entries, "2026-03")) == march.total  # the month's movement
    april = app.grid_settlement.statement("2026-04")
    assert april.total == 83 and not april.over


def test_a_payment_of_the_total_moves_the_receivable_to_cash_once(app: App, clock: ManualClock) -> None:
    exported(app, clock, "V2G1", "DEE")
    exported(app, clock, "V2G2", "EVE")
    with pytest.raises(InvalidField, match="2026-03 is not over yet"):
        app.grid_settlement.record_payment("2026-03", 166)
    to_april(clock)
    exported(app, clock, "V2G3", "FAY")
    with pytest.raises(InvalidField, match="the statement for 2026-03 is 166p; a payment of 160p does not"):
        app.grid_settlement.record_payment("2026-03", 160)
    assert settlement_entries(app) == []
    done = app.grid_settlement.record_payment("2026-03", 166, recorded_by=1)
    assert done.recorded_now
    assert done.settlement == GridSettlement("2026-03", 166, 2, "grid-settlement:2026-03", clock.now(), 1)
    again = app.grid_settlement.record_payment("2026-03", 166)
    assert not again.recorded_now and again.settlement == done.settlement
    with pytest.raises(InvalidField, match="2026-03 was settled for 166p; a payment of 1p does not match"):
        app.grid_settlement.record_payment("2026-03", 1)
    (entry,) = settlement_entries(app)
    assert {p.account: p.amount for p in entry.postings} == {PLATFORM_BANK: 166, GRID_EXPORT_BUYER: -166}
    assert balances(app)[GRID_EXPORT_BUYER] == 83  # April's credit, still owed
    march = app.grid_settlement.statement("2026-03")
    assert march.settlement == done.settlement
    assert (march.balance.opening, march.total, march.balance.received, march.balance.closing) == (
        0,
        166,
        0,
        166,
    )
    april = app.grid_settlement.statement("2026-04")  # March's payment is received in April
    assert (april.balance.opening, april.total, april.balance.received, april.balance.closing) == (
        166,
        83,
        166,
        83,
    )
    assert march.reconciles and april.reconciles
    assert app.grid_settlement.settlements() == [done.settlement]
    assert failing(app) == []


def test_a_month_with_no_export_or_a_malformed_month_is_refused(app: App, clock: ManualClock) -> None:
    to_april(clock)
    with pytest.raises(InvalidField, match="owes nothing for 2026-02"):
        app.grid_settlement.record_payment("2026-02", 100)
    with pytest.raises(InvalidField, match="YYYY-MM"):
        app.grid_settlement.statement("2026-3")
    assert app.grid_settlement.statement("2026-02").lines == ()


def test_the_invariant_flags_a_settlement_that_no_longer_matches_its_month(
    app: App, clock: ManualClock
) -> None:
    dee = exported(app, clock, "V2G1", "DEE")
    to_april(clock)
    app.grid_settlement.record_payment("2026-03", 83)
    assert failing(app) == []
    # A credit written into the settled month afterwards: the paid statement no longer reconciles.
    late = ledger.export_credit_entry("export-late", 1, dee, 10, datetime(2026, 3, 31, 12, tzinfo=UTC))
    with app.store.transaction() as tx:
        tx.ledger.add([late])
    assert "grid_buyer_owes_unsettled_exports" in failing(app)


def test_the_invariant_flags_a_settlement_entry_without_its_month_or_the_other_way(
    app: App, clock: ManualClock
) -> None:
    exported(app, clock, "V2G1", "DEE")
    to_april(clock)
    with app.store.transaction() as tx:  # a row recorded without its ledger entry
        tx.v2g.add_settlement(GridSettlement("2026-03", 83, 1, "grid-settlement:2026-03", APRIL, None))
    assert failing(app) == ["grid_buyer_owes_unsettled_exports"]
    with app.store.transaction() as tx:  # and an entry for a month never recorded
        tx.ledger.add([settlement_entry("2026-03", 83, APRIL), settlement_entry("2026-02", 5, APRIL)])
    assert failing(app) == ["grid_buyer_owes_unsettled_exports"]


class PaidMeanwhile:
    """The store, whose next unit of work begins only after midnight, once the operator has
    recorded March's payment: as a stop that read the clock before midnight and waited for a lock."""

    def __init__(self, app: App, clock: ManualClock, amount: int) -> None:
        self.store: Store = app.store
        self.app, self.clock, self.amount = app, clock, amount

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        self.clock.advance((APRIL_BEGINS - self.clock.now()).total_seconds() + 1)
        self.app.grid_settlement.record_payment("2026-03", self.amount)
        self.app.charging.store = self.store
        with self.store.transaction() as tx:
            yield tx

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def exporting_at_marchs_end(app: App, clock: ManualClock) -> tuple[int, int]:
    """March's statement holds one 83p credit (V2G1); EVE's session on V2G2 has exported 83p more
    and is still open at 23:59:59 BST on 31 March, the clock's time now: (booking, session)."""
    exported(app, clock, "V2G1", "DEE")
    charger = add_charger(app, "V2G2", price=40)
    app.charging.boot("V2G2", V21)
    eve = app.marketplace.add_driver("EVE", "EVE").driver_id
    clock.advance((APRIL_BEGINS - timedelta(hours=2) - clock.now()).total_seconds())
    booking = app.bookings.book(BookRequest(eve, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(driver(eve), booking, 25, 40)
    clock.advance(60)
    session = app.charging.start("V2G2", 1, "EVE", 1_000, clock.now()).transaction_id
    app.charging.meter_export("V2G2", session, 50_000, 80)
    app.charging.meter_export("V2G2", session, 53_333, 62)
    clock.advance((APRIL_BEGINS - clock.now()).total_seconds() - 1)
    return booking, session


def test_an_export_stopped_across_a_settled_months_end_is_on_the_next_statement(
    app: App, clock: ManualClock
) -> None:
    """A credit is dated inside its stop's unit of work, after any payment recorded before it:
    never into a month whose statement was paid meanwhile."""
    booking, session = exporting_at_marchs_end(app, clock)
    app.charging.store = PaidMeanwhile(app, clock, 83)  # type: ignore[assignment]
    app.charging.stop("V2G2", session, 1_500, clock.now())
    march, april = app.grid_settlement.statement("2026-03"), app.grid_settlement.statement("2026-04")
    assert [x.entry_id for x in march.lines] == ["export-1"] and march.total == 83
    assert [x.entry_id for x in april.lines] == [f"export-{booking}"] and april.total == 83
    assert failing(app) == []
