"""Rows to records, and the column sets and statement helpers more than one repository shares."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, false, insert, literal, select

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import BootPolicy, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp import OcppVersion
from chargeshare.services.records import (
    BookingRecord,
    ChargerView,
    ConnectorView,
    OutboxItem,
    SessionRecord,
)

CONNECTOR_TYPES = {e.value: e for e in ConnectorType}
CONNECTOR_STATUSES = {e.value: e for e in ConnectorStatus}
CHARGER_STATUSES = {e.value: e for e in ChargerStatus}
BOOT_POLICIES = {e.value: e for e in BootPolicy}
ENTRY_KINDS = {e.value: e for e in EntryKind}


def one_of(column: Any, values: Iterable[str]) -> Any:
    """`column IN (constants)` with one placeholder per constant, fixed when the statement is
    built: a plain `in_([...])` list expands on every execution, which `DirectStatement` refuses."""
    constants = [literal(v) for v in sorted(values)]
    return column.in_(constants) if constants else false()


def insert_of(table: Any, *columns: str) -> Any:
    """An INSERT naming its columns, each bound to the parameter `row_<column>` (a bare `insert(table)`
    names every column when compiled on its own, as `DirectStatement` does; and a parameter named
    like a column would become a value of any insert that `Connection.execute` is given it with)."""
    return insert(table).values({name: bindparam(f"row_{name}") for name in columns})


# ---- chargers ----------------------------------------------------------------------------------
CHARGER_COLUMNS = (
    t.chargers.c.id,
    t.chargers.c.charge_point_id,
    t.chargers.c.host_id,
    t.chargers.c.title,
    t.chargers.c.lat,
    t.chargers.c.lon,
    t.chargers.c.price_per_kwh,
    t.chargers.c.status,
    t.chargers.c.ocpp_version,
    t.chargers.c.last_seen_at,
    t.chargers.c.boot_policy,
)
_k = t.connectors.c
_CONNECTORS = select(_k.charger_id, _k.id, _k.connector_no, _k.type, _k.max_power_w, _k.status).order_by(
    _k.connector_no
)
CONNECTORS_OF = DirectStatement(_CONNECTORS.where(_k.charger_id == bindparam("charger_pk")))
CONNECTORS_OF_MANY = DirectStatement(_CONNECTORS.where(in_ids(_k.charger_id, "ids")))
CHARGER_ID_OF = select(t.chargers.c.id).where(t.chargers.c.charge_point_id == bindparam("cp_id"))


def hydrate(conn: Connection, rows: Sequence[Any], *, with_distance: bool) -> list[ChargerView]:
    """Views from charger rows (`CHARGER_COLUMNS`, then the distance if any) and one query for
    their connectors. Rows are read by position: this is the map's hot path."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    if len(ids) == 1:  # one charger (a frame's lookup)
        found = CONNECTORS_OF.rows(conn, {"charger_pk": ids[0]})
    else:
        found = CONNECTORS_OF_MANY.rows(conn, {"ids": ids})
    by_charger: dict[int, list[ConnectorView]] = defaultdict(list)
    for charger_id, cid, no, type_, power, status in found:
        by_charger[charger_id].append(
            ConnectorView(cid, no, CONNECTOR_TYPES[type_], power, CONNECTOR_STATUSES[status])
        )
    return [
        ChargerView(
            charger_id=r[0],
            charge_point_id=r[1],
            host_id=r[2],
            title=r[3],
            location=Point(r[4], r[5]),
            price_per_kwh=r[6],
            status=CHARGER_STATUSES[r[7]],
            ocpp_version=None if r[8] is None else OcppVersion(r[8]),
            last_seen_at=r[9],
            connectors=tuple(by_charger[r[0]]),
            distance_m=float(r[11]) if with_distance else None,
            boot_policy=BOOT_POLICIES[r[10]],
        )
        for r in rows
    ]


# ---- bookings ----------------------------------------------------------------------------------
_b = t.bookings.c
BOOKING_COLUMNS = select(
    t.bookings,
    t.connectors.c.charger_id,
    t.chargers.c.host_id,
).select_from(
    t.bookings.join(t.connectors, t.connectors.c.id == t.bookings.c.connector_id).join(
        t.chargers, t.chargers.c.id == t.connectors.c.charger_id
    )
)


def live_overlap(connector: Any, since: Any, until: Any, live: Iterable[BookingStatus]) -> list[Any]:
    """Conditions for a booking in one of the `live` states on `connector` overlapping [since, until):
    the booking guard's and the map search's booking window's. Columns come first in each comparison,
    so an untyped parameter takes the column's type."""
    return [
        _b.connector_id == connector,
        one_of(_b.status, [s.value for s in live]),
        _b.starts_at < until,
        _b.ends_at > since,
    ]


def booking_record(r: Mapping[Any, Any]) -> BookingRecord:
    return BookingRecord(
        booking_id=r["id"],
        driver_id=r["driver_id"],
        connector_id=r["connector_id"],
        charger_id=r["charger_id"],
        host_id=r["host_id"],
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        status=BookingStatus(r["status"]),
        max_energy_wh=r["max_energy_wh"],
        price_per_kwh=r["price_per_kwh"],
        hold_amount=r["hold_amount"],
        payment_ref=r["payment_ref"],
        created_at=r["created_at"],
        fee=r["fee"],
        cancelled_by=r["cancelled_by"],
        reservation=r["reservation"],
        connector_held=bool(r["connector_held"]),
    )


# ---- sessions, the journal, the outbox -----------------------------------------------------------
def session_record(r: Mapping[Any, Any]) -> SessionRecord:
    return SessionRecord(
        session_id=r["id"],
        booking_id=r["booking_id"],
        connector_id=r["connector_id"],
        id_tag=r["id_tag"],
        started_at=r["started_at"],
        meter_start_wh=r["meter_start_wh"],
        meter_last_wh=r["meter_last_wh"],
        status=SessionStatus(r["status"]),
        stopped_at=r["stopped_at"],
        meter_stop_wh=r["meter_stop_wh"],
        billed_wh=r["billed_wh"],
        cost=r["cost"],
        idle_since=r["idle_since"],
        idle_fee=r["idle_fee"],
        freed_at=r["freed_at"],
        unmetered=bool(r["unmetered"]),
        late_stop_wh=r["late_stop_wh"],
        late_stop_at=r["late_stop_at"],
        closed_lost=bool(r["closed_lost"]),
        late_rebilled_at=r["late_rebilled_at"],
        late_export_wh=r["late_export_wh"],
    )


def journal(entries: Iterable[Sequence[Any]], postings: Iterable[Sequence[Any]]) -> list[JournalEntry]:
    """Journal entries from entry rows (id, kind, booking_id, pending_id, created_at) and
    (entry_id, id, account, amount) posting rows, by time, then in the order written: an entry's
    first posting's id, assigned at insert. Read by position: a run's report and invariants read
    the whole journal."""
    by_entry: dict[str, list[Posting]] = defaultdict(list)
    written: dict[str, int] = {}
    for entry_id, posting_id, account, amount in postings:
        by_entry[entry_id].append(Posting(account, amount))
        written[entry_id] = min(posting_id, written.get(entry_id, posting_id))
    out = [
        JournalEntry(
            entry_id, ENTRY_KINDS[kind], tuple(by_entry[entry_id]), created_at, booking_id, pending_id
        )
        for entry_id, kind, booking_id, pending_id, created_at in entries
    ]
    # Sorted here rather than by the database: ordering by a join on the postings risks a plan that
    # scans them all for one booking's few entries.
    out.sort(key=lambda e: (e.created_at, written.get(e.entry_id, 0)))
    return out


def outbox_item(r: Mapping[Any, Any]) -> OutboxItem:
    return OutboxItem(
        item_id=r["id"],
        booking_id=r["booking_id"],
        step=r["step"],
        amount=r["amount"],
        idempotency_key=r["idempotency_key"],
        status=r["status"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"],
        created_at=r["created_at"],
        done_at=r["done_at"],
        claimed_by=r["claimed_by"],
        lease_until=r["lease_until"],
        reference=r["reference"],
        declines=r["declines"],
    )


STATEMENTS = {"connectors_of": CONNECTORS_OF, "connectors_of_many": CONNECTORS_OF_MANY}
