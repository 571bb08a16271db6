"""How often each session's charger refused a command owed to it (domain/command_backoff.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.errors import NotFound
from chargeshare.domain.session import SessionStatus

_r = t.command_refusals.c

OF = select(t.command_refusals).where(_r.kind == bindparam("kind"), in_ids(_r.session_id, "session_ids"))

_s, _o, _v = t.sessions.c, t.booking_overrides.c, t.v2g_terms.c
# Records nothing is owed for any more: their session stopped, or its charger took the command.
PRUNABLE = (
    select(_r.session_id, _r.kind)
    .join(t.sessions, _s.id == _r.session_id)
    .where(
        (_s.status != SessionStatus.CHARGING.value)
        | (
            (_r.kind == OwedKind.OVERRIDE.value)
            & exists().where(_o.booking_id == _s.booking_id, _o.taken_session == _s.id)
        )
        | (
            (_r.kind == OwedKind.EXPORT.value)
            & exists().where(_v.booking_id == _s.booking_id, _v.export_taken_session == _s.id)
        )
    )
    .order_by(_r.session_id, _r.kind)
)
# Built once and run on the driver: every sweep runs it, and it nearly always finds nothing.
PRUNE = DirectStatement(
    delete(t.command_refusals).where(tuple_(_r.session_id, _r.kind).in_(PRUNABLE.limit(bindparam("most"))))
)
SQLITE_ONLY = {"command_refusals.prune": PRUNE}


def _refusals(r: Any) -> Refusals:
    return Refusals(int(r.count), r.last_at, r.retry_at, int(r.unanswered))


class SqlCommandRefusals:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    def of(self, kind: OwedKind, session_ids: Sequence[int]) -> dict[int, Refusals]:
        if not session_ids:
            return {}
        rows = self.conn.execute(OF, {"kind": str(kind), "session_ids": list(session_ids)})
        return {int(r.session_id): _refusals(r) for r in rows}

    def _session_exists(self, session_id: int) -> None:
        s = t.sessions.c
        if self.conn.execute(select(s.id).where(s.id == session_id)).first() is None:
            raise NotFound(f"no session {session_id}")

    def refused(
        self, session_id: int, kind: OwedKind, at: datetime, backoff: Backoff
    ) -> tuple[Refusals, bool]:
        # The count moves on in the row itself: a second process's insert waits on the first's row
        # and then adds to what it committed, where a count read before it would lose one.
        first = backoff.after(1, at)
        q = self._insert(session_id, kind, count=1, unanswered=0, last_at=at, retry_at=first.retry_at)
        q = q.on_conflict_do_update(
            index_elements=[_r.session_id, _r.kind], set_={"count": _r.count + 1, "last_at": at}
        )
        # The update leaves retry_at alone: returned, it is the record's before this refusal.
        count, unanswered, retry_before = self.conn.execute(
            q.returning(_r.count, _r.unanswered, _r.retry_at)
        ).one()
        after = backoff.after(int(count), at, int(unanswered))
        if after != first:  # the row stays locked (or the SQLite write transaction ours) until commit
            self._set_retry(session_id, kind, after)
        return after, after.given_up and (int(count) == 1 or retry_before is not None)

    def unanswered(self, session_id: int, kind: OwedKind, at: datetime, backoff: Backoff) -> Refusals:
        # As `refused`: the row's own count moves on, and what it held decides the retry.
        q = self._insert(session_id, kind, count=0, unanswered=1, last_at=at, retry_at=None)
        q = q.on_conflict_do_update(
            index_elements=[_r.session_id, _r.kind], set_={"unanswered": _r.unanswered + 1}
        )
        row = self.conn.execute(q.returning(_r.count, _r.unanswered, _r.last_at, _r.retry_at)).one()
        count, unanswered, last_at, retry_at = int(row[0]), int(row[1]), row[2], row[3]
        before = None
        if (count, unanswered) != (0, 1):  # a row was there (none holds no failure at all)
            before = Refusals(count, last_at, retry_at, unanswered - 1)
        after = backoff.went_unanswered(before, at)
        self._set_retry(session_id, kind, after)
        return after

    def _insert(self, session_id: int, kind: OwedKind, **values: Any) -> Any:
        self._session_exists(session_id)
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        return make(t.command_refusals).values(session_id=session_id, kind=str(kind), **values)

    def _set_retry(self, session_id: int, kind: OwedKind, after: Refusals) -> None:
        self.conn.execute(
            update(t.command_refusals)
            .where(_r.session_id == session_id, _r.kind == str(kind))
            .values(last_at=after.last_at, retry_at=after.retry_at)
        )

    def clear(self, session_id: int, kind: OwedKind) -> None:
        self.conn.execute(delete(t.command_refusals).where(_r.session_id == session_id, _r.kind == str(kind)))

    def prune(self, limit: int) -> int:
        if self.dialect != "postgresql":  # the write transaction is ours alone
            return PRUNE.write(self.conn, {"most": limit})
        batch = PRUNABLE.limit(limit)
        # Claimed, not waited for: a row a failure is being recorded on is left to the next sweep,
        # and two sweeps at once delete disjoint rows. Materialized, as a subquery run again per
        # row would skip the rows just deleted and grow the batch past `limit`.
        claimed = (
            batch.with_for_update(of=t.command_refusals, skip_locked=True)
            .cte("batch")
            .prefix_with("MATERIALIZED")
        )
        q = delete(t.command_refusals).where(_r.session_id == claimed.c.session_id, _r.kind == claimed.c.kind)
        return int(self.conn.execute(q).rowcount)
