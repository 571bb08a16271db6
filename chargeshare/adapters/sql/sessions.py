"""Charging sessions, and OCPP 2.0.1 chargers' own transaction ids mapped onto them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.adapters.sql.rows import CHARGER_ID_OF, CHARGER_STATUSES, session_record
from chargeshare.domain.charger import ChargerStatus
from chargeshare.domain.errors import NotFound, StartTaken
from chargeshare.domain.session import SessionStatus
from chargeshare.services.records import MeterAdvance, SessionRecord

_s, _k, _b, _ct = t.sessions.c, t.connectors.c, t.bookings.c, t.charger_transactions.c
_c = t.chargers.c


def _register_at_least(param: str) -> Any:
    """The session's last register reading, raised to the bound value if that is higher: a register
    only grows, so an old or replayed reading never moves it back."""
    return case((_s.meter_last_wh < bindparam(param), bindparam(param)), else_=_s.meter_last_wh)


def _higher_late_export() -> Any:
    """The late stop brings an export reading above any a late stop of the session brought."""
    return func.coalesce(_s.late_export_wh, -1) < bindparam("export_wh", type_=Integer)


def _highest_late_export() -> Any:
    """The session's late export reading, raised to the bound one if higher (never lowered, so a
    later stop without an export reading loses none)."""
    return case((_higher_late_export(), bindparam("export_wh", type_=Integer)), else_=_s.late_export_wh)


# Open sessions, on the partial index ix_sessions_open: its predicate in the SQL text itself, so
# the planner can match it. A bound value in its place would match too, but SQLite then prepares
# the statement again at every execution (the plan depends on that value).
_OPEN = _s.status == literal_column(f"'{SessionStatus.CHARGING.value}'")

BY_ID = DirectStatement(select(t.sessions).where(_s.id == bindparam("session_pk")))
ALL = DirectStatement(select(t.sessions).order_by(_s.id))
OPEN_ON = DirectStatement(
    select(t.sessions).where(_s.connector_id == bindparam("connector_pk"), _OPEN).order_by(_s.id.desc())
)
# What a status report needs in one read: the charger's status, the connector's id and the newest
# session charging on it (a StatusNotification is a frequent frame).
_SESSION_KEYS = tuple(c.name for c in t.sessions.c)
ON_CONNECTOR = DirectStatement(
    select(_c.status, _k.id, *t.sessions.c)
    .select_from(
        t.chargers.outerjoin(
            t.connectors, and_(_k.charger_id == _c.id, _k.connector_no == bindparam("no"))
        ).outerjoin(t.sessions, and_(_s.connector_id == _k.id, _OPEN))
    )
    .where(_c.charge_point_id == bindparam("cp_id"))
    .order_by(_s.id.desc())
    .limit(1)
)
# A reading applied to a charging session and what the meter path needs back, in one statement;
# the booking's energy limit comes along in a scalar subquery rather than a second round trip.
ADVANCE_METER = DirectStatement(
    update(t.sessions)
    .where(
        _s.id == bindparam("session_pk"),
        _s.status == SessionStatus.CHARGING.value,
        # Only the charger the session runs on moves its meter.
        _s.connector_id.in_(select(_k.id).where(_k.charger_id == CHARGER_ID_OF.scalar_subquery())),
    )
    .values(
        meter_last_wh=_register_at_least("reading"),
        # A reading of a session reported free is a replay still on its way: its stop comes after.
        freed_at=case((_s.freed_at.is_not(None), bindparam("at", type_=_s.freed_at.type)), else_=None),
    )
    .returning(
        _s.booking_id,
        _s.meter_start_wh,
        _s.meter_last_wh,
        # SQLite renders this `WHERE id = booking_id`: `id` resolves to the booking (innermost
        # scope) and only sessions has a booking_id, so it still means the booking of this session.
        select(_b.max_energy_wh).where(_b.id == _s.booking_id).scalar_subquery(),
    )
)
# The charge point id of the charger a session runs on.
CHARGER_OF = DirectStatement(
    select(t.chargers.c.charge_point_id)
    .select_from(t.sessions.join(t.connectors, _k.id == _s.connector_id))
    .join(t.chargers, t.chargers.c.id == _k.charger_id)
    .where(_s.id == bindparam("session_pk"))
)
_MARK_IDLE = update(t.sessions).where(_s.id == bindparam("session_pk")).values(idle_since=bindparam("since"))
MARK_IDLE = DirectStatement(_MARK_IDLE)
MARK_IDLE_ONCE = DirectStatement(_MARK_IDLE.where(_s.idle_since.is_(None)))
_MARK_FREED = update(t.sessions).where(_s.id == bindparam("session_pk")).values(freed_at=bindparam("since"))
MARK_FREED = DirectStatement(_MARK_FREED)
MARK_FREED_ONCE = DirectStatement(  # the first report's instant stands
    update(t.sessions)
    .where(_s.id == bindparam("session_pk"))
    .values(freed_at=func.coalesce(_s.freed_at, bindparam("since", type_=_s.freed_at.type)))
)
# A session of another booking on the connector at some instant of [start, end).
HELD_BY_ANOTHER = DirectStatement(
    select(_s.id)
    .where(
        _s.connector_id == bindparam("connector_pk"),
        _s.booking_id != bindparam("booking_pk"),
        _s.started_at < bindparam("end_at", type_=_s.started_at.type),
        or_(_s.stopped_at.is_(None), _s.stopped_at > bindparam("start_at", type_=_s.stopped_at.type)),
    )
    .limit(1)
)
# Open sessions over their booking's energy.
STOPS_OWED = DirectStatement(
    select(_s.id, t.chargers.c.charge_point_id)
    .select_from(t.sessions.join(t.bookings, _b.id == _s.booking_id))
    .join(t.connectors, _k.id == _s.connector_id)
    .join(t.chargers, t.chargers.c.id == _k.charger_id)
    .where(
        _OPEN,
        _s.meter_last_wh - _s.meter_start_wh >= _b.max_energy_wh,
    )
    .order_by(_s.id)
)
# Every housekeeping sweep's lost-stop lookup, over the open sessions reported free alone
# (ix_sessions_freed: `freed_at < ?` implies its `freed_at IS NOT NULL`). With an ORDER BY id,
# SQLite's planner prefers walking the whole table in id order over a partial index and a sort, a
# cost that grows with every session ever held; so it has none, and is sorted by id here.
FREED_BEFORE = DirectStatement(
    select(t.sessions).where(_OPEN, _s.connector_id.is_not(None), _s.freed_at < bindparam("cutoff"))
)
# Compare-and-set: only a charging session stops, so of two stops racing, one bills it.
STOP = DirectStatement(
    update(t.sessions)
    .where(_s.id == bindparam("session_pk"), _s.status == SessionStatus.CHARGING.value)
    .values(
        status=SessionStatus.STOPPED.value,
        stopped_at=bindparam("stop_at"),
        meter_stop_wh=bindparam("stop_wh"),
        meter_last_wh=_register_at_least("stop_wh"),
        billed_wh=bindparam("billed"),
        cost=bindparam("cost_p"),
        idle_fee=bindparam("idle_fee_p"),
        unmetered=bindparam("unmetered_flag"),
        closed_lost=bindparam("lost_flag"),
    )
)
# A late stop bills its session in full on its reading (compare-and-set on the reading billed, so of
# two late stops racing one rebills it). It must bring something new, an import reading above the
# billed one or an export reading above any taken, so a repeat (an export-only one too) acts once.
REBILL = DirectStatement(
    update(t.sessions)
    .where(
        _s.id == bindparam("session_pk"),
        _s.status == SessionStatus.STOPPED.value,
        _s.meter_stop_wh == bindparam("billed_stop"),
        or_(_s.meter_stop_wh < bindparam("stop_wh", type_=Integer), _higher_late_export()),
    )
    .values(
        meter_stop_wh=bindparam("stop_wh", type_=Integer),
        meter_last_wh=_register_at_least("stop_wh"),
        billed_wh=bindparam("billed"),
        cost=bindparam("cost_p"),
        unmetered=False,  # the late stop's reading measures it (its start was read)
        late_rebilled_at=bindparam("rebilled_at"),
        late_export_wh=_highest_late_export(),
    )
)
# Kept once per reading: one above both the billed reading and any kept, or an export reading above
# any taken; a repeat (or a lower one) changes nothing, so it is reported once. Each column keeps its
# highest. On the reading the caller found billed only: a rebill since (another process's late
# stop) is decided anew.
_KEPT = func.coalesce(_s.late_stop_wh, _s.meter_stop_wh)
RECORD_LATE_STOP = DirectStatement(
    update(t.sessions)
    .where(
        _s.id == bindparam("session_pk"),
        _s.status == SessionStatus.STOPPED.value,
        _s.meter_stop_wh == bindparam("billed_stop"),
        or_(bindparam("late_wh", type_=Integer) > _KEPT, _higher_late_export()),
    )
    .values(
        late_stop_wh=case(
            (bindparam("late_wh", type_=Integer) > _KEPT, bindparam("late_wh", type_=Integer)),
            else_=_s.late_stop_wh,
        ),
        late_stop_at=bindparam("late_at"),
        late_export_wh=_highest_late_export(),
    )
)
FOR_BOOKING = DirectStatement(select(t.sessions).where(_s.booking_id == bindparam("booking_pk")))
FOR_BOOKINGS = DirectStatement(select(t.sessions).where(in_ids(_s.booking_id, "booking_ids")))
CHARGE_POINTS_OF = DirectStatement(
    select(_s.id, t.chargers.c.charge_point_id)
    .select_from(t.sessions.join(t.connectors, _k.id == _s.connector_id))
    .join(t.chargers, t.chargers.c.id == _k.charger_id)
    .where(in_ids(_s.id, "session_ids"))
)
BY_START_KEY = DirectStatement(
    select(t.sessions).where(
        _s.connector_id == bindparam("connector_pk"),
        _s.id_tag == bindparam("tag"),
        _s.meter_start_wh == bindparam("start_wh"),
        _s.started_at == bindparam("start_at"),
    )
)
START_KEY = "uq_session_start_key"  # what PostgreSQL names when the same start is added twice
INSERT = DirectStatement(
    insert(t.sessions)
    .values(
        booking_id=bindparam("booking_pk"),
        connector_id=bindparam("connector_pk"),
        id_tag=bindparam("tag"),
        started_at=bindparam("start_at"),
        meter_start_wh=bindparam("start_wh"),
        meter_last_wh=bindparam("start_wh"),
        status=SessionStatus.CHARGING.value,
        idle_fee=0,
        unmetered=False,
        closed_lost=False,
    )
    .returning(_s.id)
)

STATEMENTS = {
    "sessions.by_id": BY_ID,
    "sessions.all": ALL,
    "sessions.open_on": OPEN_ON,
    "sessions.on_connector": ON_CONNECTOR,
    "sessions.advance_meter": ADVANCE_METER,
    "sessions.charger_of": CHARGER_OF,
    "sessions.mark_idle": MARK_IDLE,
    "sessions.mark_idle_once": MARK_IDLE_ONCE,
    "sessions.stop": STOP,
    "sessions.rebill": REBILL,
    "sessions.record_late_stop": RECORD_LATE_STOP,
    "sessions.mark_freed": MARK_FREED,
    "sessions.mark_freed_once": MARK_FREED_ONCE,
    "sessions.freed_before": FREED_BEFORE,
    "sessions.stops_owed": STOPS_OWED,
    "sessions.held_by_another": HELD_BY_ANOTHER,
    "sessions.for_booking": FOR_BOOKING,
    "sessions.for_bookings": FOR_BOOKINGS,
    "sessions.charge_points_of": CHARGE_POINTS_OF,
    "sessions.by_start_key": BY_START_KEY,
    "sessions.insert": INSERT,
}


class SqlSessions:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(
        self, *, booking_id: int, connector_id: int, id_tag: str, started_at: datetime, meter_start_wh: int
    ) -> int:
        params = {
            "booking_pk": booking_id,
            "connector_pk": connector_id,
            "tag": id_tag,
            "start_at": started_at,
            "start_wh": meter_start_wh,
        }
        try:
            row = INSERT.first(self.conn, params)
        except Exception as exc:
            # Another unit of work committed the same start since this one looked for it (the
            # charger sent it again on another link, to another process).
            if getattr(getattr(exc, "diag", None), "constraint_name", None) == START_KEY:
                raise StartTaken(f"a session with this start key on connector {connector_id}") from exc
            raise
        assert row is not None  # INSERT ... RETURNING always gives the row
        return int(row[0])

    def get(self, session_id: int) -> SessionRecord | None:
        r = BY_ID.first_mapping(self.conn, {"session_pk": session_id})
        return None if r is None else session_record(r)

    def all(self) -> Sequence[SessionRecord]:
        return [session_record(r) for r in ALL.mappings(self.conn, {})]

    def by_start_key(
        self, connector_id: int, id_tag: str, meter_start: int, started_at: datetime
    ) -> SessionRecord | None:
        params = {
            "connector_pk": connector_id,
            "tag": id_tag,
            "start_wh": meter_start,
            "start_at": started_at,
        }
        r = BY_START_KEY.first_mapping(self.conn, params)
        return None if r is None else session_record(r)

    def for_booking(self, booking_id: int) -> SessionRecord | None:
        r = FOR_BOOKING.first_mapping(self.conn, {"booking_pk": booking_id})
        return None if r is None else session_record(r)

    def for_bookings(self, booking_ids: Sequence[int]) -> dict[int, SessionRecord]:
        if not booking_ids:
            return {}
        found = (session_record(r) for r in FOR_BOOKINGS.mappings(self.conn, {"booking_ids": booking_ids}))
        return {s.booking_id: s for s in found}

    def open_on(self, connector_id: int) -> SessionRecord | None:
        r = OPEN_ON.first_mapping(self.conn, {"connector_pk": connector_id})
        return None if r is None else session_record(r)

    def on_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None, SessionRecord | None]:
        found = ON_CONNECTOR.first(self.conn, {"cp_id": charge_point_id, "no": connector_no})
        if found is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        status, connector_id, *session = found
        if session[0] is None:
            return CHARGER_STATUSES[status], connector_id, None
        open_ = session_record(dict(zip(_SESSION_KEYS, session, strict=True)))
        return CHARGER_STATUSES[status], connector_id, open_

    def charger_of(self, session_id: int) -> str | None:
        row = CHARGER_OF.first(self.conn, {"session_pk": session_id})
        return None if row is None else str(row[0])

    def charge_points_of(self, session_ids: Sequence[int]) -> dict[int, str]:
        if not session_ids:
            return {}
        rows = CHARGE_POINTS_OF.rows(self.conn, {"session_ids": session_ids})
        return {int(r[0]): str(r[1]) for r in rows}

    def link_charger_transaction(
        self, session_id: int, charger_id: int, transaction_id: str, *, meter_start_pending: bool = False
    ) -> None:
        self.conn.execute(
            insert(t.charger_transactions).values(
                session_id=session_id,
                charger_id=charger_id,
                transaction_id=transaction_id,
                meter_start_pending=meter_start_pending,
            )
        )

    def settle_meter_start(self, session_id: int, meter_wh: int) -> bool:
        # Only while it charges: a late event must not move a stopped session's bill.
        charging = select(_s.id).where(_s.id == session_id, _s.status == SessionStatus.CHARGING.value)
        pending = self.conn.execute(
            update(t.charger_transactions)
            .where(
                _ct.session_id == session_id,
                _ct.meter_start_pending.is_(True),
                _ct.session_id.in_(charging),
            )
            .values(meter_start_pending=False)
        ).rowcount
        if pending:
            self.conn.execute(
                update(t.sessions)
                .where(_s.id == session_id)
                .values(meter_start_wh=meter_wh, meter_last_wh=meter_wh)
            )
        return bool(pending)

    def awaits_first_reading(self, session_id: int) -> bool:
        q = select(_ct.meter_start_pending).where(_ct.session_id == session_id)
        return bool(self.conn.execute(q).scalar())

    def by_charger_transaction(self, charger_id: int, transaction_id: str) -> SessionRecord | None:
        q = (
            select(t.sessions)
            .join(t.charger_transactions, _ct.session_id == _s.id)
            .where(_ct.charger_id == charger_id, _ct.transaction_id == transaction_id)
        )
        r = self.conn.execute(q).mappings().first()
        return None if r is None else session_record(r)

    def running_elsewhere(self, transaction_id: str, charger_id: int | None) -> int | None:
        q = (
            select(_s.id)
            .join(t.charger_transactions, _ct.session_id == _s.id)
            .where(_ct.transaction_id == transaction_id, _s.status == SessionStatus.CHARGING.value)
        )
        if charger_id is not None:
            q = q.where(_ct.charger_id != charger_id)
        return self.conn.execute(q.limit(1)).scalar()

    def charger_transaction_id(self, session_id: int) -> str | None:
        return self.conn.execute(select(_ct.transaction_id).where(_ct.session_id == session_id)).scalar()

    def charger_seq(self, session_id: int) -> int | None:
        found = self.conn.execute(select(_ct.seq_no).where(_ct.session_id == session_id)).first()
        return None if found is None else found[0]

    def advance_charger_seq(self, session_id: int, seq_no: int) -> bool:
        # Compare-and-set: only a seqNo beyond the highest applied counts as new.
        q = (
            update(t.charger_transactions)
            .where(_ct.session_id == session_id, (_ct.seq_no.is_(None)) | (_ct.seq_no < seq_no))
            .values(seq_no=seq_no)
        )
        return bool(self.conn.execute(q).rowcount)

    def advance_meter(
        self, session_id: int, meter_wh: int, charge_point_id: str, at: datetime
    ) -> MeterAdvance | None:
        params = {"session_pk": session_id, "reading": meter_wh, "cp_id": charge_point_id, "at": at}
        row = ADVANCE_METER.first(self.conn, params)
        return None if row is None else MeterAdvance(row[0], row[1], row[2], row[3])

    def mark_idle(self, session_id: int, since: datetime | None) -> None:
        # Idle from the first report, not the latest; None (charging again) always clears it.
        q = MARK_IDLE if since is None else MARK_IDLE_ONCE
        q.write(self.conn, {"session_pk": session_id, "since": since})

    def mark_freed(self, session_id: int, at: datetime | None) -> None:
        q = MARK_FREED if at is None else MARK_FREED_ONCE
        q.write(self.conn, {"session_pk": session_id, "since": at})

    def held_by_another(self, connector_id: int, booking_id: int, start: datetime, end: datetime) -> bool:
        params = {"connector_pk": connector_id, "booking_pk": booking_id, "start_at": start, "end_at": end}
        return HELD_BY_ANOTHER.first(self.conn, params) is not None

    def stops_owed(self) -> Sequence[tuple[int, str]]:
        return [(r[0], r[1]) for r in STOPS_OWED.rows(self.conn, {})]

    def freed_before(self, cutoff: datetime) -> Sequence[SessionRecord]:
        rows = FREED_BEFORE.mappings(self.conn, {"cutoff": cutoff})
        return [session_record(r) for r in sorted(rows, key=lambda r: int(r["id"]))]

    def stop(
        self,
        session_id: int,
        *,
        stopped_at: datetime,
        meter_stop_wh: int,
        billed_wh: int,
        cost: int,
        idle_fee: int = 0,
        unmetered: bool = False,
        closed_lost: bool = False,
    ) -> bool:
        params = {
            "session_pk": session_id,
            "stop_at": stopped_at,
            "stop_wh": meter_stop_wh,
            "billed": billed_wh,
            "cost_p": cost,
            "idle_fee_p": idle_fee,
            "unmetered_flag": unmetered,
            "lost_flag": closed_lost,
        }
        return STOP.write(self.conn, params) == 1

    def rebill(
        self,
        session_id: int,
        *,
        billed_stop_wh: int,
        meter_stop_wh: int,
        billed_wh: int,
        cost: int,
        at: datetime,
        export_wh: int | None = None,
    ) -> bool:
        params = {
            "session_pk": session_id,
            "billed_stop": billed_stop_wh,
            "stop_wh": meter_stop_wh,
            "billed": billed_wh,
            "cost_p": cost,
            "rebilled_at": at,
            "export_wh": export_wh,
        }
        return REBILL.write(self.conn, params) == 1

    def record_late_stop(
        self,
        session_id: int,
        register_wh: int,
        at: datetime,
        export_wh: int | None = None,
        *,
        billed_stop_wh: int,
    ) -> bool:
        params = {
            "session_pk": session_id,
            "billed_stop": billed_stop_wh,
            "late_wh": register_wh,
            "late_at": at,
            "export_wh": export_wh,
        }
        return RECORD_LATE_STOP.write(self.conn, params) == 1

    def unmetered(self) -> Sequence[SessionRecord]:
        q = select(t.sessions).where(_s.unmetered.is_(True)).order_by(_s.id)
        return [session_record(r) for r in self.conn.execute(q).mappings()]

    def late_stops(self, after: int, limit: int) -> Sequence[SessionRecord]:
        q = (
            select(t.sessions)
            .where(
                _s.id > after,
                or_(_s.late_stop_at.is_not(None), _s.late_rebilled_at.is_not(None)),
            )
            .order_by(_s.id)
            .limit(limit)
        )
        return [session_record(r) for r in self.conn.execute(q).mappings()]
