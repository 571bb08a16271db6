"""An operator rejecting a driver's payout details while an export payout run is paying that driver,
on PostgreSQL (READ COMMITTED, real threads): once the rejection has returned, no payout to the
driver may still commit. The rejection waits on the driver's row, which the payout holds."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import KycStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.settlement import PayoutRun
from tests.services.test_export_payouts import exported

pytestmark = pytest.mark.postgres


class PausesAfterReadingTheCredit:
    """The store, but one thread's unit of work stops right after it reads the ledger (the driver's
    row locked and their payout details checked by then), until told to go on."""

    def __init__(self, inner: Any, thread: Callable[[], bool]) -> None:
        self.inner, self.paused_thread = inner, thread
        self.read, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            if self.paused_thread():
                repository = tx.ledger
                entries = repository.entries

                def read_then_wait(*args: Any, **kwargs: Any) -> Any:
                    found = entries(*args, **kwargs)
                    self.read.set()
                    assert self.go.wait(30), "never told to go on"
                    return found

                repository.entries = read_then_wait
            yield tx


WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def waiting_on_a_lock(url: str) -> Callable[[], bool]:
    engine = create_engine(url)

    def any_waiting() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text(WAITING_ON_A_LOCK)).scalar_one())

    return any_waiting


def test_a_rejection_during_a_drivers_payout_waits_for_it(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    dee = exported(pg_app, clock)
    payer: list[threading.Thread] = []
    store = PausesAfterReadingTheCredit(pg_app.store, lambda: threading.current_thread() in payer)
    pg_app.settlement.store = store
    runs: list[PayoutRun] = []
    payout = threading.Thread(target=lambda: runs.append(pg_app.settlement.pay_out_export_credits()))
    payer.append(payout)
    payout.start()
    assert store.read.wait(30), "the payout never read the driver's credit"
    rejected = threading.Event()

    def reject() -> None:
        pg_app.settlement.set_driver_kyc(dee, KycStatus.REJECTED)
        rejected.set()

    rejection = threading.Thread(target=reject)
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
    paid = runs[0].paid
    # Paid and rejected are both fine, one after the other; a payout committed after the rejection
    # returned is not.
    assert not (done_while_paying and paid), (done_while_paying, runs)
    assert pg_app.settlement.driver_kyc(dee) is KycStatus.REJECTED
    assert pg_app.settlement.pay_out_export_credits().paid == {}
