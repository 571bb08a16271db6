"""A small marketplace for API tests: two hosts with a charger each, two drivers, and on each charger
one finished, paid booking (with its session and receipt) and one confirmed booking, so every
endpoint has an own and an other's resource to aim at."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx

from chargeshare.bootstrap import App, Config
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests import api_helpers as accounts
from tests.conftest import T0, build_for_tests


@dataclass(frozen=True)
class Side:
    """One tenant: a host, their charger, a driver who used it."""

    host: accounts.Caller
    driver: accounts.Caller
    charger_id: int
    charge_point_id: str
    done_booking: int  # completed, settled: has a session and a receipt
    live_booking: int  # confirmed, not started: can be cancelled (by its driver)
    live_booking_2: int  # another such (for its host to cancel)
    session_id: int
    spare_charger_id: int  # never booked: can be removed, as can its connector 2


@dataclass(frozen=True)
class World:
    app: App
    clock: ManualClock
    mine: Side
    theirs: Side
    admin: accounts.Caller


def _side(app: App, clock: ManualClock, tag: str, lon: float) -> Side:
    host = accounts.host(app, f"host{tag}")
    driver = accounts.driver(app, f"driver{tag}", f"TAG{tag}")
    cp_id = f"CP{tag}"
    spec = ChargerSpec(
        cp_id,
        host.hid,
        Point(51.45, lon),
        Tariff(40),
        (ConnectorSpec(1, ConnectorType.TYPE2, 7400), ConnectorSpec(2, ConnectorType.TYPE2, 7400)),
        title=f"Charger {tag}",
    )
    # Registered without a charger password: hashing one costs more than the rest of the world.
    view = app.marketplace.add_charger(spec)
    with app.store.transaction() as tx:
        tx.chargers.set_access_notes(view.charger_id, f"gate code {tag}")
    app.charging.boot(cp_id, V16)
    app.charging.status(cp_id, 0, ConnectorStatus.AVAILABLE)
    done = app.bookings.book(BookRequest(driver.did, view.charger_id, 1, 60, 10_000))
    session = app.charging.start(cp_id, 1, f"TAG{tag}", 0, clock.now()).transaction_id
    app.charging.meter(cp_id, session, 4_000)
    app.charging.stop(cp_id, session, 5_000, clock.now())
    live = app.bookings.book(
        BookRequest(driver.did, view.charger_id, 2, 60, 5_000, starts_at=clock.now() + timedelta(days=1))
    )
    live_2 = app.bookings.book(
        BookRequest(driver.did, view.charger_id, 2, 60, 5_000, starts_at=clock.now() + timedelta(days=2))
    )
    spare = app.marketplace.add_charger(
        ChargerSpec(
            f"{cp_id}S",
            host.hid,
            Point(51.46, lon),
            Tariff(30),
            (ConnectorSpec(1, ConnectorType.TYPE2, 7400), ConnectorSpec(2, ConnectorType.CCS, 50_000)),
        )
    )
    return Side(
        host,
        driver,
        view.charger_id,
        cp_id,
        done.booking_id,
        live.booking_id,
        live_2.booking_id,
        session,
        spare.charger_id,
    )


@contextmanager
def world(database_url: str = "sqlite://") -> Iterator[World]:
    clock = ManualClock(T0)
    app = build_for_tests(Config(database_url=database_url, password_hash="fast"), clock=clock)
    try:
        mine, theirs = _side(app, clock, "A", -2.59), _side(app, clock, "B", -2.58)
        app.hosting.set_kyc(mine.host.hid, KycStatus.VERIFIED)
        yield World(app, clock, mine, theirs, accounts.admin(app))
    finally:
        app.close()


def client(app: App) -> httpx.AsyncClient:
    """The API in-process (no sockets): for tests about what it answers, not how it is served."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api(app)), base_url="http://api")
