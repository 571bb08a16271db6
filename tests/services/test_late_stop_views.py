"""Operators' list of sessions that took a late stop (`AdminViews.late_stops`): billed in full on it,
or its energy and a V2G session's export after the last reading left unbilled, by session id, a
page at a time. On the in-memory fake; the store's query is in tests/contract, the route in
tests/api/test_late_stops_api.py and the command in tests/cli/test_late_stops_cli.py."""

from __future__ import annotations

from chargeshare.bootstrap import App
from chargeshare.services.clock import ManualClock
from chargeshare.services.queries.admin_views import LateStopView
from tests.services.test_late_stop import closed_as_lost, stop16
from tests.services.test_late_stop_export import event, v2g_closed_as_lost
from tests.services.test_money_path import failing


def two_late_stops(app: App, clock: ManualClock) -> tuple[int, int]:
    """CP1's session billed in full on its late stop (its capture untried), then V2G1's left unbilled
    (captured at the close): 700 Wh imported and 3,000 Wh exported after its last readings."""
    worker = app.settlement.on_queued
    app.settlement.on_queued = lambda booking_id: None  # a payments worker captures later
    table, rebilled = closed_as_lost(app, clock)
    clock.advance(400)
    assert stop16(table, rebilled, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    app.settlement.on_queued = worker
    app.settlement.process_due()
    v2g_table, kept, _booking = v2g_closed_as_lost(app, clock)
    clock.advance(400)
    assert event(v2g_table, "Ended", 2, clock, 2_000, 55_000) == {}
    return rebilled, kept


def test_operators_list_late_stops_rebilled_or_left_unbilled_a_page_at_a_time(
    app: App, clock: ManualClock
) -> None:
    assert app.queries.admin.late_stops() == []
    rebilled, kept = two_late_stops(app, clock)
    listed = app.queries.admin.late_stops()
    assert [v.session_id for v in listed] == [rebilled, kept]
    first, second = listed
    assert isinstance(first, LateStopView) and first.charge_point_id == "CP1"
    assert (first.rebilled, first.late_stop_wh, first.billed_wh, first.unbilled_wh) == (True, 2_000, 1_000, 0)
    assert (first.late_export_wh, first.uncredited_export_wh) == (None, 0)
    assert second.charge_point_id == "V2G1" and second.at == clock.now()
    assert (second.rebilled, second.late_stop_wh, second.billed_wh, second.unbilled_wh) == (
        False,
        2_000,
        300,
        700,
    )
    assert (second.late_export_wh, second.uncredited_export_wh) == (55_000, 3_000)
    assert (first.cost, first.unbilled_p, first.rebilled_at) == (40, 0, first.at)
    assert (second.cost, second.unbilled_p, second.uncredited_export_p, second.rebilled_at) == (
        12,
        28,
        75,
        None,
    )
    assert app.queries.admin.late_stops(limit=1) == [first]
    assert app.queries.admin.late_stops(after=rebilled, limit=1) == [second]
    assert app.queries.admin.late_stops(after=kept) == []
    assert failing(app) == set()


def test_a_session_rebilled_then_kept_shows_both_with_its_pence(app: App, clock: ManualClock) -> None:
    """One row per session, where all its late stops left it: billed in full on the first (its
    capture untried), then a higher reading kept after the capture; the pence at its price."""
    worker = app.settlement.on_queued
    app.settlement.on_queued = lambda booking_id: None
    table, tx_id = closed_as_lost(app, clock)
    clock.advance(400)
    rebilled_at = clock.now()
    assert stop16(table, tx_id, 2_000, clock) == {"idTagInfo": {"status": "Accepted"}}
    app.settlement.on_queued = worker
    app.settlement.process_due()
    clock.advance(60)
    assert stop16(table, tx_id, 2_500, clock) == {"idTagInfo": {"status": "Accepted"}}
    (view,) = app.queries.admin.late_stops()
    assert (view.rebilled, view.rebilled_at, view.at) == (False, rebilled_at, clock.now())
    assert (view.late_stop_wh, view.billed_wh, view.cost) == (2_500, 1_000, 40)
    assert (view.unbilled_wh, view.unbilled_p) == (500, 20)
    assert failing(app) == set()
