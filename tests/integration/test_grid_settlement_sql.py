"""The grid buyer's settlement on the SQL store (SQLite and PostgreSQL): the statement read from the
ledger, the payment recorded once, and two operators recording it at once on PostgreSQL writing
one ledger entry, by the key on the month rather than any lock in a process."""

from __future__ import annotations

import threading
import traceback
from typing import Any

import pytest

from chargeshare.adapters.sql.v2g import SqlV2g
from chargeshare.bootstrap import App
from chargeshare.domain.errors import InvalidField
from chargeshare.domain.ledger import GRID_EXPORT_BUYER, EntryKind, posted_balances
from chargeshare.services.clock import ManualClock
from chargeshare.services.grid_settlement import RecordedPayment
from tests.integration.test_grid_allocation_race import WAIT_S, waiting_on_a_lock_or_done
from tests.integration.test_grid_and_fleet_races import in_thread
from tests.services.test_export_payouts import exported
from tests.services.test_grid_settlement import exporting_at_marchs_end, to_april
from tests.services.test_v2g_service import failing


def settlements_in_ledger(app: App) -> list[int]:
    with app.store.reading() as tx:
        return [e.amount for e in tx.ledger.entries() if e.kind is EntryKind.GRID_SETTLEMENT]


def test_a_month_is_stated_and_settled_once_on_the_sql_store(sql_app: App, clock: ManualClock) -> None:
    exported(sql_app, clock, "V2G1", "DEE")
    exported(sql_app, clock, "V2G2", "EVE")
    to_april(clock)
    exported(sql_app, clock, "V2G3", "FAY")
    march = sql_app.grid_settlement.statement("2026-03")
    assert (march.total, len(march.lines), march.over) == (166, 2, True)
    assert [(x.exported_wh, x.price_per_kwh) for x in march.lines] == [(3_333, 25)] * 2
    assert march.reconciles and march.balance.closing == 166
    with pytest.raises(InvalidField, match="a payment of 165p does not settle it"):
        sql_app.grid_settlement.record_payment("2026-03", 165)
    first = sql_app.grid_settlement.record_payment("2026-03", 166, recorded_by=None)
    again = sql_app.grid_settlement.record_payment("2026-03", 166)
    assert first.recorded_now and not again.recorded_now and again.settlement == first.settlement
    assert first.settlement.recorded_at == clock.now() and first.settlement.recorded_at.tzinfo is not None
    assert sql_app.grid_settlement.settlements() == [first.settlement]
    assert sql_app.grid_settlement.statement("2026-03").settlement == first.settlement
    assert settlements_in_ledger(sql_app) == [166]
    april = sql_app.grid_settlement.statement("2026-04")
    assert (april.balance.opening, april.total, april.balance.received, april.balance.closing) == (
        166,
        83,
        166,
        83,
    )
    with sql_app.store.reading() as tx:
        assert posted_balances(tx.ledger.entries())[GRID_EXPORT_BUYER] == 83
    assert failing(sql_app) == []


@pytest.mark.postgres
def test_two_operators_recording_one_payment_at_once_write_one_entry(
    pg_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported(pg_app, clock, "V2G1", "DEE")
    to_april(clock)
    inside, release = threading.Event(), threading.Event()
    real = SqlV2g.add_settlement

    def claim_and_hold(self: SqlV2g, *args: Any, **kwargs: Any) -> bool:
        claimed = real(self, *args, **kwargs)
        if not inside.is_set():  # the first operator stalls with the month claimed, uncommitted
            inside.set()
            assert release.wait(WAIT_S), "never released"
        return claimed

    monkeypatch.setattr(SqlV2g, "add_settlement", claim_and_hold)
    answers: list[RecordedPayment] = []
    failures: list[BaseException] = []

    def pay(operator: int | None) -> None:
        answers.append(pg_app.grid_settlement.record_payment("2026-03", 83, recorded_by=operator))

    first = in_thread(lambda: pay(None), failures)
    assert inside.wait(WAIT_S), [traceback.format_exception(f) for f in failures]
    second = in_thread(lambda: pay(None), failures)
    waiting_on_a_lock_or_done(pg_app, second)  # it read no settlement, and waits on the month's row
    release.set()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert failures == [] and len(answers) == 2
    assert sorted(a.recorded_now for a in answers) == [False, True]
    assert answers[0].settlement == answers[1].settlement
    assert settlements_in_ledger(pg_app) == [83]
    assert failing(pg_app) == []


@pytest.mark.postgres
def test_a_payment_waits_for_a_credit_dated_in_its_month_and_still_being_written(
    pg_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop dated its export credit a second before April and is still writing it when the
    operator records March's payment: the payment waits for it, and its statement includes it."""
    _, session = exporting_at_marchs_end(pg_app, clock)
    inside, release = threading.Event(), threading.Event()
    real = SqlV2g.save_record

    def dated_and_held(self: SqlV2g, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        inside.set()  # the credit is dated; its unit of work stalls before committing
        assert release.wait(WAIT_S), "never released"

    monkeypatch.setattr(SqlV2g, "save_record", dated_and_held)
    failures: list[BaseException] = []
    stop = in_thread(lambda: pg_app.charging.stop("V2G2", session, 1_500, clock.now()), failures)
    assert inside.wait(WAIT_S), [traceback.format_exception(f) for f in failures]
    monkeypatch.setattr(SqlV2g, "save_record", real)
    clock.advance(2)  # April
    paid: list[RecordedPayment] = []
    payment = in_thread(lambda: paid.append(pg_app.grid_settlement.record_payment("2026-03", 166)), failures)
    waiting_on_a_lock_or_done(pg_app, payment)
    release.set()
    stop.join(WAIT_S)
    payment.join(WAIT_S)
    assert failures == [] and [p.settlement.exports for p in paid] == [2]
    assert settlements_in_ledger(pg_app) == [166]
    assert failing(pg_app) == []
