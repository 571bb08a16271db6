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
from chargeshare.domain.errors import ChargerUnavailable
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
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
    pending = app.charging.boot("NEW", "1.6")
    assert (pending.status, pending.interval_s) == (
        BootPolicy.PENDING,
        app.charging.rules.boot_retry_interval_s,
    )
    app.charging.heartbeat("NEW")
    assert status_of(app) is ChargerStatus.REGISTERED  # a heartbeat does not bring it into service

    app.hosting.set_boot_policy(host_of(app, charger_id), charger_id, BootPolicy.ACCEPTED)
    accepted = app.charging.boot("NEW", "1.6")
    assert (accepted.status, accepted.interval_s) == (
        BootPolicy.ACCEPTED,
        app.charging.rules.heartbeat_interval_s,
    )
    assert status_of(app) is ChargerStatus.ONLINE


def test_a_rejected_charger_stays_out_of_service_whatever_it_sends(app: App, clock: ManualClock) -> None:
    charger_id = listing(app)
    app.hosting.set_boot_policy(host_of(app, charger_id), charger_id, BootPolicy.ACCEPTED)
    app.charging.boot("NEW", "1.6")
    app.marketplace.set_boot_policy("NEW", BootPolicy.REJECTED)
    assert status_of(app) is ChargerStatus.REGISTERED
    assert app.charging.boot("NEW", "1.6").status is BootPolicy.REJECTED
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
