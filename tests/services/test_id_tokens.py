"""Id tokens at the charger: Authorize and transaction start from the token's status plus the
booking rules and the host's walk-in setting; walk-ins billed like bookings. On the in-memory fake."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.tokens import TokenStatus, TokenType
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import REFUSED_TRANSACTION_ID, AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import EnergyLimitReached
from chargeshare.services.invariants import check_store
from chargeshare.services.receipts import receipt_for
from tests.conftest import add_charger


def failing(app: App) -> set[str]:
    return {r.name for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok}


@pytest.fixture
def world(app: App) -> tuple[int, int]:
    """A charger (CP1, 30p/kWh) and a driver (id tag ANN-TAG) with an RFID card CARD-1."""
    charger = add_charger(app)
    driver = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    app.tokens.add(driver, "CARD-1", group_id="FLEET-1")
    return charger, driver


def test_a_booked_drivers_card_is_accepted_on_the_booked_connector_during_the_booking(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    charger, driver = world
    assert app.charging.authorize("CP1", "CARD-1") is AuthStatus.BLOCKED  # valid, but no booking
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=1)))
    assert app.charging.authorize("CP1", "CARD-1") is AuthStatus.BLOCKED  # not begun yet
    clock.advance(3_600)
    answer = app.charging.authorization("CP1", "CARD-1")
    assert (answer.status, answer.group_id, answer.expires_at) == (AuthStatus.ACCEPTED, "FLEET-1", None)
    assert app.charging.authorize("CP1", "ANN-TAG") is AuthStatus.ACCEPTED  # the booking tag still works
    started = app.charging.start("CP1", 1, "CARD-1", 1_000, clock.now())
    assert started.status is AuthStatus.ACCEPTED
    with app.store.reading() as tx:
        session = tx.sessions.get(started.transaction_id)
        assert session is not None and session.id_tag == "CARD-1"
        assert tx.bookings.get(session.booking_id).status is BookingStatus.ACTIVE


@pytest.mark.parametrize(
    ("status", "answered"),
    [
        (TokenStatus.BLOCKED, AuthStatus.BLOCKED),
        (TokenStatus.EXPIRED, AuthStatus.EXPIRED),
        (TokenStatus.INVALID, AuthStatus.INVALID),
    ],
)
def test_a_token_not_accepted_is_answered_with_its_status_even_with_a_booking(
    app: App, clock: ManualClock, world: tuple[int, int], status: TokenStatus, answered: AuthStatus
) -> None:
    charger, driver = world
    app.tokens.set_status("CARD-1", status)
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    assert app.charging.authorize("CP1", "CARD-1") is answered
    started = app.charging.start("CP1", 1, "CARD-1", 1_000, clock.now())
    assert (started.transaction_id, started.status) == (REFUSED_TRANSACTION_ID, answered)
    with app.store.reading() as tx:
        assert tx.sessions.all() == []
    assert app.charging.authorize("CP1", "NOBODY") is AuthStatus.INVALID


def test_a_token_expires_by_the_injected_clock(app: App, clock: ManualClock, world: tuple[int, int]) -> None:
    charger, driver = world
    app.tokens.add(driver, "CARD-2", expires_at=clock.now() + timedelta(minutes=30))
    app.bookings.book(BookRequest(driver, charger, 1, 120, 10_000))
    answer = app.charging.authorization("CP1", "CARD-2")
    assert (answer.status, answer.expires_at) == (AuthStatus.ACCEPTED, clock.now() + timedelta(minutes=30))
    clock.advance(30 * 60)
    assert app.charging.authorize("CP1", "CARD-2") is AuthStatus.EXPIRED
    assert app.charging.start("CP1", 1, "CARD-2", 0, clock.now()).status is AuthStatus.EXPIRED
    assert [v.status_now for v in app.tokens.list(driver)] == [TokenStatus.ACCEPTED, TokenStatus.EXPIRED]


def test_the_booking_id_tag_can_be_blocked_like_a_card(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    charger, driver = world
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    view = app.tokens.block("ANN-TAG")
    assert (view.token.driver_id, view.token.type, view.status_now) == (
        driver,
        TokenType.CENTRAL,
        TokenStatus.BLOCKED,
    )
    assert app.charging.authorize("CP1", "ANN-TAG") is AuthStatus.BLOCKED
    assert app.charging.authorize("CP1", "CARD-1") is AuthStatus.ACCEPTED
    app.tokens.set_status("ANN-TAG", TokenStatus.ACCEPTED)
    assert app.charging.authorize("CP1", "ANN-TAG") is AuthStatus.ACCEPTED
    with pytest.raises(NotFound):
        app.tokens.block("NOBODY")


def test_a_master_pass_is_accepted_to_authorize_and_never_starts(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    charger, driver = world
    app.tokens.add(driver, "MASTER", master_pass=True, type_=TokenType.CENTRAL)
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    assert app.charging.authorize("CP1", "MASTER") is AuthStatus.ACCEPTED
    assert app.charging.start("CP1", 1, "MASTER", 0, clock.now()).status is AuthStatus.BLOCKED


def test_tokens_are_checked_as_they_are_added(app: App, world: tuple[int, int]) -> None:
    _, driver = world
    with pytest.raises(InvalidRequest):
        app.tokens.add(driver, "X" * 21)
    with pytest.raises(InvalidRequest):
        app.tokens.add(driver, "CARD-1")
    with pytest.raises(NotFound):
        app.tokens.add(driver + 100, "CARD-9")
    with pytest.raises(InvalidRequest):
        app.tokens.set_walk_in(world[0], 0)
    assert [v.token.value for v in app.tokens.list()] == ["CARD-1"]


# ---- walk-in ------------------------------------------------------------------------------------------


def test_a_walk_in_is_billed_like_a_booking_at_the_hosts_walk_in_price(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    charger, driver = world
    assert app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).status is AuthStatus.BLOCKED
    app.tokens.set_walk_in(charger, 45)
    assert app.tokens.walk_in_price(charger) == 45
    assert app.charging.authorize("CP1", "CARD-1") is AuthStatus.ACCEPTED
    started = app.charging.start("CP1", 1, "CARD-1", 2_000, clock.now())
    assert started.status is AuthStatus.ACCEPTED
    with app.store.reading() as tx:
        session = tx.sessions.get(started.transaction_id)
        assert session is not None
        booking = tx.bookings.get(session.booking_id)
    assert (booking.driver_id, booking.status, booking.price_per_kwh, booking.hold_amount) == (
        driver,
        BookingStatus.ACTIVE,
        45,
        0,
    )
    assert booking.ends_at == clock.now() + timedelta(minutes=app.config.rules.walk_in_minutes)
    clock.advance(3_600)
    app.charging.stop("CP1", started.transaction_id, 12_000, clock.now())  # 10 kWh at 45p
    with app.store.reading() as tx:
        booking = tx.bookings.get(booking.booking_id)
        entries = tx.ledger.entries(booking.booking_id)
        captured = sum(e.amount for e in entries if e.kind is EntryKind.CAPTURE)
        receipt = receipt_for(tx, booking, app.config.rules)
        steps = [(i.step, i.status) for i in tx.outbox.all()]
    assert booking.status is BookingStatus.COMPLETED
    assert booking.ends_at == clock.now()  # the rest of the walk-in's time is free again
    assert captured == 450
    assert receipt is not None and (receipt.energy_wh, receipt.cost) == (10_000, 450)
    assert steps == [("capture", "done")]
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert [(h.amount, h.state) for h in gateway.holds.values()] == [(450, "captured")]
    assert failing(app) == set()


def test_a_walk_in_is_refused_where_someone_has_booked_the_time(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    charger, _ = world
    app.tokens.set_walk_in(charger, 45)
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=2)))
    assert app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).status is AuthStatus.BLOCKED
    # Bob's own card charges on his booking, not as a walk-in, once it has begun.
    clock.advance(2 * 3_600)
    started = app.charging.start("CP1", 1, "BOB-TAG", 0, clock.now())
    assert started.status is AuthStatus.ACCEPTED
    with app.store.reading() as tx:
        assert [b.hold_amount > 0 for b in tx.bookings.all()] == [True]
    # A blocked token is no walk-in either.
    app.tokens.block("CARD-1")
    assert app.charging.authorize("CP1", "CARD-1") is AuthStatus.BLOCKED


def test_a_walk_in_stops_at_its_energy_limit_and_a_free_session_charges_nothing(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    charger, _ = world
    app.tokens.set_walk_in(charger, 45)
    limits: list[EnergyLimitReached] = []
    app.bus.subscribe(EnergyLimitReached, limits.append)
    first = app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).transaction_id
    app.charging.meter("CP1", first, app.config.rules.walk_in_max_energy_wh)
    assert [e.transaction_id for e in limits] == [first]
    clock.advance(3_600)
    app.charging.stop("CP1", first, app.config.rules.walk_in_max_energy_wh, clock.now())
    clock.advance(60)
    second = app.charging.start("CP1", 1, "CARD-1", 100, clock.now()).transaction_id
    app.charging.stop("CP1", second, 100, clock.now())  # plugged and unplugged: nothing drawn
    with app.store.reading() as tx:
        steps = [(i.booking_id, i.step, i.status) for i in tx.outbox.all()]
    assert [s[1:] for s in steps] == [("capture", "done"), ("capture", "done")]
    assert failing(app) == set()


def test_a_declined_walk_in_card_is_kept_for_manual_collection(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    charger, driver = world
    app.tokens.set_walk_in(charger, 45)
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    gateway.decline_customers.add(f"driver:{driver}")
    tx_id = app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).transaction_id
    app.charging.stop("CP1", tx_id, 1_000, clock.now())
    for _ in range(app.config.rules.payment_max_attempts):
        clock.advance(app.config.rules.payment_backoff_cap_s * 2)
        app.settlement.process_due()
    with app.store.reading() as tx:
        (item,) = tx.outbox.all()
    assert (item.step, item.status) == ("capture", "dead")
    assert item.last_error is not None and "collect manually" in item.last_error


def test_a_new_drivers_tag_may_not_be_someone_elses_card(app: App, world: tuple[int, int]) -> None:
    with pytest.raises(InvalidRequest):
        app.marketplace.add_driver("Eve", "CARD-1")
    with pytest.raises(InvalidRequest):
        app.auth.register_driver("eve@drivers.example", "a long password 1", "Eve", "CARD-1")
