"""The grid buyer's statements: UK months (across the clock changes), every export credit on exactly
one month's statement, the settlement entry, a payment recorded twice being one entry, and each
statement reconciling the buyer's balance in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeshare.adapters.memory_store import MemoryStore
from chargeshare.domain.errors import InvalidField, LedgerError
from chargeshare.domain.fleet import month_of
from chargeshare.domain.grid_settlement import (
    buyer_movement,
    check_payment,
    export_credits_in,
    month_start,
    settled_month,
    settlement_entry,
)
from chargeshare.domain.ledger import (
    GRID_EXPORT_BUYER,
    PLATFORM_BANK,
    EntryKind,
    export_credit_entry,
    posted_balances,
)
from chargeshare.services.clock import ManualClock
from chargeshare.services.grid_settlement import GridSettlementService
from tests.conftest import examples

START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_S = 2 * 366 * 86_400  # two years: four clock changes


def test_a_month_starts_at_uk_midnight_in_summer_and_winter() -> None:
    assert month_start("2026-03") == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # GMT
    assert month_start("2026-04") == datetime(2026, 3, 31, 23, 0, tzinfo=UTC)  # BST
    late_march = export_credit_entry("e1", 1, 1, 10, datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    assert export_credits_in([late_march], "2026-03") == [] and export_credits_in(
        [late_march], "2026-04"
    ) == [late_march]


def test_the_settlement_entry_moves_the_buyers_debt_to_the_bank() -> None:
    e = settlement_entry("2026-03", 166, START)
    assert e.entry_id == "grid-settlement:2026-03" and e.kind is EntryKind.GRID_SETTLEMENT
    assert {p.account: p.amount for p in e.postings} == {PLATFORM_BANK: 166, GRID_EXPORT_BUYER: -166}
    assert e.booking_id is None and settled_month(e.entry_id) == "2026-03"
    assert settled_month("export-3") is None
    with pytest.raises(LedgerError):
        settlement_entry("2026-03", 0, START)


def test_a_payment_is_the_statements_total_and_nothing_owed_is_refused() -> None:
    check_payment("2026-03", 166, 166)
    with pytest.raises(InvalidField, match="is 166p; a payment of 167p"):
        check_payment("2026-03", 166, 167)
    with pytest.raises(InvalidField, match="owes nothing"):
        check_payment("2026-03", 0, 0)


exports = st.lists(
    st.tuples(st.integers(0, SPAN_S), st.integers(1, 50_000)),
    min_size=0,
    max_size=40,
    unique_by=lambda x: x[0],
)


@given(exports)
def test_every_export_credit_is_on_exactly_one_months_statement_and_the_totals_add_up(
    made: list[tuple[int, int]],
) -> None:
    entries = [
        export_credit_entry(f"export-{n}", n + 1, 1, amount, START + timedelta(seconds=s))
        for n, (s, amount) in enumerate(made)
    ]
    months = [f"{y}-{m:02d}" for y in (2025, 2026, 2027) for m in range(1, 13)]  # the span and more
    listed = [e.entry_id for m in months for e in export_credits_in(entries, m)]
    assert sorted(listed) == sorted(e.entry_id for e in entries)  # each once, none lost
    for m in months:
        inside = [a for (s, a) in made if month_of(START + timedelta(seconds=s)) == m]
        assert buyer_movement(export_credits_in(entries, m)) == sum(inside)


@settings(max_examples=examples(30))
@given(exports.filter(bool), st.integers(2, 4))
def test_recording_a_months_payment_any_number_of_times_writes_one_entry(
    made: list[tuple[int, int]], times: int
) -> None:
    store = MemoryStore()
    clock = ManualClock(START + timedelta(seconds=SPAN_S + 40 * 86_400))  # every month is over
    with store.transaction() as tx:
        tx.ledger.add(
            [
                export_credit_entry(f"export-{n}", n + 1, 1, amount, START + timedelta(seconds=s))
                for n, (s, amount) in enumerate(made)
            ]
        )
    service = GridSettlementService(store, clock)
    month = month_of(START + timedelta(seconds=made[0][0]))
    owed = service.statement(month).total
    results = [service.record_payment(month, owed) for _ in range(times)]
    assert [r.recorded_now for r in results] == [True] + [False] * (times - 1)
    with store.reading() as tx:
        entries = tx.ledger.entries()
    assert [e.amount for e in entries if e.kind is EntryKind.GRID_SETTLEMENT] == [owed]
    assert posted_balances(entries)[GRID_EXPORT_BUYER] == sum(a for _, a in made) - owed
    for m in (month, month_of(clock.now())):  # the month paid, and the month it was paid in
        assert service.statement(m).reconciles
