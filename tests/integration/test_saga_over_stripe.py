"""The whole saga with the Stripe gateway selected by configuration, over HTTP to a local fake Stripe:
book (hold), charge, stop (exact capture), and a cancelled booking (release)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargeshare.adapters.stripe_gateway import StripeGateway
from chargeshare.bootstrap import App, Config, build
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import T0, add_charger
from tests.stripe_fake_server import RunningFakeStripe


@pytest.fixture
def stripe_app() -> Iterator[tuple[App, RunningFakeStripe]]:
    fake = RunningFakeStripe()
    env = {"CHARGESHARE_STRIPE_API_KEY": "sk_test_local", "CHARGESHARE_STRIPE_API_BASE": fake.base_url}
    app = build(Config.from_env(env, database_url="sqlite://"), clock=ManualClock(T0))
    try:
        yield app, fake
    finally:
        app.close()
        fake.stop()


def test_booking_charging_and_settlement_through_stripe(stripe_app: tuple[App, RunningFakeStripe]) -> None:
    app, fake = stripe_app
    assert isinstance(app.gateway, StripeGateway)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    charger = add_charger(app, price=40)
    d = app.marketplace.add_driver("D", "TAG1").driver_id
    booking = app.bookings.book(BookRequest(d, charger, 1, 60, 10_000))
    assert booking.payment_ref is not None and booking.payment_ref.startswith("pi_")
    intent = fake.stripe.intents[booking.payment_ref]
    assert (intent["amount"], intent["capture_method"], intent["status"]) == (
        440,
        "manual",
        "requires_capture",
    )
    clock.advance(60)
    tx = app.charging.start("CP1", 1, "TAG1", 0, clock.now()).transaction_id
    clock.advance(1800)
    app.charging.stop("CP1", tx, 3_333, clock.now())  # 3.333 kWh x 40p = 133p
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 133)
    cancelled = app.bookings.book(
        BookRequest(d, charger, 1, 60, 10_000, starts_at=clock.now().replace(hour=20))
    )
    app.bookings.cancel(cancelled.booking_id, driver_id=d)
    assert cancelled.payment_ref is not None
    assert fake.stripe.intents[cancelled.payment_ref]["status"] == "canceled"
    assert [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok] == []
