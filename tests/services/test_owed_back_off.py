"""Commands owed to a session's charger until it takes them (a V2G export, a driver's override),
asked again on a back-off when the charger refuses, through the services on the in-memory store:
the sweep's list (`commands_owed`), what a charger is sent on connecting, what operators see, and
the driver overriding a session that already runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.errors import InvalidTransition, NotFound
from chargeshare.ocpp import V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import OverrideDue
from chargeshare.services.owed_commands import COMMAND_REFUSED, Owed, OwedRow, commands_owed, owed_rows
from tests.conftest import add_charger

# The rules' default: 60 s doubling to 3600 s, given up at the 8th refusal.
BACKOFF = Backoff()


def driver(driver_id: int) -> Principal:
    return Principal(account_id=0, role=Role.DRIVER, driver_id=driver_id)


def v2g_session(app: App, clock: ManualClock, cp_id: str = "V2G1") -> tuple[int, int, int]:
    """(driver, booking, session) of a running V2G session on a 2.1 charger."""
    charger = add_charger(app, cp_id, price=40)
    app.charging.boot(cp_id, V21)
    dee = app.marketplace.add_driver("Dee", f"{cp_id}-TAG").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000)).booking_id
    app.v2g.set_terms(driver(dee), booking, 25, 40)
    session = app.charging.start(cp_id, 1, f"{cp_id}-TAG", 1_000, clock.now()).transaction_id
    return dee, booking, session


def owed(app: App, clock: ManualClock, kind: str) -> set[Owed]:
    return {o for o in commands_owed(app.store, clock.now()) if o.kind == kind}


def test_the_rules_give_the_services_their_back_off(app: App) -> None:
    assert app.v2g.backoff == app.smart.backoff == BACKOFF == app.config.rules.command_backoff


def test_a_refused_export_waits_out_each_doubling_delay_then_is_dropped(app: App, clock: ManualClock) -> None:
    _, _, session = v2g_session(app, clock)
    export = {Owed("V2G1", "export", session)}
    assert owed(app, clock, "export") == export
    for n in range(1, BACKOFF.limit):
        refused = app.v2g.export_refused(session)
        assert refused == Refusals(n, clock.now(), clock.now() + timedelta(seconds=BACKOFF.delay_s(n)))
        # The sweep does not ask before its turn; a new link is a fresh chance.
        assert owed(app, clock, "export") == set() and len(app.v2g.exports_due("V2G1")) == 1
        assert owed_rows(app.store, clock.now()) == [
            OwedRow("V2G1", "export", session, "waiting", n, refused.retry_at)
        ]
        clock.advance(BACKOFF.delay_s(n) - 1)
        assert owed(app, clock, "export") == set()
        clock.advance(1)
        assert owed(app, clock, "export") == export
    given_up = app.v2g.export_refused(session)
    assert given_up == Refusals(BACKOFF.limit, clock.now(), None)
    clock.advance(30 * 86_400)
    assert owed(app, clock, "export") == set() and app.v2g.exports_due("V2G1") == []
    assert owed_rows(app.store, clock.now()) == [
        OwedRow("V2G1", "export", session, "refused", BACKOFF.limit, None)
    ]


def test_an_accepted_export_clears_its_refusals(app: App, clock: ManualClock) -> None:
    dee, booking, session = v2g_session(app, clock)
    app.v2g.export_refused(session)
    app.v2g.export_refused(session)
    view = app.v2g.export(driver(dee), booking)
    assert view.refusals is not None and view.refusals.count == 2
    clock.advance(BACKOFF.delay_s(2))
    app.v2g.export_taken(session)
    assert app.v2g.export(driver(dee), booking).refusals is None
    assert owed(app, clock, "export") == set() and owed_rows(app.store, clock.now()) == []
    assert len(app.v2g.exports_due("V2G1")) == 1  # sent on connecting still: it may have lost it


def test_a_refusal_for_an_unknown_session_records_nothing(app: App) -> None:
    assert app.v2g.export_refused(9_999) is None
    assert app.smart.override_refused(9_999) is None


def test_a_driver_overriding_a_running_session_has_its_charger_told_and_owed_it(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app, "CP1")
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000)).booking_id
    due: list[OverrideDue] = []
    app.bus.subscribe(OverrideDue, due.append)
    session = app.charging.start("CP1", 1, "DEE", 1_000, clock.now()).transaction_id
    assert due == [] and owed(app, clock, "override") == set()
    clock.advance(120)
    assert app.smart.override(driver(dee), booking) is True
    assert due == [OverrideDue(clock.now(), "CP1", 1, session, 7_400, at_start=False)]
    assert owed(app, clock, "override") == {Owed("CP1", "override", session)}
    assert app.smart.overrides_due("CP1") == [OverrideDue(clock.now(), "CP1", 1, session, 7_400)]
    app.smart.override_refused(session)
    assert owed(app, clock, "override") == set() and len(app.smart.overrides_due("CP1")) == 1
    clock.advance(BACKOFF.first_s)
    assert owed(app, clock, "override") == {Owed("CP1", "override", session)}
    app.smart.override_taken(session)
    assert owed(app, clock, "override") == set() and owed_rows(app.store, clock.now()) == []
    assert app.smart.session_running(session)
    app.charging.stop("CP1", session, 2_000, clock.now())
    assert not app.smart.session_running(session)


def test_an_override_is_owed_only_while_its_session_runs(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, "CP1")
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000)).booking_id
    due: list[OverrideDue] = []
    app.bus.subscribe(OverrideDue, due.append)
    assert app.smart.override(driver(dee), booking) is False  # before the session: sent at its start
    assert due == []
    session = app.charging.start("CP1", 1, "DEE", 1_000, clock.now()).transaction_id
    assert [d.session_id for d in due] == [session]
    assert owed(app, clock, "override") == {Owed("CP1", "override", session)}
    app.charging.stop("CP1", session, 2_000, clock.now())
    assert owed(app, clock, "override") == set() and app.smart.overrides_due("CP1") == []
    with pytest.raises(InvalidTransition):
        app.smart.override(driver(dee), booking)


def test_only_the_bookings_driver_may_override_it(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, "CP1")
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    other = app.marketplace.add_driver("Oz", "OZ").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000)).booking_id
    for who in (driver(other), Principal(account_id=0, role=Role.HOST, host_id=1)):
        with pytest.raises(NotFound):
            app.smart.override(who, booking)
    with pytest.raises(NotFound):
        app.smart.override(driver(dee), 9_999)
    with app.store.reading() as tx:
        assert tx.smart.overridden([booking]) == set()


def test_an_override_refused_too_often_is_no_longer_sent_even_on_connecting(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app, "CP1")
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    app.bookings.book(BookRequest(dee, charger, 1, 600, 100_000, override_smart_charging=True))
    session = app.charging.start("CP1", 1, "DEE", 1_000, clock.now()).transaction_id
    for _ in range(BACKOFF.limit):
        assert len(app.smart.overrides_due("CP1")) == 1
        app.smart.override_refused(session)
    assert app.smart.overrides_due("CP1") == [] and owed(app, clock, "override") == set()
    assert owed_rows(app.store, clock.now()) == [
        OwedRow("CP1", "override", session, "refused", BACKOFF.limit, None)
    ]


def test_a_session_left_open_behind_a_newer_one_on_its_connector_is_owed_no_override(
    app: App, clock: ManualClock
) -> None:
    """A charger that started a new transaction on a connector without stopping the overridden one
    (its stop lost, the session not closed yet) is resent the override of the newest only: the
    sweep must not find owed what no resend would send, or it asks the charger again for all it is
    owed every round, and operators see the override owed for ever."""
    charger = add_charger(app, "CP1")
    dee = app.marketplace.add_driver("Dee", "DEE").driver_id
    eve = app.marketplace.add_driver("Eve", "EVE").driver_id
    app.bookings.book(BookRequest(dee, charger, 1, 30, 10_000, override_smart_charging=True))
    app.charging.start("CP1", 1, "DEE", 1_000, clock.now())
    clock.advance(40 * 60)
    app.bookings.book(BookRequest(eve, charger, 1, 30, 10_000))
    app.charging.start("CP1", 1, "EVE", 2_000, clock.now())  # not overridden: nothing to send it
    assert app.smart.overrides_due("CP1") == []
    assert owed(app, clock, "override") == set()
    assert owed_rows(app.store, clock.now()) == []


def refusal_notices(app: App) -> list[dict[str, object]]:
    with app.store.reading() as tx:
        return [n for n in tx.notifications.all() if n["kind"] == COMMAND_REFUSED]


@pytest.mark.parametrize("kind", ["export", "override"])
def test_the_host_is_told_once_when_its_charger_has_refused_too_often(
    app: App, clock: ManualClock, kind: str
) -> None:
    dee, booking, session = v2g_session(app, clock)
    app.smart.override(driver(dee), booking)
    refuse = app.v2g.export_refused if kind == "export" else app.smart.override_refused
    for _ in range(BACKOFF.limit - 1):
        refuse(session)
    assert refusal_notices(app) == []  # still asked: nothing to tell
    refuse(session)
    (notice,) = refusal_notices(app)
    with app.store.reading() as tx:
        assert notice["host_id"] == tx.bookings.get(booking).host_id
    what = "V2G export" if kind == "export" else "driver's charging override"
    assert notice["subject"] == f"Charger V2G1 refused the {what} of session {session}"
    assert f"of booking {booking} {BACKOFF.limit} times" in str(notice["body"])
    refuse(session)  # a late refusal of an earlier ask, after it was given up
    assert len(refusal_notices(app)) == 1


@pytest.mark.parametrize("kind", ["export", "override"])
def test_a_charger_that_never_answers_is_asked_on_the_back_off_and_never_given_up(
    app: App, clock: ManualClock, kind: str
) -> None:
    """Each unanswered send waits a doubled delay, up to the cap, for as long as the command is
    owed; it never gives up nor tells the host (no answer is no refusal), and a refusal after
    them waits on from where they left the back-off."""
    dee, booking, session = v2g_session(app, clock)
    app.smart.override(driver(dee), booking)
    service = app.v2g if kind == "export" else app.smart
    unanswered = getattr(service, f"{kind}_unanswered")
    asked = {Owed("V2G1", kind, session)}
    n = 0
    while BACKOFF.delay_s(n + 1) < BACKOFF.cap_s or n < BACKOFF.limit + 2:
        n += 1
        assert unanswered(session) == Refusals(
            0, clock.now(), clock.now() + timedelta(seconds=BACKOFF.delay_s(n)), unanswered=n
        )
        assert owed(app, clock, kind) == set()
        (row,) = (r for r in owed_rows(app.store, clock.now()) if r.kind == kind)
        assert (row.state, row.refusals) == ("waiting", 0)
        clock.advance(BACKOFF.delay_s(n) - 1)
        assert owed(app, clock, kind) == set()
        clock.advance(1)
        assert owed(app, clock, kind) == asked
    assert BACKOFF.delay_s(n) == BACKOFF.cap_s and refusal_notices(app) == []
    refused = (app.v2g.export_refused if kind == "export" else app.smart.override_refused)(session)
    assert refused == Refusals(1, clock.now(), clock.now() + timedelta(seconds=BACKOFF.cap_s), unanswered=n)
    getattr(service, f"{kind}_taken")(session)
    assert [r for r in owed_rows(app.store, clock.now()) if r.kind == kind] == []


@pytest.mark.parametrize("kind", ["export", "override"])
def test_a_failure_of_a_command_no_longer_owed_is_not_recorded(
    app: App, clock: ManualClock, kind: str
) -> None:
    """Taken by the session's charger (an answer to a later send came first), a refusal or an
    unanswered send of an earlier one counts for nothing: the next command owed starts afresh."""
    dee, booking, session = v2g_session(app, clock)
    app.smart.override(driver(dee), booking)
    service = app.v2g if kind == "export" else app.smart
    getattr(service, f"{kind}_taken")(session)
    assert getattr(service, f"{kind}_refused")(session) is None
    assert getattr(service, f"{kind}_unanswered")(session) is None
    with app.store.reading() as tx:
        assert tx.refusals.of(OwedKind(kind), [session]) == {}


def test_the_sweep_forgets_the_failures_of_a_session_that_stopped(app: App, clock: ManualClock) -> None:
    dee, booking, session = v2g_session(app, clock)
    app.smart.override(driver(dee), booking)
    app.v2g.export_refused(session)
    app.smart.override_refused(session)
    app.housekeeping.sweep(payments=False)
    with app.store.reading() as tx:  # still owed: kept
        assert tx.refusals.of(OwedKind.EXPORT, [session]) and tx.refusals.of(OwedKind.OVERRIDE, [session])
    app.charging.stop("V2G1", session, 2_000, clock.now())
    run = app.housekeeping.sweep(payments=False)
    with app.store.reading() as tx:
        assert (
            tx.refusals.of(OwedKind.EXPORT, [session]) == tx.refusals.of(OwedKind.OVERRIDE, [session]) == {}
        )
    assert run.counts["command_failures_forgotten"] == 2


def test_the_host_is_told_when_a_lowered_limit_gives_up_past_it(app: App, clock: ManualClock) -> None:
    # A process restarted with a lower limit finds the count past it already: the refusal that
    # gives the session up is the one that tells the host, though the count is not the limit.
    _, _, session = v2g_session(app, clock)
    for _ in range(5):
        app.v2g.export_refused(session)
    app.v2g.backoff = Backoff(BACKOFF.first_s, BACKOFF.cap_s, 4)
    refused = app.v2g.export_refused(session)
    assert refused is not None and refused.given_up and refused.count == 6
    assert len(refusal_notices(app)) == 1
    app.v2g.export_refused(session)
    assert len(refusal_notices(app)) == 1
