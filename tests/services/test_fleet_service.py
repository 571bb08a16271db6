"""Fleet-share hubs end to end on the in-memory store: a block booked all or nothing, its sessions
charged on account, host cancellations under the contract, monthly invoices and their payment."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import BookingConflict, IdempotencyKeyReused, InvalidField
from chargeshare.domain.fleet import WEEKDAYS, BlockRule, ContractPolicy, LineKind, Occurrence
from chargeshare.domain.fleet_ledger import invoice_entry
from chargeshare.domain.ledger import EntryKind, place_hold
from chargeshare.domain.tariff import Tariff
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.fleet import BlockConflict, ConnectorRef
from chargeshare.services.invariants import Snapshot, check_store, fleet_bookings_overlap_nothing
from chargeshare.services.records import BookingRecord
from chargeshare.services.rules import MarketplaceRules
from tests.conftest import add_charger

# T0 is Monday 2 March 2026, 09:00 UTC (GMT): the first night is 20:00 that day.
WEEK = BlockRule(WEEKDAYS, time(20), time(6), date(2026, 3, 2), date(2026, 3, 6))
MONDAY_NIGHT = datetime(2026, 3, 2, 20, tzinfo=UTC)
POLICY = ContractPolicy(timedelta(hours=48), 2_500)


def two_hosts(app: App) -> list[ConnectorRef]:
    return [
        ConnectorRef(add_charger(app, "CP1", price=30), 1),
        ConnectorRef(add_charger(app, "CP2", price=40), 1),
    ]


def set_clock(clock: ManualClock, at: datetime) -> None:
    clock.advance((at - clock.now()).total_seconds())


def failing(app: App) -> set[str]:
    results = check_store(app.store, app.config.rules, now=app.clock.now(), final=False)
    return {r.name for r in results if not r.ok}


def test_a_block_books_every_night_on_every_connector_and_drivers_cannot_book_into_it(app: App) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    connectors = two_hosts(app)
    block = app.fleet.book_block(fleet.fleet_id, WEEK, connectors, POLICY)
    assert len(block.bookings) == 10
    assert {b.status for b in block.bookings} == {BookingStatus.CONFIRMED}
    assert {b.driver_id for b in block.bookings} == {fleet.driver_id}
    listed = app.fleet.occurrences(fleet.fleet_id)
    assert [b.starts_at for b in listed][:2] == [MONDAY_NIGHT, MONDAY_NIGHT]
    assert listed[-1].ends_at == datetime(2026, 3, 7, 6, tzinfo=UTC)
    driver = app.marketplace.add_driver("Ann", "ANN").driver_id
    with pytest.raises(BookingConflict):
        app.bookings.book(BookRequest(driver, connectors[0].charger_id, 1, 60, 10_000, MONDAY_NIGHT))
    # Between the nights the connector is the drivers'.
    day = app.bookings.book(
        BookRequest(driver, connectors[0].charger_id, 1, 60, 10_000, MONDAY_NIGHT + timedelta(hours=11))
    )
    assert day.status is BookingStatus.CONFIRMED
    assert failing(app) == set()


def test_a_block_clashing_with_a_drivers_booking_is_refused_whole_naming_the_clash(app: App) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    connectors = two_hosts(app)
    driver = app.marketplace.add_driver("Ann", "ANN").driver_id
    wednesday = MONDAY_NIGHT + timedelta(days=2, hours=1)
    app.bookings.book(BookRequest(driver, connectors[1].charger_id, 1, 60, 10_000, wednesday))
    with pytest.raises(BlockConflict) as refused:
        app.fleet.book_block(fleet.fleet_id, WEEK, connectors, POLICY)
    assert [(c.charger_id, c.starts_at, c.reason) for c in refused.value.clashes] == [
        (connectors[1].charger_id, MONDAY_NIGHT + timedelta(days=2), "booked")
    ]
    assert app.fleet.occurrences(fleet.fleet_id) == []
    assert app.fleet.contracts(fleet.fleet_id) == []
    with app.store.reading() as tx:
        assert len(tx.bookings.all()) == 1


def test_a_block_must_start_in_the_future(app: App, clock: ManualClock) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    set_clock(clock, MONDAY_NIGHT)
    with pytest.raises(InvalidField, match="first_day"):
        app.fleet.book_block(fleet.fleet_id, WEEK, two_hosts(app), POLICY)


def night_session(app: App, clock: ManualClock, cp_id: str, wh: int) -> None:
    """A van charging on Monday night (from 20:00, or now if later)."""
    if clock.now() < MONDAY_NIGHT:
        set_clock(clock, MONDAY_NIGHT)
    tx_id = app.charging.start(cp_id, 1, "VANS", 1_000, clock.now()).transaction_id
    clock.advance(2 * 3600)
    app.charging.stop(cp_id, tx_id, 1_000 + wh, clock.now())


def test_a_session_under_a_block_is_charged_on_account_not_to_a_card(app: App, clock: ManualClock) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    app.fleet.book_block(fleet.fleet_id, WEEK, two_hosts(app), POLICY)
    night_session(app, clock, "CP1", 20_000)
    assert isinstance(app.gateway, SimulatedGateway)
    assert app.gateway.total_captured == 0
    with app.store.reading() as tx:
        kinds = sorted(e.kind for e in tx.ledger.entries())
    assert kinds == [EntryKind.ON_ACCOUNT, EntryKind.SPLIT]
    statement = app.fleet.statement(fleet.fleet_id)
    assert (statement.unbilled, statement.receivable) == (Tariff(30).cost(20_000), 0)
    assert failing(app) == set()


def test_the_months_invoice_bills_the_sessions_once_and_payments_clear_the_receivable(
    app: App, clock: ManualClock
) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    app.fleet.book_block(fleet.fleet_id, WEEK, two_hosts(app), POLICY)
    night_session(app, clock, "CP1", 20_000)
    night_session(app, clock, "CP2", 10_000)
    with pytest.raises(InvalidField, match="not over"):
        app.fleet.invoice(fleet.fleet_id, "2026-03")
    app.bookings.expire_no_shows(timedelta(0), unstarted=True)  # the rest of the week's nights
    set_clock(clock, datetime(2026, 4, 1, 9, tzinfo=UTC))
    issued = app.fleet.invoice(fleet.fleet_id, "2026-03")
    cost = Tariff(30).cost(20_000) + Tariff(40).cost(10_000)
    sessions = [line for line in issued.lines if line.kind is LineKind.SESSION]
    assert sorted(line.energy_wh for line in sessions) == [10_000, 20_000]
    assert sum(line.amount for line in sessions) == cost
    assert issued.invoice.total == sum(line.amount for line in issued.lines)
    again = app.fleet.invoice(fleet.fleet_id, "2026-03")
    assert again == issued
    with app.store.reading() as tx:
        assert len([e for e in tx.ledger.entries() if e.kind is EntryKind.INVOICE]) == 1
    assert app.fleet.statement(fleet.fleet_id).receivable == issued.invoice.total
    assert app.fleet.statement(fleet.fleet_id).unbilled == 0
    paid = app.fleet.pay(fleet.fleet_id, "2026-03", 500)
    assert paid.outstanding == issued.invoice.total - 500
    assert app.fleet.statement(fleet.fleet_id).receivable == paid.outstanding
    with pytest.raises(InvalidField, match="outstanding"):
        app.fleet.pay(fleet.fleet_id, "2026-03", paid.outstanding + 1)
    assert failing(app) == set()


def test_a_host_cancelling_inside_the_notice_owes_the_fleet_the_penalty(app: App, clock: ManualClock) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    connectors = two_hosts(app)
    block = app.fleet.book_block(fleet.fleet_id, WEEK, connectors, POLICY)
    host = block.bookings[0].host_id
    mine = [b for b in block.bookings if b.host_id == host]
    early, late = mine[-1], mine[0]  # Friday's night is 4.5 days off, Monday's 11 hours
    app.bookings.cancel(early.booking_id, host_id=host)
    app.bookings.cancel(late.booking_id, host_id=host)
    with app.store.reading() as tx:
        penalties = [e for e in tx.ledger.entries() if e.kind is EntryKind.FLEET_PENALTY]
    assert [(e.booking_id, e.amount) for e in penalties] == [(late.booking_id, 2_500)]
    statement = app.fleet.statement(fleet.fleet_id)
    assert statement.unbilled == -2_500
    app.bookings.expire_no_shows(timedelta(0), unstarted=True)
    set_clock(clock, datetime(2026, 4, 1, 9, tzinfo=UTC))
    issued = app.fleet.invoice(fleet.fleet_id, "2026-03")
    assert [(line.kind, line.amount) for line in issued.lines if line.kind is LineKind.PENALTY] == [
        (LineKind.PENALTY, -2_500)
    ]
    assert failing(app) == set()


def test_the_fleet_invariants_see_a_receivable_off_its_invoices_and_a_block_charged_to_a_card(
    app: App, clock: ManualClock
) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    block = app.fleet.book_block(fleet.fleet_id, WEEK, two_hosts(app), POLICY)
    night_session(app, clock, "CP1", 20_000)
    booking = block.bookings[0].booking_id
    stray = invoice_entry("f1:stray", fleet_id=fleet.fleet_id, total=100, at=clock.now())
    card = place_hold("stray-hold", booking, fleet.driver_id, 100, clock.now())
    assert stray is not None
    with app.store.transaction() as tx:
        tx.ledger.add([stray, card])
    assert {"fleet_receivable_is_invoiced_less_paid", "fleet_bookings_on_account"} <= failing(app)


def test_the_fleet_overlap_invariant_names_a_booking_inside_a_block() -> None:
    at = MONDAY_NIGHT

    def booking(booking_id: int, start: datetime, hours: int) -> BookingRecord:
        return BookingRecord(
            booking_id,
            1,
            1,
            1,
            1,
            start,
            start + timedelta(hours=hours),
            BookingStatus.CONFIRMED,
            10_000,
            30,
            300,
            None,
            at,
        )

    s = Snapshot(
        [booking(1, at, 10), booking(2, at + timedelta(hours=3), 1)],
        [],
        [],
        {},
        MarketplaceRules(),
        fleet_occurrences=[Occurrence(1, 1, 1)],
    )
    result = fleet_bookings_overlap_nothing(s)
    assert not result.ok and result.failures == ("fleet booking 1 overlaps booking 2 on connector 1",)


def test_a_payment_sent_again_under_its_idempotency_key_answers_as_the_first_and_pays_once(
    app: App, clock: ManualClock
) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    app.fleet.book_block(fleet.fleet_id, WEEK, two_hosts(app), POLICY)
    night_session(app, clock, "CP1", 20_000)
    app.bookings.expire_no_shows(timedelta(0), unstarted=True)
    set_clock(clock, datetime(2026, 4, 1, 9, tzinfo=UTC))
    total = app.fleet.invoice(fleet.fleet_id, "2026-03").invoice.total
    first = app.fleet.pay(fleet.fleet_id, "2026-03", 100, request_key="pay-1")
    clock.advance(60)
    again = app.fleet.pay(fleet.fleet_id, "2026-03", 100, request_key="pay-1")
    assert again == first and again.outstanding == total - 100
    with app.store.reading() as tx:
        assert len([e for e in tx.ledger.entries() if e.kind is EntryKind.INVOICE_PAID]) == 1
    assert app.fleet.statement(fleet.fleet_id).receivable == total - 100
    with pytest.raises(IdempotencyKeyReused):
        app.fleet.pay(fleet.fleet_id, "2026-03", 200, request_key="pay-1")
    later = app.fleet.pay(fleet.fleet_id, "2026-03", 100, request_key="pay-2")  # another payment
    assert later.outstanding == total - 200
    assert app.fleet.pay(fleet.fleet_id, "2026-03", 100, request_key="pay-1") == first
    assert failing(app) == set()


def test_a_block_sent_again_under_its_idempotency_key_books_nothing_more(app: App) -> None:
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    connectors = two_hosts(app)
    first = app.fleet.book_block(fleet.fleet_id, WEEK, connectors, POLICY, request_key="block-1")
    again = app.fleet.book_block(fleet.fleet_id, WEEK, connectors, POLICY, request_key="block-1")
    assert again == first
    assert len(app.fleet.contracts(fleet.fleet_id)) == 1
    assert len(app.fleet.occurrences(fleet.fleet_id)) == len(first.bookings) == 10
    with pytest.raises(IdempotencyKeyReused):
        app.fleet.book_block(fleet.fleet_id, WEEK, connectors[:1], POLICY, request_key="block-1")


def test_a_long_block_request_reused_with_another_policy_is_refused(app: App) -> None:
    """The whole request is compared, however many connectors it names: a changed policy after
    eight connectors still makes the key's reuse a different request."""
    fleet = app.fleet.create_account("Vans Ltd", "VANS")
    connectors = [ConnectorRef(add_charger(app, f"CP{i}", price=30), 1) for i in range(8)]
    app.fleet.book_block(fleet.fleet_id, WEEK, connectors, POLICY, request_key="block-1")
    other = ContractPolicy(timedelta(hours=1), 99_999)
    with pytest.raises(IdempotencyKeyReused):
        app.fleet.book_block(fleet.fleet_id, WEEK, connectors, other, request_key="block-1")
