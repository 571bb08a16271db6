"""What chargers are owed: a command the database shows decided and unacknowledged for the rules'
`command_resend_after_s` is sent again by the process holding the charger's link, once per period;
one just decided (still on its way) is not; nothing is sent for chargers linked elsewhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.booking import BookingStatus
from chargeshare.entrypoints.ocpp_server import ChargerLink, ChargerRegistry
from chargeshare.ocpp import V21
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import v2g as ocpp_v2g
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.owed_commands import Owed, OwedSince
from tests.conftest import T0, add_charger

MINUTE = timedelta(minutes=1)


def test_a_command_is_overdue_once_owed_for_the_period_and_then_once_per_period() -> None:
    owed = OwedSince(timedelta(seconds=60))
    a, b = Owed("CP1", "reservation", 1), Owed("CP2", "stop", 7)
    assert owed.overdue(frozenset({a}), T0) == []
    assert owed.overdue(frozenset({a, b}), T0 + timedelta(seconds=59)) == []
    assert owed.overdue(frozenset({a, b}), T0 + timedelta(seconds=60)) == [a]  # b is newer
    assert owed.overdue(frozenset({a, b}), T0 + timedelta(seconds=119)) == [b]  # a was asked at 60
    assert owed.overdue(frozenset({a, b}), T0 + timedelta(seconds=120)) == [a]
    # Acknowledged meanwhile: forgotten, and owed again later it counts afresh.
    assert owed.overdue(frozenset(), T0 + timedelta(seconds=200)) == []
    assert owed.overdue(frozenset({a}), T0 + timedelta(seconds=201)) == []
    assert owed.overdue(frozenset({a}), T0 + timedelta(seconds=261)) == [a]


def linked(registry: ChargerRegistry, *cp_ids: str) -> None:
    """Links held here, as far as `resend_owed` looks (it sends through `send`, patched)."""
    for cp_id in cp_ids:
        registry.links[cp_id] = cast(ChargerLink, object())


async def test_a_cancellation_decided_by_a_process_that_died_reaches_the_charger_from_its_links_holder(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    charger = add_charger(app)
    add_charger(app, "CP2")
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=clock.now() + MINUTE))
    # The charger holds the reservation; another process cancelled the booking and died before its
    # CancelReservation left: the database alone knows (no event here).
    with app.store.transaction() as tx:
        tx.bookings.set_reservation(booking.booking_id, "accepted")
        assert tx.bookings.update(
            booking.booking_id, BookingStatus.CANCELLED, expected=BookingStatus.CONFIRMED
        )
    registry = ChargerRegistry(app)
    sent: list[tuple[str, Any]] = []

    async def send(cp_id: str, command: Any, **_kw: Any) -> Any:
        sent.append((cp_id, command))
        return cmd.Done(cmd.Status.REJECTED, None)  # it had cancelled it itself; either way it is gone

    monkeypatch.setattr(registry, "send", send)
    registry._loop = asyncio.get_running_loop()
    linked(registry, "CP2")  # held here: another charger only
    assert await registry.resend_owed() == []
    clock.advance(app.config.rules.command_resend_after_s)
    assert await registry.resend_owed() == []  # CP1's link is elsewhere: its holder asks
    linked(registry, "CP1")
    assert await registry.resend_owed() == []  # owed, but only just seen from here
    clock.advance(app.config.rules.command_resend_after_s)
    assert await registry.resend_owed() == ["CP1"]
    await drained(registry)
    assert sent == [("CP1", cmd.CancelReservation(booking.booking_id))]
    with app.store.reading() as tx:
        assert tx.bookings.get(booking.booking_id).reservation == "none"
    clock.advance(app.config.rules.command_resend_after_s)
    assert await registry.resend_owed() == []  # acknowledged: owed no more


async def test_a_stop_due_is_asked_again_while_the_session_stays_open(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    clock.advance(60)
    session = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    registry = ChargerRegistry(app)
    sent: list[Any] = []

    async def send(cp_id: str, command: Any, **_kw: Any) -> Any:
        sent.append(command)
        return cmd.Done(cmd.Status.ACCEPTED, None)

    monkeypatch.setattr(registry, "send", send)
    registry._loop = asyncio.get_running_loop()
    linked(registry, "CP1")
    # Over the limit while no process that heard the reading could reach the charger.
    with app.store.transaction() as tx:
        assert tx.sessions.advance_meter(session, 10_000, "CP1", clock.now()) is not None
    assert await registry.resend_owed() == []
    clock.advance(app.config.rules.command_resend_after_s)
    assert await registry.resend_owed() == ["CP1"]
    await drained(registry)
    # Accepted, yet the charger never stopped (it lost it): asked once per period, not every round.
    assert await registry.resend_owed() == []
    clock.advance(app.config.rules.command_resend_after_s)
    assert await registry.resend_owed() == ["CP1"]
    await drained(registry)
    assert sent == [cmd.StopCharging(session), cmd.StopCharging(session)]


async def drained(registry: ChargerRegistry) -> None:
    """Wait for the commands the registry spawned (each a task of its own)."""
    while registry._tasks:
        await asyncio.gather(*list(registry._tasks))


async def test_a_v2g_export_never_sent_is_sent_by_the_sweep_until_the_charger_takes_it(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session started while no process here held the charger (its deciding process died):
    the database alone says the export is owed, and the link's holder sends it."""
    charger = add_charger(app)
    app.charging.boot("CP1", V21)
    app.v2g.windows = lambda start, end: [(start, end)]
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    app.v2g.set_terms(Principal(0, Role.DRIVER, driver_id=driver), booking, 25, 40)
    clock.advance(60)
    session = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    registry = ChargerRegistry(app)
    sent: list[Any] = []
    answers = iter([cmd.Rejected(cmd.Status.REJECTED, None)])  # the first permission is refused

    async def send(cp_id: str, command: Any, **_kw: Any) -> Any:
        sent.append(command)
        if isinstance(command, cmd.AllowEnergyTransfer):
            return next(answers, cmd.Done(cmd.Status.ACCEPTED, None))
        return cmd.Done(cmd.Status.ACCEPTED, None)

    monkeypatch.setattr(registry, "send", send)
    registry._loop = asyncio.get_running_loop()
    linked(registry, "CP1")
    assert await registry.resend_owed() == []
    for _ in range(2):  # refused, then taken
        clock.advance(app.config.rules.command_resend_after_s)
        assert await registry.resend_owed() == ["CP1"]
        await drained(registry)
    exports = [c for c in sent if isinstance(c, cmd.AllowEnergyTransfer | cmd.SetChargingProfile)]
    assert [type(c) for c in exports] == [cmd.AllowEnergyTransfer] * 2 + [cmd.SetChargingProfile]
    assert exports[0] == exports[1] == cmd.AllowEnergyTransfer(session, ocpp_v2g.ALLOWED_TRANSFER)
    clock.advance(app.config.rules.command_resend_after_s)
    assert await registry.resend_owed() == []  # taken: owed no more
