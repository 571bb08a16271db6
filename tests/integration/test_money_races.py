"""Requests racing each other on PostgreSQL (READ COMMITTED, real concurrency): a booking cancelled
by its driver and its host at once, payouts asked for at once, several outbox workers at once. Each
race must end as if the requests had come one after another."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import ConcurrentChange, InvalidTransition, RequestInProgress
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.settlement import SettlementService
from tests.conftest import REDIS_URL, T0, add_charger
from tests.services.test_export_payouts import exported

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url: str) -> Iterator[App]:
    app = build(
        Config(database_url=postgres_url, locks_enabled=False, password_hash="fast"), clock=ManualClock(T0)
    )
    yield app
    app.close()


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each result, or the exception it raised."""
    start = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        start.wait()
        try:
            out[i] = call()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    return out


def assert_invariants(app: App) -> None:
    failing = [
        r for r in check_store(app.store, app.config.rules, now=app.clock.now(), final=False) if not r.ok
    ]
    assert not failing, failing


def test_driver_and_host_cancelling_at_once_cancel_once(pg: App) -> None:
    charger = add_charger(pg, price=40)
    driver = pg.marketplace.add_driver("D", "TAG").driver_id
    with pg.store.reading() as tx:
        host = tx.chargers.by_id(charger).host_id
    for _ in range(10):
        booking = pg.bookings.book(BookRequest(driver, charger, 1, 60, 5_000)).booking_id
        as_driver = functools.partial(pg.bookings.cancel, booking, driver_id=driver)
        as_host = functools.partial(pg.bookings.cancel, booking, host_id=host)
        results = at_once(as_driver, as_host)
        won = [r for r in results if not isinstance(r, Exception)]
        lost = [r for r in results if isinstance(r, Exception)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], ConcurrentChange | InvalidTransition), lost
        with pg.store.reading() as tx:
            steps = Counter(i.step for i in tx.outbox.all() if i.booking_id == booking)
        assert steps["fee"] + steps["release"] == 1, steps
    assert_invariants(pg)
    gateway = pg.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.open_authorisations() == {}


def test_payouts_asked_for_at_once_pay_each_host_once(pg: App) -> None:
    clock = pg.clock
    assert isinstance(clock, ManualClock)
    charger = add_charger(pg, price=50)
    driver = pg.marketplace.add_driver("D", "TAG").driver_id
    booking = pg.bookings.book(BookRequest(driver, charger, 1, 60, 30_000))
    clock.advance(60)
    session = pg.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    pg.charging.stop("CP1", session, 20_000, clock.now())  # 1000p: the host earns 850p
    pg.hosting.set_kyc(booking.host_id, KycStatus.VERIFIED)
    runs = at_once(*[pg.settlement.pay_out_hosts for _ in range(8)])
    assert not [r for r in runs if isinstance(r, Exception)], runs
    paid = [pence for r in runs for pence in r.paid.values()]
    assert paid == [850], paid
    assert_invariants(pg)


class CountingGateway:
    def __init__(self, inner: SimulatedGateway) -> None:
        self.inner, self.captures = inner, Counter[str]()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def capture(self, **kw: Any) -> None:
        with self._lock:
            self.captures[kw["idempotency_key"]] += 1
        self.inner.capture(**kw)


def test_several_outbox_workers_work_each_step_once(pg: App) -> None:
    clock = pg.clock
    assert isinstance(clock, ManualClock)
    gateway = pg.gateway
    assert isinstance(gateway, SimulatedGateway)
    pg.settlement.on_queued = lambda _booking: None  # queued only: the workers below take them
    costs = 0
    for i in range(12):
        cp = f"CP{i}"
        charger = add_charger(pg, cp, price=30)
        driver = pg.marketplace.add_driver(f"D{i}", f"T{i}").driver_id
        pg.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
        session = pg.charging.start(cp, 1, f"T{i}", 0, clock.now()).transaction_id
        pg.charging.stop(cp, session, 800 * (i + 1), clock.now())  # within each hold
        costs += 24 * (i + 1)
    counting = CountingGateway(gateway)
    workers = [
        SettlementService(pg.store, counting, pg.bus, clock, pg.config.rules, worker=f"w{n}")
        for n in range(3)
    ]

    def drain(worker: SettlementService) -> int:
        done = 0
        for _ in range(100):  # bounded: each round claims one step
            run = worker.process_due(limit=1)
            if not (run.done or run.retried or run.lost):
                break
            done += run.done
        return done

    results = at_once(*[lambda w=w: drain(w) for w in workers])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 12
    assert set(counting.captures.values()) == {1} and len(counting.captures) == 12  # each worked once
    assert gateway.total_captured == costs
    assert_invariants(pg)


class PausesAfterARead:
    """The store, but one thread's unit of work stops right after it reads a session or a booking
    (`repository`), until told to go on: another unit of work can commit in between, as READ
    COMMITTED allows."""

    def __init__(self, inner: Any, repository: str, thread: Callable[[], bool]) -> None:
        self.inner, self.repository, self.paused_thread = inner, repository, thread
        self.read, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            if self.paused_thread():
                repository = getattr(tx, self.repository)
                get = repository.get

                def get_then_wait(key: int) -> Any:
                    record = get(key)
                    self.read.set()
                    assert self.go.wait(30), "never told to go on"
                    return record

                repository.get = get_then_wait
            yield tx


@pytest.mark.parametrize("paused_after", ["sessions", "bookings"])
def test_a_stop_racing_the_lost_stop_close_bills_the_session_once(pg: App, paused_after: str) -> None:
    """The housekeeping sweep closes a session taken as lost while the charger's own stop is being
    applied (in another process, say). Whichever commits first bills it; the other changes nothing
    and is still answered Accepted, so the capture queued with the first is the session's cost."""
    clock = pg.clock
    assert isinstance(clock, ManualClock)
    charger = add_charger(pg, price=40)
    driver = pg.marketplace.add_driver("D", "TAG").driver_id
    booking = pg.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    clock.advance(60)
    session = pg.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    pg.charging.meter("CP1", session, 2_000)
    pg.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)  # freed: its stop is awaited
    clock.advance(pg.config.rules.lost_stop_grace_s + 1)
    charger_thread: list[threading.Thread] = []
    store = PausesAfterARead(pg.store, paused_after, lambda: threading.current_thread() in charger_thread)
    pg.charging.store = store
    answers: list[Any] = []
    stop = threading.Thread(
        target=lambda: answers.append(pg.charging.stop("CP1", session, 3_000, clock.now()))
    )
    charger_thread.append(stop)
    stop.start()
    assert store.read.wait(30), "the charger's stop never read its session"
    assert pg.charging.close_lost_stops() == [session]  # commits while the stop waits
    store.go.set()
    stop.join(30)
    assert not stop.is_alive() and answers == [AuthStatus.ACCEPTED]
    with pg.store.reading() as tx:
        record = tx.sessions.get(session)
        (capture,) = [i for i in tx.outbox.all() if i.booking_id == booking and i.step == "capture"]
    assert record is not None and (record.billed_wh, record.cost) == (2_000, 80)  # its last reading
    assert capture.amount == record.cost
    # The stop came late, after the close's capture: its reading is kept, its 1,000 Wh unbilled.
    assert record.late_stop_wh == 3_000
    pg.settlement.process_due()
    assert_invariants(pg)


@pytest.fixture(params=["database alone", pytest.param("redis claims", marks=pytest.mark.redis)])
def pg_booking(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[App]:
    """PostgreSQL alone, or with the connector locks and slot claims in a real Redis in front."""
    if request.param == "database alone":
        yield request.getfixturevalue("pg")
        return
    request.getfixturevalue("redis_client")  # skips when there is no Redis
    config = Config(database_url=postgres_url, redis_url=REDIS_URL, password_hash="fast")
    app = build(config, clock=ManualClock(T0))
    yield app
    app.close()


def test_copies_of_one_booking_request_racing_book_and_hold_once(pg_booking: App) -> None:
    """An app that sends its request again while the first is still running (its answer seemed
    lost): the database tells the copies apart, and a slot claim in front must not refuse a copy
    of the request that holds it."""
    pg = pg_booking
    charger = add_charger(pg, price=40)
    driver = pg.marketplace.add_driver("D", "TAG").driver_id
    for attempt in range(10):
        req = BookRequest(driver, charger, 1, 30, 5_000, starts_at=T0 + timedelta(hours=attempt))
        book = functools.partial(pg.bookings.book, req, request_key=f"attempt-{attempt}")
        results = at_once(book, book, book)
        made = {r.booking_id for r in results if not isinstance(r, Exception)}
        # Each copy gets the booking, or is told the first is still placing its hold; never another.
        assert len(made) == 1, results
        assert all(isinstance(r, RequestInProgress) for r in results if isinstance(r, Exception)), results
        assert pg.bookings.book(req, request_key=f"attempt-{attempt}").booking_id in made
    with pg.store.reading() as tx:
        assert len(tx.bookings.all()) == 10
    gateway = pg.gateway
    assert isinstance(gateway, SimulatedGateway) and len(gateway.holds) == 10
    assert_invariants(pg)


def test_export_payouts_asked_for_at_once_pay_each_driver_once(pg: App) -> None:
    clock = pg.clock
    assert isinstance(clock, ManualClock)
    exported(pg, clock)
    runs = at_once(*[pg.settlement.pay_out_export_credits for _ in range(8)])
    assert not [r for r in runs if isinstance(r, Exception)], runs
    paid = [pence for r in runs for pence in r.paid.values()]
    assert paid == [83], paid
    assert pg.settlement.pay_out_export_credits().paid == {}
    assert_invariants(pg)
