"""A stop that arrives after the lost-stop sweep closed its session, on SQLite and PostgreSQL: kept
once against the session (or billed in full while its capture is untried), whether it is sent again
or two processes apply it at once. The service's rules are in tests/services/test_late_stop.py."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.sql.sessions import SqlSessions
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.errors import Busy
from chargeshare.ocpp import csms_v16
from chargeshare.services.clock import ManualClock
from chargeshare.services.records import OutboxItem
from tests.conftest import T0
from tests.integration.test_money_races import at_once
from tests.services.test_late_stop import (
    captured,
    closed_as_lost,
    late_notices,
    session,
    stop16,
)
from tests.services.test_money_path import failing


@pytest.mark.parametrize("capture_tried", [True, False])
def test_a_late_stop_sent_again_is_kept_or_billed_once(
    sql_app: App, clock: ManualClock, capture_tried: bool
) -> None:
    if not capture_tried:
        sql_app.settlement.on_queued = lambda booking_id: None  # a payments worker captures later
    table, tx_id = closed_as_lost(sql_app, clock)
    clock.advance(400)
    for _ in range(2):
        assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    sql_app.settlement.process_due()
    s = session(sql_app, tx_id)
    if capture_tried:
        assert (s.billed_wh, s.cost, s.late_stop_wh, s.late_stop_at) == (300, 12, 2_000, clock.now())
        assert captured(sql_app) == 12 and len(late_notices(sql_app)) == 1
    else:
        assert (s.billed_wh, s.cost, s.late_stop_wh) == (1_000, 40, None)
        assert captured(sql_app) == 40 and len(late_notices(sql_app)) == 1
    assert failing(sql_app) == set()


@pytest.mark.postgres
@pytest.mark.parametrize("capture_tried", [True, False])
def test_one_late_stop_in_two_processes_at_once_is_kept_or_billed_once(
    postgres_url: str, capture_tried: bool
) -> None:
    """The charger's retry reaches a second process while the first still applies it (its answer
    lost): both answer Accepted, the database lets one record (or rebill) it."""
    config = Config(database_url=postgres_url, locks_enabled=False, password_hash="fast")
    clock = ManualClock(T0)
    first = build(config, clock=clock)
    second = build(config, clock=clock)
    try:
        for app in (first, second):
            if not capture_tried:
                app.settlement.on_queued = lambda booking_id: None
        table, tx_id = closed_as_lost(first, clock)
        clock.advance(400)
        other = csms_v16.handlers(second.charging, "CP1", second.reports)
        for _ in range(5):
            answers = at_once(
                lambda: stop16(table, tx_id, 2_000, clock), lambda: stop16(other, tx_id, 2_000, clock)
            )
            assert answers == [{"idTagInfo": {"status": "Accepted"}}] * 2, answers
        first.settlement.process_due()
        s = session(first, tx_id)
        if capture_tried:
            assert (s.billed_wh, s.late_stop_wh) == (300, 2_000)
            assert captured(first) == 12 and len(late_notices(first)) == 1
        else:
            assert (s.billed_wh, s.late_stop_wh) == (1_000, None)
            assert captured(first) == 40 and len(late_notices(first)) == 1
        assert failing(first) == set()
    finally:
        second.close()
        first.close()


@pytest.mark.postgres
def test_a_worker_claiming_the_capture_while_a_late_stop_rebills_it_rolls_the_rebill_back(
    pg_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late stop read the capture unclaimed and rebilled the session; a worker claims the
    capture before the reprice. The reprice's compare-and-set finds it claimed: the stop is
    answered busy and nothing of it stays, so the worker captures the amount it claimed, which the
    ledger records. The charger's next sending keeps the reading as unbilled."""
    pg = pg_app
    pg.settlement.on_queued = lambda booking_id: None  # a payments worker captures later
    table, tx_id = closed_as_lost(pg, clock)
    booking_id = session(pg, tx_id).booking_id
    lease = clock.now() + timedelta(seconds=pg.config.rules.payment_lease_s)
    real = SqlSessions.rebill
    claimed: list[OutboxItem] = []

    def worker_claims() -> None:
        with pg.store.transaction() as tx:
            claimed.extend(tx.outbox.claim_of(booking_id, clock.now(), "worker-1", lease))

    def rebill_then_claim(self: SqlSessions, *args: Any, **kwargs: Any) -> bool:
        rebilled = real(self, *args, **kwargs)
        worker = threading.Thread(target=worker_claims)  # another process's worker: it commits
        worker.start()
        worker.join(30)
        return rebilled

    monkeypatch.setattr(SqlSessions, "rebill", rebill_then_claim)
    clock.advance(400)
    with pytest.raises(Busy):
        stop16(table, tx_id, 2_000, clock)
    assert [i.amount for i in claimed] == [12]
    s = session(pg, tx_id)
    assert (s.meter_stop_wh, s.billed_wh, s.cost, s.late_stop_wh) == (1_300, 300, 12, None)
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    assert session(pg, tx_id).late_stop_wh == 2_000
    clock.advance(pg.config.rules.payment_lease_s + 1)  # worker-1 died: another takes its claim over
    pg.settlement.process_due()
    assert captured(pg) == 12
    assert failing(pg) == set()
