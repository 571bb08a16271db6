"""Hosts' pricing settings and the price each booking was quoted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.rows import insert_of
from chargeshare.domain.dynamic_pricing import HostPricing, Price, PricingMode, SmartTariff
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.held_quotes import HeldQuote
from chargeshare.services.records import BookingQuote

_p = t.host_pricing.c
_q = t.booking_quotes.c
_h = t.held_quotes.c

# Run for every booking: its host's settings read, its quote written.
SETTINGS = DirectStatement(select(t.host_pricing).where(_p.host_id == bindparam("row_host_id")))
BOOKING_EXISTS = DirectStatement(select(t.bookings.c.id).where(t.bookings.c.id == bindparam("booking_pk")))
QUOTED = DirectStatement(select(_q.booking_id).where(_q.booking_id == bindparam("booking_pk")))
ADD_QUOTE = DirectStatement(insert_of(t.booking_quotes, "booking_id", "price_per_kwh", "mode", "quoted_at"))

STATEMENTS = {
    "pricing.settings": SETTINGS,
    "pricing.booking_exists": BOOKING_EXISTS,
    "pricing.quoted": QUOTED,
    "pricing.add_quote": ADD_QUOTE,
}

# Run by every housekeeping sweep, mostly finding nothing: built per call, it cost SQLAlchemy's
# statement compilation each time, many times SQLite's own work. Writers are serialized on SQLite,
# so a batch has nothing to pass over (PostgreSQL's form skips locked rows: `delete_expired_held`).
_STALE = (_h.booking_id.is_(None), _h.expires_at < bindparam("cutoff"))
DELETE_EXPIRED_HELD = DirectStatement(
    delete(t.held_quotes).where(
        _h.id.in_(select(_h.id).where(*_STALE).order_by(_h.id).limit(bindparam("most")).scalar_subquery())
    )
)
SQLITE_ONLY = {"pricing.delete_expired_held": DELETE_EXPIRED_HELD}


def _quote(r: Any) -> BookingQuote:
    return BookingQuote(int(r.booking_id), int(r.price_per_kwh), str(r.mode), r.quoted_at)


def _held(r: Any) -> HeldQuote:
    return HeldQuote(
        int(r.id),
        int(r.driver_id),
        int(r.charger_id),
        r.starts_at,
        r.ends_at,
        bool(r.immediate),
        int(r.price_per_kwh),
        PricingMode(r.mode),
        r.quoted_at,
        r.expires_at,
        None if r.booking_id is None else int(r.booking_id),
    )


class SqlPricing:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def settings(self, host_id: int) -> HostPricing | None:
        found = SETTINGS.first_mapping(self.conn, {"row_host_id": host_id})
        if found is None:
            return None
        r = SimpleNamespace(**found)
        tariff = SmartTariff(int(r.own_day_per_kwh), int(r.own_night_per_kwh))
        return HostPricing(PricingMode(r.mode), int(r.floor_per_kwh), int(r.ceiling_per_kwh), tariff)

    def save(self, host_id: int, settings: HostPricing, at: datetime) -> None:
        h = t.hosts.c
        if self.conn.execute(select(h.id).where(h.id == host_id)).first() is None:
            raise NotFound(f"no host {host_id}")
        values = {
            "mode": settings.mode.value,
            "floor_per_kwh": settings.floor_per_kwh,
            "ceiling_per_kwh": settings.ceiling_per_kwh,
            "own_day_per_kwh": settings.own_tariff.day_per_kwh,
            "own_night_per_kwh": settings.own_tariff.night_per_kwh,
            "updated_at": at,
        }
        # One statement either way, so two writers racing on a new row do not collide: the later wins.
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.host_pricing).values(host_id=host_id, **values)
        self.conn.execute(q.on_conflict_do_update(index_elements=[_p.host_id], set_=values))

    def add_quote(self, booking_id: int, quote: Price, at: datetime) -> None:
        if BOOKING_EXISTS.first(self.conn, {"booking_pk": booking_id}) is None:
            raise NotFound(f"no booking {booking_id}")
        if QUOTED.first(self.conn, {"booking_pk": booking_id}) is not None:
            raise InvalidRequest(f"booking {booking_id} was quoted already")
        row = {
            "row_booking_id": booking_id,
            "row_price_per_kwh": quote.per_kwh,
            "row_mode": quote.mode.value,
            "row_quoted_at": at,
        }
        ADD_QUOTE.write(self.conn, row)

    def quotes(self, booking_ids: Sequence[int] | None = None) -> dict[int, BookingQuote]:
        q = select(t.booking_quotes).order_by(_q.booking_id)
        if booking_ids is not None:
            if not booking_ids:
                return {}
            q = q.where(_q.booking_id.in_(list(booking_ids)))
        return {int(r.booking_id): _quote(r) for r in self.conn.execute(q)}

    def hold(self, quote: HeldQuote) -> HeldQuote:
        d, c = t.drivers.c, t.chargers.c
        if self.conn.execute(select(d.id).where(d.id == quote.driver_id)).first() is None:
            raise NotFound(f"no driver {quote.driver_id}")
        if self.conn.execute(select(c.id).where(c.id == quote.charger_id)).first() is None:
            raise NotFound(f"no charger {quote.charger_id}")
        row = {
            "driver_id": quote.driver_id,
            "charger_id": quote.charger_id,
            "starts_at": quote.starts_at,
            "ends_at": quote.ends_at,
            "immediate": quote.immediate,
            "price_per_kwh": quote.per_kwh,
            "mode": quote.mode.value,
            "quoted_at": quote.quoted_at,
            "expires_at": quote.expires_at,
        }
        quote_id = int(self.conn.execute(insert(t.held_quotes).values(row).returning(_h.id)).scalar_one())
        return replace(quote, quote_id=quote_id, booking_id=None)

    def held(self, quote_id: int) -> HeldQuote:
        r = self.conn.execute(select(t.held_quotes).where(_h.id == quote_id)).first()
        if r is None:
            raise NotFound(f"no quote {quote_id}")
        return _held(r)

    def use_held(self, quote_id: int, booking_id: int) -> bool:
        self.held(quote_id)
        if BOOKING_EXISTS.first(self.conn, {"booking_pk": booking_id}) is None:
            raise NotFound(f"no booking {booking_id}")
        # A compare-and-set: a racing unit of work waits on the row (PostgreSQL) or the database
        # (SQLite), then finds it used and changes nothing.
        used = self.conn.execute(
            update(t.held_quotes)
            .where(_h.id == quote_id, _h.booking_id.is_(None))
            .values(booking_id=booking_id)
        )
        return used.rowcount == 1

    def held_used_by(self, booking_ids: Sequence[int] | None = None) -> dict[int, HeldQuote]:
        q = select(t.held_quotes).where(_h.booking_id.is_not(None)).order_by(_h.booking_id)
        if booking_ids is not None:
            if not booking_ids:
                return {}
            q = q.where(_h.booking_id.in_(list(booking_ids)))
        return {int(r.booking_id): _held(r) for r in self.conn.execute(q)}

    def held_ids(self) -> list[int]:
        return [int(r[0]) for r in self.conn.execute(select(_h.id).order_by(_h.id))]

    def delete_expired_held(self, expired_before: datetime, limit: int) -> int:
        if limit < 1:
            raise InvalidRequest("a batch deletes at least one quote")
        if self.dialect != "postgresql":
            return DELETE_EXPIRED_HELD.write(self.conn, {"cutoff": expired_before, "most": limit})
        stale = (_h.booking_id.is_(None), _h.expires_at < expired_before)
        batch = select(_h.id).where(*stale).order_by(_h.id).limit(limit)
        # Rows a booking or another sweep holds are passed over, not waited for. Materialized: as a
        # subquery the planner may run it again per row, each run skipping the rows just deleted,
        # so a batch would grow past `limit`. Checked again on the row as deleted, in case it was
        # used meanwhile.
        claimed = batch.with_for_update(skip_locked=True).cte("batch").prefix_with("MATERIALIZED")
        gone = delete(t.held_quotes).where(_h.id == claimed.c.id, *stale)
        return int(self.conn.execute(gone).rowcount)
