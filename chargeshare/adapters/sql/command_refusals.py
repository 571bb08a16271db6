"""How often each session's charger refused a command owed to it (domain/command_backoff.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.errors import NotFound

_r = t.command_refusals.c

OF = select(t.command_refusals).where(_r.kind == bindparam("kind"), in_ids(_r.session_id, "session_ids"))


def _refusals(r: Any) -> Refusals:
    return Refusals(int(r.count), r.last_at, r.retry_at)


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

    def save(self, session_id: int, kind: OwedKind, refusals: Refusals) -> None:
        self._session_exists(session_id)
        values = {"count": refusals.count, "last_at": refusals.last_at, "retry_at": refusals.retry_at}
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.command_refusals).values(session_id=session_id, kind=str(kind), **values)
        self.conn.execute(q.on_conflict_do_update(index_elements=[_r.session_id, _r.kind], set_=values))

    def refused(self, session_id: int, kind: OwedKind, at: datetime, backoff: Backoff) -> Refusals:
        self._session_exists(session_id)
        # The count moves on in the row itself: a second process's insert waits on the first's row
        # and then adds to what it committed, where a count read before it would lose one.
        first = backoff.after(1, at)
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.command_refusals).values(
            session_id=session_id, kind=str(kind), count=1, last_at=at, retry_at=first.retry_at
        )
        q = q.on_conflict_do_update(
            index_elements=[_r.session_id, _r.kind], set_={"count": _r.count + 1, "last_at": at}
        )
        count = int(self.conn.execute(q.returning(_r.count)).scalar_one())
        after = backoff.after(count, at)
        if count > 1:  # the row stays locked (or the SQLite write transaction ours) until commit
            self.conn.execute(
                update(t.command_refusals)
                .where(_r.session_id == session_id, _r.kind == str(kind))
                .values(retry_at=after.retry_at)
            )
        return after

    def clear(self, session_id: int, kind: OwedKind) -> None:
        self.conn.execute(delete(t.command_refusals).where(_r.session_id == session_id, _r.kind == str(kind)))
