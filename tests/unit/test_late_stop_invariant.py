"""`late_stops_unbilled_once` and `export_credit_matches_export` on hand-made snapshots: a late
export reading above the one credited is totalled uncredited where kept, and with a rebill alone
only while worth less than a penny; late credits' spans follow each other up to the record."""

from __future__ import annotations

import dataclasses

from chargeshare.domain.ledger import JournalEntry, export_credit_entry
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.v2g import ExportRecord, ExportTerms
from chargeshare.services.invariants import Snapshot, export_credit_matches_export, late_stops_unbilled_once
from chargeshare.services.records import SessionRecord
from chargeshare.services.rules import MarketplaceRules
from tests.conftest import T0

CLOSED = SessionRecord(
    session_id=1,
    booking_id=7,
    connector_id=1,
    id_tag="T",
    started_at=T0,
    meter_start_wh=1_000,
    meter_last_wh=1_300,
    status=SessionStatus.STOPPED,
    stopped_at=T0,
    meter_stop_wh=1_300,
    billed_wh=300,
    cost=12,
    closed_lost=True,
)
TERMS = ExportTerms(7, 25, 40, T0)
CREDITED = ExportRecord(7, 50_000, 52_000, None, None, 2_000, 50)


def check(session: SessionRecord, record: ExportRecord = CREDITED) -> tuple[bool, str, list[str]]:
    snap = Snapshot([], [session], [], {}, MarketplaceRules(), export_terms=[TERMS], export_records=[record])
    result = late_stops_unbilled_once(snap)
    return result.ok, result.description, list(result.failures)


def test_a_kept_late_export_above_the_credited_reading_is_totalled_uncredited() -> None:
    kept = dataclasses.replace(CLOSED, late_stop_wh=2_000, late_stop_at=T0, late_export_wh=55_000)
    ok, description, _ = check(kept)
    assert ok and "3000 Wh, 75p export uncredited" in description


def test_a_late_export_reading_credited_up_to_leaves_nothing_uncredited() -> None:
    """The highest export reading a session's late stops brought is kept, credited or not: one a
    rebill credited stays when a later kept stop brings none above it."""
    kept = dataclasses.replace(CLOSED, late_stop_wh=2_000, late_stop_at=T0, late_export_wh=52_000)
    ok, description, failures = check(kept)
    assert ok and failures == [] and "export uncredited" not in description


def test_an_export_only_late_stop_kept_is_totalled_uncredited() -> None:
    kept = dataclasses.replace(CLOSED, late_stop_at=T0, late_export_wh=55_000)
    ok, description, _ = check(kept)
    assert ok and "(1 such, 0 Wh, 0p unbilled; 3000 Wh, 75p export uncredited)" in description
    nothing = dataclasses.replace(CLOSED, late_stop_at=T0)
    assert check(nothing)[2] == ["session 1: a late stop kept with no reading"]


def test_a_rebilled_late_export_may_wait_only_while_worth_less_than_a_penny() -> None:
    below = dataclasses.replace(CLOSED, late_rebilled_at=T0, late_export_wh=52_030)  # 0.75p
    ok, description, _ = check(below)
    assert ok and "30 Wh, 0p export uncredited" in description
    worth_one = dataclasses.replace(below, late_export_wh=52_040)
    assert check(worth_one)[2] == [
        "session 1: billed in full, late export 52040 Wh credited to 52000 Wh (1p left)"
    ]


def test_a_rebilled_late_stop_had_its_export_credited() -> None:
    rebilled = dataclasses.replace(CLOSED, meter_stop_wh=2_000, late_rebilled_at=T0, late_export_wh=55_000)
    assert check(rebilled)[0] is False
    taken_up = dataclasses.replace(CREDITED, last_wh=55_000, exported_wh=5_000, credit=125)
    assert check(rebilled, taken_up)[0] is True


def credits(*spans: tuple[str, int]) -> list[JournalEntry]:
    return [export_credit_entry(entry_id, 7, 3, amount, T0) for entry_id, amount in spans]


def lines_agree(record: ExportRecord, entries: list[JournalEntry]) -> list[str]:
    snap = Snapshot([], [], entries, {}, MarketplaceRules(), export_terms=[TERMS], export_records=[record])
    return list(export_credit_matches_export(snap).failures)


def test_late_export_credits_follow_each_other_up_to_the_record() -> None:
    """The grid statement gives each late credit its span's Wh and the close's line the Wh below
    the first span: they add up to the record's export only if the spans follow each other from the
    close's reading to the record's, each paid what it adds."""
    taken_up = dataclasses.replace(CREDITED, last_wh=52_100, exported_wh=2_100, credit=52)
    close = ("export-7", 50)
    assert lines_agree(taken_up, credits(close, ("export-7:52000-52100", 2))) == []
    assert lines_agree(taken_up, credits(close, ("export-7:52030-52100", 2))) == []  # 2,030 Wh paid 50p
    assert lines_agree(
        taken_up, credits(close, ("export-7:52000-52040", 1), ("export-7:52050-52100", 1))
    ) == ["booking 7: late credit 52050-52100 Wh of 1p (after 52040 Wh, adds 1p)"]
    short = dataclasses.replace(taken_up, last_wh=52_110, exported_wh=2_110)
    assert lines_agree(short, credits(close, ("export-7:52000-52100", 2))) == [
        "booking 7: late credits end at 52100 Wh, record at 52110 Wh"
    ]
