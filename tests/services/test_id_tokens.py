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
from chargeshare.services.charging import REFUSED_TRANSACTION_ID, AuthStatus, StartResult
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import EnergyLimitReached
from chargeshare.services.invariants import check_store
from chargeshare.services.ports import HoldResult, ProviderUnavailable
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
        app.tokens.add(driver, "X" * 256)  # longer than any version's idToken (2.1: 255)
    assert app.tokens.add(driver, "X" * 36).token.value == "X" * 36  # a 2.0.1 charger's card
    with pytest.raises(InvalidRequest):
        app.tokens.add(driver, "CARD-1")
    with pytest.raises(NotFound):
        app.tokens.add(driver + 100, "CARD-9")
    with pytest.raises(InvalidRequest):
        app.tokens.set_walk_in(world[0], 0)
    assert [v.token.value for v in app.tokens.list()] == ["CARD-1", "X" * 36]


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


class KeyRecorder:
    """The simulated gateway, noting the idempotency key of every authorisation asked of it."""

    def __init__(self, app: App) -> None:
        gateway = app.gateway
        assert isinstance(gateway, SimulatedGateway)
        self.gateway, self.keys = gateway, list[str]()
        authorize = gateway.authorize

        def noting(*, amount: int, customer: str, idempotency_key: str) -> HoldResult:
            self.keys.append(idempotency_key)
            return authorize(amount=amount, customer=customer, idempotency_key=idempotency_key)

        gateway.authorize = noting  # type: ignore[method-assign]


def test_a_declined_walk_in_is_charged_once_the_card_is_good_again(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """A decline is the provider's answer to one authorisation: the next attempt is a new one (a new
    idempotency key), not a replay of the decline, so the walk-in is charged once the card is good."""
    charger, driver = world
    app.tokens.set_walk_in(charger, 45)
    recorder = KeyRecorder(app)
    recorder.gateway.decline_customers.add(f"driver:{driver}")
    tx_id = app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).transaction_id
    clock.advance(3_600)
    app.charging.stop("CP1", tx_id, 10_000, clock.now())  # 10 kWh at 45p
    for _ in range(app.config.rules.payment_max_attempts):
        clock.advance(app.config.rules.payment_backoff_cap_s * 2)
        app.settlement.process_due()
    with app.store.reading() as tx:
        (item,) = tx.outbox.all()
    assert item.status == "dead"
    recorder.gateway.decline_customers.clear()  # the driver has sorted their card out
    app.settlement.reconcile()
    with app.store.reading() as tx:
        (item,) = tx.outbox.all()
        captured = sum(e.amount for e in tx.ledger.entries() if e.kind is EntryKind.CAPTURE)
    assert (item.step, item.status, captured) == ("capture", "done", 450)
    assert [(h.amount, h.state) for h in recorder.gateway.holds.values()] == [(450, "captured")]
    assert failing(app) == set()
    # Each declined attempt was a new authorisation; the one approved was asked once.
    assert len(recorder.keys) == len(set(recorder.keys)) == app.config.rules.payment_max_attempts + 1


def test_a_walk_in_charge_retried_after_a_failed_capture_reuses_its_authorisation(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """An exact repeat of an attempt (the card said yes, the capture then failed) asks under the same
    key, so the provider answers with the same authorisation and nothing is held twice."""
    charger, _ = world
    app.tokens.set_walk_in(charger, 45)
    recorder = KeyRecorder(app)
    capture = recorder.gateway.capture
    failures = [ProviderUnavailable("capture timed out")]

    def flaky(*, reference: str, amount: int, idempotency_key: str) -> None:
        if failures:
            raise failures.pop()
        capture(reference=reference, amount=amount, idempotency_key=idempotency_key)

    recorder.gateway.capture = flaky  # type: ignore[method-assign]
    tx_id = app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).transaction_id
    clock.advance(3_600)
    app.charging.stop("CP1", tx_id, 10_000, clock.now())
    clock.advance(app.config.rules.payment_backoff_cap_s * 2)
    app.settlement.process_due()
    with app.store.reading() as tx:
        (item,) = tx.outbox.all()
    assert (item.status, item.attempts) == ("done", 2)
    assert len(recorder.keys) == 2 and len(set(recorder.keys)) == 1
    assert [(h.amount, h.state) for h in recorder.gateway.holds.values()] == [(450, "captured")]
    assert failing(app) == set()


def test_a_refused_walk_in_start_is_decided_afresh_and_an_accepted_one_is_answered_again(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """A refusal keeps nothing under any key (the start's key is that of the session it opened):
    the driver's next start on the charger, or the same message sent again, is decided on what holds
    then. An accepted start sent again is answered with its transaction and opens nothing new."""
    charger, _ = world
    app.tokens.set_walk_in(charger, 45)
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    bobs = app.bookings.book(
        BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=1))
    )
    first_at = clock.now()
    assert app.charging.start("CP1", 1, "CARD-1", 0, first_at).status is AuthStatus.BLOCKED
    refused_201 = app.charging.start("CP1", 1, "CARD-1", 0, first_at, charger_tx_id="tx-1")
    assert refused_201 == StartResult(REFUSED_TRANSACTION_ID, AuthStatus.BLOCKED)
    app.bookings.cancel(bobs.booking_id, driver_id=bob)
    # The same 2.0.1 transaction presenting the card again, once the time is free: a walk-in.
    opened_201 = app.charging.start("CP1", 1, "CARD-1", 0, first_at, charger_tx_id="tx-1")
    assert opened_201.status is AuthStatus.ACCEPTED
    assert app.charging.start("CP1", 1, "CARD-1", 0, first_at, charger_tx_id="tx-1") == opened_201
    clock.advance(600)
    app.charging.stop("CP1", opened_201.transaction_id, 500, clock.now())
    # A later, new walk-in of the same driver on the same charger; sent twice, answered once.
    clock.advance(600)
    again = app.charging.start("CP1", 1, "CARD-1", 500, clock.now())
    assert again.status is AuthStatus.ACCEPTED and again.transaction_id != opened_201.transaction_id
    assert app.charging.start("CP1", 1, "CARD-1", 500, clock.now()) == again
    with app.store.reading() as tx:
        walk_ins = [b for b in tx.bookings.all() if b.driver_id != bob]
        assert [s.session_id for s in tx.sessions.all()] == [opened_201.transaction_id, again.transaction_id]
    assert [(b.hold_amount, b.price_per_kwh) for b in walk_ins] == [(0, 45), (0, 45)]


def test_a_walk_in_stopped_at_once_frees_the_calendar_from_its_stop(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """Plugged in and out within the same instant: the walk-in's booking ends then, not
    `walk_in_minutes` later, so the connector can be booked straight after."""
    charger, _ = world
    app.tokens.set_walk_in(charger, 45)
    started = app.charging.start("CP1", 1, "CARD-1", 0, clock.now())
    app.charging.stop("CP1", started.transaction_id, 0, clock.now())
    with app.store.reading() as tx:
        (walk_in,) = tx.bookings.all()
    assert walk_in.status is BookingStatus.COMPLETED
    assert walk_in.starts_at == clock.now() < walk_in.ends_at <= clock.now() + timedelta(seconds=1)
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    clock.advance(1)
    bobs = app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000))
    assert bobs.status is BookingStatus.CONFIRMED
    # And again, with the stop a moment after the start.
    clock.advance(3_600)
    again = app.charging.start("CP1", 1, "CARD-1", 0, clock.now())
    clock.advance(2)
    app.charging.stop("CP1", again.transaction_id, 10, clock.now())
    with app.store.reading() as tx:
        second = max(tx.bookings.all(), key=lambda b: b.booking_id)
    assert (second.status, second.ends_at) == (BookingStatus.COMPLETED, clock.now())
    app.bookings.expire_no_shows()  # Bob never came
    assert failing(app) == set()


def test_a_token_or_tag_presented_in_another_case_is_the_same(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """OCPP 1.6 IdToken is a CiString20: a reader that sends a card's UID in lower case, or a
    driver typing their tag, is answered for the same token."""
    charger, driver = world
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    answer = app.charging.authorization("CP1", "card-1")
    assert (answer.status, answer.group_id) == (AuthStatus.ACCEPTED, "FLEET-1")
    assert app.charging.authorize("CP1", "ann-tag") is AuthStatus.ACCEPTED
    started = app.charging.start("CP1", 1, "Card-1", 0, clock.now())
    assert started.status is AuthStatus.ACCEPTED
    app.tokens.block("card-1")
    assert app.charging.authorize("CP1", "CARD-1") is AuthStatus.BLOCKED
    # Blocking a booking tag by another spelling blocks that tag, kept as the driver spelt it.
    view = app.tokens.block("Ann-Tag")
    assert (view.token.value, view.token.driver_id) == ("ANN-TAG", driver)
    assert app.charging.authorize("CP1", "ANN-TAG") is AuthStatus.BLOCKED
    with pytest.raises(InvalidRequest):
        app.tokens.add(driver, "Card-1")
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    with pytest.raises(InvalidRequest):
        app.tokens.add(bob, "ann-tag")  # another driver's tag
    with pytest.raises(InvalidRequest):
        app.marketplace.add_driver("Eve", "card-1")  # someone's card


def test_a_walk_in_captured_under_the_key_before_lapses_counted_is_not_captured_again(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """A step stored before capture keys counted declines: its card declined once, the next
    authorisation was captured at the provider under the step's one capture key, and the process
    died before committing. Its retry must find that capture, not ask anew under a new key (the
    provider refuses a second capture of the authorisation, so the step dies, the driver charged
    and the ledger's hold open)."""
    charger, driver = world
    app.tokens.set_walk_in(charger, 45)
    recorder = KeyRecorder(app)
    sim = recorder.gateway
    sim.decline_customers.add(f"driver:{driver}")
    tx_id = app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).transaction_id
    clock.advance(3_600)
    app.charging.stop("CP1", tx_id, 10_000, clock.now())  # 450p; this attempt is declined
    sim.decline_customers.clear()
    with app.store.reading() as tx:
        (item,) = tx.outbox.all()
    assert (item.status, item.declines) == ("pending", 1)
    capture = sim.capture
    legacy = f"booking:{item.booking_id}:capture-capture"  # the key every attempt used before

    def done_then_died(*, reference: str, amount: int, idempotency_key: str) -> None:
        sim.capture = capture  # type: ignore[method-assign]
        capture(reference=reference, amount=amount, idempotency_key=legacy)
        raise ProviderUnavailable("the process died before its commit")

    sim.capture = done_then_died  # type: ignore[method-assign]
    clock.advance(app.config.rules.payment_backoff_cap_s * 2)
    app.settlement.process_due()
    assert [(h.amount, h.state) for h in sim.holds.values()] == [(450, "captured")]
    clock.advance(app.config.rules.payment_backoff_cap_s * 2)
    app.settlement.reconcile()
    with app.store.reading() as tx:
        (item,) = tx.outbox.all()
        captured = sum(e.amount for e in tx.ledger.entries() if e.kind is EntryKind.CAPTURE)
    assert (item.status, captured) == ("done", 450), item.last_error
    assert failing(app) == set()
