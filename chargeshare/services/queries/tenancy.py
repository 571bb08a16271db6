"""Who may see what: a driver their own bookings, a host the bookings on their chargers, an operator
every one. What is not the caller's to see reads as if it did not exist."""

from __future__ import annotations

from collections.abc import Sequence

from chargeshare.domain.accounts import Principal, Role
from chargeshare.services.ports import UnitOfWork
from chargeshare.services.records import BookingRecord


def can_see(who: Principal, b: BookingRecord) -> bool:
    if who.role is Role.DRIVER:
        return b.driver_id == who.driver_id
    if who.role is Role.HOST:
        return b.host_id == who.host_id
    return who.role is Role.ADMIN


def bookings_of(tx: UnitOfWork, who: Principal) -> Sequence[BookingRecord]:
    """The bookings the caller may see, newest first."""
    if who.role is Role.DRIVER:
        return tx.bookings.of(driver_id=who.driver_id)
    if who.role is Role.HOST:
        return tx.bookings.of(host_id=who.host_id)
    if who.role is Role.ADMIN:
        return sorted(tx.bookings.all(), key=lambda b: b.booking_id, reverse=True)
    return []
