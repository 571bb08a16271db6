"""What chargers are owed: commands decided and never acknowledged, as the database records them.

The process that decided a command may die before the command reaches the process holding the
charger's link; the database still shows it undone, so the link's holder can send it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chargeshare.services.ports import Store

if TYPE_CHECKING:
    from chargeshare.services.booking import BookingService
    from chargeshare.services.charging import ChargingService
    from chargeshare.services.events import (
        BookingEnded,
        EnergyLimitReached,
        ExportDue,
        OverrideDue,
        ReservationDue,
    )
    from chargeshare.services.smart_charging import SmartChargingService
    from chargeshare.services.v2g import V2gService

# What a charger is owed when its link opens: reservations it never answered, cancelled bookings'
# reservations it may still hold, stops due, and overrides and V2G exports for its running sessions.
Dues = tuple[
    list["ReservationDue"],
    list["BookingEnded"],
    list["EnergyLimitReached"],
    list["OverrideDue"],
    list["ExportDue"],
]


@dataclass(frozen=True)
class Owed:
    charge_point_id: str
    # "reservation" (ReserveNow or CancelReservation, by booking), "stop" or "export" (V2G, by session)
    kind: str
    ref: int


def commands_owed(store: Store) -> frozenset[Owed]:
    with store.reading() as tx:
        reservations = tx.bookings.reservations_owed()
        stops = tx.sessions.stops_owed()
        exports = tx.v2g.exports_owed()
    return frozenset(
        [Owed(cp_id, "reservation", booking) for booking, cp_id in reservations]
        + [Owed(cp_id, "stop", session) for session, cp_id in stops]
        + [Owed(cp_id, "export", session) for session, cp_id in exports]
    )


def due_at_connect(
    store: Store,
    bookings: BookingService,
    charging: ChargingService,
    smart: SmartChargingService,
    v2g: V2gService,
    cp_id: str,
) -> Dues:
    """Everything a charger is owed when it connects, in one read of one snapshot (a read per kind,
    each finding the charger again, was most of a connect's cost). NotFound for an unregistered one."""
    with store.reading() as tx:
        charger = tx.chargers.get(cp_id)
        return (
            bookings.reservations_unanswered_in(tx, charger),
            bookings.cancellations_unanswered_in(tx, charger),
            charging.stops_due_in(tx, charger),
            smart.overrides_due_in(tx, charger),
            v2g.exports_due_in(tx, charger),
        )


class OwedSince:
    """When each command was first seen owed; which have been owed for `after` (each once per
    `after`: one sent again counts afresh). What is no longer owed is forgotten."""

    def __init__(self, after: timedelta) -> None:
        self.after = after
        self.since: dict[Owed, datetime] = {}

    def overdue(self, owed: frozenset[Owed], now: datetime) -> list[Owed]:
        self.since = {o: self.since.get(o, now) for o in owed}
        due = sorted(
            (o for o, since in self.since.items() if now - since >= self.after),
            key=lambda o: (o.charge_point_id, o.kind, o.ref),
        )
        for o in due:
            self.since[o] = now
        return due
