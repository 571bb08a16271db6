"""The store's one-step datetime conversion on SQLite gives exactly what SQLAlchemy's chain gives
(`UTCDateTime` over SQLite's DATETIME): the same stored text, so comparisons in SQL are unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from chargeshare.adapters.sql import schema
from chargeshare.adapters.sql.schema import UTCDateTime, sqlite_text_to_utc, utc_to_sqlite_text

DIALECT = sqlite.dialect()
# As SQLAlchemy runs them for a statement on SQLite: the decorator's step, then the dialect's.
_bind = UTCDateTime()._cached_bind_processor(DIALECT)
_result = UTCDateTime()._cached_result_processor(DIALECT, None)
assert _bind is not None and _result is not None
SA_BIND: Callable[[Any], Any] = _bind
SA_RESULT: Callable[[Any], Any] = _result

zones = st.one_of(
    st.just(UTC),
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
aware = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)


@given(aware)
@pytest.mark.slow
def test_the_stored_text_is_sqlalchemys(value: datetime) -> None:
    assert utc_to_sqlite_text(value) == SA_BIND(value)


@given(aware)
def test_what_is_stored_reads_back_as_the_same_instant(value: datetime) -> None:
    back = SA_RESULT(utc_to_sqlite_text(value))
    assert back == value and back.tzinfo is UTC


def test_none_and_naive_values() -> None:
    assert utc_to_sqlite_text(None) is None
    with pytest.raises(ValueError, match="naive"):
        utc_to_sqlite_text(datetime(2026, 3, 2, 9, 1))


@given(aware)
def test_the_one_step_read_is_sqlalchemys(value: datetime) -> None:
    stored = utc_to_sqlite_text(value)
    assert stored is not None
    back = sqlite_text_to_utc(stored)
    assert back == SA_RESULT(stored) and back.tzinfo is UTC


@pytest.mark.parametrize(
    "stored", ["2026-03-02 09:01:00", "2026-03-02 09:01:00.000250", "2026-03-02T09:01:00+01:00", "2026-03-02"]
)
def test_the_one_step_read_of_other_stored_forms(stored: str) -> None:
    # What SQLite's own functions or a hand-written row may hold, not only what the store binds.
    back = sqlite_text_to_utc(stored)
    assert back == SA_RESULT(stored) and back.tzinfo is UTC


def test_instants_converted_before_are_not_taken_for_others() -> None:
    first = datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    second = first + timedelta(microseconds=1)
    elsewhere = datetime(2026, 3, 2, 10, 1, tzinfo=timezone(timedelta(hours=1)))  # the same instant
    assert utc_to_sqlite_text(first) == utc_to_sqlite_text(first) == "2026-03-02 09:01:00.000000"
    assert utc_to_sqlite_text(second) == "2026-03-02 09:01:00.000001"
    assert utc_to_sqlite_text(None) is None
    assert utc_to_sqlite_text(elsewhere) == "2026-03-02 09:01:00.000000"
    assert utc_to_sqlite_text(first) == "2026-03-02 09:01:00.000000"
    with pytest.raises(ValueError, match="naive"):
        utc_to_sqlite_text(datetime(2026, 3, 2, 9, 1))  # even with its aware twin converted
    many = [first + timedelta(seconds=s) for s in range(1_000)]
    assert [utc_to_sqlite_text(v) for v in many] == [SA_BIND(v) for v in many]
    assert len(schema._texts) <= schema._TEXTS_HELD


def test_texts_read_before_give_their_own_instants() -> None:
    stored = [
        utc_to_sqlite_text(datetime(2026, 3, 2, tzinfo=UTC) + timedelta(seconds=s)) for s in range(1_000)
    ]
    for _ in range(2):  # read once, then again (from what was kept, as far as it reaches)
        assert [sqlite_text_to_utc(v) for v in stored if v] == [SA_RESULT(v) for v in stored]
    assert sqlite_text_to_utc("2026-03-02T10:00:00+01:00") == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert sqlite_text_to_utc("2026-03-02 10:00:00") == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert len(schema._instants) <= schema._TEXTS_HELD


@pytest.mark.parametrize("wall", [datetime(2026, 10, 25, 1, 30), datetime(2026, 3, 29, 1, 30)])
def test_wall_times_told_apart_by_fold_alone_are_other_instants(wall: datetime) -> None:
    # In a zone's fold (or gap) two values differ by their fold alone, hash alike and compare equal
    # (same tzinfo: wall times compared), yet are an hour apart.
    first, second = (wall.replace(tzinfo=ZoneInfo("Europe/London"), fold=f) for f in (0, 1))
    assert utc_to_sqlite_text(first) == SA_BIND(first)
    assert utc_to_sqlite_text(second) == SA_BIND(second) != SA_BIND(first)
    assert utc_to_sqlite_text(first) == SA_BIND(first)
