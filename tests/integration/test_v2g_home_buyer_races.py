"""A host's home buying its guests' V2G export, raced on PostgreSQL (READ COMMITTED, real threads):
the home's purchase debits the host's payable, so a payout reading the balance before that debit
commits would pay the host what its home has just spent."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.ledger import EntryKind, JournalEntry, host_payable
from chargeshare.ocpp import V21, csms_v201
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.settlement import PayoutRun
from tests.integration.pausing import PausesAfter
from tests.integration.test_command_refusal_race import second_while_first_uncommitted
from tests.integration.test_kyc_payout_race import waiting_on_a_lock
from tests.services.test_late_stop_export import event
from tests.services.test_v2g_home_buyer import Site, as_driver, as_host, failing

pytestmark = pytest.mark.postgres


class PausesAfterPosting:
    """The store, but a unit of work of the paused thread stops right after it adds a ledger entry
    of `kind`, until `go` is set; `reached` is set when it gets there."""

    def __init__(self, inner: Any, thread: Callable[[], bool], kind: EntryKind) -> None:
        self.inner, self.paused_thread, self.kind = inner, thread, kind
        self.reached, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            if self.paused_thread():
                add = tx.ledger.add

                def add_then_wait(entries: list[JournalEntry]) -> Any:
                    done = add(entries)
                    if any(e.kind is self.kind for e in entries) and not self.reached.is_set():
                        self.reached.set()
                        assert self.go.wait(30), "never told to go on"
                    return done

                tx.ledger.add = add_then_wait
            yield tx


def a_home_buying_83p_of_export(app: App, clock: ManualClock) -> tuple[Site, int]:
    """A verified host with 680p earned from an earlier sale to the grid, whose home buys the export
    of a running session: 83p of it metered so far. The site and the session."""
    site = Site(app, clock)
    app.hosting.set_kyc(site.host_id, KycStatus.VERIFIED)
    site.session(20_000)  # sold to the grid: 680p earned once its capture settles
    app.settlement.process_due()
    app.v2g.set_buyer(as_host(site.host_id), "home")
    booking = app.bookings.book(BookRequest(site.dee, site.charger, 1, 60, 30_000)).booking_id
    app.v2g.set_terms(as_driver(site.dee), booking, 25, 40)
    clock.advance(60)
    session = app.charging.start("V2G1", 1, "DEE", 1_000, clock.now()).transaction_id
    app.charging.meter_export("V2G1", session, 50_000, 80)  # 83p of export, bought by the home
    app.charging.meter_export("V2G1", session, 53_333, 62)
    return site, session


def test_a_payout_racing_a_home_purchase_never_pays_what_the_home_spent(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    app = pg_app
    site, session = a_home_buying_83p_of_export(app, clock)

    stopper: list[threading.Thread] = []
    store = PausesAfterPosting(
        app.store, lambda: threading.current_thread() in stopper, EntryKind.HOME_EXPORT_CREDIT
    )
    app.charging.store = store
    stop = threading.Thread(target=lambda: app.charging.stop("V2G1", session, 1_000, clock.now()))
    stopper.append(stop)
    stop.start()
    assert store.reached.wait(30), "the stop never posted the home's purchase"

    runs: list[PayoutRun] = []
    paid = threading.Event()

    def paying() -> None:
        runs.append(app.settlement.pay_out_hosts())
        paid.set()

    payout = threading.Thread(target=paying)
    payout.start()
    blocked = waiting_on_a_lock(postgres_url)
    # Either the payout is done already (it did not wait for the purchase) or it waits on a lock.
    for _ in range(3_000):
        if paid.wait(0.01) or blocked():
            break
    else:
        pytest.fail("the payout neither finished nor waited on a lock")
    store.go.set()
    stop.join(30)
    payout.join(30)
    assert not stop.is_alive() and not payout.is_alive()
    app.charging.store = store.inner
    assert failing(app) == []
    # Paid after the purchase committed: 680p earned less the 83p the home bought.
    assert runs[0].paid == {site.host_id: 680 - 83}


def test_a_home_purchase_committed_after_a_payout_is_dated_after_it(pg_app: App, clock: ManualClock) -> None:
    """The stop has read the export but not yet taken the host's row when a payout reads the
    balance and commits: the purchase comes after that payout, so it is dated after it too (dated
    before, the ledger's time order has the payout paying what the home had already spent)."""
    app = pg_app
    site, session = a_home_buying_83p_of_export(app, clock)

    stopper: list[threading.Thread] = []
    store = PausesAfter(app.store, lambda: threading.current_thread() in stopper, "v2g", "record")
    app.charging.store = store
    stop = threading.Thread(target=lambda: app.charging.stop("V2G1", session, 1_000, clock.now()))
    stopper.append(stop)
    stop.start()
    assert store.read.wait(30), "the stop never read the export"
    clock.advance(5)
    run = app.settlement.pay_out_hosts()  # the host's row is free: the purchase is not made yet
    assert run.paid == {site.host_id: 680}
    clock.advance(5)
    store.go.set()
    stop.join(30)
    assert not stop.is_alive()
    app.charging.store = store.inner
    with app.store.reading() as tx:
        entries = tx.ledger.entries(account=host_payable(site.host_id))
    dated = {
        e.kind: e.created_at for e in entries if e.kind in (EntryKind.PAYOUT, EntryKind.HOME_EXPORT_CREDIT)
    }
    assert dated[EntryKind.HOME_EXPORT_CREDIT] > dated[EntryKind.PAYOUT]
    assert failing(app) == []


def test_a_late_stops_home_purchase_committed_after_a_payout_is_dated_after_it(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    """The same for a late stop's purchase of the export after a lost-stop close: held once it has
    taken the record up, a payout five seconds later waits for it and pays what is left."""
    app = pg_app
    site = Site(app, clock)
    app.hosting.set_kyc(site.host_id, KycStatus.VERIFIED)
    site.session(20_000)  # sold to the grid: 680p earned once its capture settles
    app.settlement.process_due()
    app.settlement.on_queued = lambda booking_id: None  # the close's capture stays untried
    app.v2g.set_buyer(as_host(site.host_id), "home")
    booking = app.bookings.book(BookRequest(site.dee, site.charger, 1, 60, 30_000)).booking_id
    app.v2g.set_terms(as_driver(site.dee), booking, 25, 40)
    clock.advance(60)
    table = csms_v201.handlers(app.charging, "V2G1", app.reports, V21)
    event(table, "Started", 0, clock, 1_000, 50_000, idToken={"idToken": "DEE", "type": "Central"})
    event(table, "Updated", 1, clock, 1_300, 52_000)
    app.charging.status("V2G1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(app.config.rules.lost_stop_grace_s)
    assert len(app.charging.close_lost_stops()) == 1  # the home bought 2,000 Wh: 50p

    store = PausesAfter(app.store, lambda: False, "v2g", "resettle_record")
    app.charging.store = store

    def paying() -> object:
        clock.advance(5)
        return app.settlement.pay_out_hosts()

    _, run = second_while_first_uncommitted(
        store,
        postgres_url,
        lambda: event(table, "Ended", 2, clock, 1_300, 55_000),  # 3,000 Wh more: 75p
        paying,
    )
    app.charging.store = store.inner
    assert isinstance(run, PayoutRun) and run.paid == {site.host_id: 680 - 50 - 75}
    with app.store.reading() as tx:
        entries = tx.ledger.entries(account=host_payable(site.host_id))
    late = [e for e in entries if e.kind is EntryKind.HOME_EXPORT_CREDIT and ":" in e.entry_id]
    payouts = [e for e in entries if e.kind is EntryKind.PAYOUT]
    assert len(late) == 1 and late[0].amount == 75 and late[0].created_at < payouts[-1].created_at
    app.settlement.process_due()  # the rebilled capture
    assert failing(app) == []


def test_two_stops_noting_a_host_then_taking_its_row_do_not_deadlock(pg_app: App, clock: ManualClock) -> None:
    """A lost stop's close notes the host (a key-share lock on its row, through the foreign key)
    before its home's purchase takes the host's row: two such closes for one host take turns."""
    site = Site(pg_app, clock)
    both_noted = threading.Barrier(2)
    failed: list[BaseException] = []

    def close(n: int) -> None:
        try:
            with pg_app.store.transaction() as tx:
                tx.notifications.add(site.host_id, "stop_lost", f"Session {n}", "closed", clock.now())
                both_noted.wait(30)
                tx.accounts.lock_host(site.host_id)
        except BaseException as exc:  # a deadlock aborts one of them
            failed.append(exc)

    closes = [threading.Thread(target=close, args=(n,)) for n in (1, 2)]
    for c in closes:
        c.start()
    for c in closes:
        c.join(60)
    assert not any(c.is_alive() for c in closes)
    assert failed == []
