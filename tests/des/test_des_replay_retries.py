"""A charger's transaction messages against the real backend (on SQLite): one the CSMS fails to
process (InternalError) is sent again, in order, within TransactionMessageAttempts, each time after
TransactionMessageRetryInterval times its sendings so far in virtual time, whether it was replayed
from the offline queue or sent as it happened; the session closes and bills once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import simpy

from chargeshare.bootstrap import App, Config
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import DatabaseBusy
from chargeshare.domain.geo import Point
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.services.booking import BookRequest
from chargeshare.services.invariants import check_store
from simulators.des.central import DesCentral
from simulators.des.charger import DesCharger
from simulators.des.clock import SimClock
from simulators.power import Vehicle
from simulators.settings import TRANSACTION_ATTEMPTS
from tests.conftest import SQLITE_MEMORY, T0, add_charger, build_for_tests


@pytest.fixture
def env() -> simpy.Environment:
    return simpy.Environment()


@pytest.fixture
def app(env: simpy.Environment) -> Iterator[App]:
    built = build_for_tests(Config(database_url=SQLITE_MEMORY, locks_enabled=False), clock=SimClock(env, T0))
    try:
        yield built
    finally:
        built.close()


def _failing_first(
    env: simpy.Environment, fn: Callable[..., Any], times: int
) -> tuple[Callable[..., Any], list[float]]:
    """`fn`, except that its first `times` calls fail as a database that stayed locked does; the
    virtual time of each call."""
    calls: list[float] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append(env.now)
        if len(calls) <= times:
            raise DatabaseBusy("the database is busy: a lock was not granted in time", 1.0)
        return fn(*args, **kwargs)

    return wrapped, calls


def _offline_stop(env: simpy.Environment, app: App, version: OcppVersion) -> tuple[DesCharger, int]:
    """A session charged, then ended while the charger was offline: its stop waits in the queue."""
    central = DesCentral(env, app)
    charger_id = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger_id, 1, 120, 30_000))
    des = DesCharger(env, central, "CP1", [7_400], epoch=T0, meter_interval_s=300, protocol=version)
    des.connect()
    des.plug_in(1, "TAG", Vehicle(battery_wh=60_000, soc_wh=10_000, max_power_w=7_400), 20_000)
    env.run(until=600)
    with app.store.reading() as tx:
        session = tx.sessions.open_on(tx.chargers.get("CP1").connectors[0].connector_id)
    assert session is not None
    env.process(des.disconnect_for(1_200))
    env.run(until=1_200)
    des.unplug(1)
    assert [q.action for q in des.queue][-1] in ("StopTransaction", "TransactionEvent")
    return des, session.session_id


@pytest.mark.parametrize("version", [V16, V201])
def test_a_replayed_stop_the_csms_failed_to_process_is_sent_again_and_bills_once(
    env: simpy.Environment, app: App, version: OcppVersion
) -> None:
    des, session_id = _offline_stop(env, app, version)
    stop, calls = _failing_first(env, app.charging.stop, times=1)
    app.charging.stop = stop  # type: ignore[method-assign]
    env.run(until=2_400)  # back online at 1800: the queue is replayed

    assert calls == [1_800, 1_860], "the stop is sent again, the retry interval (60 s) after"
    assert des.queue == [] and des.messages_given_up == 0
    with app.store.reading() as tx:
        session = tx.sessions.get(session_id)
        assert session is not None and session.status is SessionStatus.STOPPED
        assert (session.billed_wh or 0) > 0
    app.settlement.process_due()
    failed = [r.name for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok]
    assert failed == []


def test_a_stop_failing_every_attempt_is_given_up_after_the_configured_attempts(
    env: simpy.Environment, app: App
) -> None:
    des, session_id = _offline_stop(env, app, V16)
    des.settings.values[TRANSACTION_ATTEMPTS] = "4"
    stop, calls = _failing_first(env, app.charging.stop, times=10)
    app.charging.stop = stop  # type: ignore[method-assign]
    env.run(until=2_400)

    # 60 s, then 120 s, then 180 s: the interval times the sendings so far.
    assert calls == [1_800, 1_860, 1_980, 2_160]
    assert des.messages_given_up == 1 and des.queue == []
    with app.store.reading() as tx:
        session = tx.sessions.get(session_id)
        assert session is not None and session.status is SessionStatus.CHARGING


@pytest.mark.parametrize("version", [V16, V201])
def test_a_reading_the_csms_failed_to_process_goes_again_after_the_interval_before_the_stop(
    env: simpy.Environment, app: App, version: OcppVersion
) -> None:
    central = DesCentral(env, app)
    charger_id = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger_id, 1, 120, 30_000))
    des = DesCharger(env, central, "CP1", [7_400], epoch=T0, meter_interval_s=300, protocol=version)
    des.connect()
    des.plug_in(1, "TAG", Vehicle(battery_wh=60_000, soc_wh=10_000, max_power_w=7_400), 20_000)
    env.run(until=400)
    seen: list[tuple[str, float]] = []
    meter, _ = _failing_first(env, app.charging.meter, times=1)
    stop = app.charging.stop

    def metered(*args: Any, **kwargs: Any) -> Any:
        seen.append(("meter", env.now))
        return meter(*args, **kwargs)

    def stopped(*args: Any, **kwargs: Any) -> Any:
        seen.append(("stop", env.now))
        return stop(*args, **kwargs)

    app.charging.meter = metered  # type: ignore[method-assign]
    app.charging.stop = stopped  # type: ignore[method-assign]
    env.run(until=630)  # the reading at 600 failed: it goes again at 660
    des.unplug(1)  # the stop waits behind it
    env.run(until=700)

    assert seen == [("meter", 600), ("meter", 660), ("stop", 660)]
    assert des.queue == [] and des.messages_given_up == 0
    with app.store.reading() as tx:
        session = tx.sessions.all()[0]
        assert session.status is SessionStatus.STOPPED and (session.billed_wh or 0) > 0


@pytest.mark.parametrize("version", [V16, V201])
def test_a_start_waiting_out_its_retry_interval_is_refused_and_ended_once_the_csms_opens_it(
    env: simpy.Environment, app: App, version: OcppVersion
) -> None:
    central = DesCentral(env, app)
    charger_id = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger_id, 1, 120, 30_000))
    des = DesCharger(env, central, "CP1", [7_400], epoch=T0, meter_interval_s=300, protocol=version)
    des.connect()
    start, calls = _failing_first(env, app.charging.start, times=1)
    app.charging.start = start  # type: ignore[method-assign]
    des.plug_in(1, "TAG", Vehicle(battery_wh=60_000, soc_wh=10_000, max_power_w=7_400), 20_000)
    assert not des.transaction_running(1)  # no answer in time: the car is told no
    env.run(until=120)

    assert calls == [0, 60]
    assert des.queue == [] and des.messages_given_up == 0
    with app.store.reading() as tx:
        assert [s.status for s in tx.sessions.all()] == [SessionStatus.STOPPED]
    app.settlement.process_due()
    failed = [r.name for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok]
    assert failed == []


def test_a_retry_lost_with_the_queue_does_not_send_a_later_message_before_its_interval(
    env: simpy.Environment, app: App
) -> None:
    # The reading failed at 600 waits for 660; a power cut losing the queue at 610 loses it. A start
    # failing at 645, after the reboot, goes again its own interval later, not when the lost one would.
    central = DesCentral(env, app)
    host = app.marketplace.add_host("host")
    two = tuple(ConnectorSpec(n, ConnectorType.TYPE2, 7_400) for n in (1, 2))
    charger_id = app.marketplace.add_charger(
        ChargerSpec("CP1", host, Point(51.45, -2.59), Tariff(30), two)
    ).charger_id
    des = DesCharger(env, central, "CP1", [7_400, 7_400], epoch=T0, meter_interval_s=300, protocol=V16)
    des.connect()
    for n, tag in ((1, "TAG"), (2, "TAG2")):
        driver = app.marketplace.add_driver(tag, tag).driver_id
        app.bookings.book(BookRequest(driver, charger_id, n, 120, 30_000))
    des.plug_in(1, "TAG", Vehicle(battery_wh=60_000, soc_wh=10_000, max_power_w=7_400), 20_000)
    env.run(until=400)
    app.charging.meter, meter_calls = _failing_first(env, app.charging.meter, times=1)  # type: ignore[method-assign]
    env.run(until=610)
    assert meter_calls == [600]
    env.process(des.reboot(lose_queue=True))
    env.run(until=645)
    assert des.connected and des.queue == []
    app.charging.start, start_calls = _failing_first(env, app.charging.start, times=1)  # type: ignore[method-assign]
    des.plug_in(2, "TAG2", Vehicle(battery_wh=60_000, soc_wh=10_000, max_power_w=7_400), 20_000)
    env.run(until=800)

    assert start_calls == [645, 705]
    assert meter_calls == [600], "the lost reading is not sent again"
