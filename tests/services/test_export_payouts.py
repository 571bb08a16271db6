"""Drivers' V2G export credits paid out, as hosts' payables are: only to a driver whose payout
details are verified (KYC), the balance under a lock on the driver's row, once; and the invariant
that no driver is paid more than they were credited."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain import ledger
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.errors import LedgerError
from chargeshare.domain.ledger import PLATFORM_BANK, EntryKind, driver_export_credit
from chargeshare.ocpp import V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.settlement import PayoutRun
from tests.conftest import T0, add_charger
from tests.services.test_v2g_service import driver, failing


def exported(
    app: App, clock: ManualClock, cp_id: str = "V2G1", tag: str = "DEE", *, verified: bool = True
) -> int:
    """A V2G session that exported 3,333 Wh at 25p per kWh: its driver is credited 83p (and their
    payout details verified, unless `verified` is False)."""
    charger = add_charger(app, cp_id, price=40)
    app.charging.boot(cp_id, V21)
    dee = app.marketplace.add_driver(tag, tag).driver_id
    if verified:
        app.settlement.set_driver_kyc(dee, KycStatus.VERIFIED)
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    clock.advance(60)
    session = app.charging.start(cp_id, 1, tag, 1_000, clock.now()).transaction_id
    app.charging.meter_export(cp_id, session, 50_000, 80)
    app.charging.meter_export(cp_id, session, 53_333, 62)
    app.charging.stop(cp_id, session, 1_500, clock.now())
    return dee


def test_an_export_payout_moves_the_credit_to_the_bank_and_only_a_positive_one() -> None:
    entry = ledger.export_payout("export-payout:7:1", 7, 83, T0)
    assert {p.account: p.amount for p in entry.postings} == {driver_export_credit(7): 83, PLATFORM_BANK: -83}
    assert entry.booking_id is None and entry.kind is EntryKind.EXPORT_PAYOUT
    with pytest.raises(LedgerError):
        ledger.export_payout("export-payout:7:1", 7, 0, T0)
    assert ledger.export_credit_driver(driver_export_credit(7)) == 7
    assert ledger.export_credit_driver("driver:7:card") is None


def test_a_drivers_export_credit_is_paid_out_once(app: App, clock: ManualClock) -> None:
    dee = exported(app, clock)
    assert app.settlement.pay_out_export_credits().paid == {dee: 83}
    assert app.settlement.pay_out_export_credits() == PayoutRun()  # nothing left to pay
    with app.store.reading() as tx:
        balances = ledger.posted_balances(tx.ledger.entries())
    assert balances[driver_export_credit(dee)] == 0
    assert failing(app) == []


@pytest.mark.parametrize("status", [None, KycStatus.PENDING, KycStatus.REJECTED])
def test_a_driver_whose_payout_details_are_not_verified_is_not_paid(
    app: App, clock: ManualClock, status: KycStatus | None
) -> None:
    dee = exported(app, clock, verified=False)
    if status is not None:
        app.settlement.set_driver_kyc(dee, status)
    with app.store.reading() as tx:
        before = tx.ledger.entries()
    run = app.settlement.pay_out_export_credits()
    assert run.paid == {}
    assert run.skipped == {dee: (83, "payout details not verified (KYC): the credit stays owed")}
    with app.store.reading() as tx:
        assert tx.ledger.entries() == before  # the credit stays owed, nothing moved
    assert failing(app) == []
    app.settlement.set_driver_kyc(dee, KycStatus.VERIFIED)
    assert app.settlement.pay_out_export_credits() == PayoutRun(paid={dee: 83})
    app.settlement.set_driver_kyc(dee, KycStatus.REJECTED)  # verified once is not verified for ever
    assert app.settlement.pay_out_export_credits() == PayoutRun()
    assert failing(app) == []


def test_a_payout_beyond_the_credit_or_another_movement_of_it_is_caught(app: App, clock: ManualClock) -> None:
    dee = exported(app, clock)
    with app.store.transaction() as tx:  # a payout run that pays more than is owed
        tx.ledger.add([ledger.export_payout(f"export-payout:{dee}:1", dee, 84, clock.now())])
    assert failing(app) == ["export_payouts_within_credits"]
    with app.store.transaction() as tx:  # and one that puts the difference back as a host payout
        tx.ledger.add(
            [
                ledger.JournalEntry(
                    "odd",
                    EntryKind.PAYOUT,
                    (ledger.Posting(PLATFORM_BANK, 1), ledger.Posting(driver_export_credit(dee), -1)),
                    clock.now(),
                    None,
                )
            ]
        )
    assert failing(app) == ["export_payouts_within_credits"]


def test_a_driver_whose_kyc_is_revoked_during_a_run_is_not_paid(app: App, clock: ManualClock) -> None:
    """The run reads who is verified once, then pays each driver in turn: an operator rejecting a
    driver's payout details meanwhile must stop that driver's payout, not be overtaken by it."""
    first = exported(app, clock, "V2G1", "DEE")
    second = exported(app, clock, "V2G2", "DUE")
    settlement = app.settlement
    pay_one = settlement._pay_out_export

    def revoking_the_second_first(driver_id: int) -> int | None:
        if driver_id == first:
            settlement.set_driver_kyc(second, KycStatus.REJECTED)
        return pay_one(driver_id)

    settlement._pay_out_export = revoking_the_second_first  # type: ignore[method-assign]
    run = settlement.pay_out_export_credits()
    assert run.paid == {first: 83}
    assert run.skipped == {second: (83, "payout details not verified (KYC): the credit stays owed")}
    with app.store.reading() as tx:
        assert ledger.posted_balances(tx.ledger.entries())[driver_export_credit(second)] == -83
    assert failing(app) == []
