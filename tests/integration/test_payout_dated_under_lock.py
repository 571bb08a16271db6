"""A payout is dated when it holds its payee's row, on PostgreSQL (READ COMMITTED, real threads):
one that waited on another transaction holding the row (a home's export purchase, a KYC change)
pays the balance it read after that commit, so its entry is dated after it too, keeping the
ledger's time order the order of what each saw."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.ledger import EntryKind
from chargeshare.services.clock import ManualClock
from chargeshare.services.settlement import PayoutRun
from tests.integration.test_kyc_payout_race import waiting_on_a_lock
from tests.services.test_v2g_home_buyer import Site

pytestmark = pytest.mark.postgres


def test_a_payout_that_waited_for_its_hosts_row_is_dated_when_it_got_it(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    site = Site(pg_app, clock)
    pg_app.hosting.set_kyc(site.host_id, KycStatus.VERIFIED)
    site.session(20_000)
    pg_app.settlement.process_due()
    holder = create_engine(postgres_url)
    runs: list[PayoutRun] = []
    payout = threading.Thread(target=lambda: runs.append(pg_app.settlement.pay_out_hosts()))
    with holder.connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM hosts WHERE id = :id FOR UPDATE"), {"id": site.host_id})
        payout.start()
        blocked = waiting_on_a_lock(postgres_url)
        for _ in range(3_000):
            if blocked():
                break
            payout.join(0.01)
        else:
            pytest.fail("the payout never waited on the host's row")
        clock.advance(5)  # the holder commits 5 s later
        held_until = clock.now()
    payout.join(30)
    holder.dispose()
    assert not payout.is_alive() and runs[0].paid == {site.host_id: 680}
    with pg_app.store.reading() as tx:
        (paid,) = [e for e in tx.ledger.entries() if e.kind is EntryKind.PAYOUT]
    assert paid.created_at == held_until
