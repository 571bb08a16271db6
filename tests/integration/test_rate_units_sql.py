"""The units a charger takes schedules in, kept in the SQL stores: what one process learns, another
reads from the store (the grid round's read on every send of limits)."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App, Config
from chargeshare.services.clock import ManualClock
from tests.conftest import add_charger, build_for_tests
from tests.services.test_charger_reports_service import (
    test_the_units_a_charger_takes_are_kept_once_per_change_for_every_process as kept_once_per_change,
)


def test_the_units_are_kept_once_per_change(sql_app: App) -> None:
    kept_once_per_change(sql_app)


@pytest.mark.postgres
def test_another_process_reads_the_units_last_learned(
    pg_app: App, postgres_url: str, clock: ManualClock
) -> None:
    add_charger(pg_app, "CP1")
    other = build_for_tests(
        Config(database_url=postgres_url, locks_enabled=False, password_hash="fast"), clock=clock
    )
    try:
        assert pg_app.reports.rate_units_learned("CP1", frozenset({"A", "W"}))
        assert other.reports.rate_units_learned("CP1", frozenset({"A"}))  # new firmware, on the other link
        assert pg_app.reports.rate_units("CP1") == other.reports.rate_units("CP1") == frozenset({"A"})
    finally:
        other.close()
