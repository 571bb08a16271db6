"""Fleet blocks: expansion across the UK clock changes, the contract policy, invoices, ledger entries."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.errors import InvalidField, LedgerError
from chargeshare.domain.fleet import (
    UK,
    WEEKDAYS,
    BlockRule,
    ContractPolicy,
    InvoiceLine,
    LineKind,
    invoice_for,
    month_end,
    month_of,
    overlapping,
    wall_to_utc,
)
from chargeshare.domain.fleet_ledger import (
    charge_on_account,
    fleet_receivable,
    fleet_unbilled,
    host_penalty,
    invoice_entry,
    payment_entry,
    receivable_fleet,
)
from chargeshare.domain.ledger import posted_balances
from chargeshare.domain.money import split_fee

# Clocks go forward 2026-03-29 01:00 UTC and back 2026-10-25 01:00 UTC.
SPRING, AUTUMN = date(2026, 3, 29), date(2026, 10, 25)

# Clock changes 2025-2027: the days they happen on, and the small hours, are drawn often.
CHANGES = [date(2025, 3, 30), date(2025, 10, 26), date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28)]
minutes = st.sampled_from([0, 15, 30, 45])
times = st.one_of(st.builds(time, st.integers(0, 3), minutes), st.builds(time, st.integers(0, 23), minutes))
near_a_change = st.builds(lambda d, k: d - timedelta(days=k), st.sampled_from(CHANGES), st.integers(0, 3))
first_days = st.one_of(near_a_change, st.dates(date(2025, 1, 1), date(2027, 12, 31)))
weekday_sets = st.one_of(st.just(frozenset(range(7))), st.frozensets(st.integers(0, 6), min_size=1))


@st.composite
def block_rules(draw: st.DrawFn) -> BlockRule:
    start, end = draw(times), draw(times)
    if start == end:
        end = (datetime.combine(date(2000, 1, 1), start) + timedelta(minutes=15)).time()
    first = draw(first_days)
    span = draw(st.integers(0, 120))
    return BlockRule(draw(weekday_sets), start, end, first, first + timedelta(span))


def in_gap(day: date, at: time) -> bool:
    naive = datetime.combine(day, at)
    return naive.replace(tzinfo=UK).astimezone(UTC).astimezone(UK).replace(tzinfo=None) != naive


@given(block_rules())
def test_occurrences_are_ordered_non_empty_and_never_overlap(rule: BlockRule) -> None:
    periods = rule.occurrences()
    assert all(start < end for start, end in periods)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(periods))
    assert all(p[0].tzinfo is UTC and p[1].tzinfo is UTC for p in periods)


@given(block_rules())
def test_occurrences_start_and_end_at_the_rules_wall_times(rule: BlockRule) -> None:
    days = set(rule.days())
    for start, end in rule.occurrences():
        local_start = start.astimezone(UK)
        day = local_start.date()
        assert day in days and day.weekday() in rule.weekdays
        if not in_gap(day, rule.start):
            assert local_start.time() == rule.start
        end_day = day + timedelta(days=1) if rule.crosses_midnight else day
        if not in_gap(end_day, rule.end):
            assert end.astimezone(UK).time() == rule.end
            assert end.astimezone(UK).date() == end_day


@given(block_rules())
def test_every_day_has_its_block_unless_its_window_is_skipped_by_the_clocks(rule: BlockRule) -> None:
    # Skipped: a same-day window whose every minute is in the skipped hour (a contiguous span, so
    # its first and last minutes tell).
    def last_minute(d: date) -> time:
        return (datetime.combine(d, rule.end) - timedelta(minutes=1)).time()

    skipped = [
        d
        for d in rule.days()
        if not rule.crosses_midnight and in_gap(d, rule.start) and in_gap(d, last_minute(d))
    ]
    assert len(rule.occurrences()) == len(rule.days()) - len(skipped)


def test_weekday_nights_last_an_hour_less_and_more_on_the_clock_change_nights() -> None:
    def nights(day: date) -> list[timedelta]:
        rule = BlockRule(frozenset(range(7)), time(20), time(6), day, day)
        return [end - start for start, end in rule.occurrences()]

    assert nights(SPRING - timedelta(days=1)) == [timedelta(hours=9)]
    assert nights(AUTUMN - timedelta(days=1)) == [timedelta(hours=11)]
    assert nights(date(2026, 6, 1)) == [timedelta(hours=10)]
    summer = BlockRule(WEEKDAYS, time(20), time(6), date(2026, 6, 1), date(2026, 6, 1)).occurrences()
    assert summer == [(datetime(2026, 6, 1, 19, tzinfo=UTC), datetime(2026, 6, 2, 5, tzinfo=UTC))]


def test_a_skipped_wall_time_is_the_instant_the_clocks_went_forward_and_a_repeated_one_the_first() -> None:
    assert wall_to_utc(SPRING, time(1, 30)) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert wall_to_utc(AUTUMN, time(1, 30)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_weekdays_only_and_the_date_range_is_inclusive() -> None:
    rule = BlockRule(WEEKDAYS, time(20), time(6), date(2026, 12, 4), date(2026, 12, 14))  # Fri .. Mon
    assert [d.isoformat() for d in rule.days()] == [
        "2026-12-04",
        *(f"2026-12-{n:02d}" for n in range(7, 12)),
        "2026-12-14",
    ]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weekdays": frozenset()}, "weekdays"),
        ({"weekdays": frozenset({7})}, "weekdays"),
        ({"end": time(20)}, "end"),
        ({"start": time(20, 0, 30)}, "start"),
        ({"last_day": date(2026, 11, 30)}, "last_day"),
        ({"last_day": date(2028, 1, 1)}, "last_day"),
        ({"first_day": date(1, 1, 1)}, "first_day"),
    ],
)
def test_a_bad_rule_names_its_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "weekdays": WEEKDAYS,
        "start": time(20),
        "end": time(6),
        "first_day": date(2026, 12, 1),
        "last_day": date(2026, 12, 31),
    }
    with pytest.raises(InvalidField) as err:
        BlockRule(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.field == field


def test_a_host_cancelling_inside_the_notice_owes_the_penalty() -> None:
    policy = ContractPolicy(notice=timedelta(hours=48), late_penalty=2500)
    starts = datetime(2026, 12, 10, 20, tzinfo=UTC)
    assert policy.host_cancellation_penalty(starts - timedelta(hours=48), starts) == 0
    assert policy.host_cancellation_penalty(starts - timedelta(hours=47), starts) == 2500
    assert policy.host_cancellation_penalty(starts + timedelta(hours=1), starts) == 2500


def test_the_months_invoice_takes_what_is_unbilled_before_its_end_in_uk_time() -> None:
    # 31 March 23:30 UTC is already 1 April in the UK (BST).
    assert month_end("2026-03") == datetime(2026, 3, 31, 23, tzinfo=UTC)
    assert month_of(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == "2026-04"
    lines = [
        InvoiceLine("b2:capture", 2, LineKind.SESSION, datetime(2026, 3, 31, 22, tzinfo=UTC), 900, 3000),
        InvoiceLine("b1:capture", 1, LineKind.SESSION, datetime(2026, 2, 3, 22, tzinfo=UTC), 500, 2000),
        InvoiceLine("b3:penalty", 3, LineKind.PENALTY, datetime(2026, 3, 31, 23, tzinfo=UTC), -200),
    ]
    invoice = invoice_for(7, "2026-03", lines)
    assert [x.entry_id for x in invoice.lines] == ["b1:capture", "b2:capture"]
    assert invoice.total == 1400
    with pytest.raises(InvalidField):
        month_end("2026-13")


def test_overlapping_names_the_wanted_periods_that_clash() -> None:
    t = datetime(2026, 12, 1, tzinfo=UTC)
    h = timedelta(hours=1)
    wanted = [(t, t + h), (t + 2 * h, t + 3 * h), (t + 4 * h, t + 5 * h)]
    assert overlapping(wanted, [(t + h, t + 2 * h), (t + 150 * h / 60, t + 4 * h)]) == [1]


def test_fleet_money_balances_and_the_receivable_is_invoiced_less_paid() -> None:
    at = datetime(2026, 12, 2, 6, tzinfo=UTC)
    charge, split = charge_on_account(
        entry_id="b1:capture",
        split_id="b1:capture-split",
        booking_id=1,
        fleet_id=4,
        host_id=9,
        amount=1000,
        split=split_fee(1000, 1500, 2000),
        at=at,
    )
    penalty = host_penalty("b2:penalty", booking_id=2, host_id=9, fleet_id=4, amount=300, at=at)
    invoice = invoice_entry("f4:2026-12", fleet_id=4, total=700, at=at)
    paid = payment_entry("f4:2026-12:paid", fleet_id=4, amount=500, at=at)
    assert invoice is not None and paid is not None
    balances = posted_balances([charge, split, penalty, invoice, paid])
    assert balances[fleet_unbilled(4)] == 0
    assert balances[fleet_receivable(4)] == 200
    assert balances["host:9:payable"] == -(split_fee(1000, 1500, 2000).host_share - 300)
    assert receivable_fleet(fleet_receivable(4)) == 4 and receivable_fleet(fleet_unbilled(4)) is None
    assert invoice_entry("x", fleet_id=4, total=0, at=at) is None
    with pytest.raises(LedgerError):
        charge_on_account(
            entry_id="x",
            split_id="y",
            booking_id=1,
            fleet_id=4,
            host_id=9,
            amount=10,
            split=split_fee(9, 0),
            at=at,
        )


def test_a_month_whose_end_is_past_the_calendar_is_an_invalid_field() -> None:
    for month in ("9999-12", "0001-01", "1899-12"):
        with pytest.raises(InvalidField, match="1900 to 8999"):
            month_end(month)
    assert month_end("8999-12").year == 9000
