"""The invariants over hand-made snapshots: each catches the broken store it names, passes a good one."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from chargeshare.domain import ledger
from chargeshare.domain.booking import BookingStatus
from chargeshare.services.invariants import (
    Snapshot,
    check_snapshot,
    no_reservation_held_after_booking_ended,
    one_close_per_unused_booking,
)
from chargeshare.services.records import BookingRecord, OutboxItem
from chargeshare.services.rules import MarketplaceRules
from tests.conftest import T0


def booking(booking_id: int, status: BookingStatus, *, reservation: str = "none") -> BookingRecord:
    return BookingRecord(
        booking_id=booking_id,
        driver_id=1,
        connector_id=1,
        charger_id=1,
        host_id=1,
        starts_at=T0 + timedelta(hours=booking_id),
        ends_at=T0 + timedelta(hours=booking_id, minutes=30),
        status=status,
        max_energy_wh=10_000,
        price_per_kwh=30,
        hold_amount=330,
        payment_ref=f"sim_hold_{booking_id}",
        created_at=T0,
        reservation=reservation,
    )


def step(item_id: int, booking_id: int, name: str) -> OutboxItem:
    return OutboxItem(
        item_id=item_id,
        booking_id=booking_id,
        step=name,
        amount=0,
        idempotency_key=f"booking:{booking_id}:{name}",
        status="pending",
        attempts=0,
        next_attempt_at=T0,
        last_error=None,
        created_at=T0,
        done_at=None,
    )


def snapshot(
    bookings: list[BookingRecord], steps: list[OutboxItem], *, held: tuple[int, ...] = ()
) -> Snapshot:
    holds = [ledger.place_hold(f"b{b}:hold", b, 1, 330, T0) for b in held]
    sums = {e.entry_id: sum(p.amount for p in e.postings) for e in holds}
    return Snapshot(bookings, [], holds, sums, MarketplaceRules(), T0, steps)


def test_each_cancelled_or_expired_booking_with_a_hold_has_one_fee_or_release() -> None:
    cancelled, expired = booking(1, BookingStatus.CANCELLED), booking(2, BookingStatus.EXPIRED)
    good = snapshot([cancelled, expired], [step(1, 1, "release"), step(2, 2, "fee")], held=(1, 2))
    result = one_close_per_unused_booking(good)
    assert (result.ok, result.checked) == (True, 2)

    missing = one_close_per_unused_booking(
        snapshot([cancelled, expired], [step(1, 1, "release")], held=(1, 2))
    )
    assert not missing.ok
    assert missing.failures == ("booking 2 (expired) has 0 fee or release steps",)

    doubled = snapshot([cancelled], [step(1, 1, "fee"), step(2, 1, "release")], held=(1,))
    assert one_close_per_unused_booking(doubled).failures == (
        "booking 1 (cancelled) has 2 fee or release steps",
    )


def test_a_booking_ended_before_its_hold_was_placed_needs_no_closing_step() -> None:
    """Cancelled while its hold was being placed: the placement voids its own authorisation."""
    result = one_close_per_unused_booking(snapshot([booking(1, BookingStatus.CANCELLED)], []))
    assert (result.ok, result.checked) == (True, 0)


@pytest.mark.parametrize("status", [BookingStatus.COMPLETED, BookingStatus.CANCELLED, BookingStatus.EXPIRED])
def test_an_ended_booking_still_holding_its_reservation_is_caught(status: BookingStatus) -> None:
    ended = booking(1, status, reservation="accepted")
    result = no_reservation_held_after_booking_ended(snapshot([ended], []))
    assert result.failures == (f"booking 1 ({status}) still has its reservation accepted",)
    released = no_reservation_held_after_booking_ended(
        snapshot([dataclasses.replace(ended, reservation="none")], [])
    )
    assert (released.ok, released.checked) == (True, 1)


def test_a_reservation_asked_and_never_answered_is_not_known_to_be_held() -> None:
    """No charger answered (none connected, say): it is asked to cancel when it connects."""
    unanswered = booking(1, BookingStatus.CANCELLED, reservation="sent")
    assert no_reservation_held_after_booking_ended(snapshot([unanswered], [])).ok


def test_a_live_booking_may_hold_its_reservation_and_only_the_final_check_looks() -> None:
    live = booking(1, BookingStatus.CONFIRMED, reservation="accepted")
    assert no_reservation_held_after_booking_ended(snapshot([live], [])).ok
    ended = snapshot(
        [booking(2, BookingStatus.EXPIRED, reservation="accepted")], [step(1, 2, "fee")], held=(2,)
    )
    names = {r.name for r in check_snapshot(ended, final=False)}
    assert "no_reservation_held_after_booking_ended" not in names
    assert "no_reservation_held_after_booking_ended" in {
        r.name for r in check_snapshot(ended, final=True) if not r.ok
    }
