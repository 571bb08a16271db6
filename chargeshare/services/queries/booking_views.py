"""Bookings as their driver or host sees them: the booking with its session, receipt, the host's
access notes and the smart charging override, read for a whole list in a fixed number of reads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from chargeshare.domain.accounts import Principal
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import DomainError, NotFound
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.queries.tenancy import bookings_of, can_see
from chargeshare.services.receipts import Receipt, receipt_from
from chargeshare.services.records import BookingRecord
from chargeshare.services.rules import MarketplaceRules

log = logging.getLogger(__name__)

# The host's access notes (gate codes and the like) go with a live booking only.
NOTES_SHOWN = frozenset({BookingStatus.CONFIRMED, BookingStatus.ACTIVE})


@dataclass(frozen=True)
class BookingView:
    booking: BookingRecord
    session_id: int | None
    receipt: Receipt | None
    access_notes: str | None
    override_smart_charging: bool


class BookingViews:
    def __init__(self, store: Store, rules: MarketplaceRules) -> None:
        self.store, self.rules = store, rules

    def mine(self, who: Principal) -> list[BookingView]:
        """A driver's own bookings, or those on a host's chargers, newest first."""
        with self.store.reading() as tx:
            return self._views(tx, bookings_of(tx, who))

    def get(self, who: Principal, booking_id: int) -> BookingView:
        with self.store.reading() as tx:
            return self._views(tx, [self._visible(tx, who, booking_id)])[0]

    def visible(self, who: Principal, booking_id: int) -> BookingRecord:
        """The booking, if the caller may see it; NotFound otherwise, as if it did not exist."""
        with self.store.reading() as tx:
            return self._visible(tx, who, booking_id)

    def of_record(self, who: Principal, record: BookingRecord) -> BookingView:
        """The view of a booking a service just returned to the caller."""
        if not can_see(who, record):
            raise NotFound(f"no booking {record.booking_id}")
        with self.store.reading() as tx:
            return self._views(tx, [record])[0]

    def of_made(self, who: Principal, record: BookingRecord, override_smart_charging: bool) -> BookingView:
        """The view of a booking just made; the booking alone if the rest cannot be read (the
        database went away after it committed): it is made, so it is answered as made."""
        try:
            return self.of_record(who, record)
        except DomainError:
            raise
        except Exception:
            log.exception("booking %d made, its view not read: answered without it", record.booking_id)
            return BookingView(record, None, None, None, override_smart_charging)

    def receipt(self, who: Principal, booking_id: int) -> Receipt:
        """NotFound until the session is stopped and paid."""
        view = self.get(who, booking_id)
        if view.receipt is None:
            raise NotFound(f"booking {booking_id} has no receipt yet")
        return view.receipt

    @staticmethod
    def _visible(tx: UnitOfWork, who: Principal, booking_id: int) -> BookingRecord:
        b = tx.bookings.get(booking_id)
        if not can_see(who, b):
            raise NotFound(f"no booking {booking_id}")
        return b

    def _views(self, tx: UnitOfWork, records: Sequence[BookingRecord]) -> list[BookingView]:
        if not records:
            return []
        ids = [b.booking_id for b in records]
        sessions = tx.sessions.for_bookings(ids)
        stopped = [i for i, s in sessions.items() if s.cost is not None]
        entries = tx.ledger.entries_of(stopped) if stopped else {}
        live_chargers = sorted({b.charger_id for b in records if b.status in NOTES_SHOWN})
        notes = tx.chargers.access_notes_of(live_chargers) if live_chargers else {}
        overridden = tx.smart.overridden(ids)
        out = []
        for b in records:
            session = sessions.get(b.booking_id)
            out.append(
                BookingView(
                    booking=b,
                    session_id=None if session is None else session.session_id,
                    receipt=receipt_from(b, session, entries.get(b.booking_id, ()), self.rules),
                    access_notes=notes.get(b.charger_id) if b.status in NOTES_SHOWN else None,
                    override_smart_charging=b.booking_id in overridden,
                )
            )
        return out
