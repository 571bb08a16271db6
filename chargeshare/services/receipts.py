"""A driver's receipt for one booking, read from the session and the ledger's captures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chargeshare.domain.ledger import EntryKind, JournalEntry
from chargeshare.domain.money import split_fee
from chargeshare.domain.tariff import Tariff
from chargeshare.services.ports import UnitOfWork
from chargeshare.services.records import BookingRecord, SessionRecord
from chargeshare.services.rules import MarketplaceRules


@dataclass(frozen=True)
class Receipt:
    booking_id: int
    energy_wh: int
    price_per_kwh: int
    energy_cost: int
    idle_fee: int
    cost: int
    platform_fee: int  # VAT included
    vat: int
    host_share: int
    unmetered: bool = False  # billed without a measurement (see domain.session.unmetered)


def receipt_for(tx: UnitOfWork, booking: BookingRecord, rules: MarketplaceRules) -> Receipt | None:
    """None until the session has stopped and every capture of its cost is done (a cost beyond the
    hold is captured in more than one step)."""
    session = tx.sessions.for_booking(booking.booking_id)
    if session is None or session.billed_wh is None or session.cost is None:
        return None
    return receipt_from(booking, session, tx.ledger.entries(booking.booking_id), rules)


def receipt_from(
    booking: BookingRecord,
    session: SessionRecord | None,
    entries: Iterable[JournalEntry],
    rules: MarketplaceRules,
) -> Receipt | None:
    """`receipt_for` from what was read already: the booking's session and journal entries."""
    if session is None or session.billed_wh is None or session.cost is None:
        return None
    splits = [
        split_fee(e.amount, rules.platform_fee_bps, rules.vat_bps)
        for e in entries
        if e.kind is EntryKind.CAPTURE
    ]
    captured = sum(s.total for s in splits)
    if captured < session.cost:
        return None
    return Receipt(
        booking_id=booking.booking_id,
        energy_wh=session.billed_wh,
        price_per_kwh=booking.price_per_kwh,
        energy_cost=Tariff(booking.price_per_kwh).cost(session.billed_wh),
        idle_fee=session.idle_fee,
        cost=captured,
        platform_fee=sum(s.platform_fee for s in splits),
        vat=sum(s.vat for s in splits),
        host_share=sum(s.host_share for s in splits),
        unmetered=session.unmetered,
    )
