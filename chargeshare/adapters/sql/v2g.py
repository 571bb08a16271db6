"""V2G export: each booking's export terms and its metered export (chargeshare/domain/v2g.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.adapters.sql.open_sessions import newest_open_on_its_connector
from chargeshare.domain.errors import NotFound
from chargeshare.domain.grid_settlement import GridSettlement
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.v2g import ExportBuyer, ExportRecord, ExportTerms
from chargeshare.ocpp import V21

_t = t.v2g_terms.c
_x = t.v2g_exports.c
_g = t.grid_settlements.c
_h = t.host_export_buyers.c

# Read at every session's start and stop, V2G or not (whether its booking carries export terms).
TERMS = DirectStatement(select(t.v2g_terms).where(_t.booking_id == bindparam("booking_pk")))

TERMS_OF = select(t.v2g_terms).where(in_ids(_t.booking_id, "booking_ids"))
RECORDS_OF = select(t.v2g_exports).where(in_ids(_x.booking_id, "booking_ids"))

_s, _k = t.sessions.c, t.connectors.c
# Open sessions (ix_sessions_open) whose 2.1 charger has not taken their export; each the newest
# open one on its connector, as the resend finds them (`sessions.open_on`): an older one left open
# is never sent its export, so listing it would have the sweep ask again every round.
EXPORTS_OWED = (
    select(_s.id, t.chargers.c.charge_point_id)
    .select_from(t.sessions.join(t.v2g_terms, _t.booking_id == _s.booking_id))
    .join(t.connectors, _k.id == _s.connector_id)
    .join(t.chargers, t.chargers.c.id == _k.charger_id)
    .where(
        _s.status == SessionStatus.CHARGING.value,
        t.chargers.c.ocpp_version == V21.value,
        (_t.export_taken_session.is_(None)) | (_t.export_taken_session != _s.id),
        newest_open_on_its_connector(_s),
    )
    .order_by(_s.id)
)

STATEMENTS = {"v2g.terms": TERMS}


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _terms(r: Any) -> ExportTerms:
    return ExportTerms(int(r.booking_id), int(r.price_per_kwh), int(r.soc_floor_pct), r.set_at)


def _record(r: Any) -> ExportRecord:
    return ExportRecord(
        int(r.booking_id),
        _int(r.start_wh),
        _int(r.last_wh),
        _int(r.soc_pct),
        _int(r.lowest_soc_pct),
        _int(r.exported_wh),
        _int(r.credit),
        ExportBuyer(r.buyer),
    )


def _settlement(r: Any) -> GridSettlement:
    recorded_by = _int(r.recorded_by)
    return GridSettlement(r.month, int(r.amount), int(r.exports), r.entry_id, r.recorded_at, recorded_by)


# pg_advisory_xact_lock key ("CSGB") of the grid buyer's statements: see `settling`.
SETTLING_LOCK_KEY = 0x43534742


class SqlV2g:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def _upsert(
        self,
        table: Any,
        values: dict[str, Any],
        where: Any = None,
        *,
        key: str = "booking_id",
        fixed: str = "",
    ) -> None:
        """Insert, or update all but the key and the `fixed` column (kept as first written)."""
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(table).values(**values)
        rest = {k: v for k, v in values.items() if k not in (key, fixed)}
        self.conn.execute(q.on_conflict_do_update(index_elements=[table.c[key]], set_=rest, where=where))

    def _booking_exists(self, booking_id: int) -> None:
        b = t.bookings.c
        if self.conn.execute(select(b.id).where(b.id == booking_id)).first() is None:
            raise NotFound(f"no booking {booking_id}")

    def set_terms(self, terms: ExportTerms) -> None:
        self._booking_exists(terms.booking_id)
        self._upsert(
            t.v2g_terms,
            {
                "booking_id": terms.booking_id,
                "price_per_kwh": terms.price_per_kwh,
                "soc_floor_pct": terms.soc_floor_pct,
                "set_at": terms.set_at,
            },
        )

    def terms(self, booking_id: int) -> ExportTerms | None:
        r = TERMS.first(self.conn, {"booking_pk": booking_id})
        return None if r is None else ExportTerms(int(r[0]), int(r[1]), int(r[2]), r[3])

    def all_terms(self) -> Sequence[ExportTerms]:
        return [_terms(r) for r in self.conn.execute(select(t.v2g_terms).order_by(_t.booking_id))]

    def record(self, booking_id: int) -> ExportRecord | None:
        r = self.conn.execute(select(t.v2g_exports).where(_x.booking_id == booking_id)).first()
        return None if r is None else _record(r)

    def lock_export(self, booking_id: int) -> None:
        # The terms' row: there before any record is, where a first reading has no record row to
        # lock. SQLite's write transactions take turns already (BEGIN IMMEDIATE).
        if self.dialect == "postgresql":
            self.conn.execute(
                select(_t.booking_id).where(_t.booking_id == booking_id).with_for_update(key_share=True)
            )

    def save_record(self, record: ExportRecord, at: datetime) -> None:
        self._booking_exists(record.booking_id)
        self._upsert(
            t.v2g_exports,
            {
                "booking_id": record.booking_id,
                "start_wh": record.start_wh,
                "last_wh": record.last_wh,
                "soc_pct": record.soc_pct,
                "lowest_soc_pct": record.lowest_soc_pct,
                "exported_wh": record.exported_wh,
                "credit": record.credit,
                "updated_at": at,
                "buyer": str(record.buyer),
            },
            # A settled record stands: a reading read before another process settled it is late.
            where=_x.credit.is_(None),
            # The buyer is the one the record was first written with, whatever a later write says.
            fixed="buyer",
        )

    def resettle_record(self, record: ExportRecord, at: datetime, *, last_wh: int) -> bool:
        q = (
            update(t.v2g_exports)
            .where(
                _x.booking_id == record.booking_id,
                _x.credit.is_not(None),
                _x.last_wh == last_wh,
            )
            .values(
                last_wh=record.last_wh,
                exported_wh=record.exported_wh,
                credit=record.credit,
                updated_at=at,
            )
        )
        return self.conn.execute(q).rowcount == 1

    def records(self) -> Sequence[ExportRecord]:
        return [_record(r) for r in self.conn.execute(select(t.v2g_exports).order_by(_x.booking_id))]

    def terms_of(self, booking_ids: Sequence[int]) -> dict[int, ExportTerms]:
        if not booking_ids:
            return {}
        found = (_terms(r) for r in self.conn.execute(TERMS_OF, {"booking_ids": booking_ids}))
        return {x.booking_id: x for x in found}

    def records_of(self, booking_ids: Sequence[int]) -> dict[int, ExportRecord]:
        if not booking_ids:
            return {}
        found = (_record(r) for r in self.conn.execute(RECORDS_OF, {"booking_ids": booking_ids}))
        return {x.booking_id: x for x in found}

    def hold_export_owed(self, booking_id: int, session_id: int) -> bool:
        # The row `export_taken` updates, held (SQLite: the write transaction is ours already).
        q = select(_t.export_taken_session).where(_t.booking_id == booking_id)
        if self.dialect == "postgresql":
            q = q.with_for_update(key_share=True)
        row = self.conn.execute(q).first()
        return row is not None and row.export_taken_session != session_id

    def export_taken(self, booking_id: int, session_id: int) -> None:
        self.conn.execute(
            update(t.v2g_terms).where(_t.booking_id == booking_id).values(export_taken_session=session_id)
        )

    def exports_owed(self) -> Sequence[tuple[int, str]]:
        return [(int(r[0]), str(r[1])) for r in self.conn.execute(EXPORTS_OWED)]

    def host_buyer(self, host_id: int) -> ExportBuyer:
        r = self.conn.execute(select(_h.buyer).where(_h.host_id == host_id)).first()
        return ExportBuyer.GRID if r is None else ExportBuyer(r[0])

    def set_host_buyer(self, host_id: int, buyer: ExportBuyer, at: datetime) -> None:
        h = t.hosts.c
        if self.conn.execute(select(h.id).where(h.id == host_id)).first() is None:
            raise NotFound(f"no host {host_id}")
        values = {"host_id": host_id, "buyer": str(buyer), "set_at": at}
        self._upsert(t.host_export_buyers, values, key="host_id")

    def settling(self, *, exclusive: bool) -> None:
        # PostgreSQL: under read committed a payment's statement would miss a credit still being
        # written. SQLite's write transactions take turns already.
        if self.dialect == "postgresql":
            lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            self.conn.execute(text(f"SELECT {lock}(:key)"), {"key": SETTLING_LOCK_KEY})

    def add_settlement(self, settlement: GridSettlement) -> bool:
        # ON CONFLICT DO NOTHING: a second recording waits on the month's row, then finds it taken.
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.grid_settlements).values(
            month=settlement.month,
            amount=settlement.amount,
            exports=settlement.exports,
            entry_id=settlement.entry_id,
            recorded_at=settlement.recorded_at,
            recorded_by=settlement.recorded_by,
        )
        return self.conn.execute(q.on_conflict_do_nothing().returning(_g.month)).first() is not None

    def settlement(self, month: str) -> GridSettlement | None:
        r = self.conn.execute(select(t.grid_settlements).where(_g.month == month)).first()
        return None if r is None else _settlement(r)

    def settlements(self) -> Sequence[GridSettlement]:
        return [_settlement(r) for r in self.conn.execute(select(t.grid_settlements).order_by(_g.month))]
