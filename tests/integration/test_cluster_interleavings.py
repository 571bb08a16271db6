"""Two server processes on one PostgreSQL database (two apps, each with its own connections), their
steps interleaved deterministically: one unit of work is stopped right after a read while the other
process's step runs to its commit, as READ COMMITTED allows. Each interleaving must end as if the
steps had run one after the other."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import CHARGER_OFFLINE, AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import ChargerOffline
from chargeshare.services.invariants import check_store
from tests.conftest import T0, add_charger, sql_store
from tests.integration.pausing import PausesAfter, PausesBeforeCommit, lock_waits
from tests.services.test_pricing_service import DYNAMIC, CalmGrid

pytestmark = pytest.mark.postgres


@pytest.fixture
def nodes(postgres_url: str) -> Iterator[tuple[App, App]]:
    """Two processes' apps on one database, on one clock."""
    clock = ManualClock(T0)
    config = Config(database_url=postgres_url, locks_enabled=False, password_hash="fast")
    a = build(config, clock=clock)
    b = build(config, clock=clock)
    yield a, b
    b.close()
    a.close()


class RunsBetween:
    """The store, but its next unit of work runs `between` right after its `nth` read from
    `repository` (`method`), before anything else: another process's step commits in between.
    With `reading`, the unit of work watched is a read-only one (`store.reading()`)."""

    def __init__(
        self,
        inner: Any,
        repository: str,
        method: str,
        between: Callable[[], object],
        *,
        nth: int = 1,
        reading: bool = False,
    ) -> None:
        self.inner, self.repository, self.method, self.between = inner, repository, method, between
        self.ran, self.reads, self.nth, self.in_reading = False, 0, nth, reading

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            yield tx if self.in_reading else self._watch(tx)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        with self.inner.reading() as tx:
            yield self._watch(tx) if self.in_reading else tx

    def _watch(self, tx: Any) -> Any:
        if not self.ran:
            repository = getattr(tx, self.repository)
            read = getattr(repository, self.method)

            def read_then_interleave(*args: Any, **kwargs: Any) -> Any:
                found = read(*args, **kwargs)
                self.reads += 1
                if not self.ran and self.reads == self.nth:
                    self.ran = True
                    self.between()
                return found

            setattr(repository, self.method, read_then_interleave)
        return tx


def offline_notices(app: App) -> int:
    with app.store.reading() as tx:
        return sum(1 for n in tx.notifications.all() if n["kind"] == CHARGER_OFFLINE)


def test_two_processes_marking_a_charger_offline_at_once_tell_its_host_once(nodes: tuple[App, App]) -> None:
    """A's watchdog judges the charger silent while B's link to it closes (or B's watchdog runs
    too): both read it online, and only the one that flips it may notify its host and announce it."""
    a, b = nodes
    add_charger(a, "CP1")
    offline_events: list[ChargerOffline] = []
    for app in (a, b):
        app.bus.subscribe(ChargerOffline, offline_events.append)
    a.charging.store = RunsBetween(a.store, "chargers", "get", lambda: b.charging.disconnected("CP1"))
    a.charging.disconnected("CP1")
    with a.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.OFFLINE
    assert offline_notices(a) == 1
    assert len(offline_events) == 1


SILENCE_S = 3 * 300 + 1  # past the default watchdog cut-off (3 heartbeat intervals)


def advance(app: App, seconds: int) -> None:
    assert isinstance(app.clock, ManualClock)
    app.clock.advance(seconds)


def test_a_charger_heard_after_the_watchdog_read_it_silent_stays_online(nodes: tuple[App, App]) -> None:
    """A's watchdog reads CP1 as silent; before it writes CP1 offline, CP1's heartbeat reaches B
    (which has not seen it, so stamps it at once) and commits. CP1 must stay online, its host untold."""
    a, b = nodes
    add_charger(a, "CP1")
    advance(a, SILENCE_S)
    a.charging.store = RunsBetween(a.store, "chargers", "silent", lambda: b.charging.heartbeat("CP1"))
    assert a.charging.watchdog() == []
    with a.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE
    assert offline_notices(a) == 0


def test_a_charger_heard_here_but_marked_offline_elsewhere_meanwhile_comes_back(
    nodes: tuple[App, App],
) -> None:
    """A's watchdog reads CP1 silent; CP1's heartbeat then reaches A (which holds its link, so it is
    stamped in memory), and B's watchdog marks CP1 offline by its older written stamp. A, judging
    CP1 by the stamp it heard, keeps it: it must bring it back online, not write the stamp on an
    offline charger and remember it, so its later frames (stamped in memory) leave it offline."""
    a, b = nodes
    add_charger(a, "CP1")
    a.charging.heartbeat("CP1")  # known to A's memory
    advance(a, SILENCE_S)

    def heard_here_marked_there() -> None:
        a.charging.heartbeat("CP1")
        assert b.charging.watchdog() == ["CP1"]

    a.charging.store = RunsBetween(a.store, "chargers", "silent", heard_here_marked_there)
    assert a.charging.watchdog() == []
    a.charging.heartbeat("CP1")
    with a.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE


def test_a_stamp_written_behind_on_a_charger_marked_offline_elsewhere_brings_it_back(
    nodes: tuple[App, App],
) -> None:
    """A holds CP1's link and keeps its stamps in memory, written behind; B's watchdog, reading only
    the older written stamp, marks CP1 offline, and B's notice to A is lost (it is best effort).
    A's flush must not stamp the offline charger as if nothing happened: its next frame on A must
    bring it back online, or a charger that keeps talking stays offline, out of search."""
    a, b = nodes
    add_charger(a, "CP1")
    a.charging.heartbeat("CP1")  # known to A's memory
    advance(a, SILENCE_S)
    assert b.charging.watchdog() == ["CP1"]
    advance(a, 1)
    a.charging.heartbeat("CP1")  # A has not heard of the mark: stamped in memory
    a.last_seen.flush()
    a.charging.heartbeat("CP1")
    with a.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE


def test_a_stamp_flushed_late_by_a_replaced_link_does_not_set_last_seen_back(
    nodes: tuple[App, App],
) -> None:
    """CP1's link on A is replaced by one on B. A still holds CP1's last stamp in memory, written
    behind, and flushes it after B wrote the newer one at once: the stored stamp must not go back,
    or a watchdog judges CP1 silent by A's older stamp and marks a charger heard lately offline."""
    a, b = nodes
    add_charger(a, "CP1")
    a.charging.heartbeat("CP1")  # known to A's memory, written at once
    advance(a, int(a.last_seen.every.total_seconds()))
    a.charging.heartbeat("CP1")  # renewed in A's memory, not yet written
    heard_on_a = a.clock.now()
    advance(a, 120)
    b.charging.heartbeat("CP1")  # the new link: B has not seen CP1, so writes its stamp at once
    heard_on_b = b.clock.now()
    a.last_seen.flush()
    with b.store.reading() as tx:
        assert tx.chargers.get("CP1").last_seen_at == heard_on_b
    advance(a, SILENCE_S - 60)  # silent by A's stamp, not by B's
    assert heard_on_a < a.clock.now() - timedelta(seconds=SILENCE_S - 1) < heard_on_b
    assert a.charging.watchdog() == []
    with b.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE
    assert offline_notices(a) == 0


def locks_waited_on(app: App) -> int:
    return lock_waits(sql_store(app).engine)


def until_a_lock_is_waited_on(app: App, waiter: threading.Thread, what: str) -> None:
    """Returns once a transaction on the database waits on a row lock; fails if `waiter`, the
    thread expected to wait, ends first or none waits within 30 s."""
    deadline = time.monotonic() + 30
    while not locks_waited_on(app):
        assert waiter.is_alive() and time.monotonic() < deadline, f"{what} never waited on the row"
        time.sleep(0.01)


def test_the_watchdog_waiting_on_a_heartbeat_rechecks_it_after_the_wait(nodes: tuple[App, App]) -> None:
    """CP1's heartbeat on B has stamped it but not committed when A's watchdog, which read it silent,
    writes it offline: A's write waits on the row, and once the stamp commits it must find CP1 heard."""
    a, b = nodes
    add_charger(a, "CP1")
    advance(a, SILENCE_S)
    paused = PausesBeforeCommit(b.store, lambda: threading.current_thread().name == "heartbeat")
    b.charging.store = paused
    heartbeat = threading.Thread(target=b.charging.heartbeat, args=("CP1",), name="heartbeat")
    heartbeat.start()
    assert paused.reached.wait(30)
    marked: list[str] = []
    watchdog = threading.Thread(target=lambda: marked.extend(a.charging.watchdog()))
    watchdog.start()
    until_a_lock_is_waited_on(a, watchdog, "the watchdog")  # A's UPDATE, on the row B's stamp holds
    paused.go.set()
    heartbeat.join(30)
    watchdog.join(30)
    assert not watchdog.is_alive() and not heartbeat.is_alive()
    assert marked == []
    with a.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE
    assert offline_notices(a) == 0


def test_a_heartbeat_waiting_on_the_watchdogs_write_brings_the_charger_back(nodes: tuple[App, App]) -> None:
    """A's watchdog has written CP1 offline but not committed when CP1, reconnected to B after a
    silence, sends its first heartbeat there (B has no stamp of it, so writes one at once): B read
    CP1 online and its stamp waits on the row. Once A commits, B's stamp must find CP1 offline and
    bring it back, or B's later frames (stamped in memory) leave a talking charger offline."""
    a, b = nodes
    add_charger(a, "CP1")
    advance(a, SILENCE_S)

    def in_watchdog() -> bool:
        return threading.current_thread().name == "watchdog"

    paused = PausesAfter(a.store, in_watchdog, "chargers", "set_status")
    a.charging.store = paused
    marked: list[str] = []
    watchdog = threading.Thread(target=lambda: marked.extend(a.charging.watchdog()), name="watchdog")
    watchdog.start()
    assert paused.reached.wait(30)
    heartbeat = threading.Thread(target=b.charging.heartbeat, args=("CP1",), name="heartbeat")
    heartbeat.start()
    until_a_lock_is_waited_on(a, heartbeat, "the heartbeat")  # B's stamp, on the row A's watchdog holds
    paused.go.set()
    watchdog.join(30)
    heartbeat.join(30)
    assert not watchdog.is_alive() and not heartbeat.is_alive()
    assert marked == ["CP1"]
    b.charging.heartbeat("CP1")
    with a.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE


def reservation(app: App, booking_id: int) -> str:
    with app.store.reading() as tx:
        return tx.bookings.get(booking_id).reservation


def a_booking_reserved_soon(app: App) -> int:
    """A confirmed booking starting within the lead time on a charger no link holds: its ReserveNow
    is decided ("sent") and on its way."""
    charger = add_charger(app, "CP1")
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = app.clock.now() + timedelta(minutes=5)
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=starts))
    assert booking.reservation == "sent"
    return booking.booking_id


def test_a_reservenow_given_up_on_one_process_keeps_the_answer_another_recorded(
    nodes: tuple[App, App],
) -> None:
    """B's ReserveNow got no answer (the charger moved to C as it was sent); meanwhile C sent the
    reservation again on the charger's connecting, and its Accepted is recorded. B's "unanswered"
    must not overwrite it: the charger holds the reservation, and a cancellation must reach it."""
    b, c = nodes
    booking = a_booking_reserved_soon(b)
    b.bookings.store = RunsBetween(
        b.store, "bookings", "get", lambda: c.bookings.reservation_answered(booking, "Accepted")
    )
    assert not b.bookings.reservation_unanswered(booking)
    assert reservation(b, booking) == "accepted"
    with c.store.reading() as tx:
        driver = tx.bookings.get(booking).driver_id
    c.bookings.cancel(booking, driver_id=driver)
    assert [e.booking_id for e in c.bookings.cancellations_unanswered("CP1")] == [booking]


def test_reconcile_racing_a_worker_leaves_a_finished_step_finished(nodes: tuple[App, App]) -> None:
    """The operator reconciles on A while B's payments worker works the outbox: a step A read as
    pending and unclaimed is finished by B before A puts it back to work. A must not make it pending
    again: the capture would be worked a second time (its hold is gone by then, so it fails and ends
    a dead letter, though the money moved once)."""
    a, b = nodes
    for app in (a, b):
        app.settlement.on_queued = lambda _booking: None  # queued only: the workers below take them
    charger = add_charger(a, "CP1", price=40)
    driver = a.marketplace.add_driver("D", "TAG").driver_id
    a.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    session = a.charging.start("CP1", 1, "TAG", 0, a.clock.now()).transaction_id
    a.charging.stop("CP1", session, 2_000, a.clock.now())
    # The reconcile's first unit of work reads the dead letters, then the pending steps: B's worker
    # finishes the capture right after that second read.
    a.settlement.store = RunsBetween(a.store, "outbox", "all", lambda: b.settlement.process_due(), nth=2)
    a.settlement.reconcile()
    with a.store.reading() as tx:
        (capture,) = [i for i in tx.outbox.all() if i.step == "capture"]
    assert (capture.status, capture.attempts, capture.last_error) == ("done", 1, None)
    gateway = a.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.total_captured == 80


class StallsAfterCapturing:
    """A's provider: the capture goes through, then A stalls (a long pause, a frozen VM) past its
    lease while `meanwhile` runs: another process's worker takes the step over."""

    def __init__(self, inner: Any, meanwhile: Callable[[], None]) -> None:
        self.inner, self.meanwhile = inner, meanwhile
        self.captures: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def capture(self, **kw: Any) -> None:
        self.inner.capture(**kw)
        self.captures.append(kw["idempotency_key"])
        if len(self.captures) == 1:
            self.meanwhile()


def test_a_worker_stalled_past_its_lease_loses_the_step_to_another_process(nodes: tuple[App, App]) -> None:
    """A's worker captures at the provider, then stalls past its lease; B's worker takes the step
    over, captures under the same idempotency key and records it. A, resuming, must record
    nothing: the money moves once and the ledger holds one capture."""
    a, b = nodes
    for app in (a, b):
        app.settlement.on_queued = lambda _booking: None
    clock = a.clock
    assert isinstance(clock, ManualClock)
    charger = add_charger(a, "CP1", price=40)
    driver = a.marketplace.add_driver("D", "TAG").driver_id
    booking = a.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    session = a.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    a.charging.stop("CP1", session, 2_000, clock.now())
    taken_over: list[int] = []

    def b_takes_over() -> None:
        clock.advance(a.config.rules.payment_lease_s + 1)
        taken_over.append(b.settlement.process_due().done)

    stalling = StallsAfterCapturing(a.gateway, b_takes_over)
    a.settlement.gateway = stalling
    run = a.settlement.process_due()
    assert (run.done, run.lost, taken_over) == (0, 1, [1])
    with a.store.reading() as tx:
        (capture,) = [i for i in tx.outbox.all() if i.step == "capture"]
        captures = [e for e in tx.ledger.entries(booking) if e.entry_id == f"b{booking}:capture"]
    assert (capture.status, capture.claimed_by) == ("done", None)
    assert len(captures) == 1
    gateway = b.gateway
    assert isinstance(gateway, SimulatedGateway) and gateway.total_captured == 80
    failing = [r for r in check_store(a.store, a.config.rules, now=clock.now(), final=False) if not r.ok]
    assert not failing, failing


class SlowProvider:
    """A provider whose every capture takes `per_call_s` of the shared clock; `meanwhile` runs once,
    after the `after`-th capture, as if another process acted while this one was busy."""

    def __init__(
        self, inner: Any, clock: ManualClock, per_call_s: int, after: int, meanwhile: Callable[[], None]
    ):
        self.inner, self.clock, self.per_call_s = inner, clock, per_call_s
        self.after, self.meanwhile = after, meanwhile
        self.captures: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def capture(self, **kw: Any) -> None:
        self.clock.advance(self.per_call_s)
        self.inner.capture(**kw)
        self.captures.append(kw["idempotency_key"])
        if len(self.captures) == self.after:
            self.meanwhile()


def test_a_slow_batch_never_starts_a_step_another_worker_took_over(nodes: tuple[App, App]) -> None:
    """A's sweep works three due captures against a provider that takes 60% of a lease per call.
    While A is on its second, the lease a batch claim would have given the third has lapsed and B's
    worker claims what is due: no capture may be asked of the provider by both."""
    a, b = nodes
    for app in (a, b):
        app.settlement.on_queued = lambda _booking: None
    clock = a.clock
    assert isinstance(clock, ManualClock)
    driver = a.marketplace.add_driver("D", "TAG").driver_id
    for n in range(3):
        cp_id = f"CP{n}"
        charger = add_charger(a, cp_id, price=40)
        a.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
        session = a.charging.start(cp_id, 1, "TAG", 0, clock.now()).transaction_id
        a.charging.stop(cp_id, session, 2_000, clock.now())
    lease_s = a.config.rules.payment_lease_s
    b_provider = SlowProvider(b.gateway, clock, 0, 0, lambda: None)
    b.settlement.gateway = b_provider
    b_runs: list[int] = []
    a_provider = SlowProvider(
        a.gateway, clock, lease_s * 6 // 10, 2, lambda: b_runs.append(b.settlement.process_due().done)
    )
    a.settlement.gateway = a_provider
    a_run = a.settlement.process_due()
    assert not set(a_provider.captures) & set(b_provider.captures), (a_provider.captures, b_provider.captures)
    assert (a_run.done, a_run.lost, b_runs) == (2, 0, [1])
    with a.store.reading() as tx:
        assert [i.status for i in tx.outbox.all() if i.step == "capture"] == ["done"] * 3
    failing = [r for r in check_store(a.store, a.config.rules, now=clock.now(), final=False) if not r.ok]
    assert not failing, failing


def test_a_copy_that_misses_the_first_on_another_process_answers_with_its_booking(
    nodes: tuple[App, App],
) -> None:
    """A driver's app sends its booking again under its Idempotency-Key, with the price it accepts,
    and the copy reaches B just as A commits the first: B finds nothing under the key, then A's
    booking, which filled the area and so raised B's quote above that price. The copy must answer
    with A's booking (one booking, one hold), not tell the driver nothing was booked."""
    a, b = nodes
    for app in (a, b):
        app.pricing.signals = CalmGrid()
    charger = add_charger(a, price=40)
    with a.store.reading() as tx:
        host = tx.chargers.by_id(charger).host_id
    a.pricing.set_settings(host, DYNAMIC)
    driver = a.marketplace.add_driver("D", "TAG").driver_id
    quoted = b.pricing.quote(charger, None, 60).price.per_kwh
    req = BookRequest(driver, charger, 1, 60, 10_000, max_price_per_kwh=quoted)
    firsts: list[int] = []
    b.bookings.store = RunsBetween(
        b.store,
        "bookings",
        "request_seen",
        lambda: firsts.append(a.bookings.book(req, request_key="k1").booking_id),
        reading=True,
    )
    copy = b.bookings.book(req, request_key="k1")
    assert b.pricing.quote(charger, None, 60).price.per_kwh > quoted  # the first's booking filled the area
    assert [copy.booking_id] == firsts
    with b.store.reading() as tx:
        assert len(tx.bookings.all()) == 1
    gateway = a.gateway  # its books are in the database: both processes' provider
    assert isinstance(gateway, SimulatedGateway) and len(gateway.holds) == 1
    failing = [r for r in check_store(a.store, a.config.rules, now=a.clock.now(), final=False) if not r.ok]
    assert not failing, failing


@pytest.mark.parametrize("charger_tx", [None, "tx-1"], ids=["1.6", "2.0.1"])
def test_a_start_sent_again_on_another_process_as_the_first_commits_gets_its_answer(
    nodes: tuple[App, App], charger_tx: str | None
) -> None:
    """The charger's start reached A, its link dropped before the answer, and it sent the start again
    on its new link to B. B looks for the start and finds nothing; A then commits it, taking the
    driver's booking up. B must answer with A's session (one session, billed once), not refuse the
    start because the booking it would have taken up is taken: the charger would end the charge."""
    a, b = nodes
    charger = add_charger(a, "CP1", price=40)
    driver = a.marketplace.add_driver("D", "TAG").driver_id
    booking = a.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    at = a.clock.now()
    firsts: list[int] = []

    def a_commits_the_start() -> None:
        first = a.charging.start("CP1", 1, "TAG", 100, at, charger_tx_id=charger_tx)
        assert first.status is AuthStatus.ACCEPTED
        firsts.append(first.transaction_id)

    b.charging.store = RunsBetween(b.store, "sessions", "by_start_key", a_commits_the_start)
    again = b.charging.start("CP1", 1, "TAG", 100, at, charger_tx_id=charger_tx)
    assert (again.status, [again.transaction_id]) == (AuthStatus.ACCEPTED, firsts)
    advance(a, 1_800)
    b.charging.stop("CP1", again.transaction_id, 2_100, a.clock.now())
    with a.store.reading() as tx:
        (session,) = tx.sessions.all()
    assert (session.booking_id, session.billed_wh, session.cost) == (booking, 2_000, 80)
    failing = [r for r in check_store(a.store, a.config.rules, now=a.clock.now(), final=False) if not r.ok]
    assert not failing, failing


def test_a_replayed_start_sent_again_on_another_process_where_walk_ins_charge_gets_its_answer(
    nodes: tuple[App, App],
) -> None:
    """As above, but the start is one the charger made offline (replayed) on a charger that takes
    walk-ins: B, missing A's session, is not refused but places the start as a replayed walk-in after
    the booking A took up. Its copy of the session then trips the start-key constraint: the start
    must be answered with A's session, not fail."""
    a, b = nodes
    charger = add_charger(a, "CP1", price=40)
    a.tokens.set_walk_in(charger, 45)
    driver = a.marketplace.add_driver("D", "TAG").driver_id
    a.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    at = a.clock.now() + timedelta(seconds=10)
    advance(a, 600)  # the charger tells us of it late: a replayed start
    firsts: list[int] = []

    def a_commits_the_start() -> None:
        first = a.charging.start("CP1", 1, "TAG", 100, at)
        assert first.status is AuthStatus.ACCEPTED
        firsts.append(first.transaction_id)

    b.charging.store = RunsBetween(b.store, "sessions", "by_start_key", a_commits_the_start)
    again = b.charging.start("CP1", 1, "TAG", 100, at)
    assert (again.status, [again.transaction_id]) == (AuthStatus.ACCEPTED, firsts)
