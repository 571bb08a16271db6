"""What chargers are owed: commands decided and never acknowledged, as the database records them.

The process that decided a command may die before the command reaches the process holding the
charger's link; the database still shows it undone, so the link's holder can send it again.

A V2G export or a driver's override that the charger refuses, or leaves unanswered, stays owed,
but is asked again only on the back-off the failures recorded for its session set
(domain/command_backoff.py), and no more once it gives up (refusals only): the records live in the
database, so every process and a restarted one keep the same schedule, and the charger's accepting
clears them. A failure reported for a command no longer owed (taken meanwhile) is not recorded; the
sweep forgets, a batch at a time, records left for sessions that stopped (`prune_failures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.services.ports import Store, UnitOfWork

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


# The hosts' notification kind written when a charger has refused a command too often.
COMMAND_REFUSED = "command_refused"
GIVEN_UP_WHAT = {OwedKind.EXPORT: "V2G export", OwedKind.OVERRIDE: "driver's charging override"}


@dataclass(frozen=True)
class Owed:
    charge_point_id: str
    # "reservation" (ReserveNow or CancelReservation, by booking), "stop", "export" (V2G) or
    # "override" (the driver's), by session
    kind: str
    ref: int


def commands_owed(store: Store, now: datetime) -> frozenset[Owed]:
    """What the sweep may ask for at `now`: an export or override waiting out its back-off, or
    given up, is left out."""
    with store.reading() as tx:
        reservations = tx.bookings.reservations_owed()
        stops = tx.sessions.stops_owed()
        by_kind = {OwedKind.EXPORT: tx.v2g.exports_owed(), OwedKind.OVERRIDE: tx.smart.overrides_owed()}
        refused = {k: tx.refusals.of(k, [s for s, _ in owed]) for k, owed in by_kind.items()}
    return frozenset(
        [Owed(cp_id, "reservation", booking) for booking, cp_id in reservations]
        + [Owed(cp_id, "stop", session) for session, cp_id in stops]
        + [
            Owed(cp_id, str(kind), session)
            for kind, owed in by_kind.items()
            for session, cp_id in owed
            if askable(refused[kind].get(session), now)
        ]
    )


def askable(refusals: Refusals | None, now: datetime) -> bool:
    """Whether a session's charger may be asked for a command it refused `refusals` (None: never)."""
    return refusals is None or refusals.due(now)


def not_given_up(tx: UnitOfWork, kind: OwedKind, session_ids: list[int]) -> set[int]:
    """Those of `session_ids` whose charger is still asked for `kind` on connecting: a new link is a
    fresh chance (it may have rebooted, or been set up again), unless it refused too often."""
    refused = tx.refusals.of(kind, session_ids)
    return {s for s in session_ids if (r := refused.get(s)) is None or not r.given_up}


@dataclass(frozen=True)
class OwedRow:
    """One export or override owed, as operators see it: "owed" (asked at the next sweep),
    "waiting" (refused or unanswered, asked again from `retry_at`) or "refused" (given up for the
    session)."""

    charge_point_id: str
    kind: str
    session_id: int
    state: str
    refusals: int
    retry_at: datetime | None


def owed_rows(store: Store, now: datetime) -> list[OwedRow]:
    """Every export and override owed to a charger, with its refusals, by charger, kind and session."""
    rows = []
    with store.reading() as tx:
        by_kind = {OwedKind.EXPORT: tx.v2g.exports_owed(), OwedKind.OVERRIDE: tx.smart.overrides_owed()}
        for kind, owed in by_kind.items():
            refused = tx.refusals.of(kind, [s for s, _ in owed])
            for session, cp_id in owed:
                r = refused.get(session)
                if r is None:
                    rows.append(OwedRow(cp_id, str(kind), session, "owed", 0, None))
                    continue
                state = "owed" if r.due(now) else "refused" if r.given_up else "waiting"
                rows.append(OwedRow(cp_id, str(kind), session, state, r.count, r.retry_at))
    return sorted(rows, key=lambda r: (r.charge_point_id, r.kind, r.session_id))


def _still_owed(tx: UnitOfWork, kind: OwedKind, booking_id: int, session_id: int) -> bool:
    """Whether `kind` is owed to the session, its record held as the charger's taking it holds it:
    a failure and a taking committing at once take turns, so the taking's clearing of the records
    never misses a failure, and a failure arriving after the taking counts for nothing."""
    if kind is OwedKind.EXPORT:
        return tx.v2g.hold_export_owed(booking_id, session_id)
    return tx.smart.hold_override_owed(booking_id, session_id)


def record_unanswered(
    store: Store, backoff: Backoff, kind: OwedKind, session_id: int, now: datetime
) -> Refusals | None:
    """A send of `kind` to a session's charger went unanswered at `now` (no reply in time, or one
    that is no answer): its back-off moves on, without ever giving up (None: no such session, or
    nothing owed to it)."""
    with store.transaction() as tx:
        session = tx.sessions.get(session_id)
        if session is None or not _still_owed(tx, kind, session.booking_id, session_id):
            return None
        return tx.refusals.unanswered(session_id, kind, now, backoff)


def record_refusal(
    store: Store, backoff: Backoff, kind: OwedKind, session_id: int, now: datetime
) -> Refusals | None:
    """A session's charger refused `kind` at `now`: its back-off moves on (None: no such session, or
    nothing owed to it). The refusal that gives up tells the charger's host, once: the count rises
    in the database, so only one transaction sees the record go from asked to given up (past a
    limit lowered since, too)."""
    with store.transaction() as tx:
        session = tx.sessions.get(session_id)
        if session is None or not _still_owed(tx, kind, session.booking_id, session_id):
            return None
        refusals, gave_up = tx.refusals.refused(session_id, kind, now, backoff)
        if gave_up:
            booking = tx.bookings.get(session.booking_id)
            cp_id = tx.chargers.by_id(booking.charger_id).charge_point_id
            tx.notifications.add(
                booking.host_id,
                COMMAND_REFUSED,
                f"Charger {cp_id} refused the {GIVEN_UP_WHAT[kind]} of session {session_id}",
                f"Charger {cp_id} refused the {GIVEN_UP_WHAT[kind]} of booking {booking.booking_id} "
                f"{refusals.count} times, the last at {now:%Y-%m-%d %H:%M} UTC; it is no longer asked "
                "for this session. Check the charger's smart-charging and V2G settings.",
                now,
            )
        return refusals


# Records the sweep forgets at most at once: a bounded statement, the rest at the next sweep.
PRUNE_BATCH = 500


def prune_failures(store: Store, limit: int = PRUNE_BATCH) -> int:
    """Forget records of failures nothing is owed for any more (their session stopped, or its
    charger took the command): how many."""
    with store.transaction() as tx:
        return tx.refusals.prune(limit)


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
