"""`late_stops_unbilled_once` on hand-made snapshots: a kept late stop's export reading is above the
one credited (and totalled as uncredited), and a rebilled one's was credited."""

from __future__ import annotations

import dataclasses

from chargeshare.domain.session import SessionStatus
from chargeshare.domain.v2g import ExportRecord, ExportTerms
from chargeshare.services.invariants import Snapshot, late_stops_unbilled_once
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


def test_a_kept_late_export_not_above_the_credited_reading_fails() -> None:
    kept = dataclasses.replace(CLOSED, late_stop_wh=2_000, late_stop_at=T0, late_export_wh=52_000)
    ok, _, failures = check(kept)
    assert not ok and failures == ["session 1: late export 52000 Wh, credited to 52000 Wh"]


def test_a_rebilled_late_stop_had_its_export_credited() -> None:
    rebilled = dataclasses.replace(CLOSED, meter_stop_wh=2_000, late_rebilled_at=T0, late_export_wh=55_000)
    assert check(rebilled)[0] is False
    taken_up = dataclasses.replace(CREDITED, last_wh=55_000, exported_wh=5_000, credit=125)
    assert check(rebilled, taken_up)[0] is True
