"""A late stop of a V2G session (OCPP 2.1): the export register's reading it carries, above the one
the lost-stop close credited. Credited once, as the import is billed, while the capture is still
untried; otherwise kept against the session and reported uncredited with the unbilled import. On
the in-memory fake through the 2.1 handlers; tests/integration/test_late_stop_sql.py runs it on
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.ledger import EntryKind, driver_export_credit
from chargeshare.ocpp import V21, csms_v201
from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.grid_settlement import read_statement
from tests.conftest import add_charger
from tests.services.test_late_stop import captured, invariant, late_notices, session
from tests.services.test_money_path import failing

PRICE = 40  # pence per kWh imported
EXPORT_PRICE = 25  # pence per kWh exported: the 2,000 Wh credited at the close are 50p
EXPORT = "Energy.Active.Export.Register"


def event(
    table: dict[str, Handler],
    kind: str,
    seq: int,
    clock: ManualClock,
    wh: int,
    export_wh: int | None,
    **more: Any,
) -> dict[str, Any]:
    """A TransactionEvent with its import reading and (unless None) its export reading."""
    values: list[dict[str, Any]] = [{"value": wh}]
    if export_wh is not None:
        values.append({"value": export_wh, "measurand": EXPORT})
    return table["TransactionEvent"](
        {
            "eventType": kind,
            "timestamp": format_ts(clock.now()),
            "triggerReason": "Authorized" if kind == "Started" else "StopAuthorized",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "tx-v2g"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": format_ts(clock.now()), "sampledValue": values}],
            **more,
        }
    )


def v2g_closed_as_lost(app: App, clock: ManualClock) -> tuple[dict[str, Handler], int, int]:
    """A 2.1 session on a booking with export terms (25p/kWh): import 1,000 -> 1,300 Wh, export
    50,000 -> 52,000 Wh read, its connector reported free and its Ended failed on our side: the
    sweep closes it on those readings, billing 300 Wh (12p) and crediting 2,000 Wh (50p)."""
    charger = add_charger(app, "V2G1", price=PRICE)
    app.charging.boot("V2G1", V21)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(Principal(account_id=0, role=Role.DRIVER, driver_id=dee), booking, EXPORT_PRICE, 40)
    clock.advance(60)
    table = csms_v201.handlers(app.charging, "V2G1", app.reports, V21)
    tag = {"idToken": "DEE", "type": "Central"}
    assert event(table, "Started", 0, clock, 1_000, 50_000, idToken=tag) == {
        "idTokenInfo": {"status": "Accepted"}
    }
    event(table, "Updated", 1, clock, 1_300, 52_000)
    app.charging.status("V2G1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(app.config.rules.lost_stop_grace_s)
    found = app.charging.session_for_charger_tx("V2G1", "tx-v2g")
    assert found is not None and app.charging.close_lost_stops() == [found.session_id]
    assert export_credits(app, booking) == [50]
    return table, found.session_id, booking


def export_credits(app: App, booking_id: int) -> list[int]:
    with app.store.reading() as tx:
        entries = tx.ledger.entries(booking_id=booking_id)
    return [e.amount for e in entries if e.kind is EntryKind.EXPORT_CREDIT]


def credit_balance(app: App, driver_id: int) -> int:
    with app.store.reading() as tx:
        return -sum(
            p.amount
            for e in tx.ledger.entries()
            for p in e.postings
            if p.account == driver_export_credit(driver_id)
        )


def test_a_late_stop_before_the_capture_credits_the_export_after_the_close_once(
    app: App, clock: ManualClock
) -> None:
    app.settlement.on_queued = lambda booking_id: None  # a payments worker captures later
    table, tx_id, booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    # 2,000 Wh imported and 3,000 Wh more exported after the last readings.
    for seq in (2, 2, 3):  # sent again, and a repeat under a later number
        assert event(table, "Ended", seq, clock, 2_000, 55_000) == {}
    view = app.v2g.export(Principal(account_id=0, role=Role.ADMIN), booking)
    assert (view.record.last_wh, view.record.exported_wh, view.record.credit) == (55_000, 5_000, 125)
    assert export_credits(app, booking) == [50, 75]  # 5,000 Wh x 25p, less the 50p credited
    s = session(app, tx_id)
    assert (s.billed_wh, s.cost, s.late_stop_wh) == (1_000, 40, None)  # billed in full, none kept
    assert (s.late_rebilled_at, s.late_export_wh) == (clock.now(), 55_000)  # credited with it
    with app.store.reading() as tx:
        driver_id = tx.bookings.get(booking).driver_id
    assert credit_balance(app, driver_id) == 125
    (notice,) = late_notices(app)
    assert "billed in full, 1000 Wh" in notice and "3000 Wh exported" in notice and "75p" in notice
    app.settlement.process_due()
    assert captured(app) == 40
    assert failing(app) == set()


def test_a_late_stop_after_the_capture_keeps_the_export_and_reports_it_uncredited(
    app: App, clock: ManualClock
) -> None:
    table, tx_id, booking = v2g_closed_as_lost(app, clock)
    assert captured(app) == 12
    clock.advance(400)
    assert event(table, "Ended", 2, clock, 2_000, 55_000) == {}
    assert event(table, "Ended", 2, clock, 2_000, 55_000) == {}  # sent again
    s = session(app, tx_id)
    assert (s.billed_wh, s.late_stop_wh, s.late_export_wh) == (300, 2_000, 55_000)
    assert export_credits(app, booking) == [50]
    view = app.v2g.export(Principal(account_id=0, role=Role.ADMIN), booking)
    assert (view.record.last_wh, view.record.credit) == (52_000, 50)
    (notice,) = late_notices(app)
    assert "700 Wh" in notice and "(28p)" in notice
    assert "3000 Wh exported" in notice and "(75p)" in notice and "not credited" in notice
    description = invariant(app, "late_stops_unbilled_once")
    assert "1 such, 700 Wh, 28p unbilled; 3000 Wh, 75p export uncredited" in description
    assert failing(app) == set()


def test_a_late_stop_with_no_export_since_the_close_credits_nothing_more(
    app: App, clock: ManualClock
) -> None:
    app.settlement.on_queued = lambda booking_id: None
    table, tx_id, booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    assert event(table, "Ended", 2, clock, 2_000, 52_000) == {}
    assert export_credits(app, booking) == [50]
    assert session(app, tx_id).billed_wh == 1_000
    assert "exported" not in late_notices(app)[0]
    app.settlement.process_due()
    assert failing(app) == set()


def test_the_grid_statement_lists_the_late_credit_with_its_own_export(app: App, clock: ManualClock) -> None:
    app.settlement.on_queued = lambda booking_id: None
    table, _tx_id, booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    event(table, "Ended", 2, clock, 2_000, 55_000)
    month = f"{clock.now():%Y-%m}"
    with app.store.reading() as tx:
        lines = read_statement(tx, month, clock.now()).lines
    assert [(x.booking_id, x.exported_wh, x.amount) for x in lines] == [
        (booking, 2_000, 50),
        (booking, 3_000, 75),
    ]


def statement_lines(app: App, clock: ManualClock) -> list[tuple[str, int, int]]:
    with app.store.reading() as tx:
        lines = read_statement(tx, f"{clock.now():%Y-%m}", clock.now()).lines
    return [(x.entry_id, x.exported_wh, x.amount) for x in lines]


def test_an_export_only_late_stop_before_the_capture_credits_its_export_once(
    app: App, clock: ManualClock
) -> None:
    """The car only exported after the last readings: its import register still at the billed
    1,300 Wh, its export register 3,000 Wh higher. The export is credited as a rebill credits it;
    the bill stands."""
    app.settlement.on_queued = lambda booking_id: None
    table, tx_id, booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    for seq in (2, 2, 3):  # sent again, and a repeat under a later number
        assert event(table, "Ended", seq, clock, 1_300, 55_000) == {}
    assert export_credits(app, booking) == [50, 75]
    s = session(app, tx_id)
    assert (s.billed_wh, s.cost, s.late_stop_wh, s.late_stop_at) == (300, 12, None, None)
    assert (s.late_rebilled_at, s.late_export_wh) == (clock.now(), 55_000)
    (notice,) = late_notices(app)
    assert "its bill of 300 Wh stands" in notice and "3000 Wh exported" in notice and "(75p)" in notice
    app.settlement.process_due()
    assert captured(app) == 12
    assert failing(app) == set()


def test_an_export_only_late_stop_after_the_capture_is_kept_and_reported_uncredited(
    app: App, clock: ManualClock
) -> None:
    table, tx_id, booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    for _ in range(2):
        assert event(table, "Ended", 2, clock, 1_300, 55_000) == {}
    s = session(app, tx_id)
    assert (s.late_stop_wh, s.late_stop_at, s.late_export_wh) == (None, clock.now(), 55_000)
    assert export_credits(app, booking) == [50]
    (notice,) = late_notices(app)
    assert "nothing was delivered since" in notice and "3000 Wh exported since (75p)" in notice
    description = invariant(app, "late_stops_unbilled_once")
    assert "1 such, 0 Wh, 0p unbilled; 3000 Wh, 75p export uncredited" in description
    (listed,) = app.queries.admin.late_stops()
    assert (listed.rebilled, listed.unbilled_wh, listed.uncredited_export_wh, listed.uncredited_export_p) == (
        False,
        0,
        3_000,
        75,
    )
    assert failing(app) == set()


def test_a_late_export_worth_less_than_a_penny_waits_for_a_reading_worth_one(
    app: App, clock: ManualClock
) -> None:
    """30 Wh at 25p/kWh are 0.75p: no credit, so the record stays on the 2,000 Wh paid for and the
    statement's line keeps them; 100 Wh (2p more on the whole) are credited with a later reading."""
    app.settlement.on_queued = lambda booking_id: None
    table, tx_id, booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    for _ in range(2):  # sent again: the record has not moved, the session's reading has
        assert event(table, "Ended", 2, clock, 2_000, 52_030) == {}
    assert export_credits(app, booking) == [50]
    view = app.v2g.export(Principal(account_id=0, role=Role.ADMIN), booking)
    assert (view.record.last_wh, view.record.exported_wh, view.record.credit) == (52_000, 2_000, 50)
    assert statement_lines(app, clock) == [(f"export-{booking}", 2_000, 50)]
    assert session(app, tx_id).late_export_wh == 52_030
    (notice,) = late_notices(app)
    assert "30 Wh exported after its last reading are worth less than a penny" in notice
    assert "30 Wh, 0p export uncredited" in invariant(app, "late_stops_unbilled_once")
    clock.advance(60)
    assert event(table, "Ended", 3, clock, 2_000, 52_100) == {}
    assert statement_lines(app, clock) == [
        (f"export-{booking}", 2_000, 50),
        (f"export-{booking}:52000-52100", 100, 2),
    ]
    app.settlement.process_due()
    assert failing(app) == set()


def test_a_second_kept_late_stop_without_an_export_reading_keeps_the_export(
    app: App, clock: ManualClock
) -> None:
    table, tx_id, _booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    assert event(table, "Ended", 2, clock, 2_000, 55_000) == {}
    clock.advance(60)
    assert event(table, "Ended", 3, clock, 2_500, None) == {}
    s = session(app, tx_id)
    assert (s.late_stop_wh, s.late_stop_at, s.late_export_wh) == (2_500, clock.now(), 55_000)
    description = invariant(app, "late_stops_unbilled_once")
    assert "1 such, 1200 Wh, 48p unbilled; 3000 Wh, 75p export uncredited" in description
    assert failing(app) == set()
