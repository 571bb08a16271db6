"""Notifications to hosts, and chargers' security events for the operator."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.rows import insert_of
from chargeshare.services.records import SecurityEvent

NOTIFY_HOST = DirectStatement(insert_of(t.notifications, "host_id", "kind", "subject", "body", "created_at"))

STATEMENTS = {"notifications.add": NOTIFY_HOST}


class SqlNotifications:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(self, host_id: int, kind: str, subject: str, body: str, at: datetime) -> None:
        row = {
            "row_host_id": host_id,
            "row_kind": kind,
            "row_subject": subject,
            "row_body": body,
            "row_created_at": at,
        }
        NOTIFY_HOST.write(self.conn, row)

    def all(self, host_id: int | None = None) -> Sequence[dict[str, object]]:
        q = select(t.notifications).order_by(t.notifications.c.id)
        if host_id is not None:
            q = q.where(t.notifications.c.host_id == host_id)
        return [dict(r) for r in self.conn.execute(q).mappings()]


class SqlSecurityLog:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def record(
        self, charge_point_id: str, kind: str, detail: str, at: datetime, *, source: str = "backend"
    ) -> None:
        self.conn.execute(
            insert(t.security_events).values(
                charge_point_id=charge_point_id[:64],
                kind=kind[:48],
                detail=detail[:500],
                created_at=at,
                source=source,
            )
        )

    def all(self, charge_point_id: str | None = None) -> Sequence[SecurityEvent]:
        e = t.security_events.c
        q = select(e.id, e.charge_point_id, e.kind, e.detail, e.created_at, e.source).order_by(e.id)
        if charge_point_id is not None:
            q = q.where(e.charge_point_id == charge_point_id)
        return [SecurityEvent(*r) for r in self.conn.execute(q)]
