"""What chargers report about themselves, acted on: a reservation's end on the charger, a vendor's
DataTransfer, and sessions billed without a measurement. On the in-memory store."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import NotFound
from chargeshare.services.booking import BookRequest
from chargeshare.services.charger_reports import VendorAnswer
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import BookingEnded, SessionUnmetered
from chargeshare.services.records import BookingRecord
from tests.conftest import add_charger


def reserved(app: App, clock: ManualClock, cp_id: str = "CP1", tag: str = "TAG") -> BookingRecord:
    """A booking starting now whose reservation the charger accepted."""
    charger = add_charger(app, cp_id)
    driver = app.marketplace.add_driver(f"driver {tag}", tag).driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    assert booking.reservation == "sent"
    app.bookings.reservation_answered(booking.booking_id, "Accepted")
    return booking


def booking_now(app: App, booking_id: int) -> BookingRecord:
    with app.store.reading() as tx:
        return tx.bookings.get(booking_id)


def test_a_reservation_removed_on_the_charger_is_asked_again(app: App, clock: ManualClock) -> None:
    booking = reserved(app, clock)
    said = app.bookings.reservation_ended_on_charger("CP1", booking.booking_id, "Removed")
    assert "asked again" in said
    assert booking_now(app, booking.booking_id).reservation == "none"
    assert booking_now(app, booking.booking_id).status is BookingStatus.CONFIRMED
    assert app.bookings.reservations_due() == [booking.booking_id]  # the connector is free: asked again
    assert booking_now(app, booking.booking_id).reservation == "sent"


def test_a_21_reservation_used_without_a_transaction_is_asked_again(app: App, clock: ManualClock) -> None:
    """2.1's NoTransaction: the driver's token took the reservation up and no transaction followed in
    time. The booking still stands, so its connector is held for it again once free."""
    booking = reserved(app, clock)
    said = app.bookings.reservation_ended_on_charger("CP1", booking.booking_id, "NoTransaction")
    assert said == "used without a transaction on the charger: asked again when the connector is free"
    assert booking_now(app, booking.booking_id).status is BookingStatus.CONFIRMED
    assert app.bookings.reservations_due() == [booking.booking_id]
    assert booking_now(app, booking.booking_id).reservation == "sent"


def test_an_expired_reservation_is_not_cancelled_nor_asked_again(app: App, clock: ManualClock) -> None:
    booking = reserved(app, clock)
    ended: list[BookingEnded] = []
    app.bus.subscribe(BookingEnded, ended.append)
    # The charger's clock runs ahead: it lets the reservation go before the driver's grace is over.
    assert app.bookings.reservation_ended_on_charger("CP1", booking.booking_id, "Expired") == "expired"
    now = booking_now(app, booking.booking_id)
    assert (now.status, now.reservation) == (BookingStatus.CONFIRMED, "expired")
    assert app.bookings.reservations_due() == []  # never asked again
    assert ended == []
    # Once the grace is over the sweep expires the no-show, with nothing left to cancel on the charger.
    clock.advance(app.config.rules.cancellation.no_show_grace_minutes * 60 + 1)
    assert app.bookings.expire_no_shows() == [booking.booking_id]
    assert [(e.status, e.reservation) for e in ended] == [("expired", "expired")]


def test_an_expiry_after_the_grace_expires_the_no_show_at_once(app: App, clock: ManualClock) -> None:
    booking = reserved(app, clock)
    clock.advance(app.config.rules.cancellation.no_show_grace_minutes * 60)
    said = app.bookings.reservation_ended_on_charger("CP1", booking.booking_id, "Expired")
    assert said == "expired: the booking is a no-show"
    now = booking_now(app, booking.booking_id)
    assert now.status is BookingStatus.EXPIRED and now.fee == app.config.rules.cancellation.no_show_charge(
        booking.hold_amount
    )
    assert app.bookings.expire_no_shows() == []  # done once
    again = app.bookings.reservation_ended_on_charger("CP1", booking.booking_id, "Expired")
    assert again == "reservation already expired"


def test_a_charger_speaking_of_another_chargers_reservation_changes_nothing(
    app: App, clock: ManualClock
) -> None:
    booking = reserved(app, clock)
    add_charger(app, "ROGUE")
    said = app.bookings.reservation_ended_on_charger("ROGUE", booking.booking_id, "Removed")
    assert said == "another charger's reservation: ignored"
    now = booking_now(app, booking.booking_id)
    assert (now.status, now.reservation) == (BookingStatus.CONFIRMED, "accepted")
    with app.store.reading() as tx:
        (event,) = tx.security.all("ROGUE")
    assert (event.kind, event.source) == ("ForeignReservation", "backend")
    assert app.bookings.reservation_ended_on_charger("CP1", 999, "Expired") == "no reservation 999"
    with pytest.raises(NotFound):
        app.bookings.reservation_ended_on_charger("NOBODY", booking.booking_id, "Expired")


def test_data_transfer_goes_to_its_vendors_hook(app: App) -> None:
    add_charger(app, "CP1")
    seen = []

    def hook(cp_id: str, message_id: str | None, data: object) -> VendorAnswer:
        seen.append((cp_id, message_id, data))
        return VendorAnswer("Accepted", {"echo": data})

    def broken(cp_id: str, message_id: str | None, data: object) -> VendorAnswer:
        raise RuntimeError("the vendor's code has a bug")

    app.reports.add_vendor_hook("com.example", hook)
    app.reports.add_vendor_hook("com.broken", broken)
    assert app.reports.data_transfer("CP1", "com.example", "ping", [1]) == VendorAnswer(
        "Accepted", {"echo": [1]}
    )
    assert app.reports.data_transfer("CP1", "com.broken", None, None) == VendorAnswer("Rejected")
    assert app.reports.data_transfer("CP1", "com.nobody", "x", None) == VendorAnswer("UnknownVendorId")
    assert seen == [("CP1", "ping", [1])]
    kept = app.reports.reports("CP1", ["DataTransfer"])
    assert [k.summary for k in kept] == [
        "com.example/ping: Accepted",
        "com.broken/-: Rejected",
        "com.nobody/x: UnknownVendorId",
    ]
    # An unregistered charger is answered the same, and nothing of it is kept.
    assert app.reports.data_transfer("GHOST", "com.example", "ping", 2).status == "Accepted"
    with pytest.raises(NotFound):
        app.reports.reports("GHOST")


def test_a_201_session_without_any_reading_is_flagged(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, "CP1")
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    flagged: list[SessionUnmetered] = []
    app.bus.subscribe(SessionUnmetered, flagged.append)
    started = app.charging.start(
        "CP1", 1, "TAG", 0, clock.now(), charger_tx_id="T-1", meter_start_known=False
    )
    session_id = started.transaction_id
    assert app.charging.awaits_first_reading(session_id)
    app.charging.stop("CP1", session_id, 0, clock.now(), start_read=False, stop_read=False)
    with app.store.reading() as tx:
        (session,) = tx.sessions.unmetered()
    assert session.session_id == session_id and session.billed_wh == 0
    assert [(e.session_id, e.charge_point_id, e.billed_wh) for e in flagged] == [(session_id, "CP1", 0)]


def test_a_lost_stop_is_flagged_only_if_nothing_was_read_after_its_start(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app, "CP1")
    add_charger(app, "CP2")
    with app.store.reading() as tx:
        other = tx.chargers.get("CP2").charger_id
    quiet_driver = app.marketplace.add_driver("Quiet", "QUIET").driver_id
    read_driver = app.marketplace.add_driver("Read", "READ").driver_id
    app.bookings.book(BookRequest(quiet_driver, charger, 1, 60, 10_000))
    app.bookings.book(BookRequest(read_driver, other, 1, 60, 10_000))
    quiet = app.charging.start("CP1", 1, "QUIET", 1_000, clock.now()).transaction_id
    read = app.charging.start("CP2", 1, "READ", 1_000, clock.now()).transaction_id
    app.charging.meter("CP2", read, 1_800)
    for cp_id in ("CP1", "CP2"):
        app.charging.status(cp_id, 1, ConnectorStatus.AVAILABLE)  # unplugged; the stops never come
    clock.advance(app.config.rules.lost_stop_grace_s + 1)
    assert sorted(app.charging.close_lost_stops()) == sorted([quiet, read])
    with app.store.reading() as tx:
        assert [s.session_id for s in tx.sessions.unmetered()] == [quiet]
        billed = tx.sessions.get(read)
    assert billed is not None and billed.billed_wh == 800 and not billed.unmetered


def test_the_units_a_charger_takes_are_kept_once_per_change_for_every_process(app: App) -> None:
    add_charger(app, "CP1")
    assert app.reports.rate_units("CP1") is None  # never asked
    assert app.reports.rate_units_learned("CP1", frozenset({"A"}))
    assert not app.reports.rate_units_learned("CP1", frozenset({"A"}))  # the next boot says the same
    assert app.reports.rate_units("CP1") == frozenset({"A"})
    assert app.reports.rate_units_learned("CP1", frozenset())  # new firmware that does not say
    assert app.reports.rate_units("CP1") == frozenset()
    said = [r.summary for r in app.reports.reports("CP1", ("RateUnits",))]
    assert said == ["takes schedules in A", "takes schedules in units it does not say"]
    assert app.reports.rate_units("NOPE") is None
    assert not app.reports.rate_units_learned("NOPE", frozenset({"A"}))


def test_the_phases_a_charger_is_wired_to_are_kept_once_per_change_for_every_process(app: App) -> None:
    add_charger(app, "CP1")
    assert app.reports.phases("CP1") is None  # never asked
    assert app.reports.phases_learned("CP1", {1: 1, 2: 3})
    assert not app.reports.phases_learned("CP1", {1: 1, 2: 3})  # the next boot says the same
    assert app.reports.phases("CP1") == {1: 1, 2: 3}
    assert app.reports.phases_learned("CP1", {})  # it no longer says
    assert app.reports.phases("CP1") == {}
    said = [r.summary for r in app.reports.reports("CP1", ("Phases",))]
    assert said == ["connector 1: 1 phase, connector 2: 3 phases", "phases not said"]
    assert app.reports.phases("NOPE") is None
    assert not app.reports.phases_learned("NOPE", {0: 3})
