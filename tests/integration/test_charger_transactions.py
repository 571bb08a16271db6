"""The OCPP 2.0.1 transaction-id mapping in each real store: one session per (charger, transactionId),
enforced by the database, and the seqNo compare-and-set that makes replays change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from chargeshare.bootstrap import App, Config
from chargeshare.domain.errors import DatabaseBusy
from chargeshare.ocpp import V201, csms
from chargeshare.ocpp.timestamps import format_ts
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


def _event(event_type: str, seq_no: int, register_wh: int, state: str) -> dict[str, Any]:
    ts = format_ts(T0)
    event: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ts,
        "triggerReason": "CablePluggedIn" if event_type == "Started" else "ChargingStateChanged",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": "tx-9", "chargingState": state},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": ts,
                "sampledValue": [{"value": register_wh, "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    }
    if event_type == "Started":
        event["idToken"] = {"idToken": "TAG", "type": "ISO14443"}
    return event


def test_a_transaction_event_that_failed_on_our_side_is_applied_when_sent_again(store_app: App) -> None:
    app = store_app
    charger_id = add_charger(app, "SEQ1")
    driver = app.marketplace.add_driver("d", "TAG")
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 50_000))
    on_wire = csms.handlers(V201, app.charging, "SEQ1", app.reports)["TransactionEvent"]
    on_wire(_event("Started", 0, 1_000, "Charging"))
    session = app.charging.session_for_charger_tx("SEQ1", "tx-9")
    assert session is not None

    meter = app.charging.meter
    failed: list[tuple[Any, ...]] = []

    def busy_once(*args: Any) -> None:
        if not failed:
            failed.append(args)
            raise DatabaseBusy("the database is busy: a lock was not granted in time", 1.0)
        meter(*args)

    app.charging.meter = busy_once  # type: ignore[method-assign,assignment]
    updated = _event("Updated", 1, 4_000, "SuspendedEV")
    with pytest.raises(DatabaseBusy):  # answered InternalError: the charger sends it again
        on_wire(updated)
    on_wire(updated)
    with app.store.reading() as tx:
        after = tx.sessions.get(session.session_id)
    assert after is not None and failed
    assert after.meter_last_wh == 4_000, "the reading is applied when the event comes again"
    assert after.idle_since is not None, "and so is the car's charging state"
    assert app.charging.event_is_new("SEQ1", session.session_id, 1) is False  # and it counts as applied


def test_a_late_reading_taken_before_a_2_0_1_start_does_not_become_its_meter_start(store_app: App) -> None:
    """A session opened without a reading takes the first that follows as its start; a MeterValues
    delivered late, read before the session began (the register as the last car left it, or
    earlier), is not one of its readings: it would bill this driver for energy before their start."""
    app = store_app
    charger_id = add_charger(app, "LATE1")
    driver = app.marketplace.add_driver("d", "TAG")
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 50_000))
    table = csms.handlers(V201, app.charging, "LATE1", app.reports)
    clock = app.clock
    assert isinstance(clock, ManualClock)

    def at(seconds: int) -> str:
        return format_ts(T0 + timedelta(seconds=seconds))

    def meter_values(seconds: int, register_wh: int) -> dict[str, Any]:
        return {
            "evseId": 1,
            "meterValue": [
                {
                    "timestamp": at(seconds),
                    "sampledValue": [{"value": register_wh, "measurand": "Energy.Active.Import.Register"}],
                }
            ],
        }

    clock.advance(600)
    started = _event("Started", 0, 0, "EVConnected")
    del started["meterValue"]  # no reading at the start: the first to follow is the start
    started["timestamp"] = at(60)
    table["TransactionEvent"](started)
    session = app.charging.session_for_charger_tx("LATE1", "tx-9")
    assert session is not None
    table["MeterValues"](meter_values(0, 500))  # read before the start, delivered only now
    table["MeterValues"](meter_values(90, 800))
    ended = _event("Ended", 1, 1_500, "EVConnected")
    ended["timestamp"] = at(120)
    ended["meterValue"][0]["timestamp"] = at(120)
    ended["transactionInfo"]["stoppedReason"] = "EVDisconnected"
    table["TransactionEvent"](ended)
    with app.store.reading() as tx:
        after = tx.sessions.get(session.session_id)
    assert after is not None and after.billed_wh == 700
