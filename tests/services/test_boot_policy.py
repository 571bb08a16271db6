"""Boot policy in the services, on the in-memory store: only an Accepted charger comes into service."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import (
    BootPolicy,
    ChargerSpec,
    ChargerStatus,
    ConnectorSpec,
    ConnectorStatus,
    ConnectorType,
)
from chargeshare.domain.errors import BookingConflict, ChargerUnavailable
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, csms_v16, csms_v201
from chargeshare.ocpp.connection import CallRejected
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock


def listing(app: App, cp_id: str = "NEW") -> int:
    host = app.marketplace.add_host("h")
    spec = ChargerSpec(
        cp_id, host, Point(51.45, -2.59), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
    )
    view, _ = app.hosting.add_charger(spec)
    return view.charger_id


def status_of(app: App, cp_id: str = "NEW") -> ChargerStatus:
    with app.store.reading() as tx:
        return tx.chargers.get(cp_id).status


def host_of(app: App, charger_id: int) -> int:
    with app.store.reading() as tx:
        return tx.chargers.by_id(charger_id).host_id


def test_a_host_listing_boots_pending_and_comes_online_once_accepted(app: App) -> None:
    charger_id = listing(app)
    pending = app.charging.boot("NEW", V16)
    assert (pending.status, pending.interval_s) == (
        BootPolicy.PENDING,
        app.charging.rules.boot_retry_interval_s,
    )
    app.charging.heartbeat("NEW")
    assert status_of(app) is ChargerStatus.REGISTERED  # a heartbeat does not bring it into service

    app.hosting.set_boot_policy(host_of(app, charger_id), charger_id, BootPolicy.ACCEPTED)
    accepted = app.charging.boot("NEW", V16)
    assert (accepted.status, accepted.interval_s) == (
        BootPolicy.ACCEPTED,
        app.charging.rules.heartbeat_interval_s,
    )
    assert status_of(app) is ChargerStatus.ONLINE


def test_a_rejected_charger_stays_out_of_service_whatever_it_sends(app: App, clock: ManualClock) -> None:
    charger_id = listing(app)
    app.hosting.set_boot_policy(host_of(app, charger_id), charger_id, BootPolicy.ACCEPTED)
    app.charging.boot("NEW", V16)
    app.marketplace.set_boot_policy("NEW", BootPolicy.REJECTED)
    assert status_of(app) is ChargerStatus.REGISTERED
    assert app.charging.boot("NEW", V16).status is BootPolicy.REJECTED
    clock.advance(3600)
    app.charging.status("NEW", 1, ConnectorStatus.AVAILABLE)  # sent before it learnt of its rejection
    app.charging.heartbeat("NEW")
    assert status_of(app) is ChargerStatus.REGISTERED
    # Its link closing is not a charger going offline: its host is not told it went.
    app.charging.disconnected("NEW")
    assert status_of(app) is ChargerStatus.REGISTERED
    host = host_of(app, charger_id)
    with app.store.reading() as tx:
        kinds = [n["kind"] for n in tx.notifications.all(host)]
    assert "charger_offline" not in kinds


def test_a_charger_not_accepted_cannot_be_booked(app: App, clock: ManualClock) -> None:
    charger_id = listing(app)
    driver = app.marketplace.add_driver("d", "TAG1").driver_id
    request = BookRequest(driver, charger_id, 1, 60, 10_000, starts_at=clock.now() + timedelta(days=2))
    with pytest.raises(ChargerUnavailable, match="not in service"):
        app.bookings.book(request)
    app.hosting.set_boot_policy(host_of(app, charger_id), charger_id, BootPolicy.ACCEPTED)
    assert app.bookings.book(request).charger_id == charger_id


def test_a_charger_taken_out_while_connected_cannot_start_even_if_its_link_thinks_it_can(
    app: App, clock: ManualClock
) -> None:
    """A charger that never boots again after it was rejected (no TriggerMessage support, or the
    request lost) keeps a link whose gate last heard Accepted: the services refuse its starts."""
    charger_id = listing(app)
    host = host_of(app, charger_id)
    app.hosting.set_boot_policy(host, charger_id, BootPolicy.ACCEPTED)
    app.tokens.set_walk_in(charger_id, 40)  # anyone's card would do
    driver = app.marketplace.add_driver("d", "TAG1").driver_id
    assert driver
    table = csms_v16.handlers(app.charging, "NEW", app.reports)
    assert (
        table["BootNotification"]({"chargePointVendor": "V", "chargePointModel": "M"})["status"] == "Accepted"
    )
    app.hosting.set_boot_policy(host, charger_id, BootPolicy.REJECTED)
    assert table["Authorize"]({"idTag": "TAG1"})["idTagInfo"]["status"] == "Blocked"
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": clock.now().isoformat()}
    )
    assert started == {"transactionId": 0, "idTagInfo": {"status": "Blocked"}}


def test_a_charger_with_unfinished_bookings_is_not_taken_out_of_service(app: App, clock: ManualClock) -> None:
    charger_id = listing(app)
    host = host_of(app, charger_id)
    app.hosting.set_boot_policy(host, charger_id, BootPolicy.ACCEPTED)
    driver = app.marketplace.add_driver("d", "TAG1").driver_id
    booking = app.bookings.book(
        BookRequest(driver, charger_id, 1, 60, 10_000, starts_at=clock.now() + timedelta(days=1))
    )
    with pytest.raises(BookingConflict, match="unfinished booking"):
        app.hosting.set_boot_policy(host, charger_id, BootPolicy.REJECTED)
    with pytest.raises(BookingConflict):
        app.marketplace.set_boot_policy("NEW", BootPolicy.PENDING)
    app.bookings.cancel(booking.booking_id, driver_id=driver)
    assert (
        app.hosting.set_boot_policy(host, charger_id, BootPolicy.REJECTED).boot_policy is BootPolicy.REJECTED
    )


def test_what_finishes_a_session_passes_the_gate_and_what_begins_one_does_not(app: App) -> None:
    listing(app)  # Pending
    v16 = csms_v16.handlers(app.charging, "NEW", app.reports)
    v201 = csms_v201.handlers(app.charging, "NEW", app.reports)
    assert v16["BootNotification"]({"chargePointVendor": "V", "chargePointModel": "M"})["status"] == "Pending"
    for table, action, payload in (
        (v16, "Authorize", {"idTag": "TAG1"}),
        (v16, "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "x"}),
        (v201, "TransactionEvent", {"eventType": "Started"}),
    ):
        with pytest.raises(CallRejected) as refused:
            table[action](payload)
        assert refused.value.code == "SecurityError"
    # A stop, a reading and a freed connector are heard (here: of nothing running, so nothing changes).
    v16["StatusNotification"]({"connectorId": 1, "errorCode": "NoError", "status": "Available"})
    v16["MeterValues"]({"connectorId": 1, "meterValue": []})
    assert status_of(app) is ChargerStatus.REGISTERED


def test_put_back_in_service_its_next_frame_brings_it_online_without_a_boot(app: App) -> None:
    charger_id = listing(app)
    host = host_of(app, charger_id)
    app.hosting.set_boot_policy(host, charger_id, BootPolicy.ACCEPTED)
    table = csms_v16.handlers(app.charging, "NEW", app.reports)
    table["BootNotification"]({"chargePointVendor": "V", "chargePointModel": "M"})
    app.hosting.set_boot_policy(host, charger_id, BootPolicy.REJECTED)
    app.last_seen.forget("NEW")
    table["Heartbeat"]({})
    assert status_of(app) is ChargerStatus.REGISTERED
    app.hosting.set_boot_policy(host, charger_id, BootPolicy.ACCEPTED)  # it never boots again
    app.last_seen.forget("NEW")  # as the API does after a change
    assert status_of(app) is ChargerStatus.OFFLINE
    table["Heartbeat"]({})
    assert status_of(app) is ChargerStatus.ONLINE
