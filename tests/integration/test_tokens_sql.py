"""Authorisation and walk-in charging on the real databases: the walk-in's booking goes through the
same overlap guard as any booking (PostgreSQL's exclusion constraint, SQLite's serialized check),
and a refusal leaves the unit of work, and the connector, as they were."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from chargeshare.bootstrap import App, Config
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.tokens import TokenStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger, build_for_tests


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[App]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    a = build_for_tests(Config(database_url=url, locks_enabled=False, password_hash="fast"), clock=clock)
    yield a
    a.close()


def test_walk_in_and_token_statuses_on_sql(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    app.tokens.add(ann, "ANN-CARD")
    app.tokens.add(ann, "ANN-OLD", expires_at=clock.now() + timedelta(minutes=5))
    app.tokens.set_walk_in(charger, 50)
    app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=1)))
    # Bob's booking falls within a walk-in's time: refused, and nothing written.
    assert app.charging.start("CP1", 1, "ANN-CARD", 0, clock.now()).status is AuthStatus.BLOCKED
    with app.store.reading() as tx:
        assert len(tx.bookings.all()) == 1 and tx.sessions.all() == []
    clock.advance(10 * 60)
    assert app.charging.authorize("CP1", "ANN-OLD") is AuthStatus.EXPIRED
    # Once Bob's booking is over, Ann walks in and is billed at the walk-in price.
    clock.advance(2 * 3_600)
    started = app.charging.start("CP1", 1, "ANN-CARD", 0, clock.now())
    assert started.status is AuthStatus.ACCEPTED
    clock.advance(3_600)
    app.charging.stop("CP1", started.transaction_id, 4_000, clock.now())
    app.tokens.set_status("ANN-CARD", TokenStatus.BLOCKED)
    assert app.charging.authorize("CP1", "ANN-CARD") is AuthStatus.BLOCKED
    with app.store.reading() as tx:
        walk_in = next(b for b in tx.bookings.all() if b.driver_id == ann)
        session = tx.sessions.get(started.transaction_id)
    assert (walk_in.status, walk_in.price_per_kwh, walk_in.hold_amount) == (BookingStatus.COMPLETED, 50, 0)
    assert session is not None and session.cost == 200
    app.bookings.expire_no_shows()
    failing = [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok]
    assert failing == []


def test_a_walk_in_stopped_at_once_leaves_the_rest_to_book_on_sql(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    app.tokens.set_walk_in(charger, 50)
    started = app.charging.start("CP1", 1, "ANN-TAG", 0, clock.now())
    app.charging.stop("CP1", started.transaction_id, 0, clock.now())
    clock.advance(1)
    # The exclusion constraint (PostgreSQL) or the serialized check (SQLite) lets it in.
    assert app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000)).status is BookingStatus.CONFIRMED
    with app.store.reading() as tx:
        walk_in = next(b for b in tx.bookings.all() if b.driver_id == ann)
    assert walk_in.status is BookingStatus.COMPLETED and walk_in.ends_at < clock.now()
    app.bookings.expire_no_shows()
    clock.advance(3_600)
    app.bookings.expire_no_shows()
    failing = [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok]
    assert failing == []


def test_a_replayed_walk_in_is_booked_at_its_own_time_on_sql(app: App, clock: ManualClock) -> None:
    """A start replayed from an offline queue, with a booking made since: booked from its own start
    up to that booking (which the exclusion constraint lets stand), billed once at the walk-in price."""
    charger = add_charger(app)
    ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    app.tokens.set_walk_in(charger, 50)
    began = clock.now()
    clock.advance(2 * 3_600)
    bobs = app.bookings.book(
        BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=1))
    )
    started = app.charging.start("CP1", 1, "ANN-TAG", 0, began)
    assert started.status is AuthStatus.ACCEPTED
    assert app.charging.start("CP1", 1, "ANN-TAG", 0, began) == started  # sent again
    app.charging.stop("CP1", started.transaction_id, 4_000, began + timedelta(minutes=90))
    with app.store.reading() as tx:
        walk_in = next(b for b in tx.bookings.all() if b.driver_id == ann)
        session = tx.sessions.get(started.transaction_id)
    assert (walk_in.starts_at, walk_in.ends_at) == (began, began + timedelta(minutes=90))
    assert walk_in.ends_at < bobs.starts_at
    assert (walk_in.status, walk_in.price_per_kwh, walk_in.hold_amount) == (BookingStatus.COMPLETED, 50, 0)
    assert session is not None and session.cost == 200
    clock.advance(3 * 3_600)
    app.bookings.expire_no_shows()
    failing = [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok]
    assert failing == []
