"""A driver setting or changing a V2G booking's export terms while its session's stop settles the
export, on PostgreSQL (READ COMMITTED, real threads): whichever goes first, the export is credited
at the terms that stand, terms never change under a settled export, and a booking's first terms
are never left on a finished booking whose export was not settled."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import InvalidTransition
from chargeshare.domain.v2g import ExportTerms, export_credit
from chargeshare.ocpp import V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger
from tests.integration.pausing import PausesAfter, PausesBeforeCommit
from tests.integration.test_command_refusal_race import second_while_first_uncommitted
from tests.services.test_owed_back_off import driver, v2g_session

pytestmark = pytest.mark.postgres

PRICE, NEW_PRICE = 25, 60  # v2g_session's terms, and the driver's change


def exported_session(app: App, clock: ManualClock) -> tuple[int, int, int]:
    """(driver, booking, session) of a V2G session that has exported 1,000 Wh at PRICE."""
    dee, booking, session = v2g_session(app, clock)
    app.charging.meter_export("V2G1", session, 5_000, 80)
    app.charging.meter_export("V2G1", session, 6_000, 70)
    return dee, booking, session


def changing_terms(app: App, dee: int, booking: int) -> Callable[[], ExportTerms | str]:
    def change() -> ExportTerms | str:
        try:
            return app.v2g.set_terms(driver(dee), booking, NEW_PRICE, 40)
        except InvalidTransition:
            return "fixed"

    return change


def credited_at(app: App, booking: int) -> tuple[int, int | None]:
    """The price of the terms that stand and the credit the export was settled with."""
    with app.store.reading() as tx:
        terms, record = tx.v2g.terms(booking), tx.v2g.record(booking)
    assert terms is not None and record is not None and record.exported_wh == 1_000
    return terms.price_per_kwh, record.credit


def failing(app: App) -> list[str]:
    return [r.name for r in check_store(app.store, app.config.rules, final=False) if not r.ok]


def test_terms_read_open_then_changed_while_the_stop_settles_go_first(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    """set_terms has found the export unsettled; a stop meanwhile waits for it, then credits at
    the new price (it must not settle at the old one and have the terms changed under it)."""
    dee, booking, session = exported_session(pg_app, clock)
    store = PausesAfter(pg_app.store, lambda: False, "v2g", "record")
    pg_app.v2g.store = store
    changed, _ = second_while_first_uncommitted(
        store,
        postgres_url,
        changing_terms(pg_app, dee, booking),
        lambda: pg_app.charging.stop("V2G1", session, 1_000, clock.now()),
    )
    pg_app.v2g.store = store.inner
    assert changed != "fixed"
    assert credited_at(pg_app, booking) == (NEW_PRICE, export_credit(1_000, NEW_PRICE))
    assert "export_credit_matches_export" not in failing(pg_app)


def test_a_change_while_the_stop_settles_waits_for_it_and_is_refused(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    """The stop has ended the booking and read the terms but not yet taken the export; a change
    meanwhile waits on the booking's row the stop holds, then finds the booking ended: the stop
    credits at the terms it settles with, and they stand."""
    dee, booking, session = exported_session(pg_app, clock)
    store = PausesAfter(pg_app.store, lambda: False, "v2g", "terms")
    pg_app.charging.store = store
    _, changed = second_while_first_uncommitted(
        store,
        postgres_url,
        lambda: pg_app.charging.stop("V2G1", session, 1_000, clock.now()),
        changing_terms(pg_app, dee, booking),
    )
    pg_app.charging.store = store.inner
    assert changed == "fixed"
    assert credited_at(pg_app, booking) == (PRICE, export_credit(1_000, PRICE))
    assert "export_credit_matches_export" not in failing(pg_app)


def test_a_change_after_the_stop_settled_is_refused(pg_app: App, clock: ManualClock) -> None:
    dee, booking, session = exported_session(pg_app, clock)
    pg_app.charging.stop("V2G1", session, 1_000, clock.now())
    assert changing_terms(pg_app, dee, booking)() == "fixed"
    assert credited_at(pg_app, booking) == (PRICE, export_credit(1_000, PRICE))


def plain_session(app: App, clock: ManualClock) -> tuple[int, int, int]:
    """(driver, booking, session) of a session at a 2.1 charger on a booking with no terms yet."""
    charger = add_charger(app, "V2G1", price=40)
    app.charging.boot("V2G1", V21)
    dee = app.marketplace.add_driver("Dee", "V2G1-TAG").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000)).booking_id
    session = app.charging.start("V2G1", 1, "V2G1-TAG", 1_000, clock.now()).transaction_id
    return dee, booking, session


@pytest.mark.parametrize("stop_first", [True, False], ids=["stop-first", "terms-first"])
def test_first_terms_and_a_stop_at_once_never_leave_terms_uncredited(
    pg_app: App, clock: ManualClock, postgres_url: str, stop_first: bool
) -> None:
    """A booking's first terms have no row to hold: set_terms and the stop take turns on the
    booking's row, so either the stop commits first and the terms are refused (the booking ended),
    or the terms commit first and the stop settles the export at them. Never terms on a finished
    booking whose export was never settled."""
    dee, booking, session = plain_session(pg_app, clock)
    store = PausesBeforeCommit(pg_app.store, lambda: False)
    (pg_app.charging if stop_first else pg_app.v2g).store = store

    def stopping() -> object:
        return pg_app.charging.stop("V2G1", session, 2_000, clock.now())

    setting = changing_terms(pg_app, dee, booking)
    first, second = (stopping, setting) if stop_first else (setting, stopping)
    results = second_while_first_uncommitted(store, postgres_url, first, second)
    pg_app.charging.store = pg_app.v2g.store = store.inner
    with pg_app.store.reading() as tx:
        terms, record = tx.v2g.terms(booking), tx.v2g.record(booking)
    if stop_first:
        assert results[1] == "fixed" and terms is None and record is None
    else:
        assert terms is not None and terms.price_per_kwh == NEW_PRICE
        assert record is not None and record.settled
