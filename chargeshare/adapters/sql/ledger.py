"""The double-entry journal: entries and their postings, written once, never changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.adapters.sql.rows import journal
from chargeshare.domain.ledger import JournalEntry

_le, _lp = t.ledger_entries.c, t.ledger_postings.c
ENTRY_COLUMNS = (_le.id, _le.kind, _le.booking_id, _le.pending_id, _le.created_at)  # as `journal` reads
POSTING_COLUMNS = (_lp.entry_id, _lp.id, _lp.account, _lp.amount)  # the id: the order written

_ENTRY_VALUES: dict[str, Any] = {
    "id": bindparam("entry_key"),
    "kind": bindparam("entry_kind"),
    "booking_id": bindparam("booking_pk"),
    "pending_id": bindparam("pending_key"),
    "created_at": bindparam("at"),
}
# An entry already written (its step done again, by a retry or after a crash) is skipped, not a
# failure; only the id is the conflict target, so a second resolution of one hold still raises.
INSERT_ENTRY = {
    "sqlite": DirectStatement(
        sqlite_insert(t.ledger_entries).values(_ENTRY_VALUES).on_conflict_do_nothing(index_elements=["id"])
    ),
    "postgresql": DirectStatement(
        pg_insert(t.ledger_entries).values(_ENTRY_VALUES).on_conflict_do_nothing(index_elements=["id"])
    ),
}
INSERT_POSTING = DirectStatement(
    insert(t.ledger_postings).values(
        entry_id=bindparam("entry_key"),
        seq=bindparam("n"),
        account=bindparam("acct"),
        amount=bindparam("amount_p"),
    )
)
ENTRIES_OF_BOOKING = DirectStatement(
    select(*ENTRY_COLUMNS).where(_le.booking_id == bindparam("booking_pk")).order_by(_le.created_at, _le.id)
)
POSTINGS_OF_BOOKING = DirectStatement(
    select(*POSTING_COLUMNS)
    .join(t.ledger_entries, _le.id == _lp.entry_id)
    .where(_le.booking_id == bindparam("booking_pk"))
    .order_by(_lp.entry_id, _lp.seq)
)
ENTRIES_OF_BOOKINGS = DirectStatement(
    select(*ENTRY_COLUMNS).where(in_ids(_le.booking_id, "booking_ids")).order_by(_le.created_at, _le.id)
)
POSTINGS_OF_BOOKINGS = DirectStatement(
    select(*POSTING_COLUMNS)
    .join(t.ledger_entries, _le.id == _lp.entry_id)
    .where(in_ids(_le.booking_id, "booking_ids"))
    .order_by(_lp.entry_id, _lp.seq)
)
ENTRIES = DirectStatement(select(*ENTRY_COLUMNS).order_by(_le.created_at, _le.id))
POSTINGS = DirectStatement(select(*POSTING_COLUMNS).order_by(_lp.entry_id, _lp.seq))

STATEMENTS = {
    "ledger.insert_posting": INSERT_POSTING,
    "ledger.entries_of_booking": ENTRIES_OF_BOOKING,
    "ledger.postings_of_booking": POSTINGS_OF_BOOKING,
    "ledger.entries_of_bookings": ENTRIES_OF_BOOKINGS,
    "ledger.postings_of_bookings": POSTINGS_OF_BOOKINGS,
    "ledger.entries": ENTRIES,
    "ledger.postings": POSTINGS,
}
SQLITE_ONLY = {"ledger.insert_entry": INSERT_ENTRY["sqlite"]}
POSTGRES_ONLY = {"ledger.insert_entry": INSERT_ENTRY["postgresql"]}


class SqlLedger:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(self, entries: Sequence[JournalEntry]) -> None:
        insert_entry = INSERT_ENTRY[self.dialect]
        for e in entries:
            written = insert_entry.write(
                self.conn,
                {
                    "entry_key": e.entry_id,
                    "entry_kind": e.kind.value,
                    "booking_pk": e.booking_id,
                    "pending_key": e.pending_id,
                    "at": e.created_at,
                },
            )
            if not written:
                continue
            # One driver call for the entry's postings: a capture's entries carry three or four.
            INSERT_POSTING.write_many(
                self.conn,
                [
                    {"entry_key": e.entry_id, "n": i, "acct": p.account, "amount_p": p.amount}
                    for i, p in enumerate(e.postings)
                ],
            )

    def entries(self, booking_id: int | None = None, account: str | None = None) -> Sequence[JournalEntry]:
        if booking_id is not None and account is None:  # one booking's (settlement, every step)
            params = {"booking_pk": booking_id}
            return journal(
                ENTRIES_OF_BOOKING.rows(self.conn, params), POSTINGS_OF_BOOKING.rows(self.conn, params)
            )
        if booking_id is None and account is None:  # the whole journal (reports, invariants)
            return journal(ENTRIES.rows(self.conn, {}), POSTINGS.rows(self.conn, {}))
        q = select(*ENTRY_COLUMNS)
        pq = select(*POSTING_COLUMNS).join(t.ledger_entries, _le.id == _lp.entry_id)
        if booking_id is not None:
            q = q.where(_le.booking_id == booking_id)
            pq = pq.where(_le.booking_id == booking_id)
        if account is not None:  # entries with a posting on this account (all their postings)
            touching = _le.id.in_(select(_lp.entry_id).where(_lp.account == account))
            q = q.where(touching)
            pq = pq.where(touching)
        return journal(
            self.conn.execute(q.order_by(_le.created_at, _le.id)),
            self.conn.execute(pq.order_by(_lp.entry_id, _lp.seq)),
        )

    def entries_of(self, booking_ids: Sequence[int]) -> dict[int, list[JournalEntry]]:
        if not booking_ids:
            return {}
        params = {"booking_ids": booking_ids}
        out: dict[int, list[JournalEntry]] = {}
        for e in journal(
            ENTRIES_OF_BOOKINGS.rows(self.conn, params), POSTINGS_OF_BOOKINGS.rows(self.conn, params)
        ):
            if e.booking_id is not None:
                out.setdefault(e.booking_id, []).append(e)
        return out

    def posting_sums(self) -> dict[str, int]:
        rows = self.conn.execute(select(_lp.entry_id, func.sum(_lp.amount)).group_by(_lp.entry_id))
        return {r[0]: int(r[1]) for r in rows}
