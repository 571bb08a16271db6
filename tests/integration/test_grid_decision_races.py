"""Grid limits decided by several processes at once on PostgreSQL (issue 19's adversarial review):
an older decision never overwrites a newer one, and two placements of one charger are one upsert."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from chargeshare.adapters.sql.grid import SqlGrid
from chargeshare.bootstrap import App
from chargeshare.services.grid import GridService
from tests.conftest import add_charger, sql_store
from tests.integration.test_grid_allocation_race import WAIT_S, waiting_on_a_lock_or_done

pytestmark = pytest.mark.postgres


def in_thread(fn: Callable[[], Any], failures: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_decision_read_before_a_change_does_not_overwrite_the_one_after_it(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = pg_app.marketplace.add_host("h")
    site = pg_app.grid.add_site(host, "home", 13_800)
    charger = add_charger(pg_app, "CP1", online=False)
    pg_app.grid.place(charger, site.site_id, decide=False)
    decided, release = threading.Event(), threading.Event()
    real = GridService._decide

    def decide_and_hold(self: GridService, *args: Any) -> Any:
        got = real(self, *args)
        if not decided.is_set():  # the first decision reads the charger on its site, then stalls
            decided.set()
            assert release.wait(WAIT_S), "never released"
        return got

    monkeypatch.setattr(GridService, "_decide", decide_and_hold)
    failures: list[BaseException] = []
    older = in_thread(pg_app.grid.rebalance, failures)
    assert decided.wait(WAIT_S)
    pg_app.grid.place(charger, None, decide=False)  # taken off: the next decision clears its limits
    newer = in_thread(pg_app.grid.rebalance, failures)
    waiting_on_a_lock_or_done(pg_app, newer)
    release.set()
    older.join(WAIT_S)
    newer.join(WAIT_S)
    assert not older.is_alive() and not newer.is_alive() and failures == []
    with pg_app.store.reading() as tx:
        assert tx.grid.allocations() == {}, "the older decision overwrote the newer"


def test_two_placements_of_one_charger_at_once_are_an_upsert_not_a_500(pg_app: App) -> None:
    host = pg_app.marketplace.add_host("h")
    a = pg_app.grid.add_site(host, "a", 13_800)
    b = pg_app.grid.add_site(host, "b", 13_800)
    charger = add_charger(pg_app, "CP1", online=False)
    engine = sql_store(pg_app).engine
    failures: list[BaseException] = []

    def place_on_b() -> None:
        with engine.begin() as conn:
            SqlGrid(conn, "postgresql").place(charger, b.site_id)

    with engine.begin() as conn:
        SqlGrid(conn, "postgresql").place(charger, a.site_id)
        second = in_thread(place_on_b, failures)
        waiting_on_a_lock_or_done(pg_app, second)
    second.join(WAIT_S)
    assert not second.is_alive() and failures == []
    assert pg_app.grid.members() == {charger: b.site_id}
