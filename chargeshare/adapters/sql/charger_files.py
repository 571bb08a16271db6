"""Firmware images and chargers' uploaded logs, as rows of `charger_files` (content inline)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from chargeshare.adapters.sql import schema as t
from chargeshare.domain.errors import NotFound
from chargeshare.services.records import ChargerFile

_f = t.charger_files.c
_COLUMNS = select(
    _f.id, _f.token, _f.kind, _f.charge_point_id, _f.name, _f.created_at, _f.size, _f.sha256, _f.received_at
)


def _record(r: Any) -> ChargerFile:
    return ChargerFile(
        r.id, r.token, r.kind, r.charge_point_id, r.name, r.created_at, r.size, r.sha256, r.received_at
    )


class SqlChargerFiles:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(
        self,
        token: str,
        kind: str,
        charge_point_id: str | None,
        name: str,
        at: datetime,
        content: bytes | None,
    ) -> ChargerFile:
        row: dict[str, Any] = {
            "token": token,
            "kind": kind,
            "charge_point_id": charge_point_id,
            "name": name,
            "created_at": at,
            "content": content,
        }
        if content is not None:
            row |= {"size": len(content), "sha256": hashlib.sha256(content).hexdigest(), "received_at": at}
        self.conn.execute(insert(t.charger_files).values(row))
        return self.by_token(token)

    def by_token(self, token: str) -> ChargerFile:
        r = self.conn.execute(_COLUMNS.where(_f.token == token)).first()
        if r is None:
            raise NotFound("no such file")
        return _record(r)

    def content(self, token: str) -> bytes | None:
        r = self.conn.execute(select(_f.content).where(_f.token == token)).first()
        if r is None:
            raise NotFound("no such file")
        return None if r[0] is None else bytes(r[0])

    def fill(self, token: str, content: bytes, sha256: str, at: datetime) -> bool:
        filled = self.conn.execute(
            update(t.charger_files)
            .where(_f.token == token, _f.content.is_(None))
            .values(content=content, size=len(content), sha256=sha256, received_at=at)
        )
        return filled.rowcount == 1

    def of_charger(self, charge_point_id: str) -> Sequence[ChargerFile]:
        rows = self.conn.execute(_COLUMNS.where(_f.charge_point_id == charge_point_id).order_by(_f.id))
        return [_record(r) for r in rows]

    def firmware(self) -> Sequence[ChargerFile]:
        return [_record(r) for r in self.conn.execute(_COLUMNS.where(_f.kind == "firmware").order_by(_f.id))]
