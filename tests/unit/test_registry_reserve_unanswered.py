"""A ReserveNow that reached no charger is not left "sent" until the charger reconnects: the registry
marks it unanswered, and the next sweep asks again; an answer is recorded as the charger gave it. One
whose answer was lost on its way back (a timeout, the link closing after the call was sent) may be
held by the charger: it stays "sent", asked again when the charger connects and cancelled with its
booking."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.command_policy import DISCONNECTED_BEFORE_ANSWER
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import BookingEnded
from tests.conftest import add_charger


@pytest.mark.parametrize(
    ("answer", "reservation"),
    [
        (cmd.Timeout(30), "sent"),
        (cmd.NotConnected(DISCONNECTED_BEFORE_ANSWER), "sent"),
        (cmd.CallError("InternalError"), "none"),
        (cmd.NotConnected("not connected"), "none"),
        (cmd.Done(cmd.Status.ACCEPTED, None), "accepted"),
    ],
)
async def test_an_unanswered_reserve_now_is_due_again(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, answer: Any, reservation: str
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = clock.now() + timedelta(minutes=5)
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=starts))
    registry = ChargerRegistry(app)

    async def send(_cp_id: str, _command: Any, **_kw: Any) -> Any:
        return answer

    monkeypatch.setattr(registry, "send", send)
    reserve = cmd.Reserve(booking.booking_id, 1, "TAG", starts + timedelta(minutes=15))
    await registry.run(registry.policy.reserve("CP1", reserve))
    with app.store.reading() as tx:
        assert tx.bookings.get(booking.booking_id).reservation == reservation
    assert app.bookings.reservations_due() == ([booking.booking_id] if reservation == "none" else [])


def reservation_of(app: App, booking_id: int) -> str:
    with app.store.reading() as tx:
        return tx.bookings.get(booking_id).reservation


@pytest.mark.parametrize(
    "lost",
    [cmd.Timeout(30.0), cmd.NotConnected(DISCONNECTED_BEFORE_ANSWER)],
    ids=["timeout", "disconnected"],
)
async def test_a_reservenow_whose_answer_was_lost_is_cancelled_with_its_booking(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, lost: cmd.Failure
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = clock.now() + timedelta(minutes=5)
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=starts))
    registry = ChargerRegistry(app)
    at_the_charger: list[cmd.Command[Any]] = []

    async def reaches_the_charger_but_not_its_answer(
        cp_id: str, command: cmd.Command[Any], *, timeout_s: float | None = None
    ) -> cmd.CommandResult[Any]:
        at_the_charger.append(command)  # the charger reserves the connector and answers Accepted
        return lost

    monkeypatch.setattr(registry, "send", reaches_the_charger_but_not_its_answer)
    reserve = cmd.Reserve(booking.booking_id, 1, "TAG", starts + timedelta(minutes=15))
    await registry.run(registry.policy.reserve("CP1", reserve))
    assert at_the_charger == [reserve]
    assert reservation_of(app, booking.booking_id) == "sent"  # asked again when the charger connects
    ended: list[BookingEnded] = []
    app.bus.subscribe(BookingEnded, ended.append)
    app.bookings.cancel(booking.booking_id, driver_id=driver)
    # Cancelled at once where the charger is reachable, or else as it connects.
    assert [e.reservation for e in ended] == ["sent"]
    assert [e.booking_id for e in app.bookings.cancellations_unanswered("CP1")] == [booking.booking_id]
