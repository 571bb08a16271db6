"""Grid and fleet writes made by several processes at once on PostgreSQL (issue 19's adversarial
review): an older grid decision never overwrites a newer one (a house load's jump included), limits
read while a decision commits are never acknowledged as that decision's, an older house-load
reading committed after a newer one changes nothing, removing a connector or a
charger waits for a decision in progress, two placements of one charger are one upsert, and two
copies of a fleet payment under one Idempotency-Key pay once."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.sql.fleet import SqlFleets
from chargeshare.adapters.sql.grid import SqlGrid
from chargeshare.bootstrap import App
from chargeshare.domain.charger import ConnectorStatus, ConnectorType
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.fleet import IssuedInvoice
from chargeshare.domain.grid_limits import Plan
from chargeshare.domain.ledger import EntryKind
from chargeshare.services.clock import ManualClock
from chargeshare.services.grid import GridService
from tests.conftest import T0, add_charger, sql_store
from tests.integration.test_grid_allocation_race import WAIT_S, waiting_on_a_lock_or_done
from tests.services.test_grid_service import start

pytestmark = pytest.mark.postgres


def in_thread(fn: Callable[[], Any], failures: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_decision_read_before_a_change_does_not_overwrite_the_one_after_it(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = pg_app.marketplace.add_host("h")
    site = pg_app.grid.add_site(host, "home", 13_800)
    charger = add_charger(pg_app, "CP1", online=False)
    pg_app.grid.place(charger, site.site_id, decide=False)
    decided, release = threading.Event(), threading.Event()
    real = GridService._decide

    def decide_and_hold(self: GridService, *args: Any) -> Any:
        got = real(self, *args)
        if not decided.is_set():  # the first decision reads the charger on its site, then stalls
            decided.set()
            assert release.wait(WAIT_S), "never released"
        return got

    monkeypatch.setattr(GridService, "_decide", decide_and_hold)
    failures: list[BaseException] = []
    older = in_thread(pg_app.grid.rebalance, failures)
    assert decided.wait(WAIT_S)
    pg_app.grid.place(charger, None, decide=False)  # taken off: the next decision clears its limits
    newer = in_thread(pg_app.grid.rebalance, failures)
    waiting_on_a_lock_or_done(pg_app, newer)
    release.set()
    older.join(WAIT_S)
    newer.join(WAIT_S)
    assert not older.is_alive() and not newer.is_alive() and failures == []
    with pg_app.store.reading() as tx:
        assert tx.grid.allocations() == {}, "the older decision overwrote the newer"


@pytest.mark.parametrize("removed", ["connector", "charger"])
def test_a_removal_waits_for_a_decision_in_progress(
    pg_app: App, monkeypatch: pytest.MonkeyPatch, removed: str
) -> None:
    host = pg_app.marketplace.add_host("h")
    site = pg_app.grid.add_site(host, "home", 13_800)
    charger = add_charger(pg_app, "CP1", online=False)
    with pg_app.store.reading() as tx:
        owner = tx.chargers.by_id(charger).host_id
    pg_app.hosting.add_connector(owner, charger, 2, ConnectorType.TYPE2, 7_400)
    pg_app.grid.place(charger, site.site_id, decide=False)
    decided, release = threading.Event(), threading.Event()
    real = GridService._decide

    def decide_and_hold(self: GridService, *args: Any) -> Any:
        got = real(self, *args)
        if not decided.is_set():  # the decision has read both connectors, then stalls
            decided.set()
            assert release.wait(WAIT_S), "never released"
        return got

    monkeypatch.setattr(GridService, "_decide", decide_and_hold)
    failures: list[BaseException] = []
    decision = in_thread(pg_app.grid.rebalance, failures)
    assert decided.wait(WAIT_S)
    if removed == "connector":
        removal = in_thread(lambda: pg_app.hosting.remove_connector(owner, charger, 2), failures)
    else:
        removal = in_thread(lambda: pg_app.hosting.remove_charger(owner, charger), failures)
    waiting_on_a_lock_or_done(pg_app, removal)
    release.set()
    decision.join(WAIT_S)
    removal.join(WAIT_S)
    # Without the turn, the decision wrote limits for a connector deleted meanwhile (a foreign key).
    assert not decision.is_alive() and not removal.is_alive()
    assert failures == [], "".join(traceback.format_exception(failures[0]))
    with pg_app.store.reading() as tx:
        left = {c.connector_id for ch in tx.chargers.all() for c in ch.connectors}
        assert set(tx.grid.allocations()) <= left


def test_a_house_load_jump_while_a_start_decides_is_decided_after_it(
    pg_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = pg_app.marketplace.add_host("h")
    site = pg_app.grid.add_site(host, "home", 13_800, house_load_w=1_000)
    charger = add_charger(pg_app, "CP1", power_w=7_400)
    pg_app.grid.place(charger, site.site_id)
    decided, release = threading.Event(), threading.Event()
    real = GridService._decide

    def decide_and_hold(self: GridService, *args: Any) -> Any:
        got = real(self, *args)
        if not decided.is_set():  # the start's decision reads the house at 1 kW, then stalls
            decided.set()
            assert release.wait(WAIT_S), "never released"
        return got

    monkeypatch.setattr(GridService, "_decide", decide_and_hold)
    failures: list[BaseException] = []
    starting = in_thread(lambda: start(pg_app, "CP1", 1, clock), failures)
    assert decided.wait(WAIT_S), [traceback.format_exception(f) for f in failures]
    # The site meter's kettle: written at once, its decision waiting for the start's turn to end.
    jump = in_thread(lambda: pg_app.grid.set_house_load(site.site_id, 9_000), failures)
    waiting_on_a_lock_or_done(pg_app, jump)
    release.set()
    starting.join(WAIT_S)
    jump.join(WAIT_S)
    assert not starting.is_alive() and not jump.is_alive() and failures == []
    with pg_app.store.reading() as tx:
        assert list(tx.grid.allocations().values()) == [13_800 - 9_000], "decided on the old house"


def test_limits_read_while_a_decision_commits_are_not_acknowledged_as_that_decision(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = pg_app.marketplace.add_host("h")
    site = pg_app.grid.add_site(host, "home", 13_800)
    charger = add_charger(pg_app, "CP1", online=False)
    pg_app.grid.place(charger, site.site_id)
    with pg_app.store.reading() as tx:
        (connector_id,) = tx.grid.allocations()
    real = SqlGrid.plans
    raced: list[bool] = []
    later = pg_app.clock.now() + timedelta(minutes=3)

    def limits_then_a_decision(self: SqlGrid) -> dict[int, Plan]:
        got = real(self)
        if not raced:  # another process's decision commits between this process's reads
            raced.append(True)
            with pg_app.store.transaction() as tx:
                tx.grid.deciding()
                tx.grid.save_allocations(
                    {connector_id: 3_000}, pg_app.clock.now(), {connector_id: [(later, 1_380)]}
                )
                tx.grid.owe([charger], pg_app.clock.now())
        return got

    monkeypatch.setattr(SqlGrid, "plans", limits_then_a_decision)
    due = pg_app.grid.limits_due("CP1")
    monkeypatch.setattr(SqlGrid, "plans", real)
    assert raced and due is not None
    assert dict(due.limits_w)[1] != 3_000  # the limits read were those before the newer decision
    assert due.steps == ()  # and so were its steps: never one decision's limit with another's steps
    pg_app.grid.limits_delivered("CP1", due.decision)  # the charger took what it was sent
    with pg_app.store.reading() as tx:  # so the newer decision is still owed, to be sent again
        assert tx.grid.owed(pg_app.clock.now()) == [charger]


def test_two_placements_of_one_charger_at_once_are_an_upsert_not_a_500(pg_app: App) -> None:
    host = pg_app.marketplace.add_host("h")
    a = pg_app.grid.add_site(host, "a", 13_800)
    b = pg_app.grid.add_site(host, "b", 13_800)
    charger = add_charger(pg_app, "CP1", online=False)
    engine = sql_store(pg_app).engine
    failures: list[BaseException] = []

    def place_on_b() -> None:
        with engine.begin() as conn:
            SqlGrid(conn, "postgresql").place(charger, b.site_id)

    with engine.begin() as conn:
        SqlGrid(conn, "postgresql").place(charger, a.site_id)
        second = in_thread(place_on_b, failures)
        waiting_on_a_lock_or_done(pg_app, second)
    second.join(WAIT_S)
    assert not second.is_alive() and failures == []
    assert pg_app.grid.members() == {charger: b.site_id}


def test_two_copies_of_a_fleet_payment_at_once_pay_once_and_answer_alike(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = pg_app.fleet.create_account("Vans Ltd", "VANS").fleet_id
    with pg_app.store.transaction() as tx:
        tx.fleet.add_invoice(fleet, "2026-02", [], 5_000, T0)
    inside, release = threading.Event(), threading.Event()
    real = SqlFleets.record_payment

    def record_and_hold(self: SqlFleets, *args: Any, **kwargs: Any) -> bool:
        if not inside.is_set():  # the first copy stalls with the key claimed, before it pays
            inside.set()
            assert release.wait(WAIT_S), "never released"
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SqlFleets, "record_payment", record_and_hold)
    answers: list[IssuedInvoice] = []
    failures: list[BaseException] = []

    def pay() -> None:
        answers.append(pg_app.fleet.pay(fleet, "2026-02", 1_000, request_key="once"))

    first = in_thread(pay, failures)
    assert inside.wait(WAIT_S), [traceback.format_exception(f) for f in failures]
    copy = in_thread(pay, failures)
    waiting_on_a_lock_or_done(pg_app, copy)
    release.set()
    first.join(WAIT_S)
    copy.join(WAIT_S)
    assert failures == [] and len(answers) == 2 and answers[0] == answers[1]
    assert answers[0].outstanding == 4_000
    with pg_app.store.reading() as tx:
        assert len([e for e in tx.ledger.entries() if e.kind is EntryKind.INVOICE_PAID]) == 1


def test_a_report_inserted_while_a_charger_is_removed_is_removed_with_it(pg_app: App) -> None:
    charger = add_charger(pg_app, "CP1", online=False)
    with pg_app.store.reading() as tx:
        owner = tx.chargers.by_id(charger).host_id
    inserted, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def report_and_hold() -> None:  # another process's report of the charger, not yet committed
        with pg_app.store.transaction() as tx:
            tx.reports.add(charger, "StatusNotification", "Available", {}, received_at=T0)
            inserted.set()
            assert release.wait(WAIT_S), "never released"

    reporting = in_thread(report_and_hold, failures)
    assert inserted.wait(WAIT_S)
    removal = in_thread(lambda: pg_app.hosting.remove_charger(owner, charger), failures)
    waiting_on_a_lock_or_done(pg_app, removal)
    release.set()
    reporting.join(WAIT_S)
    removal.join(WAIT_S)
    # Without the lock, the removal deleted the reports it saw and then failed on the new one.
    assert not reporting.is_alive() and not removal.is_alive()
    assert failures == [], "".join(traceback.format_exception(failures[0]))
    with pg_app.store.reading() as tx:
        assert [c.charger_id for c in tx.chargers.all()] == []


@pytest.mark.parametrize("change", ["remove", "update", "remove charger"])
def test_a_connector_changed_while_a_report_of_it_stamps_its_charger_is_not_a_deadlock(
    pg_app: App, change: str
) -> None:
    """A status report stamps its charger's row (last seen), then writes its connector's status; a
    host removing or changing that connector ends by writing the charger's offer. Each must take
    the charger's row first, or the two hold one row each and wait on the other's (so must a
    removal of the whole charger)."""
    charger = add_charger(pg_app, "CP1", online=False)
    with pg_app.store.reading() as tx:
        owner = tx.chargers.by_id(charger).host_id
    pg_app.hosting.add_connector(owner, charger, 2, ConnectorType.TYPE2, 7_400)
    stamped, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def report_and_hold() -> None:  # ChargingService.status, written through, held between its writes
        with pg_app.store.transaction() as tx:
            tx.chargers.touch("CP1", T0)
            stamped.set()
            assert release.wait(WAIT_S), "never released"
            tx.chargers.set_connector_status("CP1", 2, ConnectorStatus.AVAILABLE, T0)

    reporting = in_thread(report_and_hold, failures)
    assert stamped.wait(WAIT_S)
    if change == "remove":
        changing = in_thread(lambda: pg_app.hosting.remove_connector(owner, charger, 2), failures)
    elif change == "remove charger":
        changing = in_thread(lambda: pg_app.hosting.remove_charger(owner, charger), failures)
    else:
        changing = in_thread(
            lambda: pg_app.hosting.update_connector(owner, charger, 2, max_power_w=3_700), failures
        )
    waiting_on_a_lock_or_done(pg_app, changing)
    release.set()
    reporting.join(WAIT_S)
    changing.join(WAIT_S)
    assert not reporting.is_alive() and not changing.is_alive()
    assert failures == [], "".join(traceback.format_exception(failures[0]))


def test_a_charger_removed_while_a_walk_in_starts_on_it_is_refused_not_a_deadlock(pg_app: App) -> None:
    """A start (a walk-in's booking) locks its connector's row, then names the charger in its
    transaction's row (a key share). A removal locking the charger for update before the
    connectors would wait on the start while the start waited on it: the removal must let it
    commit, then see its booking and refuse."""
    charger = add_charger(pg_app, "CP1", online=False)
    with pg_app.store.reading() as tx:
        owner = tx.chargers.by_id(charger).host_id
        (connector,) = tx.chargers.by_id(charger).connectors
    driver = pg_app.marketplace.add_driver("D", "TAG1").driver_id
    booked, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def start_and_hold() -> None:  # ChargingService.start of a walk-in, held between its writes
        with pg_app.store.transaction() as tx:
            booking = tx.bookings.add(
                driver_id=driver,
                connector_id=connector.connector_id,
                starts_at=T0,
                ends_at=T0 + timedelta(hours=1),
                max_energy_wh=10_000,
                price_per_kwh=30,
                hold_amount=300,
                created_at=T0,
                fencing_token=None,
            )
            booked.set()
            assert release.wait(WAIT_S), "never released"
            session = tx.sessions.add(
                booking_id=booking,
                connector_id=connector.connector_id,
                id_tag="TAG1",
                started_at=T0,
                meter_start_wh=0,
            )
            tx.sessions.link_charger_transaction(session, charger, "tx-1")

    starting = in_thread(start_and_hold, failures)
    assert booked.wait(WAIT_S)
    removal = in_thread(lambda: pg_app.hosting.remove_charger(owner, charger), failures)
    waiting_on_a_lock_or_done(pg_app, removal)
    release.set()
    starting.join(WAIT_S)
    removal.join(WAIT_S)
    assert not starting.is_alive() and not removal.is_alive()
    assert [type(f) for f in failures] == [InvalidRequest], failures  # refused: it has a booking now
    with pg_app.store.reading() as tx:
        assert [c.charger_id for c in tx.chargers.all()] == [charger]


def test_an_older_house_load_reading_committed_after_a_newer_one_changes_nothing(pg_app: App) -> None:
    site = pg_app.grid.add_site(pg_app.marketplace.add_host("h"), "home", 13_800)
    oven_on, kettle_and_oven = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    failures: list[BaseException] = []
    older: list[tuple[int, bool]] = []

    def older_reading() -> None:
        with pg_app.store.transaction() as tx:
            kept, applied = tx.grid.set_house_load(site.site_id, 2_000, oven_on)
            older.append((kept.house_load_w, applied))

    # One meter through two processes: the newer reading (kettle and oven) is written first and
    # holds the row; the older one (the oven alone) writes while it does, and commits after it.
    with pg_app.store.transaction() as tx:
        assert tx.grid.set_house_load(site.site_id, 5_000, kettle_and_oven)[1]
        racing = in_thread(older_reading, failures)
        waiting_on_a_lock_or_done(pg_app, racing)
    racing.join(WAIT_S)
    assert not racing.is_alive() and failures == []
    assert older == [(5_000, False)], "the older reading was written over the newer one"
    with pg_app.store.reading() as tx:
        (s,) = tx.grid.sites()
        assert (s.house_load_w, s.house_load_at) == (5_000, kettle_and_oven)
