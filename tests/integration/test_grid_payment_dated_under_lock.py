"""The grid buyer's payment of a month is dated when it holds the settling lock, on PostgreSQL
(READ COMMITTED, real threads): one that waited for a stop still writing its export credit reads
the statement after that commit, so its entry is dated after it too, as a payout is once it holds
its payee's row (test_payout_dated_under_lock.py)."""

from __future__ import annotations

import traceback

import pytest
from sqlalchemy import create_engine, text

from chargeshare.adapters.sql.v2g import SETTLING_LOCK_KEY
from chargeshare.bootstrap import App
from chargeshare.services.clock import ManualClock
from chargeshare.services.grid_settlement import RecordedPayment
from tests.integration.test_grid_allocation_race import WAIT_S, waiting_on_a_lock_or_done
from tests.integration.test_grid_and_fleet_races import in_thread
from tests.services.test_export_payouts import exported
from tests.services.test_grid_settlement import settlement_entries, to_april

pytestmark = pytest.mark.postgres


def test_a_payment_that_waited_for_a_credit_being_written_is_dated_when_it_got_its_turn(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    exported(pg_app, clock, "V2G1", "DEE")
    to_april(clock)
    holder = create_engine(postgres_url)
    paid: list[RecordedPayment] = []
    failures: list[BaseException] = []
    with holder.connect() as conn, conn.begin():
        # A stop settling its export takes this lock shared, as here, until it commits.
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": SETTLING_LOCK_KEY})
        payment = in_thread(
            lambda: paid.append(pg_app.grid_settlement.record_payment("2026-03", 83)), failures
        )
        waiting_on_a_lock_or_done(pg_app, payment)
        assert payment.is_alive(), [traceback.format_exception(f) for f in failures]
        clock.advance(5)  # the credit commits 5 s later
        held_until = clock.now()
    payment.join(WAIT_S)
    holder.dispose()
    assert failures == [] and not payment.is_alive()
    assert [p.settlement.recorded_at for p in paid] == [held_until]
    assert [e.created_at for e in settlement_entries(pg_app)] == [held_until]
