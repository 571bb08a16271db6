"""A start that arrives after its connector was reported free: a charger back from offline may report
its connector Available before it replays the start it made while away. A start older than that
report belongs to a session already over, whose stop is on its way or lost: it is opened freed, so
the lost-stop sweep closes it if the stop never comes. A start after the report is a new session.
A connector keeps the status of its latest report, by the report's own time: one that arrives late
frees nothing and takes nothing back. A 2.0.1 event saying the EV departed is a free report too.
Through the OCPP 1.6 and 2.0.1 handlers, on the fake, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, Config
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp import V16, V201, OcppVersion, csms_v16, csms_v201
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.records import SessionRecord
from tests.conftest import SQLITE_MEMORY, add_charger, build_for_tests
from tests.services.offline_events import offline_event
from tests.services.test_money_path import failing

PRICE = 40  # pence per kWh
TAG = "TAG1"
MINUTE = timedelta(minutes=1)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_app(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[App]:
    url = {"memory": "memory://", "sqlite": SQLITE_MEMORY}.get(request.param)
    if url is None:
        url = request.getfixturevalue("postgres_url")
    app = build_for_tests(Config(database_url=url, locks_enabled=False), clock=clock)
    yield app
    app.close()


class Charger:
    """CP1's frames as the backend's handlers for its OCPP version receive them."""

    def __init__(self, app: App, version: OcppVersion) -> None:
        self.app, self.version = app, version
        app.charging.boot("CP1", version)
        self.reconnect()
        self.seq = 0

    def reconnect(self) -> None:
        """A new link (without booting again): what comes on it is placed by what it learns."""
        module = csms_v16 if self.version == V16 else csms_v201
        self.table = module.handlers(self.app.charging, "CP1", self.app.reports)

    def status(self, free: bool, at: datetime | None) -> None:
        """A StatusNotification for connector (EVSE) 1; a 1.6 one may leave its timestamp out."""
        if self.version == V16:
            p: dict[str, object] = {"connectorId": 1, "errorCode": "NoError"}
            p["status"] = "Available" if free else "Charging"
            if at is not None:
                p["timestamp"] = format_ts(at)
        else:
            assert at is not None
            p = {"evseId": 1, "connectorId": 1, "timestamp": format_ts(at)}
            p["connectorStatus"] = "Available" if free else "Occupied"
        assert self.table["StatusNotification"](p) == {}

    def start(self, at: datetime, wh: int) -> int:
        """A start stamped `at` (replayed from the offline queue when that is past); its session."""
        if self.version == V16:
            p = {"connectorId": 1, "idTag": TAG, "meterStart": wh, "timestamp": format_ts(at)}
            answer = self.table["StartTransaction"](p)
            assert answer["idTagInfo"] == {"status": "Accepted"}, answer
            return int(answer["transactionId"])
        token = {"idToken": TAG, "type": "Central"}
        answer = offline_event(self.table, "Started", self.seq, at, wh, idToken=token)
        assert answer == {"idTokenInfo": {"status": "Accepted"}}, answer
        session = self.app.charging.session_for_charger_tx("CP1", "offline-1")
        assert session is not None
        return session.session_id

    def reading(self, session_id: int, at: datetime, wh: int) -> None:
        if self.version == V16:
            mv = [{"timestamp": format_ts(at), "sampledValue": [{"value": str(wh)}]}]
            self.table["MeterValues"]({"connectorId": 1, "transactionId": session_id, "meterValue": mv})
        else:
            self.seq += 1
            offline_event(self.table, "Updated", self.seq, at, wh)

    def stop(self, session_id: int, at: datetime, wh: int) -> None:
        if self.version == V16:
            p = {"transactionId": session_id, "meterStop": wh, "timestamp": format_ts(at)}
            self.table["StopTransaction"](p)
        else:
            self.seq += 1
            offline_event(self.table, "Ended", self.seq, at, wh)


@pytest.fixture(params=[V16, V201], ids=["ocpp1.6", "ocpp2.0.1"])
def charger(request: pytest.FixtureRequest, any_app: App, clock: ManualClock) -> Charger:
    """CP1 at 40p/kWh, booked by TAG1's driver for two hours from now; a minute passes."""
    charger_id = add_charger(any_app, price=PRICE)
    driver = any_app.marketplace.add_driver("D", TAG).driver_id
    any_app.bookings.book(BookRequest(driver, charger_id, 1, 120, 20_000))
    clock.advance(60)
    return Charger(any_app, request.param)


def session(app: App, session_id: int) -> SessionRecord:
    with app.store.reading() as tx:
        s = tx.sessions.get(session_id)
    assert s is not None
    return s


def grace(app: App) -> int:
    return app.config.rules.lost_stop_grace_s


def test_a_start_older_than_the_free_report_is_closed_once_its_stop_is_overdue(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """Offline, the car charged and left; back, the charger reports the connector Available, then
    replays the start and a reading, and the stop never comes (lost with its queue). The session
    closes a grace after the replay, billed exactly on the reading it has, and the ledger balances."""
    began = clock.now()
    clock.advance(40 * 60)  # offline meanwhile
    charger.status(free=True, at=clock.now())
    clock.advance(5)
    tx_id = charger.start(began, 1_000)
    charger.reading(tx_id, began + 20 * MINUTE, 3_500)
    clock.advance(grace(any_app) - 1)
    assert any_app.charging.close_lost_stops() == []
    clock.advance(2)
    assert any_app.charging.close_lost_stops() == [tx_id]
    closed = session(any_app, tx_id)
    assert (closed.status, closed.billed_wh, closed.cost) == (SessionStatus.STOPPED, 2_500, 100)
    with any_app.store.reading() as tx:
        assert tx.bookings.get(closed.booking_id).status is BookingStatus.COMPLETED
    gateway = any_app.gateway
    assert isinstance(gateway, SimulatedGateway) and gateway.total_captured == 100
    assert failing(any_app) == set()


def test_a_start_after_the_free_report_is_a_new_session_and_stays_open(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    charger.status(free=True, at=clock.now())
    clock.advance(30)
    tx_id = charger.start(clock.now(), 1_000)
    charger.reading(tx_id, clock.now(), 1_500)
    clock.advance(2 * grace(any_app))
    assert any_app.charging.close_lost_stops() == []
    assert session(any_app, tx_id).status is SessionStatus.CHARGING


def test_the_report_s_own_time_decides_not_when_it_arrived(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """A free report stamped before the start, arriving after it was made: the start came after
    the connector went free on the charger's own clock, so it is a new session."""
    reported = clock.now()
    clock.advance(60)
    began = clock.now()
    clock.advance(60)
    charger.status(free=True, at=reported)
    tx_id = charger.start(began, 1_000)
    clock.advance(2 * grace(any_app))
    assert any_app.charging.close_lost_stops() == []
    assert session(any_app, tx_id).status is SessionStatus.CHARGING


def test_a_start_older_than_a_free_report_overtaken_by_an_occupied_one_is_not_freed(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """Available, then Charging (Occupied) again before the old start arrives: the latest report
    says the connector is in use, so nothing tells that session is over."""
    began = clock.now()
    clock.advance(20 * 60)
    charger.status(free=True, at=clock.now())
    clock.advance(60)
    charger.status(free=False, at=clock.now())
    clock.advance(5)
    tx_id = charger.start(began, 1_000)
    clock.advance(2 * grace(any_app))
    assert any_app.charging.close_lost_stops() == []
    assert session(any_app, tx_id).status is SessionStatus.CHARGING
    charger.status(free=True, at=clock.now())  # free once more, with the session known: freed
    clock.advance(grace(any_app) + 1)
    assert any_app.charging.close_lost_stops() == [tx_id]
    assert failing(any_app) == set()


def test_a_start_older_than_a_free_report_followed_by_reserved_is_still_freed(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """Available, then Reserved for the next booking: no car came back, so the old start's session
    is over and its lost stop is swept."""
    began = clock.now()
    clock.advance(20 * 60)
    charger.status(free=True, at=clock.now())
    clock.advance(60)
    any_app.charging.status("CP1", 1, ConnectorStatus.RESERVED)
    clock.advance(5)
    tx_id = charger.start(began, 1_000)
    clock.advance(grace(any_app) + 1)
    assert any_app.charging.close_lost_stops() == [tx_id]
    assert failing(any_app) == set()


def test_a_repeated_free_report_after_the_start_frees_it(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """Available before the car came (the charger then went offline), the car charged and left,
    and the charger repeats Available on reconnecting (a 1.6 charger without a timestamp: when it
    arrived): the repeat is the report the start is older than."""
    charger.status(free=True, at=clock.now())
    clock.advance(60)
    began = clock.now()
    clock.advance(30 * 60)
    charger.status(free=True, at=None if charger.version == V16 else clock.now())
    tx_id = charger.start(began, 1_000)
    clock.advance(grace(any_app) + 1)
    assert any_app.charging.close_lost_stops() == [tx_id]
    assert session(any_app, tx_id).billed_wh == 0
    assert failing(any_app) == set()


def test_a_replayed_start_freed_on_arrival_is_billed_on_its_own_stop_when_it_comes(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """The usual replay: the start, sent twice (its answer lost), then its stop. Freed on arrival
    changes nothing of that: one session, billed on the stop's reading; the sweep finds nothing."""
    began = clock.now()
    clock.advance(40 * 60)
    charger.status(free=True, at=clock.now())
    tx_id = charger.start(began, 1_000)
    assert charger.start(began, 1_000) == tx_id
    charger.stop(tx_id, began + 30 * MINUTE, 6_000)
    clock.advance(grace(any_app) + 1)
    assert any_app.charging.close_lost_stops() == []
    stopped = session(any_app, tx_id)
    assert (stopped.status, stopped.billed_wh, stopped.cost) == (SessionStatus.STOPPED, 5_000, 200)
    assert failing(any_app) == set()


def test_a_2_0_1_availability_event_is_a_free_report_too(any_app: App, clock: ManualClock) -> None:
    """NotifyEvent's AvailabilityState sets the connector's status as a StatusNotification does,
    stamped with the event's own timestamp."""
    charger_id = add_charger(any_app, price=PRICE)
    driver = any_app.marketplace.add_driver("D", TAG).driver_id
    any_app.bookings.book(BookRequest(driver, charger_id, 1, 120, 20_000))
    clock.advance(60)
    charger = Charger(any_app, V201)
    began = clock.now()
    clock.advance(40 * 60)
    event = {
        "eventId": 1,
        "timestamp": format_ts(clock.now()),
        "trigger": "Delta",
        "actualValue": "Available",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "AvailabilityState"},
    }
    notify = {"generatedAt": format_ts(clock.now()), "seqNo": 0, "eventData": [event]}
    assert charger.table["NotifyEvent"](notify) == {}
    tx_id = charger.start(began, 1_000)
    clock.advance(grace(any_app) + 1)
    assert any_app.charging.close_lost_stops() == [tx_id]
    assert failing(any_app) == set()


def test_the_sweep_leaves_a_session_reported_in_use_after_it_read_the_freed_ones(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """The sweep reads the overdue freed sessions, then closes each in a transaction of its own: a
    report of the connector in use (or a reading) committed in between is this session's, so it is
    not closed, and what the sweep closes is billed on the last reading at the close."""
    began = clock.now()
    clock.advance(20 * 60)
    charger.status(free=True, at=clock.now())
    tx_id = charger.start(began, 1_000)  # freed on arrival
    clock.advance(grace(any_app) + 1)
    close = any_app.charging._stop

    def in_use_meanwhile(*args: Any, **kwargs: Any) -> Any:
        charger.status(free=False, at=clock.now())
        return close(*args, **kwargs)

    any_app.charging._stop = in_use_meanwhile  # type: ignore[method-assign]
    assert any_app.charging.close_lost_stops() == []
    assert session(any_app, tx_id).status is SessionStatus.CHARGING


def test_a_reading_between_the_sweep_s_read_and_its_close_gives_the_stop_a_new_grace(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """A reading restarts a freed session's grace (its stop is queued behind it): one committed
    after the sweep read the overdue sessions keeps it open, and the next sweep bills that reading."""
    began = clock.now()
    clock.advance(20 * 60)
    charger.status(free=True, at=clock.now())
    tx_id = charger.start(began, 1_000)
    charger.reading(tx_id, began + 5 * MINUTE, 2_000)
    clock.advance(grace(any_app) + 1)
    close = any_app.charging._stop

    def read_meanwhile(*args: Any, **kwargs: Any) -> Any:
        charger.reading(tx_id, began + 10 * MINUTE, 3_500)
        return close(*args, **kwargs)

    any_app.charging._stop = read_meanwhile  # type: ignore[method-assign]
    assert any_app.charging.close_lost_stops() == []
    any_app.charging._stop = close  # type: ignore[method-assign]
    clock.advance(grace(any_app) + 1)
    assert any_app.charging.close_lost_stops() == [tx_id]
    assert session(any_app, tx_id).billed_wh == 2_500
    assert failing(any_app) == set()


def shown(app: App) -> ConnectorStatus:
    """Connector 1's status as drivers see it."""
    with app.store.reading() as tx:
        return tx.chargers.get("CP1").connectors[0].status


def test_a_late_in_use_report_does_not_take_back_a_newer_free_one(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """Charging, then Available (the session freed, its stop awaited); the charger connects again,
    reports the connector as it is, and a Charging report made between the two arrives replayed
    behind it: it is older than the Available, so the connector stays free and the lost stop is
    still swept."""
    began = clock.now()
    tx_id = charger.start(began, 1_000)
    charger.status(free=False, at=began)
    charger.reading(tx_id, began + 10 * MINUTE, 2_000)
    clock.advance(20 * 60)
    charger.status(free=True, at=clock.now())
    charger.reconnect()
    charger.status(free=True, at=clock.now())
    charger.status(free=False, at=began + 15 * MINUTE)
    assert shown(any_app) is ConnectorStatus.AVAILABLE
    clock.advance(grace(any_app) + 1)
    assert any_app.charging.close_lost_stops() == [tx_id]
    assert session(any_app, tx_id).billed_wh == 1_000
    assert failing(any_app) == set()


def test_a_late_free_report_does_not_free_a_newer_session(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """An Available made before the car came arrives after the session started and was reported
    Charging: the session is not freed, the connector is still shown in use, and a start older
    than that Available is not taken for over."""
    freed = clock.now()
    clock.advance(60)
    tx_id = charger.start(clock.now(), 1_000)
    charger.status(free=False, at=clock.now())
    clock.advance(60)
    charger.status(free=True, at=freed)
    assert shown(any_app) is ConnectorStatus.CHARGING
    assert session(any_app, tx_id).freed_at is None
    clock.advance(2 * grace(any_app))
    assert any_app.charging.close_lost_stops() == []
    assert session(any_app, tx_id).status is SessionStatus.CHARGING


def test_an_untimestamped_1_6_report_is_placed_when_it_came(any_app: App, clock: ManualClock) -> None:
    """A 1.6 report without a timestamp stands as of its arrival: one stamped before it arrived is
    late; one stamped after it is not."""
    add_charger(any_app, price=PRICE)
    charger = Charger(any_app, V16)
    arrived = clock.now()
    charger.status(free=False, at=None)
    charger.status(free=True, at=arrived - timedelta(seconds=1))
    assert shown(any_app) is ConnectorStatus.CHARGING
    clock.advance(1)
    charger.status(free=True, at=clock.now())
    assert shown(any_app) is ConnectorStatus.AVAILABLE


def test_a_stamp_ahead_of_our_clock_counts_as_when_it_came(
    any_app: App, clock: ManualClock, charger: Charger
) -> None:
    """A charger whose clock ran an hour fast, then set right: its old report does not hold the
    connector's status against the right-timed reports that follow it."""
    charger.status(free=False, at=clock.now() + timedelta(hours=1))
    clock.advance(60)
    charger.status(free=True, at=clock.now())
    assert shown(any_app) is ConnectorStatus.AVAILABLE


def departed(charger: Charger, at: datetime, wh: int, reason: str = "EVDeparted", **more: Any) -> None:
    """A 2.0.1 Updated event of the open transaction, stamped `at`, for `reason`."""
    charger.seq += 1
    offline_event(charger.table, "Updated", charger.seq, at, wh, triggerReason=reason, offline=False, **more)


@pytest.fixture
def charger201(any_app: App, clock: ManualClock) -> Charger:
    """A 2.0.1 CP1 at 40p/kWh, booked by TAG1's driver for two hours from now; a minute passes."""
    charger_id = add_charger(any_app, price=PRICE)
    driver = any_app.marketplace.add_driver("D", TAG).driver_id
    any_app.bookings.book(BookRequest(driver, charger_id, 1, 120, 20_000))
    clock.advance(60)
    return Charger(any_app, V201)


def test_an_ev_departed_event_frees_the_session_as_an_available_report_does(
    any_app: App, clock: ManualClock, charger201: Charger
) -> None:
    """The car left the bay (triggerReason EVDeparted) and the transaction's end never comes: the
    session is closed a grace later, billed on its last reading. The connector's status stays the
    charger's own (its EVSE still holds the transaction)."""
    began = clock.now()
    tx_id = charger201.start(began, 1_000)
    charger201.status(free=False, at=began)
    clock.advance(30 * 60)
    departed(
        charger201,
        clock.now(),
        4_000,
        transactionInfo={"transactionId": "offline-1", "chargingState": "Idle"},
    )
    assert shown(any_app) is ConnectorStatus.CHARGING
    clock.advance(grace(any_app) - 1)
    assert any_app.charging.close_lost_stops() == []
    clock.advance(2)
    assert any_app.charging.close_lost_stops() == [tx_id]
    closed = session(any_app, tx_id)
    assert (closed.status, closed.billed_wh, closed.cost) == (SessionStatus.STOPPED, 3_000, 120)
    assert failing(any_app) == set()


def test_a_cable_out_at_the_car_alone_does_not_free_the_session(
    any_app: App, clock: ManualClock, charger201: Charger
) -> None:
    """EVCommunicationLost with chargingState Idle: with StopTxOnEVSideDisconnect false the
    transaction is suspended, its cable locked, and the same car may plug back in (E10)."""
    tx_id = charger201.start(clock.now(), 1_000)
    clock.advance(60)
    idle = {"transactionId": "offline-1", "chargingState": "Idle"}
    departed(charger201, clock.now(), 1_500, reason="EVCommunicationLost", transactionInfo=idle)
    clock.advance(2 * grace(any_app))
    assert any_app.charging.close_lost_stops() == []
    assert session(any_app, tx_id).status is SessionStatus.CHARGING


def test_an_in_use_report_older_than_the_departure_keeps_it_freed_a_newer_one_does_not(
    any_app: App, clock: ManualClock, charger201: Charger
) -> None:
    """Occupied made before the car left, arriving after: late, the session stays freed. Occupied
    made after: the car may be back, so the session stays open until the next free report."""
    began = clock.now()
    tx_id = charger201.start(began, 1_000)
    clock.advance(10 * 60)
    departed(charger201, clock.now(), 2_000)
    charger201.status(free=False, at=clock.now() - timedelta(seconds=50))
    assert session(any_app, tx_id).freed_at is not None
    clock.advance(60)
    charger201.status(free=False, at=clock.now())
    assert session(any_app, tx_id).freed_at is None
    clock.advance(2 * grace(any_app))
    assert any_app.charging.close_lost_stops() == []


def test_a_departure_older_than_the_connector_s_latest_report_is_not_applied(
    any_app: App, clock: ManualClock, charger201: Charger
) -> None:
    """As an Available made before the latest report: the later report stands."""
    began = clock.now()
    tx_id = charger201.start(began, 1_000)
    clock.advance(10 * 60)
    charger201.status(free=False, at=clock.now())
    departed(charger201, began + 5 * MINUTE, 2_000)
    assert session(any_app, tx_id).freed_at is None


def test_a_status_report_made_before_the_departure_arriving_after_it_is_still_the_status(
    any_app: App, clock: ManualClock, charger201: Charger
) -> None:
    """A departure is not a status report: a charger back from offline replays its queued events,
    the departure among them, then reports the connector Available as of when the cable came out,
    a few seconds before the bay sensor saw the car leave. That is the connector's latest status:
    shown, so the next booking's reservation goes out; the session stays freed."""
    began = clock.now()
    tx_id = charger201.start(began, 1_000)
    charger201.status(free=False, at=began)
    clock.advance(30 * 60)
    unplugged = clock.now()
    left = unplugged + timedelta(seconds=5)
    clock.advance(60)  # offline meanwhile; back now
    departed(charger201, left, 4_000)
    charger201.status(free=True, at=unplugged)
    assert shown(any_app) is ConnectorStatus.AVAILABLE
    assert session(any_app, tx_id).freed_at is not None
