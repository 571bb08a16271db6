"""A charger whose clock jumps back (its real-time clock reset, a wrong time server): what it reports
after the jump is stamped earlier than what it reported before. Each connection places the stamps on
our clock (chargeshare.ocpp.report_clock), so its reports are applied in the order it makes them: a
connector freed after the jump is shown free, its session freed and billed to the stop's real time,
and a session started after a reboot that set the clock back is not taken for one already over.
A report replayed as the charger connects again is still late. Through the OCPP 1.6 and 2.0.1
handlers, on the in-memory fake."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp import V16, V201, OcppVersion, csms
from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import ConnectorStatusWanted
from tests.conftest import add_charger
from tests.integration.test_late_start_freed import grace, session
from tests.services.test_money_path import failing

PRICE = 40
TAG = "TAG1"
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
STATUS_201 = {
    ConnectorStatus.AVAILABLE: "Available",
    ConnectorStatus.PREPARING: "Occupied",
    ConnectorStatus.CHARGING: "Occupied",
}


class Charger:
    """CP1 over a link of its own, stamping each message with its own clock: ours plus `skew`."""

    def __init__(self, app: App, clock: ManualClock, version: OcppVersion) -> None:
        self.app, self.clock, self.version = app, clock, version
        self.skew = timedelta(0)
        self.seq = 0
        self.connect()

    def now(self) -> datetime:
        return self.clock.now() + self.skew

    def connect(self, *, boot: bool = True) -> None:
        """A new link, and a BootNotification on it (a charger may also connect again without)."""
        self.table: dict[str, Handler] = csms.handlers(
            self.version, self.app.charging, "CP1", self.app.reports
        )
        p: dict[str, Any]
        if self.version == V16:
            p = {"chargePointVendor": "Test", "chargePointModel": "T1"}
        else:
            p = {"reason": "PowerUp", "chargingStation": {"vendorName": "Test", "model": "T1"}}
        if boot:
            assert self.table["BootNotification"](p)["status"] == "Accepted"

    def status(self, status: ConnectorStatus, at: datetime | None = None) -> None:
        stamp = format_ts(self.now() if at is None else at)
        if self.version == V16:
            p: dict[str, Any] = {"connectorId": 1, "errorCode": "NoError", "status": status.value}
            p["timestamp"] = stamp
        else:
            p = {"evseId": 1, "connectorId": 1, "timestamp": stamp, "connectorStatus": STATUS_201[status]}
        assert self.table["StatusNotification"](p) == {}

    def _event(self, kind: str, wh: int, **more: Any) -> dict[str, Any]:
        p = {
            "eventType": kind,
            "timestamp": format_ts(self.now()),
            "triggerReason": "Authorized" if kind == "Started" else "EVCommunicationLost",
            "seqNo": self.seq,
            "transactionInfo": {"transactionId": "tx-1"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": format_ts(self.now()), "sampledValue": [{"value": wh}]}],
            **more,
        }
        self.seq += 1
        return self.table["TransactionEvent"](p)

    def start(self, wh: int) -> int:
        if self.version == V16:
            p = {"connectorId": 1, "idTag": TAG, "meterStart": wh, "timestamp": format_ts(self.now())}
            answer = self.table["StartTransaction"](p)
            assert answer["idTagInfo"] == {"status": "Accepted"}, answer
            return int(answer["transactionId"])
        answer = self._event("Started", wh, idToken={"idToken": TAG, "type": "Central"})
        assert answer == {"idTokenInfo": {"status": "Accepted"}}, answer
        session = self.app.charging.session_for_charger_tx("CP1", "tx-1")
        assert session is not None
        return session.session_id

    def stop(self, session_id: int, wh: int) -> None:
        if self.version == V16:
            p = {"transactionId": session_id, "meterStop": wh, "timestamp": format_ts(self.now())}
            assert self.table["StopTransaction"](p)["idTagInfo"] == {"status": "Accepted"}
        else:
            self._event("Ended", wh)


@pytest.fixture(params=[V16, V201], ids=["ocpp1.6", "ocpp2.0.1"])
def charger(request: pytest.FixtureRequest, app: App, clock: ManualClock) -> Charger:
    """CP1 at 40p/kWh, booted and reported free, booked by TAG1's driver for two hours from now."""
    charger_id = add_charger(app, price=PRICE, online=False)
    cp = Charger(app, clock, request.param)
    cp.status(ConnectorStatus.AVAILABLE)
    driver = app.marketplace.add_driver("D", TAG).driver_id
    app.bookings.book(BookRequest(driver, charger_id, 1, 120, 20_000))
    clock.advance(60)
    return cp


def shown(app: App) -> ConnectorStatus:
    with app.store.reading() as tx:
        return tx.chargers.get("CP1").connectors[0].status


def test_a_connector_freed_after_the_clock_went_back_mid_session_is_shown_free(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    """Twenty minutes into a session the charger's clock jumps an hour back; the car leaves: the
    connector is free, the session freed, and the booking ends when the car really stopped."""
    charger.status(ConnectorStatus.PREPARING)
    tx_id = charger.start(1_000)
    charger.status(ConnectorStatus.CHARGING)
    clock.advance(20 * 60)
    charger.skew = -HOUR
    charger.status(ConnectorStatus.AVAILABLE)
    assert shown(app) is ConnectorStatus.AVAILABLE
    assert session(app, tx_id).freed_at == clock.now()
    charger.stop(tx_id, 3_000)
    stopped = session(app, tx_id)
    assert (stopped.status, stopped.billed_wh) == (SessionStatus.STOPPED, 2_000)
    with app.store.reading() as tx:
        assert tx.bookings.get(stopped.booking_id).ends_at == clock.now()
    assert failing(app) == set()


def test_a_session_started_after_a_reboot_set_the_clock_back_is_not_taken_for_over(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    """The connector was reported free; the charger reboots with its clock an hour behind, and a
    car plugs in and charges: the connector is shown in use and the session stays open (not closed
    as one whose stop was lost), and a later free report frees it."""
    clock.advance(10 * 60)
    charger.skew = -HOUR
    charger.connect()
    charger.status(ConnectorStatus.AVAILABLE)
    clock.advance(60)
    charger.status(ConnectorStatus.PREPARING)
    assert shown(app) is not ConnectorStatus.AVAILABLE
    tx_id = charger.start(1_000)
    charger.status(ConnectorStatus.CHARGING)
    clock.advance(2 * grace(app))
    assert app.charging.close_lost_stops() == []
    assert session(app, tx_id).status is SessionStatus.CHARGING
    assert shown(app) is ConnectorStatus.CHARGING
    charger.status(ConnectorStatus.AVAILABLE)
    assert session(app, tx_id).freed_at == clock.now()


def test_a_link_opened_again_without_a_boot_follows_the_clock_still_behind(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    """The clock went back mid-session and the link drops; the charger connects again without
    booting, its clock still an hour behind: the car leaving is still applied."""
    charger.status(ConnectorStatus.PREPARING)
    tx_id = charger.start(1_000)
    charger.status(ConnectorStatus.CHARGING)
    clock.advance(20 * 60)
    charger.skew = -HOUR
    charger.status(ConnectorStatus.CHARGING)
    clock.advance(5 * 60)
    charger.connect(boot=False)
    charger.status(ConnectorStatus.CHARGING)
    clock.advance(60)
    charger.status(ConnectorStatus.AVAILABLE)
    assert shown(app) is ConnectorStatus.AVAILABLE
    assert session(app, tx_id).freed_at == clock.now()


def test_a_report_replayed_as_the_charger_reconnects_is_still_late(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    """The clock right all along: Charging, then Available; the charger connects again and a
    Charging made between the two comes after its current report: late, the connector stays free."""
    charger.status(ConnectorStatus.PREPARING)
    tx_id = charger.start(1_000)
    charger.status(ConnectorStatus.CHARGING)
    clock.advance(20 * 60)
    charger.status(ConnectorStatus.AVAILABLE)
    clock.advance(60)
    charger.connect()
    charger.status(ConnectorStatus.AVAILABLE)
    charger.status(ConnectorStatus.CHARGING, at=clock.now() - 10 * MINUTE)
    assert shown(app) is ConnectorStatus.AVAILABLE
    assert session(app, tx_id).freed_at is not None


def test_a_start_replayed_first_on_a_link_opened_again_is_not_taken_for_over(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    """The charger boots with its clock an hour behind and reports the connector free; its link
    drops, a car plugs in and starts meanwhile, and the start queued offline is the first thing sent
    when it connects again without booting (no status on the new link yet). The start is after the
    free report: the session stays open and is not closed as one whose stop was lost."""
    charger.skew = -HOUR
    charger.connect()
    charger.status(ConnectorStatus.AVAILABLE)
    clock.advance(5 * 60)
    charger.connect(boot=False)
    tx_id = charger.start(1_000)
    assert session(app, tx_id).freed_at is None
    clock.advance(2 * grace(app))
    assert app.charging.close_lost_stops() == []
    assert session(app, tx_id).status is SessionStatus.CHARGING


def test_a_start_replayed_first_on_a_link_opened_again_asks_the_connector_s_status(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    """The charger, its clock an hour behind, reported the connector free; its link drops, and a car
    charges and leaves meanwhile, its stop lost. Connected again without booting, it replays the
    start first: the start cannot be placed against the free report, so the connector's status is
    asked for, and the charger's answer (free) frees the session, closed once its stop is overdue."""
    wanted: list[ConnectorStatusWanted] = []
    app.bus.subscribe(ConnectorStatusWanted, wanted.append)
    charger.skew = -HOUR
    charger.connect()
    charger.status(ConnectorStatus.AVAILABLE)
    clock.advance(5 * 60)
    charger.connect(boot=False)
    tx_id = charger.start(1_000)
    assert [(w.charge_point_id, w.connector_no) for w in wanted] == [("CP1", 1)]
    charger.status(ConnectorStatus.AVAILABLE)  # the triggered report
    assert session(app, tx_id).freed_at == clock.now()
    clock.advance(2 * grace(app))
    assert app.charging.close_lost_stops() == [tx_id]


def test_a_start_on_a_link_whose_clock_is_known_asks_nothing(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    wanted: list[ConnectorStatusWanted] = []
    app.bus.subscribe(ConnectorStatusWanted, wanted.append)
    charger.status(ConnectorStatus.PREPARING)
    charger.start(1_000)
    assert wanted == []


def test_a_start_sent_again_first_on_a_link_opened_again_asks_the_connector_s_status(
    app: App, clock: ManualClock, charger: Charger
) -> None:
    """The server stores a start on an unplaced link and dies before its answer, and before the
    status request that follows it; the charger connects again and sends the start again, first.
    The repeat is answered as before and the connector's status is asked for on the new link, so a
    session whose car left meanwhile is freed by the answer as the first start's would have been."""
    wanted: list[ConnectorStatusWanted] = []
    app.bus.subscribe(ConnectorStatusWanted, wanted.append)
    charger.skew = -HOUR
    charger.connect()
    charger.status(ConnectorStatus.AVAILABLE)
    clock.advance(5 * 60)
    charger.connect(boot=False)
    seq = charger.seq
    tx_id = charger.start(1_000)
    wanted.clear()  # the process died with it: no request reached the charger
    charger.connect(boot=False)
    charger.seq = seq  # the same message again
    assert charger.start(1_000) == tx_id
    assert [(w.charge_point_id, w.connector_no) for w in wanted] == [("CP1", 1)]
    charger.status(ConnectorStatus.AVAILABLE)  # the triggered report
    assert session(app, tx_id).freed_at == clock.now()
    clock.advance(2 * grace(app))
    assert app.charging.close_lost_stops() == [tx_id]
