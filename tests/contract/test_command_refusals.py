"""The contract of what chargers refused (the back-off's records per session and kind) and of the
overrides owed until a session's charger takes one, on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.errors import NotFound
from chargeshare.services.ports import UnitOfWork
from tests.conftest import T0
from tests.contract.test_repositories import a_booking, a_charger


def _session(tx: UnitOfWork, connector: int, booking: int, hours: int = 0) -> int:
    return tx.sessions.add(
        booking_id=booking,
        connector_id=connector,
        id_tag="T",
        started_at=T0 + timedelta(hours=hours),
        meter_start_wh=500,
    )


def test_refusals_are_kept_per_session_and_kind_replaced_whole_and_cleared(app: App) -> None:
    later = T0 + timedelta(minutes=2)
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-REF")
        driver = tx.accounts.add_driver("D", "T")
        one = _session(tx, connector, a_booking(tx, connector, driver))
        two = _session(tx, connector, a_booking(tx, connector, driver, start_h=2), hours=2)
        tx.refusals.save(one, OwedKind.EXPORT, Refusals(1, T0, T0 + timedelta(minutes=1)))
        tx.refusals.save(one, OwedKind.OVERRIDE, Refusals(3, T0, None))
    with app.store.transaction() as tx:
        tx.refusals.save(one, OwedKind.EXPORT, Refusals(2, later, later + timedelta(minutes=2)))
        tx.refusals.save(two, OwedKind.EXPORT, Refusals(8, later, None))
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.EXPORT, [one, two, 9_999]) == {
            one: Refusals(2, later, later + timedelta(minutes=2)),
            two: Refusals(8, later, None),
        }
        assert tx.refusals.of(OwedKind.OVERRIDE, [one, two]) == {one: Refusals(3, T0, None)}
        assert tx.refusals.of(OwedKind.EXPORT, []) == {}
    with app.store.transaction() as tx:
        tx.refusals.clear(one, OwedKind.EXPORT)
        tx.refusals.clear(one, OwedKind.EXPORT)  # twice changes nothing
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.EXPORT, [one, two]) == {two: Refusals(8, later, None)}
        assert tx.refusals.of(OwedKind.OVERRIDE, [one]) == {one: Refusals(3, T0, None)}


def test_an_unknown_session_keeps_no_refusal_and_a_failed_unit_keeps_nothing(app: App) -> None:
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.refusals.save(9_999, OwedKind.EXPORT, Refusals(1, T0, T0))
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-REF-RB")
        session = _session(tx, connector, a_booking(tx, connector, tx.accounts.add_driver("R", "R")))
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        tx.refusals.save(session, OwedKind.OVERRIDE, Refusals(1, T0, T0))
        raise RuntimeError("boom")
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.OVERRIDE, [session]) == {}


def test_the_overrides_a_charger_is_owed_until_it_takes_them(app: App) -> None:
    """Open sessions on overridden bookings, until the session's charger took the override; a later
    session of the same booking is owed afresh, a stopped one never, nor one left open behind a
    newer open session on its connector; any OCPP version."""
    with app.store.transaction() as tx:
        _, (c1, c3) = a_charger(tx, "CP1", 1, 2)
        _, (c2,) = a_charger(tx, "CP2")
        driver = tx.accounts.add_driver("D", "T")
        sessions, bookings = [], []
        for i, connector in enumerate((c1, c3, c2, c1)):
            booking = a_booking(tx, connector, driver, start_h=2 * i)
            bookings.append(booking)
            if i != 1:  # the second is not overridden
                tx.smart.add_override(booking, T0)
            sessions.append(_session(tx, connector, booking, hours=2 * i))
        owed, _plain, elsewhere, stopped = sessions
        assert tx.sessions.stop(stopped, stopped_at=T0, meter_stop_wh=600, billed_wh=100, cost=1, idle_fee=0)
        assert list(tx.smart.overrides_owed()) == [(owed, "CP1"), (elsewhere, "CP2")]
        tx.smart.override_taken(bookings[0], owed)
        assert list(tx.smart.overrides_owed()) == [(elsewhere, "CP2")]
        tx.smart.add_override(bookings[0], T0)  # overriding again keeps what was taken
        assert list(tx.smart.overrides_owed()) == [(elsewhere, "CP2")]
        tx.smart.override_taken(bookings[0], owed + 1_000)  # another session of it took one
        tx.smart.override_taken(bookings[1], sessions[1])  # not overridden: nothing to take
        assert list(tx.smart.overrides_owed()) == [(owed, "CP1"), (elsewhere, "CP2")]
        assert tx.smart.overridden([bookings[1]]) == set()
        later = a_booking(tx, c1, driver, start_h=8)
        _session(tx, c1, later, hours=8)  # not overridden, and newer on the same connector
        assert list(tx.smart.overrides_owed()) == [(elsewhere, "CP2")]  # never sent again: not owed


def test_a_refusal_counts_up_in_the_store_on_its_back_off_until_given_up(app: App) -> None:
    backoff = Backoff(60, 3600, 3)
    later = T0 + timedelta(minutes=5)
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-REF-N")
        session = _session(tx, connector, a_booking(tx, connector, tx.accounts.add_driver("N", "N")))
        assert tx.refusals.refused(session, OwedKind.EXPORT, T0, backoff) == Refusals(
            1, T0, T0 + timedelta(seconds=60)
        )
    with app.store.transaction() as tx:
        assert tx.refusals.refused(session, OwedKind.EXPORT, later, backoff) == Refusals(
            2, later, later + timedelta(seconds=120)
        )
        assert tx.refusals.refused(session, OwedKind.OVERRIDE, later, backoff).count == 1
    with app.store.transaction() as tx:
        assert tx.refusals.refused(session, OwedKind.EXPORT, later, backoff) == Refusals(3, later, None)
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.EXPORT, [session]) == {session: Refusals(3, later, None)}
        assert tx.refusals.of(OwedKind.OVERRIDE, [session]) == {
            session: Refusals(1, later, later + timedelta(seconds=60))
        }
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.refusals.refused(9_999, OwedKind.EXPORT, T0, backoff)
