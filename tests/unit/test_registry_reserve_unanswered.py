"""A ReserveNow that got no answer is not left "sent" until the charger reconnects: the registry marks
it unanswered, and the next sweep asks again; an answer is recorded as the charger gave it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.ocpp_server import ChargerRegistry
from chargeshare.bootstrap import App
from chargeshare.ocpp import commands as cmd
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import add_charger


@pytest.mark.parametrize(
    ("answer", "reservation"),
    [
        (cmd.Timeout(30), "none"),
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
    await registry._reserve("CP1", cmd.Reserve(booking.booking_id, 1, "TAG", starts + timedelta(minutes=15)))
    with app.store.reading() as tx:
        assert tx.bookings.get(booking.booking_id).reservation == reservation
    assert app.bookings.reservations_due() == ([booking.booking_id] if reservation == "none" else [])
