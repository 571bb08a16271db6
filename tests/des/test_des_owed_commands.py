"""The DES central system sends what the command policy decides, as the live registry does: what a
charger is owed (a reservation it never heard, a stop still due) is asked again when it connects."""

from __future__ import annotations

from datetime import timedelta

import simpy

from chargeshare.bootstrap import App
from chargeshare.ocpp import V16
from chargeshare.ocpp.frames import Call, CallResult, encode, parse
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from simulators.des.central import DesCentral
from tests.conftest import add_charger


class AcceptingCharger:
    """A charger end that accepts every command and keeps what it was asked."""

    def __init__(self, cp_id: str) -> None:
        self.cp_id = cp_id
        self.asked: list[tuple[str, dict[str, object]]] = []

    def receive(self, text: str) -> str | None:
        call = parse(text)
        assert isinstance(call, Call)
        self.asked.append((call.action, call.payload))
        return encode(CallResult(call.unique_id, {"status": "Accepted"}))

    def actions(self, action: str) -> list[dict[str, object]]:
        return [payload for name, payload in self.asked if name == action]


def reservation_of(app: App, booking_id: int) -> str:
    with app.store.reading() as tx:
        return tx.bookings.get(booking_id).reservation


def test_a_reservation_decided_while_the_charger_was_away_is_sent_when_it_connects(
    app: App, clock: ManualClock
) -> None:
    env = simpy.Environment()
    central = DesCentral(env, app)
    charger_id = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = clock.now() + timedelta(minutes=5)
    booking = app.bookings.book(BookRequest(driver, charger_id, 1, 60, 10_000, starts_at=starts))
    env.run()
    assert reservation_of(app, booking.booking_id) == "sent"  # decided; no link to carry it

    charger = AcceptingCharger("CP1")
    central.attach(charger, V16)
    env.run()
    assert [p["reservationId"] for p in charger.actions("ReserveNow")] == [booking.booking_id]
    assert reservation_of(app, booking.booking_id) == "accepted"


def test_a_stop_taken_is_not_sent_again_on_the_same_link_but_is_after_a_reconnect(
    app: App, clock: ManualClock
) -> None:
    env = simpy.Environment()
    central = DesCentral(env, app)
    charger_id = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    charger = AcceptingCharger("CP1")
    central.attach(charger, V16)
    env.run()  # what it is owed on connecting: nothing yet
    app.bookings.book(BookRequest(driver, charger_id, 1, 60, 1_000))
    tx_id = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    app.charging.meter("CP1", tx_id, 1_000)  # the energy the booking holds: stop
    env.run()
    app.charging.meter("CP1", tx_id, 1_100)  # the charger took the stop but still charges
    env.run()
    assert charger.actions("RemoteStopTransaction") == [{"transactionId": tx_id}]
    assert central.policy.stops_sent == {tx_id: "CP1"}

    central.detach("CP1")
    assert central.policy.stops_sent == {}
    central.attach(charger, V16)  # back with the session still open: it may have lost the stop
    env.run()
    assert charger.actions("RemoteStopTransaction") == [{"transactionId": tx_id}] * 2
