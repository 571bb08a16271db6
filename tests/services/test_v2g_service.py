"""V2G export through the services: the driver's terms, the transfer and discharge profile asked of
a 2.1 charger at the start, the export register read apart from import, and the credit posted with
the stop in the ledger, which the invariants check."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.errors import InvalidTransition, NotFound
from chargeshare.domain.ledger import GRID_EXPORT_BUYER, EntryKind, driver_export_credit
from chargeshare.ocpp import V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import ExportDue
from chargeshare.services.invariants import check_store
from chargeshare.services.owed_commands import Owed, commands_owed, due_at_connect
from tests.conftest import add_charger


def driver(driver_id: int) -> Principal:
    return Principal(account_id=0, role=Role.DRIVER, driver_id=driver_id)


def host(host_id: int) -> Principal:
    return Principal(account_id=0, role=Role.HOST, host_id=host_id)


def failing(app: App) -> list[str]:
    return [r.name for r in check_store(app.store, app.config.rules, final=False) if not r.ok]


def test_a_v2g_session_is_credited_its_export_register_at_the_export_price(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app, "V2G1", price=40)
    app.charging.boot("V2G1", V21)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    due: list[ExportDue] = []
    app.bus.subscribe(ExportDue, due.append)
    clock.advance(60)
    session = app.charging.start("V2G1", 1, "DEE", 1_000, clock.now()).transaction_id
    # Monday 09:01 is peak: the whole rest of the booking is a discharge window.
    assert [(e.session_id, e.rating_w, e.windows) for e in due] == [(session, 7_400, ((0, 3_540),))]
    app.charging.meter_export("V2G1", session, 50_000, 80)  # the export register's start
    app.charging.meter_export("V2G1", session, 53_333, 62)
    app.charging.meter_export("V2G1", session, 52_000, 41)  # a replayed older reading
    app.charging.stop("V2G1", session, 1_500, clock.now())
    view = app.v2g.export(driver(dee), booking)
    assert (view.record.exported_wh, view.record.credit, view.record.lowest_soc_pct) == (3_333, 83, 62)
    with app.store.reading() as tx:
        (entry,) = [e for e in tx.ledger.entries(booking_id=booking) if e.kind is EntryKind.EXPORT_CREDIT]
        session_row = tx.sessions.get(session)
    assert {p.account: p.amount for p in entry.postings} == {
        GRID_EXPORT_BUYER: 83,
        driver_export_credit(dee): -83,
    }
    assert session_row is not None and session_row.billed_wh == 500  # import alone, not netted
    assert failing(app) == []
    app.charging.stop("V2G1", session, 1_500, clock.now())  # a repeated stop credits nothing more
    with app.store.reading() as tx:
        assert (
            len([e for e in tx.ledger.entries(booking_id=booking) if e.kind is EntryKind.EXPORT_CREDIT]) == 1
        )
    with pytest.raises(InvalidTransition):
        app.v2g.set_terms(driver(dee), booking, 99, 40)


def test_terms_are_the_drivers_own_and_a_1_6_charger_is_never_asked_to_discharge(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app, "OLD", price=40)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    eve = app.marketplace.add_driver("Eve", "EVE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000))
    with pytest.raises(NotFound):
        app.v2g.set_terms(driver(eve), booking.booking_id, 25, 40)
    with pytest.raises(NotFound):
        app.v2g.set_terms(host(booking.host_id), booking.booking_id, 25, 40)
    with pytest.raises(NotFound):
        app.v2g.export(driver(eve), booking.booking_id)
    app.v2g.set_terms(driver(dee), booking.booking_id, 25, 40)
    assert app.v2g.export(host(booking.host_id), booking.booking_id).terms is not None
    due: list[ExportDue] = []
    app.bus.subscribe(ExportDue, due.append)
    app.charging.start("OLD", 1, "DEE", 0, clock.now())
    assert due == []


def test_the_invariants_see_a_car_below_its_floor_and_a_wrong_credit(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, "V2G2", price=40)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    session = app.charging.start("V2G2", 1, "DEE", 0, clock.now()).transaction_id
    app.charging.meter_export("V2G2", session, 0, 45)
    app.charging.meter_export("V2G2", session, 4_000, 39)
    assert failing(app) == ["export_above_soc_floor"]
    app.charging.stop("V2G2", session, 0, clock.now())
    with app.store.transaction() as tx:
        record = tx.v2g.record(booking)
        assert record is not None and record.credit == 100
        assert record.last_wh is not None  # a settled record is written over only by a resettle
        wrong = record.__class__(**{**record.__dict__, "credit": 101})
        assert tx.v2g.resettle_record(wrong, clock.now(), last_wh=record.last_wh)
    assert set(failing(app)) == {"export_above_soc_floor", "export_credit_matches_export"}


def test_a_running_v2g_session_owes_its_charger_the_export_until_it_ends(
    app: App, clock: ManualClock
) -> None:
    """Owed from the database, so a charger that lost its link (or its process) before the profile
    is sent it on connecting anywhere, with the windows still ahead; nothing once the session ends."""
    charger = add_charger(app, "V2G3", price=40)
    app.charging.boot("V2G3", V21)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
    assert app.v2g.exports_due("V2G3") == []
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    clock.advance(60)
    session = app.charging.start("V2G3", 1, "DEE", 1_000, clock.now()).transaction_id
    clock.advance(600)
    assert app.v2g.exports_due("V2G3") == [ExportDue(clock.now(), "V2G3", 1, session, 7_400, ((0, 2_940),))]
    assert due_at_connect(app.store, app.bookings, app.charging, app.smart, app.v2g, "V2G3")[4] == (
        app.v2g.exports_due("V2G3")
    )
    app.charging.stop("V2G3", session, 1_500, clock.now())
    assert app.v2g.exports_due("V2G3") == []


def test_a_charger_not_on_2_1_is_owed_no_export(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, "OLD2", price=40)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    app.charging.start("OLD2", 1, "DEE", 0, clock.now())
    assert app.v2g.exports_due("OLD2") == []
    with pytest.raises(NotFound):
        app.v2g.exports_due("NOPE")


def test_the_sweep_finds_a_v2g_export_owed_until_its_charger_takes_it(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, "V2G4", price=40)
    app.charging.boot("V2G4", V21)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    session = app.charging.start("V2G4", 1, "DEE", 1_000, clock.now()).transaction_id
    exports = {o for o in commands_owed(app.store, clock.now()) if o.kind == "export"}
    assert exports == {Owed("V2G4", "export", session)}
    app.v2g.export_taken(session)
    assert not {o for o in commands_owed(app.store, clock.now()) if o.kind == "export"}
    assert len(app.v2g.exports_due("V2G4")) == 1  # still sent on connecting: it may have lost it


def test_a_session_left_open_behind_a_newer_one_on_its_connector_is_owed_no_export(
    app: App, clock: ManualClock
) -> None:
    """A charger that started a new transaction on a connector without stopping the V2G one (its
    stop lost, the session not closed yet) is sent the export of the newest only: the sweep must
    not find owed what no resend would send, or it asks the charger again every round for ever."""
    charger = add_charger(app, "V2G5", price=40)
    app.charging.boot("V2G5", V21)
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    eve = app.marketplace.add_driver("Eve", "EVE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 30, 10_000)).booking_id
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    app.charging.start("V2G5", 1, "DEE", 1_000, clock.now())
    clock.advance(40 * 60)
    app.bookings.book(BookRequest(eve, charger, 1, 30, 10_000))
    app.charging.start("V2G5", 1, "EVE", 2_000, clock.now())  # no terms: nothing to send it
    assert app.v2g.exports_due("V2G5") == []
    assert not {o for o in commands_owed(app.store, clock.now()) if o.kind == "export"}
