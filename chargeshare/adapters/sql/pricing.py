"""Hosts' pricing settings and the price each booking was quoted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.domain.dynamic_pricing import HostPricing, Price, PricingMode, SmartTariff
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.services.records import BookingQuote

_p = t.host_pricing.c
_q = t.booking_quotes.c


def _quote(r: Any) -> BookingQuote:
    return BookingQuote(int(r.booking_id), int(r.price_per_kwh), str(r.mode), r.quoted_at)


class SqlPricing:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def settings(self, host_id: int) -> HostPricing | None:
        r = self.conn.execute(select(t.host_pricing).where(_p.host_id == host_id)).first()
        if r is None:
            return None
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
        b = t.bookings.c
        if self.conn.execute(select(b.id).where(b.id == booking_id)).first() is None:
            raise NotFound(f"no booking {booking_id}")
        if self.conn.execute(select(_q.booking_id).where(_q.booking_id == booking_id)).first() is not None:
            raise InvalidRequest(f"booking {booking_id} was quoted already")
        self.conn.execute(
            insert(t.booking_quotes).values(
                booking_id=booking_id, price_per_kwh=quote.per_kwh, mode=quote.mode.value, quoted_at=at
            )
        )

    def quotes(self, booking_ids: Sequence[int] | None = None) -> dict[int, BookingQuote]:
        q = select(t.booking_quotes).order_by(_q.booking_id)
        if booking_ids is not None:
            if not booking_ids:
                return {}
            q = q.where(_q.booking_id.in_(list(booking_ids)))
        return {int(r.booking_id): _quote(r) for r in self.conn.execute(q)}
