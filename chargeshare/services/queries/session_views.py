"""Charging sessions as the driver or host of their booking sees them, with the energy and cost so far."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.accounts import Principal
from chargeshare.domain.errors import NotFound
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.services.ports import Store
from chargeshare.services.queries.tenancy import bookings_of, can_see
from chargeshare.services.records import BookingRecord, SessionRecord


@dataclass(frozen=True)
class SessionView:
    session_id: int
    booking_id: int
    charger_id: int
    status: SessionStatus
    started_at: datetime
    stopped_at: datetime | None
    energy_wh: int  # billed once stopped; metered so far while charging
    cost: int  # pence: billed once stopped; at the booking's price so far while charging


def session_view(s: SessionRecord, b: BookingRecord) -> SessionView:
    energy = s.billed_wh if s.billed_wh is not None else max(0, s.meter_last_wh - s.meter_start_wh)
    cost = s.cost if s.cost is not None else Tariff(b.price_per_kwh).cost(energy)
    return SessionView(
        session_id=s.session_id,
        booking_id=s.booking_id,
        charger_id=b.charger_id,
        status=s.status,
        started_at=s.started_at,
        stopped_at=s.stopped_at,
        energy_wh=energy,
        cost=cost,
    )


class SessionViews:
    def __init__(self, store: Store) -> None:
        self.store = store

    def mine(self, who: Principal, *, live: bool = False) -> list[SessionView]:
        """The sessions of the caller's bookings, newest booking first; `live`: still charging only."""
        with self.store.reading() as tx:
            bookings = bookings_of(tx, who)
            sessions = tx.sessions.for_bookings([b.booking_id for b in bookings]) if bookings else {}
        out = []
        for b in bookings:
            s = sessions.get(b.booking_id)
            if s is not None and (not live or s.status is SessionStatus.CHARGING):
                out.append(session_view(s, b))
        return out

    def get(self, who: Principal, session_id: int) -> SessionView:
        with self.store.reading() as tx:
            s = tx.sessions.get(session_id)
            b = None if s is None else tx.bookings.get(s.booking_id)
        if s is None or b is None or not can_see(who, b):
            raise NotFound(f"no session {session_id}")
        return session_view(s, b)
