"""The query layer on the in-memory store: who may see which booking and session, what a booking's
view carries, and that a list of bookings costs a fixed number of reads however long it is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import NotFound
from chargeshare.domain.session import SessionStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.queries import Queries
from tests.conftest import add_charger

HOUR = timedelta(hours=1)


def driver(driver_id: int) -> Principal:
    return Principal(account_id=0, role=Role.DRIVER, driver_id=driver_id)


def host(host_id: int) -> Principal:
    return Principal(account_id=0, role=Role.HOST, host_id=host_id)


def host_of(app: App, charger_id: int) -> Principal:
    with app.store.reading() as tx:
        return host(tx.chargers.by_id(charger_id).host_id)


def book(app: App, driver_id: int, charger_id: int, in_hours: float, **kw: Any) -> int:
    starts = app.clock.now() + timedelta(hours=in_hours)
    return app.bookings.book(BookRequest(driver_id, charger_id, 1, 60, 10_000, starts, **kw)).booking_id


class _Counted:
    """A repository whose method calls are counted, by repository and method."""

    def __init__(self, name: str, inner: Any, calls: Counter[str]) -> None:
        self._name, self._inner, self._calls = name, inner, calls

    def __getattr__(self, method: str) -> Callable[..., Any]:
        fn = getattr(self._inner, method)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls[f"{self._name}.{method}"] += 1
            return fn(*args, **kwargs)

        return counted


class _CountedUnitOfWork:
    def __init__(self, inner: UnitOfWork, calls: Counter[str]) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, repository: str) -> _Counted:
        return _Counted(repository, getattr(self._inner, repository), self._calls)


class CountingStore:
    """The store, counting the units of work opened and every repository call made in them."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.units = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def reading(self) -> Iterator[UnitOfWork]:
        self.units += 1
        with self.inner.reading() as tx:
            yield _CountedUnitOfWork(tx, self.calls)

    transaction = reading

    @property
    def reads(self) -> int:
        return sum(self.calls.values())


def counted_queries(app: App) -> tuple[Queries, CountingStore]:
    store = CountingStore(app.store)
    return Queries.over(store, app.config.rules), store


# ---- tenancy -------------------------------------------------------------------------------------------
def test_a_driver_cannot_see_another_drivers_booking(app: App) -> None:
    charger = add_charger(app)
    alice = app.marketplace.add_driver("Alice", "TAG-A").driver_id
    bob = app.marketplace.add_driver("Bob", "TAG-B").driver_id
    booking = book(app, alice, charger, 1)
    views = app.queries.bookings
    assert views.get(driver(alice), booking).booking.booking_id == booking
    for ask in (views.get, views.visible, views.receipt):
        with pytest.raises(NotFound, match=f"^no booking {booking}$"):
            ask(driver(bob), booking)
    assert views.mine(driver(bob)) == []
    assert [v.booking.booking_id for v in views.mine(driver(alice))] == [booking]
    record = views.visible(driver(alice), booking)
    with pytest.raises(NotFound):  # a record a service returned is shown to its own people only
        views.of_record(driver(bob), record)


def test_a_host_sees_the_bookings_on_their_chargers_only(app: App) -> None:
    mine, theirs = add_charger(app, "CP1"), add_charger(app, "CP2")
    d = app.marketplace.add_driver("Dev", "TAG").driver_id
    on_mine, on_theirs = book(app, d, mine, 1), book(app, d, theirs, 3)
    me = host_of(app, mine)
    assert [v.booking.booking_id for v in app.queries.bookings.mine(me)] == [on_mine]
    assert app.queries.bookings.get(me, on_mine).booking.charger_id == mine
    with pytest.raises(NotFound):
        app.queries.bookings.get(me, on_theirs)
    admin = Principal(account_id=0, role=Role.ADMIN)
    assert app.queries.bookings.get(admin, on_theirs).booking.booking_id == on_theirs


def test_a_driver_cannot_see_another_drivers_session(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    alice = app.marketplace.add_driver("Alice", "TAG-A").driver_id
    bob = app.marketplace.add_driver("Bob", "TAG-B").driver_id
    booking = book(app, alice, charger, 0)
    session = app.charging.start("CP1", 1, "TAG-A", 1_000, clock.now()).transaction_id
    app.charging.meter("CP1", session, 3_000)
    seen = app.queries.sessions.get(driver(alice), session)
    assert (seen.booking_id, seen.charger_id, seen.status, seen.energy_wh) == (
        booking,
        charger,
        SessionStatus.CHARGING,
        2_000,
    )
    assert seen.cost == 60  # 2 kWh at 30p so far
    with pytest.raises(NotFound, match=f"^no session {session}$"):
        app.queries.sessions.get(driver(bob), session)
    with pytest.raises(NotFound, match=r"^no session 999$"):
        app.queries.sessions.get(driver(alice), 999)
    assert app.queries.sessions.mine(driver(bob)) == []
    assert [s.session_id for s in app.queries.sessions.mine(host_of(app, charger), live=True)] == [session]


# ---- what a booking's view carries ----------------------------------------------------------------------
def test_a_bookings_view_carries_its_session_receipt_notes_and_override(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    with app.store.transaction() as tx:
        tx.chargers.set_access_notes(charger, "gate 1234")
    d = app.marketplace.add_driver("Dev", "TAG").driver_id
    done = book(app, d, charger, 0)
    later = book(app, d, charger, 3, override_smart_charging=True)
    session = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    views = app.queries.bookings
    with pytest.raises(NotFound, match=f"^booking {done} has no receipt yet$"):
        views.receipt(driver(d), done)
    clock.advance(1_800)
    app.charging.stop("CP1", session, 10_000, clock.now())  # 10 kWh at 30p
    by_id = {v.booking.booking_id: v for v in views.mine(driver(d))}
    assert list(by_id) == [later, done]  # newest first
    finished, coming = by_id[done], by_id[later]
    assert finished.booking.status is BookingStatus.COMPLETED
    assert finished.session_id == session
    assert finished.receipt is not None and (finished.receipt.energy_wh, finished.receipt.cost) == (
        10_000,
        300,
    )
    assert finished.receipt == views.receipt(driver(d), done)
    assert finished.access_notes is None  # notes go with a live booking only
    assert not finished.override_smart_charging
    assert (coming.session_id, coming.receipt, coming.access_notes) == (None, None, "gate 1234")
    assert coming.override_smart_charging
    assert views.get(driver(d), later) == coming


# ---- reads ---------------------------------------------------------------------------------------------
def _bookings(app: App, clock: ManualClock, n: int) -> Principal:
    """A driver with n bookings on two chargers (one with access notes), the first charged and paid."""
    first, second = add_charger(app, "CP1"), add_charger(app, "CP2")
    with app.store.transaction() as tx:
        tx.chargers.set_access_notes(first, "gate 1234")
    d = app.marketplace.add_driver("Dev", "TAG").driver_id
    book(app, d, first, 0)
    session = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    app.charging.stop("CP1", session, 5_000, clock.now() + HOUR / 2)
    for i in range(1, n):
        book(app, d, (first, second)[i % 2], 2 * i, override_smart_charging=i % 3 == 0)
    return driver(d)


@pytest.mark.parametrize("n", [2, 12])
def test_listing_bookings_reads_a_fixed_number_of_times_however_many_there_are(
    app: App, clock: ManualClock, n: int
) -> None:
    who = _bookings(app, clock, n)
    queries, store = counted_queries(app)
    views = queries.bookings.mine(who)
    assert len(views) == n and sum(v.receipt is not None for v in views) == 1
    assert store.units == 1
    # bookings, their sessions, the paid ones' journal entries, access notes, overrides
    assert store.reads <= 5, store.calls


@pytest.mark.parametrize("n", [2, 12])
def test_listing_sessions_reads_a_fixed_number_of_times(app: App, clock: ManualClock, n: int) -> None:
    who = _bookings(app, clock, n)
    queries, store = counted_queries(app)
    assert len(queries.sessions.mine(who)) == 1
    assert store.units == 1 and store.reads <= 2, store.calls


def test_a_list_of_views_matches_the_views_one_by_one(app: App, clock: ManualClock) -> None:
    who = _bookings(app, clock, 6)
    listed = app.queries.bookings.mine(who)
    assert listed == [app.queries.bookings.get(who, v.booking.booking_id) for v in listed]
