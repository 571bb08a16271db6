"""What operators read: chargers and their state, chargers' security events, the payments outbox
and its dead letters, sessions billed without a measurement, and sessions that took a late stop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
    """A session that took a stop after the sweep closed it: billed in full on it (`rebilled`), or
    its reading kept and the energy above the billed reading left unbilled. `late_export_wh`: the
    stop's export register reading (V2G), credited with a rebill, else the Wh above the reading
    credited are `uncredited_export_wh`. `at`: when the late stop was applied."""

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
            records = tx.v2g.records_of(sorted({s.booking_id for s in sessions})) if ids else {}
        views = []
        for s in sessions:
            billed_stop, billed = s.meter_stop_wh or s.meter_start_wh, s.billed_wh or 0
            rebilled = s.late_stop_wh is None
            at = s.late_rebilled_at if rebilled else s.late_stop_at
            assert at is not None, "a late stop is listed once applied"
            record = records.get(s.booking_id)
            uncredited = 0
            if not rebilled and s.late_export_wh is not None and record is not None:
                uncredited = max(0, s.late_export_wh - (record.last_wh or s.late_export_wh))
            views.append(
                LateStopView(
                    session_id=s.session_id,
                    booking_id=s.booking_id,
                    charge_point_id=cp_ids.get(s.session_id),
                    rebilled=rebilled,
                    late_stop_wh=billed_stop if s.late_stop_wh is None else s.late_stop_wh,
                    billed_wh=billed,
                    unbilled_wh=0 if s.late_stop_wh is None else s.late_stop_wh - billed_stop,
                    late_export_wh=s.late_export_wh,
                    uncredited_export_wh=uncredited,
                    at=at,
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
