"""What operators read: chargers and their state, chargers' security events, the payments outbox
and its dead letters, sessions billed without a measurement, and sessions that took a late stop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.tariff import Tariff
from chargeshare.domain.v2g import ExportRecord, ExportTerms, export_credit
from chargeshare.services.ports import Store
from chargeshare.services.records import ChargerView, OutboxItem, SecurityEvent, SessionRecord


@dataclass(frozen=True)
class StatusCounts:
    bookings: dict[str, int]  # by booking status
    payment_steps: dict[str, int]  # by outbox status (pending is the backlog, dead the dead letters)


@dataclass(frozen=True)
class UnmeteredSession:
    session: SessionRecord
    charge_point_id: str | None


@dataclass(frozen=True)
class LateStopView:
    """A session that took late stops (stops after the sweep closed it), one row per session: where
    they all left it, not each stop. `rebilled_at`: when one last billed it in full on its reading
    (its capture untried). `rebilled`: no stop was kept since, so it stands billed in full; else
    `late_stop_wh` is the highest reading kept and the energy above the billed reading is left
    unbilled (`unbilled_wh`, `unbilled_p` at the session's price). `late_export_wh`: the highest
    export register reading a late stop brought (V2G); what it holds above the reading credited is
    left uncredited (`uncredited_export_wh`, `uncredited_export_p` at the driver's export price):
    kept, or with a rebill alone worth less than a penny yet. `at`: when the last was applied."""

    session_id: int
    booking_id: int
    charge_point_id: str | None
    rebilled: bool
    late_stop_wh: int
    billed_wh: int
    unbilled_wh: int
    late_export_wh: int | None
    uncredited_export_wh: int
    at: datetime
    rebilled_at: datetime | None = None
    cost: int = 0  # pence billed, idle fee included
    unbilled_p: int = 0
    uncredited_export_p: int = 0


LATE_STOPS_MAX = 500  # a page of late stops at most


class AdminViews:
    def __init__(self, store: Store) -> None:
        self.store = store

    def chargers(self, status: str | None = None) -> list[ChargerView]:
        """Every charger, or those whose status (registered, online, offline) is `status`."""
        with self.store.reading() as tx:
            views = tx.chargers.all()
        return [c for c in views if status is None or c.status.value == status]

    def security_events(self, charge_point_id: str | None = None) -> Sequence[SecurityEvent]:
        with self.store.reading() as tx:
            return tx.security.all(charge_point_id)

    def payment_steps(self, status: str | None = None) -> Sequence[OutboxItem]:
        with self.store.reading() as tx:
            return tx.outbox.all(status)

    def dead_letters_left(self) -> int:
        with self.store.reading() as tx:
            return len(tx.outbox.all("dead"))

    def unmetered_sessions(self) -> list[UnmeteredSession]:
        with self.store.reading() as tx:
            sessions = tx.sessions.unmetered()
            cp_ids = tx.sessions.charge_points_of([s.session_id for s in sessions]) if sessions else {}
        return [UnmeteredSession(s, cp_ids.get(s.session_id)) for s in sessions]

    def late_stops(self, after: int = 0, limit: int = 100) -> list[LateStopView]:
        """Sessions that took a late stop, by session id: those above `after`, at most `limit`
        (capped at LATE_STOPS_MAX); the next page starts after the last one's id."""
        limit = max(1, min(limit, LATE_STOPS_MAX))
        with self.store.reading() as tx:
            sessions = tx.sessions.late_stops(after, limit)
            ids = [s.session_id for s in sessions]
            cp_ids = tx.sessions.charge_points_of(ids) if ids else {}
            bookings = sorted({s.booking_id for s in sessions})
            records = tx.v2g.records_of(bookings) if ids else {}
            terms = tx.v2g.terms_of(bookings) if ids else {}
            # A page is at most LATE_STOPS_MAX bookings, each read by its key.
            prices = {b: tx.bookings.get(b).price_per_kwh for b in bookings}
        views = []
        for s in sessions:
            billed_stop, billed = s.meter_stop_wh or s.meter_start_wh, s.billed_wh or 0
            kept = s.late_stop_wh or billed_stop
            times = [x for x in (s.late_rebilled_at, s.late_stop_at) if x is not None]
            assert times, "a late stop is listed once applied"
            tariff = Tariff(prices.get(s.booking_id, 0))
            uncredited_wh, uncredited_p = _uncredited(s, records.get(s.booking_id), terms)
            views.append(
                LateStopView(
                    session_id=s.session_id,
                    booking_id=s.booking_id,
                    charge_point_id=cp_ids.get(s.session_id),
                    rebilled=s.late_stop_at is None,
                    late_stop_wh=kept,
                    billed_wh=billed,
                    unbilled_wh=kept - billed_stop,
                    late_export_wh=s.late_export_wh,
                    uncredited_export_wh=uncredited_wh,
                    at=max(times),
                    rebilled_at=s.late_rebilled_at,
                    cost=s.cost or 0,
                    unbilled_p=tariff.cost(kept - s.meter_start_wh) - tariff.cost(billed),
                    uncredited_export_p=uncredited_p,
                )
            )
        return views

    def status_counts(self) -> StatusCounts:
        with self.store.reading() as tx:
            return StatusCounts(tx.bookings.count_by_status(), tx.outbox.count_by_status())

    def check_database(self) -> None:
        """Read something small; whatever keeps the database from answering is raised."""
        with self.store.reading() as tx:
            tx.outbox.count_by_status()


def _uncredited(
    s: SessionRecord, record: ExportRecord | None, terms: dict[int, ExportTerms]
) -> tuple[int, int]:
    """A session's late export above the reading credited, in Wh and pence at its export price."""
    if s.late_export_wh is None or record is None or record.last_wh is None or record.start_wh is None:
        return 0, 0
    wh = max(0, s.late_export_wh - record.last_wh)
    if not wh:
        return 0, 0
    price = terms[s.booking_id].price_per_kwh if s.booking_id in terms else 0
    return wh, export_credit(wh + record.metered_wh, price) - (record.credit or 0)
