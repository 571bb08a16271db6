"""A driver overriding a booking while its session starts, on PostgreSQL (READ COMMITTED, real
threads): the charger is sent the override at once, by the override or by the start, never left
to the sweep."""

from __future__ import annotations

import threading

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import OverrideDue
from tests.conftest import add_charger
from tests.integration.pausing import PausesBeforeCommit
from tests.integration.test_command_refusal_race import second_while_first_uncommitted
from tests.integration.test_kyc_payout_race import waiting_on_a_lock
from tests.services.test_owed_back_off import driver

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("override_first", [True, False], ids=["override-first", "start-first"])
def test_an_override_committed_while_its_session_starts_is_sent_at_once(
    pg_app: App, clock: ManualClock, postgres_url: str, override_first: bool
) -> None:
    charger = add_charger(pg_app, "CP1")
    dee = pg_app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = pg_app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000)).booking_id
    due: list[OverrideDue] = []
    pg_app.bus.subscribe(OverrideDue, due.append)
    store = PausesBeforeCommit(pg_app.store, lambda: False)
    pg_app.smart.store = pg_app.charging.store = store

    def overriding() -> object:
        return pg_app.smart.override(driver(dee), booking)

    def starting() -> object:
        return pg_app.charging.start("CP1", 1, "DEE", 1_000, clock.now()).transaction_id

    first, second = (overriding, starting) if override_first else (starting, overriding)
    results = second_while_first_uncommitted(store, postgres_url, first, second)
    pg_app.smart.store = pg_app.charging.store = store.inner
    session = results[1] if override_first else results[0]
    assert isinstance(session, int) and session > 0
    assert {d.session_id for d in due} == {session}


@pytest.mark.parametrize("call", ["override", "set_terms"])
def test_another_drivers_call_is_refused_without_waiting_on_the_bookings_row(
    pg_app: App, clock: ManualClock, postgres_url: str, call: str
) -> None:
    """Dee's own override holds her booking's row; Eve's call on that booking is NotFound at once,
    never queued behind (nor holding) a row that is not hers."""
    charger = add_charger(pg_app, "CP1")
    dee = pg_app.marketplace.add_driver("Dee", "DEE").driver_id
    eve = pg_app.marketplace.add_driver("Eve", "EVE").driver_id
    booking = pg_app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000)).booking_id
    store = PausesBeforeCommit(pg_app.store, lambda: threading.current_thread() is holder)
    pg_app.smart.store = store
    holder = threading.Thread(target=lambda: pg_app.smart.override(driver(dee), booking))
    holder.start()
    assert store.reached.wait(30), "Dee's override never got to its commit"
    outcome: list[BaseException] = []

    def eves_call() -> None:
        try:
            if call == "override":
                pg_app.smart.override(driver(eve), booking)
            else:
                pg_app.v2g.set_terms(driver(eve), booking, 30, 20)
        except BaseException as exc:  # the outcome is asserted below, on the test's thread
            outcome.append(exc)

    eve_thread = threading.Thread(target=eves_call)
    eve_thread.start()
    blocked = waiting_on_a_lock(postgres_url)
    try:
        for _ in range(3_000):
            if not eve_thread.is_alive() or blocked():
                break
            eve_thread.join(0.01)
        waited = eve_thread.is_alive()
    finally:
        store.go.set()
        holder.join(30)
        eve_thread.join(30)
        pg_app.smart.store = store.inner
    assert not waited, "Eve's call waited on Dee's booking row"
    assert [type(e) for e in outcome] == [NotFound]
