"""The grid buyer's monthly statement for guests' V2G export, and an operator recording its payment.

A statement is read from the ledger: the `EXPORT_CREDIT` entries written in a UK calendar month,
each with the export and price it was credited for, and `grid:export_buyer`'s balance at the
month's start and end with the payments received in it, which the credits reconcile. A payment
settles a statement whole, once the month is over (no credit can be written in it after); the
month's row in `grid_settlements` is claimed first, so recording it again, or at once from
another process, writes nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.errors import InvalidField
from chargeshare.domain.fleet import month_end, month_of
from chargeshare.domain.grid_settlement import (
    GridSettlement,
    GridStatement,
    StatementLine,
    buyer_balance,
    check_payment,
    export_credits_in,
    month_start,
    settlement_entry,
    settlement_entry_id,
)
from chargeshare.domain.ledger import GRID_EXPORT_BUYER
from chargeshare.failpoints import failpoint
from chargeshare.services.clock import Clock
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.v2g import late_export_span


@dataclass(frozen=True)
class RecordedPayment:
    settlement: GridSettlement
    recorded_now: bool  # False: the month was settled before, and this recording wrote nothing


def read_statement(tx: UnitOfWork, month: str, now: datetime) -> GridStatement:
    """The month's export credits from the ledger, each with its metered export and price."""
    start, end = month_start(month), month_end(month)
    buyer = tx.ledger.entries(account=GRID_EXPORT_BUYER)
    credits = export_credits_in(buyer, month)
    bookings = sorted({e.booking_id for e in credits if e.booking_id is not None})
    records, terms = tx.v2g.records_of(bookings), tx.v2g.terms_of(bookings)
    # The register reading each booking's close credited up to, where a late stop credited more.
    late_from: dict[int, int] = {}
    for e in buyer:
        span = late_export_span(e.entry_id)
        if span is not None and e.booking_id is not None:
            late_from[e.booking_id] = min(span[0], late_from.get(e.booking_id, span[0]))
    lines = []
    for e in credits:
        assert e.booking_id is not None, "an export credit is a booking's"
        record, priced = records.get(e.booking_id), terms.get(e.booking_id)
        exported = 0 if record is None or record.exported_wh is None else record.exported_wh
        span = late_export_span(e.entry_id)
        if span is not None:  # a late stop's credit: the export after the close
            exported = span[1] - span[0]
        elif record is not None and record.start_wh is not None and e.booking_id in late_from:
            exported = late_from[e.booking_id] - record.start_wh  # the close's, before any late credit
        price = 0 if priced is None else priced.price_per_kwh
        lines.append(StatementLine(e.entry_id, e.booking_id, e.created_at, exported, price, e.amount))
    balance = buyer_balance(buyer, start, end)
    return GridStatement(month, start, end, tuple(lines), tx.v2g.settlement(month), now >= end, balance)


class GridSettlementService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def statement(self, month: str) -> GridStatement:
        """What the grid buyer owes for the month (still growing while the month is not over)."""
        month_start(month)  # InvalidField for a malformed month, before any read
        with self.store.reading() as tx:
            return read_statement(tx, month, self.clock.now())

    def settlements(self) -> Sequence[GridSettlement]:
        with self.store.reading() as tx:
            return tx.v2g.settlements()

    def record_payment(self, month: str, amount: int, *, recorded_by: int | None = None) -> RecordedPayment:
        """Record the grid buyer's payment of the month's statement, exactly its total, once the
        month is over. The same payment again answers with the first and writes nothing."""
        month_start(month)
        now = self.clock.now()
        if now < month_end(month):
            raise InvalidField(
                "month", f"{month} is not over yet (it is {month_of(now)}): its statement may grow"
            )
        done = self._record(month, amount, recorded_by)
        if done.recorded_now:
            failpoint("grid-payment-recorded")
        return done

    def _record(self, month: str, amount: int, recorded_by: int | None) -> RecordedPayment:
        with self.store.transaction() as tx:
            tx.v2g.settling(exclusive=True)  # every credit dated in the month is written by now
            now = self.clock.now()  # dated once it has its turn: after the credits it waited for
            settled = tx.v2g.settlement(month)
            if settled is None:
                owed = read_statement(tx, month, now)
                check_payment(month, owed.total, amount)
                settled = GridSettlement(
                    month, amount, len(owed.lines), settlement_entry_id(month), now, recorded_by
                )
                if tx.v2g.add_settlement(settled):
                    tx.ledger.add([settlement_entry(month, amount, now)])
                    return RecordedPayment(settled, recorded_now=True)
                settled = tx.v2g.settlement(month)  # another process recorded it meanwhile
                assert settled is not None, "the month's row was taken by a committed recording"
            if amount != settled.amount:
                raise InvalidField(
                    "amount",
                    f"{month} was settled for {settled.amount}p; a payment of {amount}p does not match",
                )
            return RecordedPayment(settled, recorded_now=False)
