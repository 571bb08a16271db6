"""What operators read: chargers and their state, chargers' security events, the payments outbox
and its dead letters, and sessions billed without a measurement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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

    def status_counts(self) -> StatusCounts:
        with self.store.reading() as tx:
            return StatusCounts(tx.bookings.count_by_status(), tx.outbox.count_by_status())

    def check_database(self) -> None:
        """Read something small; whatever keeps the database from answering is raised."""
        with self.store.reading() as tx:
            tx.outbox.count_by_status()
