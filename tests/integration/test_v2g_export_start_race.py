"""Two first readings of a V2G session's export register, committing at once on two processes, on
PostgreSQL (READ COMMITTED, real threads): the first to commit is the export's start, and the other
is applied after it as a later reading, never moving the start."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.v2g import ExportRecord, export_credit
from chargeshare.services.clock import ManualClock
from tests.integration.pausing import PausesBeforeCommit
from tests.integration.test_command_refusal_race import second_while_first_uncommitted
from tests.services.test_owed_back_off import v2g_session

pytestmark = pytest.mark.postgres


def record_after_race(
    app: App, postgres_url: str, booking: int, first: Callable[[], object], second: Callable[[], object]
) -> ExportRecord | None:
    """The booking's export record after `second` ran while `first` had done its work uncommitted."""
    store = PausesBeforeCommit(app.store, lambda: False)
    app.charging.store = store
    second_while_first_uncommitted(store, postgres_url, first, second)
    app.charging.store = store.inner
    with app.store.reading() as tx:
        return tx.v2g.record(booking)


@pytest.mark.parametrize(
    ("first_wh", "second_wh", "last_wh"),
    [(5_000, 5_400, 5_400), (5_000, 4_800, 5_000)],
    ids=["second-above", "second-below"],
)
def test_the_first_export_reading_committed_is_the_start(
    pg_app: App, clock: ManualClock, postgres_url: str, first_wh: int, second_wh: int, last_wh: int
) -> None:
    _, booking, session = v2g_session(pg_app, clock)
    record = record_after_race(
        pg_app,
        postgres_url,
        booking,
        lambda: pg_app.charging.meter_export("V2G1", session, first_wh, 80),
        lambda: pg_app.charging.meter_export("V2G1", session, second_wh, 79),
    )
    assert record is not None
    assert (record.start_wh, record.last_wh) == (first_wh, last_wh)
    assert record.metered_wh == last_wh - first_wh


def test_a_later_reading_racing_another_never_takes_the_register_back(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    """Once started, two readings at once: the lower committing second leaves the higher."""
    _, booking, session = v2g_session(pg_app, clock)
    pg_app.charging.meter_export("V2G1", session, 5_000, 80)
    record = record_after_race(
        pg_app,
        postgres_url,
        booking,
        lambda: pg_app.charging.meter_export("V2G1", session, 6_000, 70),
        lambda: pg_app.charging.meter_export("V2G1", session, 5_500, 75),
    )
    assert record == ExportRecord(booking, 5_000, 6_000, 75, 70)


def test_a_stop_racing_a_reading_credits_the_reading_committed_before_it(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    """A reading committed while the stop waited is in the credit, not written back over."""
    _, booking, session = v2g_session(pg_app, clock)
    pg_app.charging.meter_export("V2G1", session, 5_000, 80)
    record = record_after_race(
        pg_app,
        postgres_url,
        booking,
        lambda: pg_app.charging.meter_export("V2G1", session, 6_000, 70),
        lambda: pg_app.charging.stop("V2G1", session, 1_000, clock.now()),
    )
    assert record is not None
    assert (record.start_wh, record.last_wh, record.exported_wh) == (5_000, 6_000, 1_000)
    assert record.credit == export_credit(1_000, 25)
