"""A booking request sent again under its Idempotency-Key (its answer was lost: a dropped connection,
a process killed after the commit) answers as the first one did, and never books or holds twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta, timezone

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import (
    BookingConflict,
    IdempotencyKeyReused,
    PaymentDeclined,
    PaymentUnavailable,
    RequestInProgress,
)
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.ports import Lease, LockManager
from chargeshare.services.records import BookingRecord
from chargeshare.services.settlement import SettlementService
from tests.conftest import add_charger


class ProcessKilled(BaseException):
    """Stands in for the process dying mid-request: nothing on the way catches it."""


def gateway(app: App) -> SimulatedGateway:
    assert isinstance(app.gateway, SimulatedGateway)
    return app.gateway


def holds_placed(app: App) -> int:
    return len(gateway(app).holds)


def ledger_holds(app: App) -> int:
    with app.store.reading() as tx:
        return sum(1 for e in tx.ledger.entries() if e.kind.value == "hold")


def failing(app: App) -> set[str]:
    results = check_store(app.store, app.config.rules, now=app.clock.now(), final=False)
    return {r.name for r in results if not r.ok}


@pytest.fixture
def booked(app: App) -> tuple[int, BookRequest]:
    charger = add_charger(app, price=40)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    return driver, BookRequest(driver, charger, 1, 60, 10_000)


def test_the_same_request_sent_again_finds_its_booking_and_holds_once(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    _, req = booked
    first = app.bookings.book(req, request_key="attempt-1")
    again = app.bookings.book(req, request_key="attempt-1")
    assert again == first and first.status is BookingStatus.CONFIRMED
    assert (holds_placed(app), ledger_holds(app)) == (1, 1)
    # Without a key the copy is a new request, which finds the slot taken by the first.
    with pytest.raises(BookingConflict):
        app.bookings.book(req)
    assert failing(app) == set()


def test_a_charge_now_request_sent_later_still_finds_its_booking(
    app: App, clock: ManualClock, booked: tuple[int, BookRequest]
) -> None:
    """ "Now" is when each copy arrives, so only the key ties a late copy to the booking."""
    _, req = booked
    first = app.bookings.book(req, request_key="now-1")
    clock.advance(90)
    assert app.bookings.book(req, request_key="now-1") == first
    assert holds_placed(app) == 1


def test_a_key_used_for_another_request_is_refused_and_books_nothing(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    _, req = booked
    app.bookings.book(req, request_key="k")
    other = BookRequest(
        req.driver_id, req.charger_id, 1, 30, 10_000, starts_at=app.clock.now() + timedelta(days=1)
    )
    with pytest.raises(IdempotencyKeyReused):
        app.bookings.book(other, request_key="k")
    with app.store.reading() as tx:
        assert len(tx.bookings.all()) == 1
    assert holds_placed(app) == 1


def test_keys_belong_to_one_driver(app: App, booked: tuple[int, BookRequest]) -> None:
    _, req = booked
    app.bookings.book(req, request_key="shared")
    someone = app.marketplace.add_driver("E", "TAG2").driver_id
    later = app.clock.now() + timedelta(days=1)
    theirs = BookRequest(someone, req.charger_id, 1, 60, 10_000, starts_at=later)
    assert app.bookings.book(theirs, request_key="shared").driver_id == someone


def test_a_refused_request_remembers_nothing_and_can_be_sent_again(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    driver, req = booked
    taken = app.bookings.book(req)  # the slot is someone's (here: the same driver's, keyless)
    with pytest.raises(BookingConflict):
        app.bookings.book(req, request_key="late")
    app.bookings.cancel(taken.booking_id, driver_id=driver)
    assert app.bookings.book(req, request_key="late").status is BookingStatus.CONFIRMED


def test_a_declined_hold_is_declined_again_without_asking_the_card(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    driver, req = booked
    gateway(app).decline_customers.add(f"driver:{driver}")
    with pytest.raises(PaymentDeclined):
        app.bookings.book(req, request_key="declined")
    asked = holds_placed(app)
    gateway(app).decline_customers.clear()  # even if the card would now say yes: the key's answer stands
    with pytest.raises(PaymentDeclined):
        app.bookings.book(req, request_key="declined")
    assert holds_placed(app) == asked
    assert app.bookings.book(req, request_key="second-try").status is BookingStatus.CONFIRMED


def test_a_request_whose_process_died_mid_hold_is_in_progress_until_recovery_fails_it(
    app: App, clock: ManualClock, booked: tuple[int, BookRequest]
) -> None:
    _, req = booked
    real = gateway(app)

    def killed(*_: object) -> None:
        raise ProcessKilled

    app.settlement.authorize = killed  # type: ignore[method-assign, assignment]
    with pytest.raises(ProcessKilled):
        app.bookings.book(req, request_key="dying")
    vars(app.settlement).pop("authorize")
    # The copy finds the placement still open: the first request might yet finish it.
    with pytest.raises(RequestInProgress) as in_progress:
        app.bookings.book(req, request_key="dying")
    assert in_progress.value.retry_after_s > 0
    assert holds_placed(app) == 0
    # Recovery in a restarted process takes the placement over and fails the booking.
    clock.advance(app.config.rules.hold_placement_timeout_s + 1)
    SettlementService(app.store, real, app.bus, clock, app.config.rules, worker="restarted").process_due()
    with pytest.raises(PaymentUnavailable):
        app.bookings.book(req, request_key="dying")
    assert app.bookings.book(req, request_key="fresh").status is BookingStatus.CONFIRMED
    assert failing(app) == set()


class CopyArrivesMidway:
    """The connector lock, letting a copy of the request in (once) after the first has claimed the
    slot ahead of the database and before it writes its booking: two copies racing."""

    def __init__(self, inner: LockManager, copy: Callable[[], BookingRecord]) -> None:
        self.inner, self.copy = inner, copy
        self.answer: BookingRecord | Exception | None = None

    @contextmanager
    def hold(self, key: str, ttl_ms: int) -> Iterator[Lease | None]:
        copy, self.copy = self.copy, None  # type: ignore[assignment]
        if copy is not None:
            try:
                self.answer = copy()
            except Exception as exc:
                self.answer = exc
        with self.inner.hold(key, ttl_ms) as lease:
            yield lease


def test_a_copy_racing_the_first_is_not_refused_by_the_first_ones_claim(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    """The slot claim the first request holds is no conflict for its own copy: the database decides
    between the two, and both answer with the one booking."""
    _, req = booked
    locks = CopyArrivesMidway(app.bookings.locks, lambda: app.bookings.book(req, request_key="racing"))
    app.bookings.locks = locks
    first = app.bookings.book(req, request_key="racing")
    assert locks.answer == first and first.status is BookingStatus.CONFIRMED
    assert (holds_placed(app), ledger_holds(app)) == (1, 1)
    assert failing(app) == set()


def test_a_copy_sent_after_the_first_died_before_writing_books_at_once(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    """A process killed between its claim and its commit leaves the claim pending (nothing releases
    it); the driver's copy must not be told the slot is taken by its own dead request."""
    _, req = booked

    def killed(*_: object) -> None:
        raise ProcessKilled

    app.bookings.claims.release = killed  # type: ignore[method-assign, assignment]
    app.bookings.locks = CopyArrivesMidway(app.bookings.locks, killed)  # type: ignore[arg-type]
    with pytest.raises(ProcessKilled):
        app.bookings.book(req, request_key="orphaned")
    vars(app.bookings.claims).pop("release")
    assert app.bookings.book(req, request_key="orphaned").status is BookingStatus.CONFIRMED


def test_a_copy_after_the_charger_refused_the_reservation_answers_with_the_booking(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    """The first request was answered with its confirmed booking; the charger then refused the
    reservation and the booking failed. That is no refusal of the card hold: the copy answers as the
    first did, with the booking (now failed), not "nothing was booked"."""
    _, req = booked
    first = app.bookings.book(req, request_key="then-refused")
    assert first.status is BookingStatus.CONFIRMED
    app.bookings.reservation_answered(first.booking_id, "Rejected")
    again = app.bookings.book(req, request_key="then-refused")
    assert (again.booking_id, again.status) == (first.booking_id, BookingStatus.FAILED)
    assert holds_placed(app) == 1


def test_a_copy_naming_the_same_start_in_another_offset_is_the_same_request(
    app: App, booked: tuple[int, BookRequest]
) -> None:
    """An app that formats the start in local time with its offset one time and in UTC the next
    asks for the same period: the key's request is the instant, not how it was written."""
    driver, req = booked
    start = app.clock.now().replace(microsecond=0) + timedelta(hours=3)
    local = BookRequest(
        driver, req.charger_id, 1, 60, 10_000, starts_at=start.astimezone(timezone(timedelta(hours=1)))
    )
    first = app.bookings.book(local, request_key="offsets")
    utc = BookRequest(driver, req.charger_id, 1, 60, 10_000, starts_at=start)
    assert app.bookings.book(utc, request_key="offsets") == first
    assert holds_placed(app) == 1
