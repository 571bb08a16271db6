"""A stop that arrives after the lost-stop sweep closed its session, on SQLite and PostgreSQL: kept
once against the session (or billed in full while its capture is untried), whether it is sent again
or two processes apply it at once. The service's rules are in tests/services/test_late_stop.py."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App, Config, build
from chargeshare.ocpp import csms_v16
from chargeshare.services.clock import ManualClock
from tests.conftest import T0
from tests.integration.test_money_races import at_once
from tests.services.test_late_stop import (
    captured,
    closed_as_lost,
    failing,
    late_notices,
    session,
    stop16,
)


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
