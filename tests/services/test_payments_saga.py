"""The payments saga at each failure point: decline, outage, crash between steps, duplicate stop,
a hold that lapses before capture; plus VAT on the platform fee and host payouts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import InvalidRequest, PaymentDeclined, PaymentUnavailable
from chargeshare.domain.ledger import PLATFORM_REVENUE, VAT_PAYABLE, EntryKind, posted_balances
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.settlement import SettlementService
from tests.conftest import add_charger


def gateway(app: App) -> SimulatedGateway:
    assert isinstance(app.gateway, SimulatedGateway)
    return app.gateway


def failing(app: App) -> set[str]:
    return {r.name for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok}


def outbox(app: App) -> list[tuple[str, str, int]]:
    with app.store.transaction() as tx:
        return [(i.step, i.status, i.attempts) for i in tx.outbox.all()]


def booked_and_charging(app: App, clock: ManualClock, price: int = 40) -> tuple[int, int]:
    charger = add_charger(app, price=price)
    driver = app.marketplace.add_driver("D", "TAG1")
    booking = app.bookings.book(BookRequest(driver.driver_id, charger, 1, 120, 30_000))
    clock.advance(60)
    tx = app.charging.start("CP1", 1, "TAG1", 1_000, clock.now()).transaction_id
    clock.advance(3_600)
    return booking.booking_id, tx


def test_a_declined_card_fails_the_booking_and_leaves_no_trace(app: App) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("D", "D").driver_id
    gateway(app).decline_customers.add(f"driver:{d}")
    with pytest.raises(PaymentDeclined):
        app.bookings.book(BookRequest(d, charger, 1, 60, 5_000))
    with app.store.transaction() as tx:
        assert [b.status for b in tx.bookings.all()] == [BookingStatus.FAILED]
        assert tx.ledger.entries() == []
    assert gateway(app).holds == {}


def test_an_outage_at_booking_is_a_clean_503_and_any_stray_authorisation_is_voided(app: App) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("D", "D").driver_id
    gateway(app).down = True
    with pytest.raises(PaymentUnavailable):
        app.bookings.book(BookRequest(d, charger, 1, 60, 5_000))
    # The placement is done (it failed); voiding whatever the provider might have authorised is queued,
    # and tried at once (the provider still down).
    assert outbox(app) == [("hold", "done", 1), ("void_auth", "pending", 1)]
    gateway(app).down = False
    app.clock.advance(app.config.rules.payment_backoff_s * 2)  # type: ignore[attr-defined]
    app.settlement.process_due()
    assert outbox(app) == [("hold", "done", 1), ("void_auth", "done", 2)]
    # The replayed authorisation was voided at once: nothing stays held on the card.
    assert [h.state for h in gateway(app).holds.values()] == ["released"]
    assert failing(app) == set()


def test_an_outage_at_stop_does_not_block_charging_and_reconcile_settles_the_backlog(
    app: App, clock: ManualClock
) -> None:
    booking_id, tx = booked_and_charging(app, clock)
    gateway(app).down = True
    assert app.charging.stop("CP1", tx, 8_000, clock.now()).value == "Accepted"  # the charger is answered
    with app.store.transaction() as t:
        assert t.bookings.get(booking_id).status is BookingStatus.COMPLETED
    for _ in range(20):  # bounded: back off, retry, until the item is dead-lettered
        clock.advance(app.config.rules.payment_backoff_cap_s * 2)
        app.settlement.process_due()
        if outbox(app)[1][1] == "dead":
            break
    assert outbox(app)[1][:2] == ("capture", "dead")
    assert outbox(app)[1][2] == app.config.rules.payment_max_attempts
    assert failing(app) == {"captured_equals_metered_cost", "every_hold_ended"}  # visibly unsettled
    gateway(app).down = False
    run = app.settlement.reconcile()
    assert (run.done, run.dead) == (1, 0)
    assert gateway(app).total_captured == 280  # 7 kWh x 40p, once
    assert failing(app) == set()


class WorkerKilled(BaseException):
    """Stands in for the process dying: not an Exception, so nothing on the way catches it."""


class DiesAfterCapture:
    """The real gateway, but the worker dies right after the provider has captured."""

    def __init__(self, inner: SimulatedGateway) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def capture(self, **kw: Any) -> None:
        self.inner.capture(**kw)
        raise WorkerKilled


def test_a_crash_between_the_capture_and_the_ledger_write_resumes_without_charging_twice(
    app: App, clock: ManualClock
) -> None:
    booking_id, tx = booked_and_charging(app, clock)
    app.settlement.gateway = DiesAfterCapture(gateway(app))
    with pytest.raises(WorkerKilled):
        app.charging.stop("CP1", tx, 8_000, clock.now())
    assert gateway(app).total_captured == 280 and outbox(app)[1] == ("capture", "pending", 0)
    with app.store.transaction() as t:
        assert not [e for e in t.ledger.entries(booking_id) if e.kind is EntryKind.CAPTURE]
    # "Restart": a fresh worker over the same database and provider picks the step up again once the
    # dead worker's lease on it has run out (not before: it might still be working it).
    restarted = SettlementService(app.store, gateway(app), app.bus, clock, app.config.rules)
    assert restarted.process_due().done == 0
    clock.advance(app.config.rules.payment_lease_s)
    assert restarted.process_due().done == 1
    assert gateway(app).total_captured == 280  # the replayed capture was idempotent
    assert failing(app) == set()


def test_a_duplicate_stop_queues_and_captures_once(app: App, clock: ManualClock) -> None:
    _, tx = booked_and_charging(app, clock)
    for _ in range(3):
        app.charging.stop("CP1", tx, 8_000, clock.now())
    assert outbox(app) == [("hold", "done", 1), ("capture", "done", 1)]
    assert gateway(app).total_captured == 280


def test_a_hold_that_lapses_before_capture_is_recorded_and_the_card_charged_afresh(
    app: App, clock: ManualClock
) -> None:
    _, tx = booked_and_charging(app, clock)
    gateway(app).down = True
    app.charging.stop("CP1", tx, 8_000, clock.now())
    clock.advance(8 * 24 * 3600)  # a week-long outage: the authorisation lapses meanwhile
    gateway(app).down = False
    app.settlement.reconcile()
    assert [(s, st) for s, st, _ in outbox(app)] == [
        ("hold", "done"),
        ("capture", "done"),
        ("charge", "done"),
    ]
    with app.store.transaction() as t:
        kinds = [e.kind for e in t.ledger.entries()]
    assert kinds.count(EntryKind.EXPIRE) == 1 and kinds.count(EntryKind.HOLD) == 2
    assert [h.state for h in gateway(app).holds.values()] == ["expired", "captured"]
    assert gateway(app).total_captured == 280
    assert failing(app) == set()


def test_open_holds_past_their_lifetime_are_an_invariant_failure(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("D", "D").driver_id
    app.bookings.book(BookRequest(d, charger, 1, 60, 5_000, starts_at=clock.now() + timedelta(days=5)))
    assert "holds_within_lifetime" not in failing(app)
    clock.advance(7 * 24 * 3600)
    assert "holds_within_lifetime" in failing(app)
    with pytest.raises(InvalidRequest):
        app.bookings.book(BookRequest(d, charger, 1, 60, 5_000, starts_at=clock.now() + timedelta(days=6)))


def test_vat_on_the_platform_fee_and_host_payouts(app: App, clock: ManualClock) -> None:
    booking_id, tx = booked_and_charging(app, clock, price=50)
    app.charging.stop("CP1", tx, 21_000, clock.now())  # 20 kWh x 50p = 1000p
    with app.store.transaction() as t:
        balances = posted_balances(t.ledger.entries())
        host_id = t.bookings.get(booking_id).host_id
    # 15% fee = 150p, VAT-inclusive at 20%: 25p VAT, 125p revenue; the host gets 850p.
    assert balances[f"host:{host_id}:payable"] == -850
    assert (balances[PLATFORM_REVENUE], balances[VAT_PAYABLE]) == (-125, -25)
    # Processing (1.5% rounded up + 20p = 35p) is the platform's cost, booked beside the split.
    assert balances["platform:processor_fees"] == 35
    pending = app.settlement.pay_out_hosts()  # KYC not verified yet: owed, not paid, and said so
    assert pending.paid == {} and pending.skipped[host_id][0] == 850
    app.hosting.set_kyc(host_id, KycStatus.VERIFIED)
    assert app.settlement.pay_out_hosts().paid == {host_id: 850}
    assert app.settlement.pay_out_hosts().paid == {}  # nothing left to pay
    with app.store.transaction() as t:
        assert posted_balances(t.ledger.entries())[f"host:{host_id}:payable"] == 0
    assert failing(app) == set()


def test_energy_beyond_the_hold_is_charged_as_a_top_up(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, price=35)
    d = app.marketplace.add_driver("D", "TAG1").driver_id
    booking = app.bookings.book(BookRequest(d, charger, 1, 60, 1_000))
    assert booking.hold_amount == 39  # 1.1 kWh (10% headroom on energy) x 35p, rounded half up
    clock.advance(60)
    tx = app.charging.start("CP1", 1, "TAG1", 0, clock.now()).transaction_id
    app.charging.stop("CP1", tx, 1_300, clock.now())  # a fast charger overshot: 46p owed
    assert [(s, st) for s, st, _ in outbox(app)] == [("hold", "done"), ("capture", "done"), ("topup", "done")]
    assert gateway(app).total_captured == 46
    assert failing(app) == set()


def test_a_car_left_plugged_in_after_charging_pays_the_idle_fee(app: App, clock: ManualClock) -> None:
    _, tx = booked_and_charging(app, clock, price=40)  # an hour in, 7 kWh so far
    app.charging.status("CP1", 1, ConnectorStatus.SUSPENDED_EV)  # the car is full
    clock.advance(20 * 60)
    app.charging.status("CP1", 1, ConnectorStatus.FINISHING)  # a later report does not restart it
    clock.advance(25 * 60)  # 45 minutes idle: 15 beyond the 30-minute grace
    app.charging.stop("CP1", tx, 8_000, clock.now())
    with app.store.transaction() as t:
        session = t.sessions.get(tx)
    assert session is not None and (session.idle_fee, session.cost) == (150, 280 + 150)
    assert gateway(app).total_captured == 430  # beyond the hold: the rest is a top-up
    assert failing(app) == set()


def test_a_host_whose_kyc_is_revoked_during_a_payout_run_is_not_paid(app: App, clock: ManualClock) -> None:
    """The run reads who is verified once, then pays each host in turn: a host sent back to
    pending meanwhile (new bank details, or the operator's rejection) must not be paid."""
    hosts = []
    for n in (1, 2):
        charger = add_charger(app, f"CP{n}", price=50)
        driver = app.marketplace.add_driver(f"D{n}", f"TAG{n}").driver_id
        booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 30_000)).booking_id
        clock.advance(60)
        tx = app.charging.start(f"CP{n}", 1, f"TAG{n}", 0, clock.now()).transaction_id
        app.charging.stop(f"CP{n}", tx, 20_000, clock.now())
        with app.store.reading() as t:
            hosts.append(t.bookings.get(booking).host_id)
        app.hosting.set_kyc(hosts[-1], KycStatus.VERIFIED)
    first, second = hosts
    settlement = app.settlement
    pay_one = settlement._pay_out

    def revoking_the_second_first(host_id: int) -> int | None:
        if host_id == first:
            app.hosting.set_kyc(second, KycStatus.REJECTED)
        return pay_one(host_id)

    settlement._pay_out = revoking_the_second_first  # type: ignore[method-assign]
    run = settlement.pay_out_hosts()
    assert run.paid == {first: 850}
    assert run.skipped[second][0] == 850
    with app.store.reading() as t:
        assert posted_balances(t.ledger.entries())[f"host:{second}:payable"] == -850
    assert failing(app) == set()


class DownAfterAuthorising:
    """The real gateway, but the provider goes down right after the authorisation under `key`."""

    def __init__(self, inner: SimulatedGateway, key: str) -> None:
        self.inner, self.key = inner, key

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def authorize(self, **kw: Any) -> Any:
        result = self.inner.authorize(**kw)
        if kw["idempotency_key"] == self.key:
            self.inner.down = True
        return result


def test_a_fresh_charge_whose_own_authorisation_lapses_is_charged_afresh_again(
    app: App, clock: ManualClock
) -> None:
    """The booking's hold lapsed, so the card is charged afresh; that new authorisation lapses too
    before its capture (another long outage): the card is charged afresh once more, not let off."""
    booking_id, tx = booked_and_charging(app, clock)
    gateway(app).down = True
    app.charging.stop("CP1", tx, 8_000, clock.now())
    clock.advance(8 * 24 * 3600)  # the booking's hold lapses during the outage
    gateway(app).down = False
    real = gateway(app)
    app.settlement.gateway = DownAfterAuthorising(real, f"booking:{booking_id}:charge:hold")
    app.settlement.reconcile()  # the fresh authorisation is made, then the provider goes down
    assert [(s, st) for s, st, _ in outbox(app)][1:] == [("capture", "done"), ("charge", "dead")]
    clock.advance(8 * 24 * 3600)  # ... for a week: the fresh authorisation lapses as well
    real.down = False
    app.settlement.gateway = real
    app.settlement.reconcile()
    assert [(s, st) for s, st, _ in outbox(app)][1:] == [("capture", "done"), ("charge", "done")]
    assert real.total_captured == 280
    assert [h.state for h in real.holds.values()] == ["expired", "expired", "captured"]
    with app.store.transaction() as t:
        kinds = [e.kind for e in t.ledger.entries(booking_id)]
    assert kinds.count(EntryKind.EXPIRE) == 2 and kinds.count(EntryKind.CAPTURE) == 1
    assert failing(app) == set()
