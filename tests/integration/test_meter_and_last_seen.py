"""The meter path's one-statement update and the throttled, written-behind last-seen stamp, on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from chargeshare.adapters.sql import SqlStore
from chargeshare.benchmarks.race import StatementCounter
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerStatus, ConnectorStatus
from chargeshare.domain.errors import NotFound
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import EnergyLimitReached, MeterReading
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger, build_for_tests


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_app(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[App]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    app = build_for_tests(Config(database_url=url, locks_enabled=False), clock=clock)
    yield app
    app.close()


def last_seen(app: App, cp_id: str = "CP1") -> datetime | None:
    with app.store.reading() as tx:
        return tx.chargers.get(cp_id).last_seen_at


def started(app: App, clock: ManualClock, max_energy_wh: int = 10_000) -> int:
    charger = add_charger(app, price=40)
    driver = app.marketplace.add_driver("D", "TAG1").driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 120, max_energy_wh))
    clock.advance(60)
    r = app.charging.start("CP1", 1, "TAG1", 1_000, clock.now())
    assert r.status is AuthStatus.ACCEPTED
    return r.transaction_id


def test_readings_only_grow_and_the_energy_limit_is_announced(any_app: App, clock: ManualClock) -> None:
    tx = started(any_app, clock, max_energy_wh=5_000)
    readings: list[MeterReading] = []
    limits: list[EnergyLimitReached] = []
    any_app.bus.subscribe(MeterReading, readings.append)
    any_app.bus.subscribe(EnergyLimitReached, limits.append)

    any_app.charging.meter("CP1", tx, 3_000)
    any_app.charging.meter("CP1", tx, 2_000)  # an old reading, replayed late: the register stays
    with any_app.store.reading() as t_:
        session = t_.sessions.get(tx)
    assert session is not None and session.meter_last_wh == 3_000
    assert [r.energy_wh for r in readings] == [2_000, 2_000]
    assert limits == []

    any_app.charging.meter("CP1", tx, 6_000)  # 5,000 Wh drawn: the booking's limit
    assert readings[-1].energy_wh == 5_000 and readings[-1].booking_id == session.booking_id
    assert [(e.charge_point_id, e.transaction_id) for e in limits] == [("CP1", tx)]

    clock.advance(60)
    assert any_app.charging.stop("CP1", tx, 6_000, clock.now()) is AuthStatus.ACCEPTED
    before = len(readings)
    any_app.charging.meter("CP1", tx, 9_000)  # after the stop: changes nothing, says nothing
    with any_app.store.reading() as t_:
        after = t_.sessions.get(tx)
    assert after is not None and after.meter_last_wh == 6_000 and after.billed_wh == 5_000
    assert len(readings) == before
    assert all(r.ok for r in check_store(any_app.store, any_app.config.rules, now=clock.now()))


def test_last_seen_is_renewed_at_most_once_per_stamp_interval_and_written_behind(
    any_app: App, clock: ManualClock
) -> None:
    tx = started(any_app, clock)
    booted = last_seen(any_app)
    every = any_app.last_seen.every
    assert timedelta(0) < every <= timedelta(seconds=any_app.config.rules.heartbeat_interval_s / 4)
    clock.advance(every.total_seconds())  # past the stamp the boot wrote
    any_app.charging.heartbeat("CP1")
    assert last_seen(any_app) == booted  # renewed, not written yet...
    assert any_app.last_seen.flush() == 1
    stamped = last_seen(any_app)
    assert stamped == clock.now()  # ...until the flush

    clock.advance(every.total_seconds() / 2)
    any_app.charging.meter("CP1", tx, 2_000)
    any_app.charging.heartbeat("CP1")
    assert any_app.last_seen.flush() == 0  # within the interval: nothing renewed
    assert last_seen(any_app) == stamped

    clock.advance(every.total_seconds())
    any_app.charging.meter("CP1", tx, 3_000)
    any_app.charging.watchdog()  # the sweep flushes before it judges
    assert last_seen(any_app) == clock.now()  # past it: the next frame renewed it


def test_a_removed_chargers_pending_stamp_is_dropped_and_it_is_looked_up_again(
    any_app: App, clock: ManualClock
) -> None:
    add_charger(any_app, "CP2")
    clock.advance(any_app.last_seen.every.total_seconds())
    any_app.charging.heartbeat("CP2")  # known here: renewed without a unit of work
    any_app.marketplace.remove_charger("CP2")
    assert any_app.last_seen.flush() == 1  # written to no row
    with pytest.raises(NotFound):
        any_app.charging.heartbeat("CP2")  # forgotten: looked up, and found missing


def test_stamps_a_failed_flush_could_not_write_wait_for_the_next(
    any_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_charger(any_app)
    clock.advance(any_app.last_seen.every.total_seconds())
    any_app.charging.heartbeat("CP1")
    seen_at = clock.now()

    def down() -> object:
        raise ConnectionError("database away")

    with monkeypatch.context() as m:
        m.setattr(any_app.store, "transaction", down)
        with pytest.raises(ConnectionError):
            any_app.last_seen.flush()
    assert any_app.last_seen.flush() == 1
    assert last_seen(any_app) == seen_at


def test_the_watchdog_still_finds_a_silent_charger_and_a_return_is_stamped_at_once(
    any_app: App, clock: ManualClock
) -> None:
    add_charger(any_app)
    rules = any_app.config.rules
    silence = rules.heartbeat_interval_s * rules.offline_after_intervals
    for _ in range(rules.offline_after_intervals * 2):  # a charger heartbeating on time stays online
        clock.advance(rules.heartbeat_interval_s)
        any_app.charging.heartbeat("CP1")
        assert any_app.charging.watchdog() == []
    clock.advance(silence + 1)
    assert any_app.charging.watchdog() == ["CP1"]

    clock.advance(5)
    any_app.charging.heartbeat("CP1")  # a heartbeat alone brings it back...
    assert last_seen(any_app) == clock.now()  # ...and it is stamped, not skipped as "lately"
    with any_app.store.reading() as t_:
        assert t_.chargers.get("CP1").status is ChargerStatus.ONLINE


def test_an_unregistered_charger_is_never_taken_for_stamped(any_app: App) -> None:
    for _ in range(2):
        with pytest.raises(NotFound):
            any_app.charging.heartbeat("NOPE")


def test_a_status_lookup_names_the_chargers_status_and_the_connector(any_app: App) -> None:
    add_charger(any_app)
    with any_app.store.reading() as tx:
        connector = tx.chargers.get("CP1").connectors[0].connector_id
        assert tx.chargers.status_and_connector("CP1", 1) == (ChargerStatus.ONLINE, connector)
        assert tx.chargers.status_and_connector("CP1", 0) == (
            ChargerStatus.ONLINE,
            None,
        )  # the charger itself
        assert tx.chargers.status_and_connector("CP1", 7) == (ChargerStatus.ONLINE, None)
        with pytest.raises(NotFound):
            tx.chargers.status_and_connector("NOPE", 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def counted_app(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[App]:
    """An app whose every statement to the database, by any path, lands in `app.writes` if it writes."""
    url = (
        f"sqlite:///{tmp_path / 'cs.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    app = build_for_tests(Config(database_url=url, locks_enabled=False), clock=clock)
    assert isinstance(app.store, SqlStore)
    writes: list[str] = []

    class Writes(StatementCounter):
        def saw(self, sql: str) -> None:
            if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
                writes.append(sql)

    Writes(app.store.engine)
    app.writes = writes  # type: ignore[attr-defined]
    yield app
    app.close()


def test_a_repeated_status_writes_the_connector_alone_and_a_change_still_does(
    counted_app: App, clock: ManualClock
) -> None:
    """Chargers repeat their status (after a reconnect, some on a timer): a repeat writes the
    connector's row alone, its status with the repeat's time (a report overtaken by the repeat is
    older than it); the session's marks still follow every change. A repeated Available also
    writes its Available time (a start replayed later is judged by the latest free report)."""
    any_app = counted_app
    tx_id = started(any_app, clock)
    any_app.charging.status("CP1", 1, ConnectorStatus.CHARGING)
    writes: list[str] = any_app.writes  # type: ignore[attr-defined]
    writes.clear()
    for _ in range(3):
        clock.advance(1)
        any_app.charging.status("CP1", 1, ConnectorStatus.CHARGING)
    assert len(writes) == 3 and all(w.startswith("UPDATE connectors SET status") for w in writes), writes
    writes.clear()
    clock.advance(1)
    any_app.charging.status("CP1", 1, ConnectorStatus.SUSPENDED_EV)  # idle from here, once
    idle_at = clock.now()
    assert writes
    writes.clear()
    clock.advance(1)
    any_app.charging.status("CP1", 1, ConnectorStatus.SUSPENDED_EV)
    assert len(writes) == 1 and writes[0].startswith("UPDATE connectors SET status"), writes
    clock.advance(1)
    any_app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)  # freed with its transaction open
    freed_at = clock.now()
    clock.advance(1)
    writes.clear()
    any_app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    assert [w.split(" ", 4)[3].split("=")[0] for w in writes] == ["status", "available_at"], writes
    with any_app.store.reading() as t_:
        session = t_.sessions.get(tx_id)
        assert t_.chargers.get("CP1").connectors[0].status is ConnectorStatus.AVAILABLE
    assert session is not None and (session.idle_since, session.freed_at) == (idle_at, freed_at)
    with any_app.store.reading() as t_:
        assert t_.chargers.available_at(session.connector_id) == clock.now()  # the repeat's
    any_app.charging.status("CP1", 1, ConnectorStatus.CHARGING)  # charging again clears both
    with any_app.store.reading() as t_:
        session = t_.sessions.get(tx_id)
    assert session is not None and (session.idle_since, session.freed_at) == (None, None)


def test_a_connector_state_names_its_last_reported_status(any_app: App) -> None:
    add_charger(any_app)
    any_app.charging.status("CP1", 1, ConnectorStatus.FAULTED)
    with any_app.store.reading() as tx:
        connector = tx.chargers.get("CP1").connectors[0].connector_id
        assert tx.chargers.connector_state("CP1", 1) == (
            ChargerStatus.ONLINE,
            connector,
            ConnectorStatus.FAULTED,
        )
        assert tx.chargers.connector_state("CP1", 0) == (ChargerStatus.ONLINE, None, None)
        with pytest.raises(NotFound):
            tx.chargers.connector_state("NOPE", 1)


def test_a_flush_can_take_the_oldest_stamps_a_few_at_a_time(any_app: App, clock: ManualClock) -> None:
    for cp in ("CP1", "CP2", "CP3"):
        add_charger(any_app, cp)
    clock.advance(any_app.last_seen.every.total_seconds())
    for cp in ("CP2", "CP1", "CP3"):  # renewed in this order
        any_app.charging.heartbeat(cp)
        clock.advance(1)
    assert any_app.last_seen.flush(most=2) == 2
    renewed = [clock.now() - timedelta(seconds=n) for n in (3, 2, 1)]  # CP2, CP1, CP3
    assert [last_seen(any_app, cp) for cp in ("CP2", "CP1")] == renewed[:2]  # the oldest two
    assert last_seen(any_app, "CP3") != renewed[2]  # not yet
    assert any_app.last_seen.flush(most=2) == 1
    assert last_seen(any_app, "CP3") == renewed[2]
    assert any_app.last_seen.flush(most=2) == 0


def test_stamps_still_pending_are_written_when_the_app_closes(tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite:///{tmp_path / 'stamps.db'}"
    app = build(Config(database_url=url, locks_enabled=False), clock=clock)
    add_charger(app)
    clock.advance(app.last_seen.every.total_seconds())
    app.charging.heartbeat("CP1")  # renewed, waiting for a sweep that never comes
    seen_at = clock.now()
    app.close()
    reopened = build(Config(database_url=url, locks_enabled=False), clock=clock)
    try:
        assert last_seen(reopened) == seen_at
    finally:
        reopened.close()
