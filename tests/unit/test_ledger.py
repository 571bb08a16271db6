"""Property tests: any sequence of holds, captures and voids keeps the ledger's rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain import ledger
from chargeshare.domain.errors import LedgerError
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting, posted_balances
from chargeshare.domain.money import FeeSplit, split_fee

AT = datetime(2026, 1, 1, tzinfo=UTC)

ops = st.lists(
    st.tuples(st.sampled_from(["hold", "capture", "void"]), st.integers(0, 5), st.integers(0, 50_000)),
    max_size=60,
)


@given(ops, st.integers(0, 10_000))
def test_any_sequence_keeps_the_rules(sequence: list[tuple[str, int, int]], bps: int) -> None:
    entries: list[JournalEntry] = []
    holds: dict[int, JournalEntry] = {}
    for op, booking, amount in sequence:
        try:
            if op == "hold":
                if booking in holds:
                    continue
                holds[booking] = ledger.place_hold(f"h{booking}", booking, driver_id=1, amount=amount, at=AT)
                entries.append(holds[booking])
            elif op == "capture" and booking in holds:
                entries.extend(
                    ledger.capture_and_split(
                        holds[booking],
                        entries,
                        capture_id=f"c{booking}",
                        split_id=f"s{booking}",
                        amount=amount,
                        split=split_fee(amount, bps),
                        host_id=2,
                        at=AT,
                    )
                )
            elif op == "void" and booking in holds:
                entries.append(ledger.void_hold(holds[booking], entries, void_id=f"v{booking}", at=AT))
        except LedgerError:
            pass  # refused operations change nothing
    for e in entries:
        assert sum(p.amount for p in e.postings) == 0
    resolved = [e.pending_id for e in entries if e.pending_id]
    assert len(resolved) == len(set(resolved)), "a hold was resolved twice"
    for e in entries:
        if e.kind is EntryKind.CAPTURE:
            assert e.booking_id is not None and 0 <= e.amount <= holds[e.booking_id].amount
    balances = posted_balances(entries)
    assert sum(balances.values()) == 0
    assert balances.get(ledger.PLATFORM_CLEARING, 0) == 0  # every capture was split in full
    assert all(v <= 0 for k, v in balances.items() if k.startswith(("host:", "platform:revenue")))


def test_capture_beyond_hold_is_refused() -> None:
    hold = ledger.place_hold("h", 1, 1, 100, AT)
    with pytest.raises(LedgerError):
        ledger.capture_and_split(
            hold, [], capture_id="c", split_id="s", amount=101, split=FeeSplit(101, 0), host_id=1, at=AT
        )


def test_resolving_twice_is_refused() -> None:
    hold = ledger.place_hold("h", 1, 1, 100, AT)
    void = ledger.void_hold(hold, [], void_id="v", at=AT)
    with pytest.raises(LedgerError):
        ledger.capture_and_split(
            hold, [void], capture_id="c", split_id="s", amount=10, split=FeeSplit(10, 0), host_id=1, at=AT
        )


def test_split_must_add_up() -> None:
    hold = ledger.place_hold("h", 1, 1, 100, AT)
    with pytest.raises(LedgerError):
        ledger.capture_and_split(
            hold, [], capture_id="c", split_id="s", amount=50, split=FeeSplit(40, 5), host_id=1, at=AT
        )


def test_unbalanced_or_naive_entries_cannot_exist() -> None:
    with pytest.raises(LedgerError):
        JournalEntry("x", EntryKind.SPLIT, (Posting("a", 5), Posting("b", -4)), AT, 1)
    with pytest.raises(LedgerError):
        JournalEntry("x", EntryKind.SPLIT, (Posting("a", 5), Posting("b", -5)), AT.replace(tzinfo=None), 1)
    with pytest.raises(LedgerError):
        ledger.place_hold("h", 1, 1, 0, AT)
