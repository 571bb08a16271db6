"""How often each session's charger refused a command owed to it (domain/command_backoff.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.domain.command_backoff import OwedKind, Refusals
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

    def save(self, session_id: int, kind: OwedKind, refusals: Refusals) -> None:
        s = t.sessions.c
        if self.conn.execute(select(s.id).where(s.id == session_id)).first() is None:
            raise NotFound(f"no session {session_id}")
        values = {"count": refusals.count, "last_at": refusals.last_at, "retry_at": refusals.retry_at}
        # One statement, so two processes recording a refusal at once do not collide: the later wins.
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.command_refusals).values(session_id=session_id, kind=str(kind), **values)
        self.conn.execute(q.on_conflict_do_update(index_elements=[_r.session_id, _r.kind], set_=values))

    def clear(self, session_id: int, kind: OwedKind) -> None:
        self.conn.execute(delete(t.command_refusals).where(_r.session_id == session_id, _r.kind == str(kind)))
