"""An operator rejecting a driver's payout details (or a host's KYC) while a payout run is paying
them, on PostgreSQL (READ COMMITTED, real threads): once the rejection has returned, no payout to
them may still commit. The rejection waits on their row, which the payout holds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import KycStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.settlement import PayoutRun
from tests.conftest import add_charger
from tests.integration.pausing import PausesAfter
from tests.services.test_export_payouts import exported

pytestmark = pytest.mark.postgres


def pauses_after_reading_the_credit(inner: Any, thread: Callable[[], bool]) -> PausesAfter:
    """The store, paused in the chosen thread right after `ledger.entries`."""
    return PausesAfter(inner, thread, "ledger", "entries")


WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def waiting_on_a_lock(url: str) -> Callable[[], bool]:
    engine = create_engine(url)

    def any_waiting() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text(WAITING_ON_A_LOCK)).scalar_one())

    return any_waiting


def rejected_during_a_payout(
    app: App, postgres_url: str, pay: Callable[[], PayoutRun], reject: Callable[[], object]
) -> tuple[bool, PayoutRun]:
    """Run `pay` in a thread paused once it has read the ledger under its payee's lock, `reject`
    meanwhile; whether the rejection returned while the payout was still to commit, and the run."""
    payer: list[threading.Thread] = []
    store = pauses_after_reading_the_credit(app.store, lambda: threading.current_thread() in payer)
    app.settlement.store = store
    runs: list[PayoutRun] = []
    payout = threading.Thread(target=lambda: runs.append(pay()))
    payer.append(payout)
    payout.start()
    assert store.read.wait(30), "the payout never read the ledger"
    rejected = threading.Event()

    def rejecting() -> None:
        reject()
        rejected.set()

    rejection = threading.Thread(target=rejecting)
    rejection.start()
    blocked = waiting_on_a_lock(postgres_url)
    # Either the rejection is done already (no lock between them) or it waits on the payout's.
    for _ in range(3_000):
        if rejected.wait(0.01) or blocked():
            break
    else:
        pytest.fail("the rejection neither finished nor waited on a lock")
    done_while_paying = rejected.is_set()
    store.go.set()
    payout.join(30)
    rejection.join(30)
    assert not payout.is_alive() and not rejection.is_alive()
    app.settlement.store = store.inner
    return done_while_paying, runs[0]


def test_a_rejection_during_a_drivers_payout_waits_for_it(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    dee = exported(pg_app, clock)
    done_while_paying, run = rejected_during_a_payout(
        pg_app,
        postgres_url,
        pg_app.settlement.pay_out_export_credits,
        lambda: pg_app.settlement.set_driver_kyc(dee, KycStatus.REJECTED),
    )
    # Paid and rejected are both fine, one after the other; a payout committed after the rejection
    # returned is not.
    assert not (done_while_paying and run.paid), (done_while_paying, run)
    assert pg_app.settlement.driver_kyc(dee) is KycStatus.REJECTED
    assert pg_app.settlement.pay_out_export_credits().paid == {}


def test_a_rejection_during_a_hosts_payout_waits_for_it(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    charger = add_charger(pg_app, price=50)
    driver = pg_app.marketplace.add_driver("D", "TAG1").driver_id
    booking = pg_app.bookings.book(BookRequest(driver, charger, 1, 60, 30_000)).booking_id
    clock.advance(60)
    session = pg_app.charging.start("CP1", 1, "TAG1", 0, clock.now()).transaction_id
    pg_app.charging.stop("CP1", session, 20_000, clock.now())
    pg_app.settlement.process_due()
    with pg_app.store.reading() as tx:
        host = tx.bookings.get(booking).host_id
    pg_app.hosting.set_kyc(host, KycStatus.VERIFIED)
    done_while_paying, run = rejected_during_a_payout(
        pg_app,
        postgres_url,
        pg_app.settlement.pay_out_hosts,
        lambda: pg_app.hosting.set_kyc(host, KycStatus.REJECTED),
    )
    assert not (done_while_paying and run.paid), (done_while_paying, run)
    assert pg_app.hosting.host(host).kyc_status == KycStatus.REJECTED
    assert pg_app.settlement.pay_out_hosts().paid == {}
