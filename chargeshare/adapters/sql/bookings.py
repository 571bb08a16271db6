"""Bookings: the no-double-booking guard, status changes and the housekeeping sweep's lookups."""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.rows import BOOKING_COLUMNS, booking_record, insert_of, live_overlap
from chargeshare.domain.booking import LIVE_STATES, BookingStatus
from chargeshare.domain.errors import BookingConflict, NotFound, StaleFencingToken
from chargeshare.services.records import BookingRecord

PG_EXCLUSION_VIOLATION = "23P01"

_b, _k = t.bookings.c, t.connectors.c

BY_ID = DirectStatement(BOOKING_COLUMNS.where(_b.id == bindparam("booking_pk")))
ALL = DirectStatement(BOOKING_COLUMNS.order_by(_b.id))
_IN_STATUS = BOOKING_COLUMNS.where(_b.status == bindparam("in_status")).order_by(_b.id)
CONNECTOR_OF = DirectStatement(select(_b.connector_id).where(_b.id == bindparam("booking_pk")))
FOR_START = DirectStatement(
    BOOKING_COLUMNS.where(
        _b.connector_id == bindparam("connector_pk"),
        _b.driver_id == bindparam("driver_pk"),
        _b.status == bindparam("for_status"),
        _b.ends_at > bindparam("at"),
    ).order_by(_b.starts_at)
)
# Optional fields keep their value when not given (COALESCE with the column).
_UPDATE = (
    update(t.bookings)
    .where(_b.id == bindparam("booking_pk"))
    .values(
        status=bindparam("new_status"),
        ends_at=func.coalesce(bindparam("new_ends_at", type_=t.UTCDateTime()), _b.ends_at),
        payment_ref=func.coalesce(bindparam("new_ref", type_=_b.payment_ref.type), _b.payment_ref),
        fee=func.coalesce(bindparam("new_fee", type_=_b.fee.type), _b.fee),
        cancelled_by=func.coalesce(bindparam("new_by", type_=_b.cancelled_by.type), _b.cancelled_by),
    )
)
UPDATE = DirectStatement(_UPDATE)
# Compare-and-set: only while the booking is still in the status the caller read.
UPDATE_IF = DirectStatement(_UPDATE.where(_b.status == bindparam("old_status")))
FENCE_OF = DirectStatement(select(_k.fence_token).where(_k.id == bindparam("connector_pk")))
# The housekeeping sweep's statements: the due condition is in the WHERE clause, on an index
# (schema.HOUSEKEEPING_INDEX_DDL), so a sweep costs what is due rather than every row there is.
_STARTING_BY = BOOKING_COLUMNS.where(
    _b.status == bindparam("in_status"), _b.starts_at <= bindparam("starts_by")
).order_by(_b.id)
STARTING_BY = DirectStatement(_STARTING_BY)
UNRESERVED_STARTING_BY = DirectStatement(_STARTING_BY.where(_b.reservation == bindparam("reservation_state")))
# A booking's status where one charger's bookings are read through its connectors (indexed by
# charger) and their bookings (indexed by connector): `status || ''` keeps SQLite's planner, which
# has no statistics, off the status index, by which it would read every booking in that status the
# fleet ever had (PostgreSQL goes through the connectors either way).
_status_off_index = _b.status.concat(literal_column("''"))
# A charger's bookings in one status and reservation state: looked up when it connects.
RESERVATIONS_ON = DirectStatement(
    BOOKING_COLUMNS.where(
        _k.charger_id == bindparam("charger_pk"),
        _status_off_index == bindparam("booking_status"),
        _b.reservation == bindparam("reservation_state"),
    ).order_by(_b.id)
)
_INSERT = insert_of(
    t.bookings,
    "driver_id",
    "connector_id",
    "starts_at",
    "ends_at",
    "status",
    "max_energy_wh",
    "price_per_kwh",
    "hold_amount",
    "created_at",
    "fee",
    "reservation",
    "connector_held",
).returning(_b.id)
INSERT = DirectStatement(_INSERT)
RAISE_FENCE = DirectStatement(
    update(t.connectors)
    .where(_k.id == bindparam("connector_pk"), _k.fence_token < bindparam("token"))
    .values(fence_token=bindparam("token"))
)
_SET_RESERVATION = (
    update(t.bookings).where(_b.id == bindparam("booking_pk")).values(reservation=bindparam("state"))
)
SET_RESERVATION = DirectStatement(_SET_RESERVATION)
SET_RESERVATION_IF = DirectStatement(_SET_RESERVATION.where(_b.reservation == bindparam("expected_state")))
# The booking's status is judged by the update itself: a status change committed while it waited on
# the row (a cancel) is seen, as a status read beforehand would not be.
SET_RESERVATION_WHILE = DirectStatement(
    _SET_RESERVATION.where(
        _b.reservation == bindparam("expected_state"), _b.status == bindparam("for_status")
    )
)
MARK_CONNECTOR_HELD = DirectStatement(
    update(t.bookings).where(_b.id == bindparam("booking_pk")).values(connector_held=True)
)

_r = t.booking_requests.c


def _literal(value: str) -> Any:
    """A constant in the SQL text itself, so the planner can match the partial index it names."""
    return literal_column(f"'{value}'")


# Every reservation a charger is owed a call on, on the partial index ix_bookings_reservation_owed.
RESERVATIONS_OWED = DirectStatement(
    select(_b.id, t.chargers.c.charge_point_id)
    .select_from(t.bookings.join(t.connectors, _k.id == _b.connector_id))
    .join(t.chargers, t.chargers.c.id == _k.charger_id)
    .where(
        _b.reservation.in_([_literal("sent"), _literal("accepted")]),
        or_(
            and_(_b.status == _literal(BookingStatus.CONFIRMED), _b.reservation == _literal("sent")),
            _b.status.in_([_literal(BookingStatus.CANCELLED), _literal(BookingStatus.EXPIRED)]),
        ),
    )
    .order_by(_b.id)
)
_REQUEST_VALUES: dict[str, Any] = {
    "driver_id": bindparam("driver_pk"),
    "request_key": bindparam("new_request_key"),
    "fingerprint": bindparam("fingerprint"),
    "booking_id": bindparam("booking_pk"),
    "created_at": bindparam("at"),
}
# A key already taken writes nothing: the caller tells a request sent again from a different one.
REMEMBER_REQUEST = {
    "sqlite": DirectStatement(
        sqlite_insert(t.booking_requests).values(_REQUEST_VALUES).on_conflict_do_nothing()
    ),
    "postgresql": DirectStatement(
        pg_insert(t.booking_requests).values(_REQUEST_VALUES).on_conflict_do_nothing()
    ),
}
REQUEST_SEEN = DirectStatement(
    select(_r.fingerprint, _r.booking_id).where(
        _r.driver_id == bindparam("driver_pk"), _r.request_key == bindparam("request_key")
    )
)


@functools.lru_cache(maxsize=4)
def clash_statement(live: frozenset[BookingStatus]) -> DirectStatement:
    """The first live booking on a connector overlapping a period. Keyed by the live states, so a
    test that mutates `LIVE_STATES` (to show a scenario turning red) gets a statement built from them."""
    overlap = live_overlap(bindparam("connector_pk"), bindparam("since"), bindparam("until"), live)
    return DirectStatement(select(_b.id).where(*overlap).limit(1))


STATEMENTS = {
    "bookings.by_id": BY_ID,
    "bookings.all": ALL,
    "bookings.connector_of": CONNECTOR_OF,
    "bookings.for_start": FOR_START,
    "bookings.update": UPDATE,
    "bookings.update_if": UPDATE_IF,
    "bookings.fence_of": FENCE_OF,
    "bookings.starting_by": STARTING_BY,
    "bookings.unreserved_starting_by": UNRESERVED_STARTING_BY,
    "bookings.reservations_on": RESERVATIONS_ON,
    "bookings.reservations_owed": RESERVATIONS_OWED,
    "bookings.insert": INSERT,
    "bookings.raise_fence": RAISE_FENCE,
    "bookings.set_reservation": SET_RESERVATION,
    "bookings.set_reservation_if": SET_RESERVATION_IF,
    "bookings.set_reservation_while": SET_RESERVATION_WHILE,
    "bookings.mark_connector_held": MARK_CONNECTOR_HELD,
    "bookings.clash": clash_statement(LIVE_STATES),
    "bookings.request_seen": REQUEST_SEEN,
}
SQLITE_ONLY = {"bookings.remember_request": REMEMBER_REQUEST["sqlite"]}
POSTGRES_ONLY = {"bookings.remember_request": REMEMBER_REQUEST["postgresql"]}


class SqlBookings:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(
        self,
        *,
        driver_id: int,
        connector_id: int,
        starts_at: datetime,
        ends_at: datetime,
        max_energy_wh: int,
        price_per_kwh: int,
        hold_amount: int,
        created_at: datetime,
        fencing_token: int | None,
    ) -> int:
        self._lock_connector(connector_id)
        if fencing_token is not None:
            # Also locks the connector row on PostgreSQL, queueing writers for this connector.
            params = {"connector_pk": connector_id, "token": fencing_token}
            if RAISE_FENCE.write(self.conn, params) == 0:
                raise StaleFencingToken(
                    f"fencing token {fencing_token} is stale for connector {connector_id}"
                )
        period = {"connector_pk": connector_id, "since": starts_at, "until": ends_at}
        if clash_statement(LIVE_STATES).first(self.conn, period) is not None:
            raise BookingConflict(f"connector {connector_id} is already booked for an overlapping period")
        row = {
            "row_driver_id": driver_id,
            "row_connector_id": connector_id,
            "row_starts_at": starts_at,
            "row_ends_at": ends_at,
            "row_status": BookingStatus.REQUESTED.value,
            "row_max_energy_wh": max_energy_wh,
            "row_price_per_kwh": price_per_kwh,
            "row_hold_amount": hold_amount,
            "row_created_at": created_at,
            "row_fee": 0,
            "row_reservation": "none",
            "row_connector_held": False,
        }
        if self.dialect == "sqlite":  # no constraint to trip: the check above is the whole guard
            inserted = INSERT.first(self.conn, row)
            assert inserted is not None
            return int(inserted[0])
        try:
            # A savepoint, so an exclusion violation (a racing booking got in first) leaves the
            # transaction usable; through SQLAlchemy, which names the driver's error.
            with self.conn.begin_nested():
                return int(self.conn.execute(_INSERT, row).scalar_one())
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) == PG_EXCLUSION_VIOLATION:
                raise BookingConflict(
                    f"connector {connector_id} is already booked for an overlapping period"
                ) from exc
            raise

    def _lock_connector(self, connector_id: int) -> None:
        """Queue every booking write on one connector behind a row lock (PostgreSQL). Without it, an
        insert and a status change can each wait on the other's exclusion-constraint check: deadlock.
        SQLite needs nothing: its write transactions are already serialized (BEGIN IMMEDIATE)."""
        if self.dialect == "postgresql":
            self.conn.execute(select(_k.id).where(_k.id == connector_id).with_for_update())

    def lock(self, booking_id: int) -> None:
        # FOR NO KEY UPDATE, as an UPDATE of the row takes; SQLite's write transactions take turns.
        if self.dialect == "postgresql":
            self.conn.execute(select(_b.id).where(_b.id == booking_id).with_for_update(key_share=True))

    def get(self, booking_id: int) -> BookingRecord:
        r = BY_ID.first_mapping(self.conn, {"booking_pk": booking_id})
        if r is None:
            raise NotFound(f"no booking {booking_id}")
        return booking_record(r)

    def remember_request(
        self, driver_id: int, key: str, fingerprint: str, booking_id: int, at: datetime
    ) -> bool:
        params = {
            "driver_pk": driver_id,
            "new_request_key": key,
            "fingerprint": fingerprint,
            "booking_pk": booking_id,
            "at": at,
        }
        return REMEMBER_REQUEST[self.dialect].write(self.conn, params) == 1

    def request_seen(self, driver_id: int, key: str) -> tuple[str, int] | None:
        found = REQUEST_SEEN.first(self.conn, {"driver_pk": driver_id, "request_key": key})
        return None if found is None else (str(found[0]), int(found[1]))

    def count_by_status(self) -> dict[str, int]:
        rows = self.conn.execute(select(_b.status, func.count()).group_by(_b.status))
        return {str(status): int(n) for status, n in rows}

    def all(self, status: BookingStatus | None = None) -> Sequence[BookingRecord]:
        if status is None:
            return [booking_record(r) for r in ALL.mappings(self.conn, {})]
        rows = self.conn.execute(_IN_STATUS, {"in_status": status.value}).mappings()
        return [booking_record(r) for r in rows]

    def of(self, *, driver_id: int | None = None, host_id: int | None = None) -> Sequence[BookingRecord]:
        if (driver_id is None) == (host_id is None):
            raise ValueError("give a driver or a host")
        q = BOOKING_COLUMNS.where(
            _b.driver_id == driver_id if driver_id is not None else t.chargers.c.host_id == host_id
        )
        return [booking_record(r) for r in self.conn.execute(q.order_by(_b.id.desc())).mappings()]

    def on_charger(self, charger_id: int, statuses: Collection[BookingStatus]) -> Sequence[BookingRecord]:
        q = BOOKING_COLUMNS.where(
            _k.charger_id == charger_id, _status_off_index.in_([s.value for s in statuses])
        )
        return [booking_record(r) for r in self.conn.execute(q.order_by(_b.id.desc())).mappings()]

    def starting_by(
        self, status: BookingStatus, starts_by: datetime, *, reservation: str | None = None
    ) -> Sequence[BookingRecord]:
        params = {"in_status": status.value, "starts_by": starts_by, "reservation_state": reservation}
        q = STARTING_BY if reservation is None else UNRESERVED_STARTING_BY
        return [booking_record(r) for r in q.mappings(self.conn, params)]

    def update(
        self,
        booking_id: int,
        status: BookingStatus,
        *,
        ends_at: datetime | None = None,
        payment_ref: str | None = None,
        fee: int | None = None,
        cancelled_by: str | None = None,
        expected: BookingStatus | None = None,
    ) -> bool:
        found = CONNECTOR_OF.first(self.conn, {"booking_pk": booking_id})
        if found is None:
            raise NotFound(f"no booking {booking_id}")
        self._lock_connector(found[0])
        params = {
            "booking_pk": booking_id,
            "new_status": status.value,
            "new_ends_at": ends_at,
            "new_ref": payment_ref,
            "new_fee": fee,
            "new_by": cancelled_by,
            "old_status": None if expected is None else expected.value,
        }
        return (UPDATE if expected is None else UPDATE_IF).write(self.conn, params) == 1

    def fence_of(self, connector_id: int) -> int:
        found = FENCE_OF.first(self.conn, {"connector_pk": connector_id})
        return 0 if found is None else int(found[0])

    def set_reservation(
        self,
        booking_id: int,
        state: str,
        *,
        expected: str | None = None,
        status: BookingStatus | None = None,
    ) -> bool:
        if expected is None:
            assert status is None, "a status is checked only with the reservation expected"
            return bool(SET_RESERVATION.write(self.conn, {"booking_pk": booking_id, "state": state}))
        params = {"booking_pk": booking_id, "state": state, "expected_state": expected}
        if status is None:
            return bool(SET_RESERVATION_IF.write(self.conn, params))
        return bool(SET_RESERVATION_WHILE.write(self.conn, {**params, "for_status": status.value}))

    def mark_connector_held(self, booking_id: int) -> None:
        MARK_CONNECTOR_HELD.write(self.conn, {"booking_pk": booking_id})

    def reservations_on(
        self, charger_id: int, state: str, status: BookingStatus = BookingStatus.CONFIRMED
    ) -> Sequence[BookingRecord]:
        params = {"charger_pk": charger_id, "reservation_state": state, "booking_status": status.value}
        return [booking_record(r) for r in RESERVATIONS_ON.mappings(self.conn, params)]

    def reservations_owed(self) -> Sequence[tuple[int, str]]:
        return [(r[0], r[1]) for r in RESERVATIONS_OWED.rows(self.conn, {})]

    def for_start(
        self,
        connector_id: int,
        driver_id: int,
        at: datetime,
        status: BookingStatus = BookingStatus.CONFIRMED,
    ) -> BookingRecord | None:
        params = {"connector_pk": connector_id, "driver_pk": driver_id, "at": at, "for_status": status.value}
        r = FOR_START.first_mapping(self.conn, params)
        return None if r is None else booking_record(r)

    def held_periods(self, connector_id: int, since: datetime) -> Sequence[tuple[datetime, datetime]]:
        self._lock_connector(connector_id)
        rows = self.conn.execute(
            select(_b.starts_at, _b.ends_at)
            .where(
                _b.connector_id == connector_id,
                _b.status.in_([s.value for s in LIVE_STATES]),
                _b.ends_at > since,
            )
            .order_by(_b.starts_at, _b.id)
        )
        return [(r[0], r[1]) for r in rows]
