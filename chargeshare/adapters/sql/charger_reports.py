"""What registered chargers report about themselves, kept as received."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from chargeshare.adapters.sql import schema as t
from chargeshare.services.records import ChargerReport

_r = t.charger_reports.c


class SqlChargerReports:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(
        self,
        charger_id: int,
        action: str,
        summary: str,
        body: Mapping[str, Any],
        *,
        received_at: datetime,
        reported_at: datetime | None = None,
    ) -> int:
        q = (
            insert(t.charger_reports)
            .values(
                charger_id=charger_id,
                action=action[:48],
                summary=summary[:500],
                body=dict(body),
                reported_at=reported_at,
                received_at=received_at,
            )
            .returning(_r.id)
        )
        return int(self.conn.execute(q).scalar_one())

    def of(self, charger_id: int, actions: Sequence[str] = ()) -> Sequence[ChargerReport]:
        q = (
            select(_r.id, _r.charger_id, _r.action, _r.summary, _r.body, _r.reported_at, _r.received_at)
            .where(_r.charger_id == charger_id)
            .order_by(_r.id)
        )
        if actions:
            q = q.where(_r.action.in_(list(actions)))
        return [ChargerReport(*row) for row in self.conn.execute(q)]
