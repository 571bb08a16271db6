"""The money path where it can break in between: a stop and its capture commit together; a hold's
placement is recorded before the provider is asked, and recovery voids one whose request died; a
cancellation while the hold is placed gives the authorisation back; the invariants see each."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.last_seen import WriteBehindLastSeen
from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import ConcurrentChange, PaymentUnavailable
from chargeshare.domain.session import SessionStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import ChargingService
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import SessionClosedWithoutStop
from chargeshare.services.invariants import check_store, provider_agrees_with_ledger
from chargeshare.services.ports import HoldResult, Store, UnitOfWork
from chargeshare.services.records import BookingRecord, SessionRecord
from chargeshare.services.settlement import SettlementService
from tests.conftest import add_charger


class WorkerKilled(BaseException):
    """Stands in for the process dying: not an Exception, so nothing on the way catches it."""


def gateway(app: App) -> SimulatedGateway:
    assert isinstance(app.gateway, SimulatedGateway)
    return app.gateway


def failing(app: App) -> set[str]:
    results = check_store(app.store, app.config.rules, now=app.clock.now(), final=False)
    with app.store.reading() as tx:
        entries = tx.ledger.entries()
    g = gateway(app)
    results += provider_agrees_with_ledger(entries, g.total_captured, g.open_authorisations())
    return {r.name for r in results if not r.ok}


class OutboxFailsOnce:
    """The store, but the next payment step queued makes its unit of work fail (a full disk, a lost
    connection): whatever else that unit wrote must roll back with it."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.armed = inner, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        with self.inner.transaction() as tx:
            if self.armed:
                enqueue = tx.outbox.enqueue

                def failing(*args: Any, **kw: Any) -> bool:
                    self.armed = False
                    enqueue(*args, **kw)
                    raise OSError("disk full")

                tx.outbox.enqueue = failing  # type: ignore[method-assign]
            yield tx


def test_a_stop_and_its_capture_commit_together(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, price=40)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    app.charging.store = OutboxFailsOnce(app.store)
    with pytest.raises(OSError):
        app.charging.stop("CP1", tx_id, 6_000, clock.now())  # the charger gets no answer
    with app.store.reading() as tx:
        session = tx.sessions.get(tx_id)
        assert session is not None and session.status is SessionStatus.CHARGING  # nothing half-done
        assert tx.outbox.get(f"booking:{booking}:capture") is None
    # The charger sends its stop again: now it is stopped, and captured, once.
    assert app.charging.stop("CP1", tx_id, 6_000, clock.now()).value == "Accepted"
    assert gateway(app).total_captured == 200
    assert failing(app) == set()


class DiesAt:
    """The real gateway; the process dies right after the provider has done `call`."""

    def __init__(self, inner: SimulatedGateway, call: str) -> None:
        self.inner, self.call = inner, call

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def authorize(self, **kw: Any) -> HoldResult:
        result = self.inner.authorize(**kw)
        if self.call == "authorize":
            raise WorkerKilled
        return result


@pytest.mark.parametrize("dies", ["before the provider is asked", "after the provider authorised"])
def test_a_placement_whose_request_died_is_voided_by_recovery(
    app: App, clock: ManualClock, dies: str
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    real = gateway(app)
    app.settlement.gateway = DiesAt(real, "authorize")
    if dies == "before the provider is asked":
        app.settlement.authorize = lambda *a: (_ for _ in ()).throw(WorkerKilled())  # type: ignore[method-assign]
    with pytest.raises(WorkerKilled):
        app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    with app.store.reading() as tx:
        (booking,) = tx.bookings.all()
    assert booking.status is BookingStatus.REQUESTED  # the slot is held while the placement may finish
    opened = dies == "after the provider authorised"
    assert bool(real.open_authorisations()) == opened
    if opened:  # an authorisation the ledger knows nothing of
        assert "provider_holds_match_ledger" in failing(app)
    # A restarted process: its worker takes the placement over once the placement timeout has passed.
    restarted = SettlementService(app.store, real, app.bus, clock, app.config.rules, worker="after-restart")
    assert restarted.process_due().done == 0  # not yet: the request might still finish it
    clock.advance(app.config.rules.hold_placement_timeout_s + 1)
    assert "no_stale_placement" in failing(app)
    assert restarted.process_due().done == 1
    with app.store.reading() as tx:
        assert tx.bookings.get(booking.booking_id).status is BookingStatus.FAILED  # the slot is free
    assert real.open_authorisations() == {}
    assert [h.state for h in real.holds.values()] == ["released"]  # whether or not it was made before
    assert failing(app) == set()
    # The freed slot can be booked again.
    app.settlement.gateway = real
    vars(app.settlement).pop("authorize", None)
    assert app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).status is BookingStatus.CONFIRMED


def test_a_slow_placement_taken_over_by_this_processs_own_sweep_is_not_confirmed_as_well(
    app: App, clock: ManualClock
) -> None:
    """A request thread and the payments worker share one process. Once the worker has claimed a
    placement that took too long, the request must not confirm the booking in the moment before the
    worker voids the authorisation at the provider."""
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    authorize, void_placement = app.settlement.authorize, app.settlement._void_placement
    claimed, go_on = threading.Event(), threading.Event()
    recovery = threading.Thread(target=app.settlement.process_due)

    def worker_voids(item: Any, booking: Any) -> None:
        claimed.set()
        assert go_on.wait(10)
        void_placement(item, booking)

    def slow(booking_id: int, driver_id: int, amount: int) -> Any:
        placement = authorize(booking_id, driver_id, amount)
        clock.advance(app.config.rules.hold_placement_timeout_s + 1)
        recovery.start()  # the worker takes the placement over...
        assert claimed.wait(10)
        return placement  # ...and the request answers just after its claim

    app.settlement.authorize = slow  # type: ignore[method-assign]
    app.settlement._void_placement = worker_voids  # type: ignore[method-assign]
    try:
        with pytest.raises(PaymentUnavailable):
            app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    finally:
        go_on.set()
        recovery.join(10)
    with app.store.reading() as tx:
        (booking,) = tx.bookings.all()
        assert booking.status is BookingStatus.FAILED
        assert tx.ledger.entries() == []
    assert gateway(app).open_authorisations() == {}
    assert failing(app) == set()


def test_a_booking_cancelled_while_its_hold_is_placed_gives_the_authorisation_back(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    authorize = app.settlement.authorize

    def meanwhile_cancelled(booking_id: int, driver_id: int, amount: int) -> Any:
        placement = authorize(booking_id, driver_id, amount)
        app.bookings.cancel(booking_id, driver_id=driver_id)  # the driver gave up waiting
        return placement

    app.settlement.authorize = meanwhile_cancelled  # type: ignore[method-assign]
    with pytest.raises(ConcurrentChange):
        app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    with app.store.reading() as tx:
        (booking,) = tx.bookings.all()
        assert (booking.status, booking.fee) == (BookingStatus.CANCELLED, 0)
        assert tx.ledger.entries() == []
    assert gateway(app).open_authorisations() == {}
    assert failing(app) == set()


def test_a_stopped_session_without_its_capture_step_is_an_invariant_failure(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    app.settlement.queue_capture = lambda *a: None  # type: ignore[method-assign]  # a stop that queues no capture
    app.charging.stop("CP1", tx_id, 1_000, clock.now())
    assert "one_settlement_per_stopped_session" in failing(app)
    with app.store.reading() as tx:
        assert tx.bookings.get(booking).status is BookingStatus.COMPLETED


def charging_session(app: App, clock: ManualClock) -> int:
    """A driver booked CP1's connector a minute ago and is charging from a 1,000 Wh register."""
    charger = add_charger(app, price=40)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    clock.advance(60)
    tx_id: int = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    return tx_id


def test_a_connector_reported_free_closes_its_session_only_after_the_grace(
    app: App, clock: ManualClock
) -> None:
    tx_id = charging_session(app, clock)
    app.charging.meter("CP1", tx_id, 1_300)
    lost: list[SessionClosedWithoutStop] = []
    app.bus.subscribe(SessionClosedWithoutStop, lost.append)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)  # unplugged; the stop is on its way
    grace = app.config.rules.lost_stop_grace_s
    clock.advance(grace - 1)
    assert app.charging.close_lost_stops() == []
    app.charging.status("CP1", 1, ConnectorStatus.CHARGING)  # plugged in again: not free after all
    clock.advance(grace + 1)
    assert app.charging.close_lost_stops() == []
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(grace)
    # The stop never came (a reboot lost its queue): closed on the last reading, told once.
    assert app.charging.close_lost_stops() == [tx_id]
    assert app.charging.close_lost_stops() == []
    with app.store.reading() as tx:
        session = tx.sessions.get(tx_id)
    assert session is not None and session.status is SessionStatus.STOPPED and session.billed_wh == 300
    assert [e.session_id for e in lost] == [tx_id]
    # A stop that arrives after all is a repeat: acknowledged, billed nothing more.
    assert app.charging.stop("CP1", tx_id, 5_000, clock.now()).value == "Accepted"
    assert gateway(app).total_captured == 12
    assert failing(app) == set()


@pytest.mark.parametrize(
    "after", [ConnectorStatus.RESERVED, ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED]
)
def test_a_free_connector_reported_reserved_or_out_of_service_keeps_its_session_freed(
    app: App, clock: ManualClock, after: ConnectorStatus
) -> None:
    """Only a report of the connector in use says a car is back; reserved for the next booking,
    made unavailable or faulted after it was free, the lost stop is still swept."""
    tx_id = charging_session(app, clock)
    app.charging.meter("CP1", tx_id, 1_300)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    app.charging.status("CP1", 1, after)
    clock.advance(app.config.rules.lost_stop_grace_s)
    assert app.charging.close_lost_stops() == [tx_id]
    assert failing(app) == set()


def test_a_stop_queued_behind_the_sessions_own_readings_is_waited_for_while_they_arrive(
    app: App, clock: ManualClock
) -> None:
    """Firmware replaying a queue sends a connector's Available at once and its stop after the
    readings queued ahead of it: each reading of the freed session still arriving shows the stop is
    behind it, so the grace counts from the latest one, not from the Available."""
    tx_id = charging_session(app, clock)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)  # unplugged mid-replay
    grace = app.config.rules.lost_stop_grace_s
    for register in (1_100, 1_200, 1_300):  # the replay goes on, slowly
        clock.advance(grace - 1)
        app.charging.meter("CP1", tx_id, register)
        assert app.charging.close_lost_stops() == []
    clock.advance(grace - 1)
    assert app.charging.close_lost_stops() == []
    assert app.charging.stop("CP1", tx_id, 1_400, clock.now()).value == "Accepted"  # billed in full
    with app.store.reading() as tx:
        session = tx.sessions.get(tx_id)
    assert session is not None and session.billed_wh == 400
    # A charger that goes quiet after its last reading still has its session closed a grace later.
    other = charging_session_on(app, clock, "CP2", "TAG2")
    app.charging.status("CP2", 1, ConnectorStatus.AVAILABLE)
    clock.advance(grace - 1)
    app.charging.meter("CP2", other, 1_500)
    clock.advance(grace)
    assert app.charging.close_lost_stops() == [other]


def charging_session_on(app: App, clock: ManualClock, cp_id: str, tag: str) -> int:
    charger = add_charger(app, cp_id, price=40)
    driver = app.marketplace.add_driver(tag, tag).driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    clock.advance(60)
    tx_id: int = app.charging.start(cp_id, 1, tag, 1_000, clock.now()).transaction_id
    return tx_id


def test_a_process_just_started_gives_a_stop_sent_while_none_was_up_the_whole_grace(
    app: App, clock: ManualClock
) -> None:
    tx_id = charging_session(app, clock)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)  # then the process dies: the stop is queued
    grace = app.config.rules.lost_stop_grace_s
    clock.advance(grace - 60)  # the backend is down all this time
    last_seen = WriteBehindLastSeen(app.store, every=timedelta(minutes=1))
    restarted = ChargingService(app.store, app.settlement, app.bus, clock, app.config.rules, last_seen)
    clock.advance(120)  # freed longer ago than the grace, but this process has heard nothing yet
    assert restarted.close_lost_stops() == []
    assert restarted.stop("CP1", tx_id, 1_900, clock.now()).value == "Accepted"  # replayed: billed right
    with app.store.reading() as tx:
        session = tx.sessions.get(tx_id)
    assert session is not None and session.billed_wh == 900
    clock.advance(grace)
    assert restarted.close_lost_stops() == []


class ReadsFromBefore:
    """The store, but a session or booking is read as it was at `records`: what a unit of work sees
    when it read those rows just before another committed (READ COMMITTED on PostgreSQL)."""

    def __init__(self, inner: Store, session: SessionRecord, booking: BookingRecord) -> None:
        self.inner, self.session, self.booking = inner, session, booking

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        with self.inner.transaction() as tx:
            tx.sessions.get = lambda session_id: self.session  # type: ignore[method-assign]
            tx.bookings.get = lambda booking_id: self.booking  # type: ignore[method-assign]
            yield tx


def test_a_stop_that_read_its_session_before_the_lost_stop_close_committed_changes_nothing(
    app: App, clock: ManualClock
) -> None:
    """The interleaving `tests/integration/test_money_races.py` forces on PostgreSQL, on the fake:
    the charger's stop read the session charging, the sweep's lost-stop close committed, then the stop
    writes. Only the close bills it, so the capture queued with it is the session's cost."""
    charger = add_charger(app, price=40)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    app.charging.meter("CP1", tx_id, 2_000)
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(app.config.rules.lost_stop_grace_s + 1)
    with app.store.reading() as tx:
        session, record = tx.sessions.get(tx_id), tx.bookings.get(booking)
    assert session is not None
    assert app.charging.close_lost_stops() == [tx_id]  # billed 2000 Wh: 80p
    store = app.charging.store
    app.charging.store = ReadsFromBefore(store, session, record)
    assert app.charging.stop("CP1", tx_id, 3_000, clock.now()).value == "Accepted"
    app.charging.store = store
    with app.store.reading() as tx:
        stopped = tx.sessions.get(tx_id)
    assert stopped is not None and (stopped.billed_wh, stopped.cost) == (2_000, 80)
    assert gateway(app).total_captured == 80
    assert failing(app) == set()
