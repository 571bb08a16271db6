"""A stop that arrives after the lost-stop sweep closed its session, on SQLite and PostgreSQL: kept
once against the session (or billed in full while its capture is untried), with a V2G session's
export after the close credited once with the rebill or kept uncredited, whether it is sent again
or two processes apply it at once. The service's rules are in tests/services/test_late_stop.py
and tests/services/test_late_stop_export.py."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.sql.outbox import SqlPaymentsOutbox
from chargeshare.adapters.sql.sessions import SqlSessions
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import Busy
from chargeshare.domain.ledger import EntryKind
from chargeshare.ocpp import V21, csms_v16, csms_v201
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.ports import ProviderUnavailable
from chargeshare.services.records import OutboxItem
from tests.conftest import T0, add_charger
from tests.integration.pausing import PausesAfter
from tests.integration.test_kyc_payout_race import waiting_on_a_lock
from tests.integration.test_money_races import at_once
from tests.services.test_late_stop import (
    captured,
    closed_as_lost,
    late_notices,
    session,
    stop16,
)
from tests.services.test_late_stop_export import EXPORT_PRICE, PRICE, v2g_closed_as_lost
from tests.services.test_late_stop_export import event as v2g_event
from tests.services.test_late_stop_views import two_late_stops
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


def export_credited(app: App, booking_id: int) -> list[int]:
    with app.store.reading() as tx:
        entries = tx.ledger.entries(booking_id=booking_id)
    return [e.amount for e in entries if e.kind is EntryKind.EXPORT_CREDIT]


@pytest.mark.parametrize("capture_tried", [True, False])
def test_a_late_v2g_stop_sent_again_credits_its_export_once_or_keeps_it(
    sql_app: App, clock: ManualClock, capture_tried: bool
) -> None:
    if not capture_tried:
        sql_app.settlement.on_queued = lambda booking_id: None
    table, tx_id, booking = v2g_closed_as_lost(sql_app, clock)
    clock.advance(400)
    for _ in range(2):
        assert v2g_event(table, "Ended", 2, clock, 2_000, 55_000) == {}
    sql_app.settlement.process_due()
    s = session(sql_app, tx_id)
    with sql_app.store.reading() as tx:
        record = tx.v2g.record(booking)
    assert record is not None
    if capture_tried:
        assert (s.late_stop_wh, s.late_export_wh, s.late_rebilled_at) == (2_000, 55_000, None)
        assert (record.last_wh, record.credit) == (52_000, 50) and export_credited(sql_app, booking) == [50]
    else:
        assert (s.late_stop_wh, s.late_export_wh, s.late_rebilled_at) == (None, 55_000, clock.now())
        assert (record.last_wh, record.credit) == (55_000, 125)
        assert export_credited(sql_app, booking) == [50, 75]
    assert len(late_notices(sql_app)) == 1
    assert failing(sql_app) == set()


@pytest.mark.postgres
@pytest.mark.parametrize("capture_tried", [True, False])
def test_one_late_v2g_stop_in_two_processes_at_once_credits_its_export_once(
    postgres_url: str, capture_tried: bool
) -> None:
    config = Config(database_url=postgres_url, locks_enabled=False, password_hash="fast")
    clock = ManualClock(T0)
    first = build(config, clock=clock)
    second = build(config, clock=clock)
    try:
        for app in (first, second):
            if not capture_tried:
                app.settlement.on_queued = lambda booking_id: None
        table, _tx_id, booking = v2g_closed_as_lost(first, clock)
        clock.advance(400)
        other = csms_v201.handlers(second.charging, "V2G1", second.reports, V21)
        for _ in range(5):
            answers = at_once(
                lambda: v2g_event(table, "Ended", 2, clock, 2_000, 55_000),
                lambda: v2g_event(other, "Ended", 2, clock, 2_000, 55_000),
            )
            assert answers == [{}, {}], answers
        first.settlement.process_due()
        assert export_credited(first, booking) == ([50] if capture_tried else [50, 75])
        assert len(late_notices(first)) == 1
        assert failing(first) == set()
    finally:
        second.close()
        first.close()


@contextlib.contextmanager
def a_late_v2g_stop_held_at_its_rebill_and_another(
    postgres_url: str, seq_no: int, import_wh: int, export_wh: int, first_import_wh: int = 2_000
) -> Iterator[tuple[App, int, int]]:
    """Two processes: the first rebills a V2G session closed as lost on a late stop
    (`first_import_wh`, 55,000 Wh exported) and is held there; a second late stop (`seq_no`, its
    readings) reaches the second process, which must wait on the session's row. Both are then let
    go; yields the first process, the transaction id and the booking once both are answered."""
    config = Config(database_url=postgres_url, locks_enabled=False, password_hash="fast")
    clock = ManualClock(T0)
    first = build(config, clock=clock)
    second = build(config, clock=clock)
    try:
        for app in (first, second):
            app.settlement.on_queued = lambda booking_id: None
        table, tx_id, booking = v2g_closed_as_lost(first, clock)
        clock.advance(400)
        held: list[threading.Thread] = []
        store = PausesAfter(
            first.charging.store, lambda: threading.current_thread() in held, "sessions", "rebill"
        )
        first.charging.store = store
        answers: list[Any] = []
        one = threading.Thread(
            target=lambda: answers.append(v2g_event(table, "Ended", 2, clock, first_import_wh, 55_000))
        )
        held.append(one)
        one.start()
        assert store.read.wait(30), "the first process never rebilled"
        other = csms_v201.handlers(second.charging, "V2G1", second.reports, V21)
        two = threading.Thread(
            target=lambda: answers.append(v2g_event(other, "Ended", seq_no, clock, import_wh, export_wh))
        )
        two.start()
        blocked = waiting_on_a_lock(postgres_url)
        for _ in range(3_000):
            if blocked() or not two.is_alive():
                break
            time.sleep(0.01)
        else:
            pytest.fail("the second process neither finished nor waited on a lock")
        assert two.is_alive(), "the second process went through while the first held its rebill"
        store.go.set()
        one.join(30)
        two.join(30)
        assert answers == [{}, {}]
        first.charging.store = store.inner
        first.settlement.process_due()
        yield first, tx_id, booking
    finally:
        second.close()
        first.close()


@pytest.mark.postgres
def test_a_late_v2g_stop_held_after_its_rebill_while_another_process_applies_it_credits_once(
    postgres_url: str,
) -> None:
    """The first process has rebilled the session and not yet credited the export; the same stop
    reaches a second process, which waits on the session's row, then finds it rebilled: one credit."""
    with a_late_v2g_stop_held_at_its_rebill_and_another(postgres_url, 2, 2_000, 55_000) as (
        first,
        tx_id,
        booking,
    ):
        assert export_credited(first, booking) == [50, 75]
        assert session(first, tx_id).late_stop_wh is None  # the second found nothing left to keep
        assert len(late_notices(first)) == 1
        assert failing(first) == set()


@pytest.mark.postgres
def test_a_higher_late_stop_waiting_on_another_process_rebill_bills_on_it_not_on_stale_rows(
    postgres_url: str,
) -> None:
    """The first process has rebilled the session on one late stop; a second late stop with a
    higher import reading and an export reading between the credited and the first's waits on the
    session's row. Once the first commits, its rebill no longer matches the reading it read: it
    decides again on the session as it is (billed to 2,000 Wh, export credited to 55,000 Wh, the
    capture still untried) and bills it in full on its own reading, rather than keeping its reading
    as unbilled against the reading the first process replaced."""
    with a_late_v2g_stop_held_at_its_rebill_and_another(postgres_url, 3, 2_500, 54_000) as (
        first,
        tx_id,
        booking,
    ):
        s = session(first, tx_id)
        assert (s.meter_stop_wh, s.billed_wh, s.late_stop_wh) == (2_500, 1_500, None)
        with first.store.reading() as tx:
            record = tx.v2g.record(booking)
        assert record is not None and (record.last_wh, record.credit) == (55_000, 125)
        assert export_credited(first, booking) == [50, 75]
        assert len(late_notices(first)) == 2
        assert failing(first) == set()


@pytest.mark.postgres
def test_an_export_reading_racing_the_lost_close_leaves_the_settled_record_standing(
    postgres_url: str,
) -> None:
    """A V2G reading read the session open and the booking's terms; the sweep then closes the
    session and credits the export on the reading before it. The reading, going on after, is of a
    stopped session: it must not put the settled record back to unsettled (its credit forgotten
    while the ledger holds it), so the late stop that follows credits the rest once. (It reads the
    record only once it holds the booking's export, which the close takes too: the record cannot be
    settled between its read and its write.)"""
    config = Config(database_url=postgres_url, locks_enabled=False, password_hash="fast")
    clock = ManualClock(T0)
    first = build(config, clock=clock)
    second = build(config, clock=clock)
    try:
        for app in (first, second):
            app.settlement.on_queued = lambda booking_id: None
        charger = add_charger(first, "V2G1", price=PRICE)
        first.charging.boot("V2G1", V21)
        dee = first.marketplace.add_driver("Dee", "DEE").driver_id
        booking = first.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
        driver = Principal(account_id=0, role=Role.DRIVER, driver_id=dee)
        first.v2g.set_terms(driver, booking, EXPORT_PRICE, 40)
        clock.advance(60)
        table = csms_v201.handlers(first.charging, "V2G1", first.reports, V21)
        tag = {"idToken": "DEE", "type": "Central"}
        v2g_event(table, "Started", 0, clock, 1_000, 50_000, idToken=tag)
        v2g_event(table, "Updated", 1, clock, 1_300, 52_000)
        first.charging.status("V2G1", 1, ConnectorStatus.AVAILABLE)
        clock.advance(first.config.rules.lost_stop_grace_s)
        found = first.charging.session_for_charger_tx("V2G1", "tx-v2g")
        assert found is not None
        held: list[threading.Thread] = []
        store = PausesAfter(second.charging.store, lambda: threading.current_thread() in held, "v2g", "terms")
        second.charging.store = store
        reading = threading.Thread(
            target=lambda: second.charging.meter_export("V2G1", found.session_id, 55_000, None)
        )
        held.append(reading)
        reading.start()
        assert store.read.wait(30), "the reading never read the terms"
        assert first.charging.close_lost_stops() == [found.session_id]
        store.go.set()
        reading.join(30)
        second.charging.store = store.inner
        with first.store.reading() as tx:
            record = tx.v2g.record(booking)
        assert record is not None and (record.last_wh, record.credit) == (52_000, 50)
        clock.advance(400)
        assert v2g_event(table, "Ended", 2, clock, 2_000, 55_000) == {}
        first.settlement.process_due()
        assert export_credited(first, booking) == [50, 75]
        assert failing(first) == set()
    finally:
        second.close()
        first.close()


def test_operators_list_the_late_stops_from_the_database(sql_app: App, clock: ManualClock) -> None:
    rebilled, kept = two_late_stops(sql_app, clock)
    listed = sql_app.queries.admin.late_stops()
    assert [(v.session_id, v.rebilled, v.unbilled_wh, v.uncredited_export_wh) for v in listed] == [
        (rebilled, True, 0, 0),
        (kept, False, 700, 3_000),
    ]
    assert [v.session_id for v in sql_app.queries.admin.late_stops(after=rebilled, limit=1)] == [kept]
    assert failing(sql_app) == set()


@pytest.mark.parametrize("capture_tried", [True, False])
def test_an_export_only_late_stop_sent_again_credits_or_keeps_its_export_once(
    sql_app: App, clock: ManualClock, capture_tried: bool
) -> None:
    """The import register at the billed 1,300 Wh, the export 3,000 Wh above the credited reading."""
    if not capture_tried:
        sql_app.settlement.on_queued = lambda booking_id: None
    table, tx_id, booking = v2g_closed_as_lost(sql_app, clock)
    clock.advance(400)
    for seq in (2, 2, 3):
        assert v2g_event(table, "Ended", seq, clock, 1_300, 55_000) == {}
    sql_app.settlement.process_due()
    s = session(sql_app, tx_id)
    assert (s.billed_wh, s.late_stop_wh, s.late_export_wh) == (300, None, 55_000)
    if capture_tried:
        assert (s.late_stop_at, s.late_rebilled_at) == (clock.now(), None)
        assert export_credited(sql_app, booking) == [50]
    else:
        assert (s.late_stop_at, s.late_rebilled_at) == (None, clock.now())
        assert export_credited(sql_app, booking) == [50, 75]
    assert captured(sql_app) == 12 and len(late_notices(sql_app)) == 1
    assert failing(sql_app) == set()


def test_a_second_kept_late_stop_without_an_export_reading_keeps_the_export_in_the_database(
    sql_app: App, clock: ManualClock
) -> None:
    table, tx_id, _booking = v2g_closed_as_lost(sql_app, clock)
    clock.advance(400)
    assert v2g_event(table, "Ended", 2, clock, 2_000, 55_000) == {}
    assert v2g_event(table, "Ended", 3, clock, 2_500, None) == {}
    s = session(sql_app, tx_id)
    assert (s.late_stop_wh, s.late_export_wh) == (2_500, 55_000)
    (listed,) = sql_app.queries.admin.late_stops()
    assert (listed.unbilled_wh, listed.unbilled_p, listed.uncredited_export_wh) == (1_200, 48, 3_000)
    assert failing(sql_app) == set()


def test_a_late_export_under_a_penny_waits_in_the_database(sql_app: App, clock: ManualClock) -> None:
    sql_app.settlement.on_queued = lambda booking_id: None
    table, tx_id, booking = v2g_closed_as_lost(sql_app, clock)
    clock.advance(400)
    for _ in range(2):  # sent again: the record has not moved, the session's reading has
        assert v2g_event(table, "Ended", 2, clock, 2_000, 52_030) == {}
    assert len(late_notices(sql_app)) == 1
    with sql_app.store.reading() as tx:
        record = tx.v2g.record(booking)
    assert record is not None and (record.last_wh, record.credit) == (52_000, 50)
    assert session(sql_app, tx_id).late_export_wh == 52_030
    assert v2g_event(table, "Ended", 3, clock, 2_000, 52_100) == {}
    assert export_credited(sql_app, booking) == [50, 2]
    sql_app.settlement.process_due()
    assert failing(sql_app) == set()


@pytest.mark.postgres
@pytest.mark.parametrize("capture_tried", [True, False])
def test_one_export_only_late_stop_in_two_processes_at_once_is_taken_once(
    postgres_url: str, capture_tried: bool
) -> None:
    """No import reading moves, so only the export reading's compare-and-set on the session keeps
    the second process from crediting (or keeping and reporting) it again."""
    config = Config(database_url=postgres_url, locks_enabled=False, password_hash="fast")
    clock = ManualClock(T0)
    first = build(config, clock=clock)
    second = build(config, clock=clock)
    try:
        for app in (first, second):
            if not capture_tried:
                app.settlement.on_queued = lambda booking_id: None
        table, _tx_id, booking = v2g_closed_as_lost(first, clock)
        clock.advance(400)
        other = csms_v201.handlers(second.charging, "V2G1", second.reports, V21)
        for _ in range(5):
            answers = at_once(
                lambda: v2g_event(table, "Ended", 2, clock, 1_300, 55_000),
                lambda: v2g_event(other, "Ended", 2, clock, 1_300, 55_000),
            )
            assert answers == [{}, {}], answers
        first.settlement.process_due()
        assert export_credited(first, booking) == ([50] if capture_tried else [50, 75])
        assert len(late_notices(first)) == 1
        assert failing(first) == set()
    finally:
        second.close()
        first.close()


@pytest.mark.postgres
def test_an_export_only_late_stop_held_after_its_rebill_while_another_process_applies_it_credits_once(
    postgres_url: str,
) -> None:
    """No import reading moves, so the session's billed reading cannot tell the second process the
    stop was taken: it reads the export record still on the close's reading, waits on the session's
    row, and then finds its highest late export reading taken. One credit, one notice."""
    with a_late_v2g_stop_held_at_its_rebill_and_another(postgres_url, 2, 1_300, 55_000, 1_300) as (
        first,
        tx_id,
        booking,
    ):
        assert export_credited(first, booking) == [50, 75]
        s = session(first, tx_id)
        assert (s.billed_wh, s.late_stop_wh, s.late_stop_at, s.late_export_wh) == (300, None, None, 55_000)
        assert len(late_notices(first)) == 1
        assert failing(first) == set()


@pytest.mark.postgres
def test_a_late_export_under_a_penny_in_two_processes_at_once_waits_once_then_credits_once(
    postgres_url: str,
) -> None:
    """The sub-penny reading moves only the session's late export reading, never the record: that
    compare-and-set alone keeps the second process from a second notice; the reading worth a
    penny that follows, sent to both at once, credits the whole span from the record once."""
    config = Config(database_url=postgres_url, locks_enabled=False, password_hash="fast")
    clock = ManualClock(T0)
    first = build(config, clock=clock)
    second = build(config, clock=clock)
    try:
        for app in (first, second):
            app.settlement.on_queued = lambda booking_id: None
        table, tx_id, booking = v2g_closed_as_lost(first, clock)
        clock.advance(400)
        other = csms_v201.handlers(second.charging, "V2G1", second.reports, V21)
        for _ in range(3):
            answers = at_once(
                lambda: v2g_event(table, "Ended", 2, clock, 2_000, 52_030),
                lambda: v2g_event(other, "Ended", 2, clock, 2_000, 52_030),
            )
            assert answers == [{}, {}], answers
        assert export_credited(first, booking) == [50]
        assert session(first, tx_id).late_export_wh == 52_030
        assert len(late_notices(first)) == 1
        for _ in range(3):
            answers = at_once(
                lambda: v2g_event(table, "Ended", 3, clock, 2_000, 52_100),
                lambda: v2g_event(other, "Ended", 3, clock, 2_000, 52_100),
            )
            assert answers == [{}, {}], answers
        assert export_credited(first, booking) == [50, 2]
        assert len(late_notices(first)) == 2
        first.settlement.process_due()
        assert failing(first) == set()
    finally:
        second.close()
        first.close()


@pytest.mark.postgres
def test_a_reconcile_that_read_the_capture_untried_never_makes_it_look_untried_again(
    pg_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's reconcile reads the capture pending and untried; a worker in another process
    then tries it (the provider captures, its answer is lost). The reconcile's write must not put
    back the untried state it read, or a late stop would reprice the capture, and the retry under
    the same key would record in the ledger an amount the provider never captured."""
    pg = pg_app
    pg.settlement.on_queued = lambda booking_id: None  # a payments worker captures later
    table, tx_id = closed_as_lost(pg, clock)
    clock.advance(400)
    real_all, real_capture, real_due = SqlPaymentsOutbox.all, pg.gateway.capture, pg.settlement.process_due
    reconciling = threading.current_thread()

    def captured_unheard(*, reference: str, amount: int, idempotency_key: str) -> None:
        real_capture(reference=reference, amount=amount, idempotency_key=idempotency_key)
        raise ProviderUnavailable("the provider's answer was lost")

    def worker_tries() -> None:  # another process's worker: it commits before the reconcile writes
        monkeypatch.setattr(pg.gateway, "capture", captured_unheard)
        try:
            assert real_due().retried == 1
        finally:
            monkeypatch.setattr(pg.gateway, "capture", real_capture)

    def read_then_worked(self: SqlPaymentsOutbox, status: str | None = None) -> Any:
        items = real_all(self, status)
        if status == "pending" and threading.current_thread() is reconciling:
            monkeypatch.setattr(SqlPaymentsOutbox, "all", real_all)
            worker = threading.Thread(target=worker_tries)
            worker.start()
            worker.join(30)
            assert not worker.is_alive()
        return items

    def late_stop_then_due(limit: int = 100) -> Any:
        # The charger's late stop comes as the reconcile is about to work the backlog.
        monkeypatch.setattr(pg.settlement, "process_due", real_due)
        assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
        return real_due(limit)

    monkeypatch.setattr(SqlPaymentsOutbox, "all", read_then_worked)
    monkeypatch.setattr(pg.settlement, "process_due", late_stop_then_due)
    pg.settlement.reconcile()
    clock.advance(2 * pg.config.rules.payment_backoff_cap_s)  # the worker's retry falls due
    pg.settlement.process_due()
    assert captured(pg) == 12  # what the provider captured
    assert session(pg, tx_id).billed_wh == 300  # the late reading kept as unbilled, not rebilled
    assert failing(pg) == set()
