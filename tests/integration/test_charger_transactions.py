"""The OCPP 2.0.1 transaction-id mapping in each real store: one session per (charger, transactionId),
enforced by the database, and the seqNo compare-and-set that makes replays change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.exc import IntegrityError

from chargeshare.bootstrap import App, Config
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import AuthStatus
from chargeshare.services.clock import ManualClock
from tests.conftest import T0, add_charger, build_for_tests


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_app(request: pytest.FixtureRequest) -> Iterator[App]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    app = build_for_tests(Config(database_url=url), clock=ManualClock(T0))
    yield app
    app.close()


def test_a_charger_transaction_maps_to_one_session_and_replays_are_spotted(store_app: App) -> None:
    app = store_app
    charger_id = add_charger(app, "MAP1")
    other_id = add_charger(app, "MAP2")
    driver = app.marketplace.add_driver("d", "TAG")
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 5_000))
    first = app.charging.start("MAP1", 1, "TAG", 100, T0, charger_tx_id="tx-1")
    again = app.charging.start("MAP1", 1, "TAG", 999, T0, charger_tx_id="tx-1")  # a replayed start
    assert first.status is AuthStatus.ACCEPTED and again == first
    session = app.charging.session_for_charger_tx("MAP1", "tx-1")
    assert session is not None and session.session_id == first.transaction_id
    assert session.meter_start_wh == 100
    assert app.charging.charger_tx_id(first.transaction_id) == "tx-1"
    assert app.charging.session_for_charger_tx("MAP2", "tx-1") is None  # ids are per charger
    assert [app.charging.event_is_new("MAP1", first.transaction_id, n) for n in (0, 1, 1, 0, 3, 2)] == [
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    # A later session on the same charger cannot take the same transaction id: the database refuses.
    app.charging.stop("MAP1", first.transaction_id, 1_100, T0)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(2 * 3600)
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 5_000))
    second = app.charging.start("MAP1", 1, "TAG", 1_100, clock.now())
    assert second.status is AuthStatus.ACCEPTED and second.transaction_id != first.transaction_id
    with pytest.raises(IntegrityError), app.store.transaction() as tx:
        tx.sessions.link_charger_transaction(second.transaction_id, charger_id, "tx-1")
    with app.store.transaction() as tx:  # the same id on another charger is another transaction
        assert tx.sessions.by_charger_transaction(other_id, "tx-1") is None
