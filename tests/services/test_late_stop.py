"""A stop that arrives after the lost-stop sweep closed its session: a charger whose StopTransaction
(1.6) or TransactionEvent Ended (2.0.1) failed on our side sends it again per
TransactionMessageAttempts, with waits that can outlast the lost-stop grace. The late stop is
answered; if the capture was not yet tried the session is billed on its reading in full, else the
reading is kept against the session and the energy above the billed reading reported unbilled,
once. On the in-memory fake, through the OCPP 1.6 and 2.0.1 handlers; the clock is driven here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp import V201, csms_v16, csms_v201
from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services import settlement
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import STOP_LATE
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.records import SessionRecord
from chargeshare.services.settlement import capture_key
from tests.conftest import add_charger
from tests.services.test_money_path import failing

PRICE = 40  # pence per kWh: the 300 Wh billed cost 12p, the 1,000 Wh delivered 40p


def invariant(app: App, name: str) -> str:
    (found,) = [r for r in check_store(app.store, app.config.rules, final=False) if r.name == name]
    assert found.ok, found.failures
    return found.description


def session(app: App, tx_id: int) -> SessionRecord:
    with app.store.reading() as tx:
        s = tx.sessions.get(tx_id)
    assert s is not None
    return s


def captured(app: App) -> int:
    with app.store.reading() as tx:
        return sum(e.amount for e in tx.ledger.entries() if e.kind is EntryKind.CAPTURE)


def late_notices(app: App) -> list[str]:
    with app.store.reading() as tx:
        return [str(n["body"]) for n in tx.notifications.all() if n["kind"] == STOP_LATE]


def booked(app: App, clock: ManualClock) -> None:
    """A driver booked CP1 (40p/kWh) a minute ago."""
    charger = add_charger(app, price=PRICE)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    clock.advance(60)


def closed_as_lost(app: App, clock: ManualClock) -> tuple[dict[str, Handler], int]:
    """A 1.6 session from a 1,000 Wh register, read at 1,300 Wh, its connector reported free and its
    stop failed on our side: the sweep closes it a grace later on its last reading."""
    booked(app, clock)
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": "TAG", "meterStart": 1_000, "timestamp": format_ts(clock.now())}
    )
    tx_id = int(started["transactionId"])
    app.charging.meter("CP1", tx_id, 1_300)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(app.config.rules.lost_stop_grace_s)
    assert app.charging.close_lost_stops() == [tx_id]
    return table, tx_id


def stop16(table: dict[str, Handler], tx_id: int, meter_stop: int, clock: ManualClock) -> dict[str, Any]:
    payload = {"transactionId": tx_id, "meterStop": meter_stop, "timestamp": format_ts(clock.now())}
    return table["StopTransaction"](payload)


def test_a_late_stop_after_the_capture_is_answered_kept_and_reported_unbilled_once(
    app: App, clock: ManualClock
) -> None:
    table, tx_id = closed_as_lost(app, clock)
    assert captured(app) == 12  # 300 Wh at 40p/kWh, captured at once
    clock.advance(400)  # the charger's later attempts: the grace has long passed
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    s = session(app, tx_id)
    assert (s.status, s.meter_stop_wh, s.billed_wh, s.cost) == (SessionStatus.STOPPED, 1_300, 300, 12)
    assert (s.late_stop_wh, s.late_stop_at) == (2_000, clock.now())
    (notice,) = late_notices(app)
    assert "700 Wh" in notice and "(28p)" in notice
    # Sent again (its answer lost), or a lower reading: answered, nothing recorded or told again.
    clock.advance(60)
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    assert stop16(table, tx_id, 1_800, clock) == {"idTagInfo": {"status": "Accepted"}}
    assert len(late_notices(app)) == 1 and session(app, tx_id).late_stop_wh == 2_000
    assert captured(app) == 12
    assert "1 such, 700 Wh, 28p unbilled" in invariant(app, "late_stops_unbilled_once")
    assert failing(app) == set()


def test_a_late_stop_before_the_capture_is_tried_bills_its_reading_in_full(
    app: App, clock: ManualClock
) -> None:
    app.settlement.on_queued = lambda booking_id: None  # a payments worker works the captures later
    table, tx_id = closed_as_lost(app, clock)
    clock.advance(400)
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}  # again
    s = session(app, tx_id)
    assert (s.meter_stop_wh, s.billed_wh, s.cost, s.late_stop_wh) == (2_000, 1_000, 40, None)
    app.settlement.process_due()
    assert captured(app) == 40
    (notice,) = late_notices(app)
    assert "billed in full, 1000 Wh" in notice
    assert failing(app) == set()


def test_a_late_stop_after_a_worker_claimed_the_capture_is_kept_not_billed(
    app: App, clock: ManualClock
) -> None:
    """A claimed capture may have reached the provider under its key: its amount stays."""
    app.settlement.on_queued = lambda booking_id: None
    table, tx_id = closed_as_lost(app, clock)
    booking_id = session(app, tx_id).booking_id
    now = clock.now()
    with app.store.transaction() as tx:
        (item,) = tx.outbox.claim_of(booking_id, now, "worker-1", now + clock_lease(app))
        assert item.idempotency_key == capture_key(booking_id)
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    s = session(app, tx_id)
    assert (s.billed_wh, s.cost, s.late_stop_wh) == (300, 12, 2_000)
    with app.store.reading() as tx:
        pending = tx.outbox.get(capture_key(booking_id))
    assert pending is not None and pending.amount == 12
    assert len(late_notices(app)) == 1


def clock_lease(app: App) -> timedelta:
    return timedelta(seconds=app.config.rules.payment_lease_s)


def transaction_event(
    table: dict[str, Handler], kind: str, seq: int, clock: ManualClock, wh: int, **more: Any
) -> dict[str, Any]:
    return table["TransactionEvent"](
        {
            "eventType": kind,
            "timestamp": format_ts(clock.now()),
            "triggerReason": "Authorized" if kind == "Started" else "StopAuthorized",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "tx-201"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": format_ts(clock.now()), "sampledValue": [{"value": wh}]}],
            **more,
        }
    )


def test_a_late_2_0_1_ended_is_handled_as_a_late_1_6_stop(app: App, clock: ManualClock) -> None:
    booked(app, clock)
    app.charging.boot("CP1", V201)
    table = csms_v201.handlers(app.charging, "CP1", app.reports)
    tag = {"idToken": "TAG", "type": "Central"}
    assert transaction_event(table, "Started", 0, clock, 1_000, idToken=tag) == {
        "idTokenInfo": {"status": "Accepted"}
    }
    transaction_event(table, "Updated", 1, clock, 1_300)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(app.config.rules.lost_stop_grace_s)
    found = app.charging.session_for_charger_tx("CP1", "tx-201")
    assert found is not None and app.charging.close_lost_stops() == [found.session_id]
    clock.advance(400)
    assert transaction_event(table, "Ended", 2, clock, 2_000) == {}
    assert transaction_event(table, "Ended", 2, clock, 2_000) == {}  # sent again
    s = session(app, found.session_id)
    assert (s.billed_wh, s.cost, s.late_stop_wh) == (300, 12, 2_000)
    assert len(late_notices(app)) == 1
    assert captured(app) == 12
    assert failing(app) == set()


def test_a_late_ended_of_a_session_whose_start_was_never_read_bills_nothing(
    app: App, clock: ManualClock
) -> None:
    """Started without a reading and closed as lost on none: its meter start is only a placeholder,
    so a late Ended's absolute register is no measure of the energy the session delivered."""
    app.settlement.on_queued = lambda booking_id: None  # the capture still queued: a rebill could happen
    booked(app, clock)
    app.charging.boot("CP1", V201)
    table = csms_v201.handlers(app.charging, "CP1", app.reports)
    started = {"idToken": {"idToken": "TAG", "type": "Central"}, "meterValue": []}
    assert transaction_event(table, "Started", 0, clock, 0, **started) == {
        "idTokenInfo": {"status": "Accepted"}
    }
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(app.config.rules.lost_stop_grace_s)
    found = app.charging.session_for_charger_tx("CP1", "tx-201")
    assert found is not None and app.charging.close_lost_stops() == [found.session_id]
    clock.advance(400)
    assert transaction_event(table, "Ended", 1, clock, 5_000_000) == {}  # the register since new
    s = session(app, found.session_id)
    assert (s.billed_wh, s.cost, s.unmetered, s.late_stop_wh) == (0, 0, True, None)
    assert late_notices(app) == []
    app.settlement.process_due()
    assert captured(app) == 0
    assert failing(app) == set()


def test_a_second_stop_of_a_session_stopped_normally_changes_nothing(app: App, clock: ManualClock) -> None:
    """Only the sweep's close leaves energy behind: a session its charger stopped was billed on that
    stop's reading. A second, higher stop (a charger bug, a replay) is answered and ignored, whether
    its capture has run or not: never rebilled, nor reported unbilled."""
    app.settlement.on_queued = lambda booking_id: None  # a payments worker works the captures later
    booked(app, clock)
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": "TAG", "meterStart": 1_000, "timestamp": format_ts(clock.now())}
    )
    tx_id = int(started["transactionId"])
    clock.advance(600)
    assert stop16(table, tx_id, 1_300, clock) == {"idTagInfo": {"status": "Accepted"}}
    clock.advance(60)
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    s = session(app, tx_id)
    assert (s.meter_stop_wh, s.billed_wh, s.cost, s.late_stop_wh) == (1_300, 300, 12, None)
    app.settlement.process_due()
    assert captured(app) == 12
    assert stop16(table, tx_id, 2_500, clock) == {"idTagInfo": {"status": "Accepted"}}
    assert session(app, tx_id).late_stop_wh is None
    assert late_notices(app) == []
    assert failing(app) == set()


def test_a_second_stop_after_a_free_report_and_a_normal_stop_changes_nothing(
    app: App, clock: ManualClock
) -> None:
    """2.0.1 firmware reports the connector Available before its Ended: the session was freed, yet
    stopped by its charger, not the sweep. A second, higher stop still bills nothing more."""
    app.settlement.on_queued = lambda booking_id: None
    booked(app, clock)
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": "TAG", "meterStart": 1_000, "timestamp": format_ts(clock.now())}
    )
    tx_id = int(started["transactionId"])
    clock.advance(600)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE, clock.now())
    assert stop16(table, tx_id, 1_300, clock) == {"idTagInfo": {"status": "Accepted"}}
    clock.advance(60)
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    s = session(app, tx_id)
    assert (s.meter_stop_wh, s.billed_wh, s.cost, s.late_stop_wh) == (1_300, 300, 12, None)
    assert not s.closed_lost
    app.settlement.process_due()
    assert captured(app) == 12 and late_notices(app) == []
    assert failing(app) == set()


class Died(Exception):
    """The payments worker's process died at a failpoint."""


def test_a_late_stop_after_reconcile_took_back_a_worked_capture_is_not_billed(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker captured at the provider and died before its ledger write; its lease lapsed and the
    operator's reconcile took the step back, unclaimed and with no attempt counted. The provider has
    the capture under the step's key: a late stop then must not reprice it, or the worker's retry
    would write the new amount to the ledger while the provider keeps the old one."""

    def die_after_capture(name: str) -> None:
        if name == "capture-called":
            raise Died(name)

    with monkeypatch.context() as m:
        m.setattr(settlement, "failpoint", die_after_capture)
        table, tx_id = closed_as_lost(app, clock)  # its capture worked at once, up to the crash
    booking_id = session(app, tx_id).booking_id
    clock.advance(app.config.rules.payment_lease_s + 1)
    process_due = app.settlement.process_due

    def late_stop_first(limit: int = settlement.DUE_BATCH) -> settlement.OutboxRun:
        with app.store.reading() as tx:
            item = tx.outbox.get(capture_key(booking_id))
        if item is not None and item.claimed_by is None and item.status == "pending":
            assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
        return process_due(limit)

    monkeypatch.setattr(app.settlement, "process_due", late_stop_first)
    app.settlement.reconcile()
    s = session(app, tx_id)
    assert (s.billed_wh, s.cost, s.late_stop_wh) == (300, 12, 2_000)
    assert captured(app) == 12
    assert failing(app) == set()


def test_a_late_stop_that_bills_a_session_closed_unmeasured_clears_its_unmetered_flag(
    app: App, clock: ManualClock
) -> None:
    """Closed on its start reading alone (nothing read after it): billed 0 Wh and flagged unmetered.
    Its late stop, before the capture, is the measurement: billed on it, the flag goes."""
    app.settlement.on_queued = lambda booking_id: None
    booked(app, clock)
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": "TAG", "meterStart": 1_000, "timestamp": format_ts(clock.now())}
    )
    tx_id = int(started["transactionId"])
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(app.config.rules.lost_stop_grace_s)
    assert app.charging.close_lost_stops() == [tx_id]
    assert (session(app, tx_id).billed_wh, session(app, tx_id).unmetered) == (0, True)
    clock.advance(400)
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    s = session(app, tx_id)
    assert (s.billed_wh, s.cost, s.unmetered) == (1_000, 40, False)
    with app.store.reading() as tx:
        assert tx.sessions.unmetered() == []
    app.settlement.process_due()
    assert captured(app) == 40
    assert failing(app) == set()
