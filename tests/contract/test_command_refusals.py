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


def test_refusals_are_kept_per_session_and_kind_and_cleared(app: App) -> None:
    backoff = Backoff(60, 3600, 3)
    later = T0 + timedelta(minutes=2)
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-REF")
        driver = tx.accounts.add_driver("D", "T")
        one = _session(tx, connector, a_booking(tx, connector, driver))
        two = _session(tx, connector, a_booking(tx, connector, driver, start_h=2), hours=2)
        tx.refusals.refused(one, OwedKind.EXPORT, T0, backoff)
        for _ in range(3):
            tx.refusals.refused(one, OwedKind.OVERRIDE, T0, backoff)
    with app.store.transaction() as tx:
        tx.refusals.refused(one, OwedKind.EXPORT, later, backoff)
        tx.refusals.unanswered(two, OwedKind.EXPORT, later, backoff)
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.EXPORT, [one, two, 9_999]) == {
            one: Refusals(2, later, later + timedelta(minutes=2)),
            two: Refusals(0, later, later + timedelta(minutes=1), unanswered=1),
        }
        assert tx.refusals.of(OwedKind.OVERRIDE, [one, two]) == {one: Refusals(3, T0, None)}
        assert tx.refusals.of(OwedKind.EXPORT, []) == {}
    with app.store.transaction() as tx:
        tx.refusals.clear(one, OwedKind.EXPORT)
        tx.refusals.clear(one, OwedKind.EXPORT)  # twice changes nothing
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.EXPORT, [one, two]) == {
            two: Refusals(0, later, later + timedelta(minutes=1), unanswered=1)
        }
        assert tx.refusals.of(OwedKind.OVERRIDE, [one]) == {one: Refusals(3, T0, None)}


def test_an_unknown_session_keeps_no_refusal_and_a_failed_unit_keeps_nothing(app: App) -> None:
    backoff = Backoff()
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.refusals.unanswered(9_999, OwedKind.EXPORT, T0, backoff)
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-REF-RB")
        session = _session(tx, connector, a_booking(tx, connector, tx.accounts.add_driver("R", "R")))
    for record in ("refused", "unanswered"):
        with pytest.raises(RuntimeError), app.store.transaction() as tx:
            getattr(tx.refusals, record)(session, OwedKind.OVERRIDE, T0, backoff)
            raise RuntimeError("boom")
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.OVERRIDE, [session]) == {}


def test_unanswered_sends_back_off_with_refusals_and_never_give_up(app: App) -> None:
    """Each failure, refused or unanswered, doubles the wait; only refusals count to the limit,
    and one unanswered after giving up leaves it given up."""
    backoff = Backoff(60, 3600, 2)
    at = [T0 + timedelta(minutes=m) for m in range(6)]
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-UNANS")
        session = _session(tx, connector, a_booking(tx, connector, tx.accounts.add_driver("U", "U")))
    steps = [
        ("unanswered", Refusals(0, at[0], at[0] + timedelta(seconds=60), 1)),
        ("unanswered", Refusals(0, at[1], at[1] + timedelta(seconds=120), 2)),
        ("refused", Refusals(1, at[2], at[2] + timedelta(seconds=240), 2)),
        ("unanswered", Refusals(1, at[3], at[3] + timedelta(seconds=480), 3)),
        ("refused", Refusals(2, at[4], None, 3)),
        ("unanswered", Refusals(2, at[4], None, 4)),
    ]
    for n, (what, expected) in enumerate(steps):
        with app.store.transaction() as tx:
            got = getattr(tx.refusals, what)(session, OwedKind.EXPORT, at[n], backoff)
            if what == "refused":  # with whether it gave up: here, the limit's refusal
                got, gave_up = got
                assert gave_up is expected.given_up
            assert got == expected
        with app.store.reading() as tx:
            assert tx.refusals.of(OwedKind.EXPORT, [session]) == {session: expected}


def test_records_nothing_is_owed_for_are_pruned_a_batch_at_a_time(app: App) -> None:
    """A stopped session's records go, and one whose command its charger took; a running
    session's record of a command still owed stays, given up or not."""
    backoff = Backoff(60, 3600, 1)
    with app.store.transaction() as tx:
        _, (c1, c2, c3) = a_charger(tx, "CP-PRUNE", 1, 2, 3)
        driver = tx.accounts.add_driver("P", "P")
        bookings = [a_booking(tx, c, driver) for c in (c1, c2, c3)]
        stopped, took, running = (_session(tx, c, b) for c, b in zip((c1, c2, c3), bookings, strict=True))
        for session in (stopped, took, running):
            tx.refusals.refused(session, OwedKind.OVERRIDE, T0, backoff)
            tx.refusals.unanswered(session, OwedKind.EXPORT, T0, backoff)
            tx.smart.add_override(bookings[[stopped, took, running].index(session)], T0)
        assert tx.sessions.stop(stopped, stopped_at=T0, meter_stop_wh=600, billed_wh=100, cost=1, idle_fee=0)
        tx.smart.override_taken(bookings[1], took)
    with app.store.transaction() as tx:
        assert tx.refusals.prune(2) == 2
    with app.store.transaction() as tx:
        assert tx.refusals.prune(2) == 1
        assert tx.refusals.prune(2) == 0
    with app.store.reading() as tx:
        assert set(tx.refusals.of(OwedKind.OVERRIDE, [stopped, took, running])) == {running}
        assert set(tx.refusals.of(OwedKind.EXPORT, [stopped, took, running])) == {took, running}


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
        assert tx.refusals.refused(session, OwedKind.EXPORT, T0, backoff) == (
            Refusals(1, T0, T0 + timedelta(seconds=60)),
            False,
        )
    with app.store.transaction() as tx:
        assert tx.refusals.refused(session, OwedKind.EXPORT, later, backoff) == (
            Refusals(2, later, later + timedelta(seconds=120)),
            False,
        )
        assert tx.refusals.refused(session, OwedKind.OVERRIDE, later, backoff)[0].count == 1
    with app.store.transaction() as tx:
        assert tx.refusals.refused(session, OwedKind.EXPORT, later, backoff) == (
            Refusals(3, later, None),
            True,  # the refusal that gave it up
        )
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.EXPORT, [session]) == {session: Refusals(3, later, None)}
        assert tx.refusals.of(OwedKind.OVERRIDE, [session]) == {
            session: Refusals(1, later, later + timedelta(seconds=60))
        }
    with app.store.transaction() as tx:  # given up already, and past a limit lowered since
        assert tx.refusals.refused(session, OwedKind.EXPORT, later, backoff)[1] is False
        assert tx.refusals.refused(session, OwedKind.OVERRIDE, later, Backoff(60, 3600, 1)) == (
            Refusals(2, later, None),
            True,
        )
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.refusals.refused(9_999, OwedKind.EXPORT, T0, backoff)
