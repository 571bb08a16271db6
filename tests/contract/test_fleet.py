"""The fleet repository's contract on every store: accounts, contracts, occurrences, invoices."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import BookingConflict, InvalidRequest, NotFound
from chargeshare.domain.fleet import WEEKDAYS, BlockRule, ContractPolicy, InvoiceLine, LineKind
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting
from tests.conftest import T0
from tests.contract.test_repositories import a_booking, a_charger

RULE = BlockRule(WEEKDAYS, time(20), time(6), date(2026, 3, 2), date(2026, 3, 31))
POLICY = ContractPolicy(timedelta(hours=48), 2500)


def a_fleet(app: App) -> tuple[int, int]:
    with app.store.transaction() as tx:
        driver = tx.accounts.add_driver("Vans Ltd", "VANS-1")
        return tx.fleet.add_account("Vans Ltd", driver, T0), driver


def test_accounts_are_found_by_id_and_by_their_driver_and_a_driver_serves_one_fleet(app: App) -> None:
    fleet_id, driver = a_fleet(app)
    with app.store.reading() as tx:
        account = tx.fleet.account(fleet_id)
        assert (account.name, account.driver_id) == ("Vans Ltd", driver)
        assert tx.fleet.account_of_driver(driver) == account
        assert tx.fleet.accounts() == [account]
        with pytest.raises(NotFound):
            tx.fleet.account(fleet_id + 1)
    with pytest.raises(InvalidRequest), app.store.transaction() as tx:
        tx.fleet.add_account("Copy", driver, T0)
    with app.store.reading() as tx:
        assert len(tx.fleet.accounts()) == 1


def test_a_contract_keeps_its_rule_policy_and_connectors(app: App) -> None:
    fleet_id, _ = a_fleet(app)
    with app.store.transaction() as tx:
        _, connectors = a_charger(tx, "CP1", 1, 2)
        contract_id = tx.fleet.add_contract(fleet_id, RULE, POLICY, [connectors[1], connectors[0]], T0)
    with app.store.reading() as tx:
        contract = tx.fleet.contract(contract_id)
        assert (contract.rule, contract.policy, contract.fleet_id) == (RULE, POLICY, fleet_id)
        assert contract.connector_ids == tuple(sorted(connectors))
        assert tx.fleet.contracts_of(fleet_id) == [contract]
        assert tx.fleet.contracts_of(fleet_id + 1) == []
        with pytest.raises(NotFound):
            tx.fleet.contract(contract_id + 1)


def test_occurrences_are_bookings_under_the_same_no_overlap_guarantee(app: App) -> None:
    fleet_id, fleet_driver = a_fleet(app)
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx)
        driver = tx.accounts.add_driver("Ann", "ANN")
        contract_id = tx.fleet.add_contract(fleet_id, RULE, POLICY, [connector], T0)
        block = a_booking(tx, connector, fleet_driver, start_h=10, hours=10)
        tx.fleet.add_occurrence(block, contract_id, fleet_id)
        other = a_booking(tx, connector, driver, start_h=0, hours=1)
    with pytest.raises(BookingConflict), app.store.transaction() as tx:
        a_booking(tx, connector, driver, start_h=19, hours=2)
    with app.store.reading() as tx:
        assert tx.fleet.occurrence(block) is not None
        assert tx.fleet.occurrence(other) is None
        assert [o.booking_id for o in tx.fleet.occurrences(fleet_id=fleet_id)] == [block]
        assert [o.booking_id for o in tx.fleet.occurrences(contract_id=contract_id)] == [block]
        assert tx.fleet.occurrences(contract_id=contract_id + 1) == []
        assert len(tx.bookings.all()) == 2


def test_an_invoice_is_issued_once_per_month_and_bills_each_entry_once(app: App) -> None:
    fleet_id, fleet_driver = a_fleet(app)
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx)
        booking = a_booking(tx, connector, fleet_driver)
        tx.bookings.update(booking, BookingStatus.CONFIRMED)
        postings = (Posting(f"fleet:{fleet_id}:unbilled", 700), Posting("platform:clearing", -700))
        tx.ledger.add([JournalEntry("b1:capture", EntryKind.ON_ACCOUNT, postings, T0, booking)])
    line = InvoiceLine("b1:capture", booking, LineKind.SESSION, T0, 700, 2500)
    with app.store.transaction() as tx:
        invoice_id = tx.fleet.add_invoice(fleet_id, "2026-03", [line], 700, T0)
    assert invoice_id is not None
    with app.store.transaction() as tx:
        assert tx.fleet.add_invoice(fleet_id, "2026-03", [], 0, T0) is None
        assert tx.fleet.add_invoice(fleet_id, "2026-04", [line], 700, T0) is None
        assert tx.fleet.add_invoice(fleet_id, "2026-05", [], 0, T0) is not None
    with app.store.reading() as tx:
        issued = tx.fleet.invoice(fleet_id, "2026-03")
        assert issued is not None
        assert (issued.invoice_id, issued.total, issued.paid, issued.outstanding) == (invoice_id, 700, 0, 700)
        assert tx.fleet.invoice(fleet_id, "2026-04") is None
        assert [i.month for i in tx.fleet.invoices(fleet_id)] == ["2026-03", "2026-05"]
        assert tx.fleet.lines_of(invoice_id) == [line]
        assert tx.fleet.billed_entries(fleet_id) == {"b1:capture"}
    with app.store.transaction() as tx:
        assert tx.fleet.record_payment(invoice_id, 500, T0, expected=0)
        assert not tx.fleet.record_payment(invoice_id, 700, T0, expected=0)
    with app.store.reading() as tx:
        paid = tx.fleet.invoice(fleet_id, "2026-03")
        assert paid is not None and (paid.paid, paid.paid_at, paid.outstanding) == (500, T0, 200)


def test_a_unit_of_work_that_fails_leaves_no_fleet_rows(app: App) -> None:
    fleet_id, _ = a_fleet(app)
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        _, (connector,) = a_charger(tx)
        tx.fleet.add_contract(fleet_id, RULE, POLICY, [connector], T0)
        raise RuntimeError("undo")
    with app.store.reading() as tx:
        assert tx.fleet.contracts_of(fleet_id) == []
