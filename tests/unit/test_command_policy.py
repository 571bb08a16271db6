"""The command policy on its own: which orders each event makes, what their scripts send and record
for each answer, the stops-sent memory, and what a charger is owed when it connects."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.errors import Busy, NotFound
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.ocpp import V16, V201, OcppVersion, rate_units
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import grid_limits as ocpp_grid
from chargeshare.ocpp import phases as ocpp_phases
from chargeshare.ocpp import smart_charging as ocpp_smart
from chargeshare.ocpp import v2g as ocpp_v2g
from chargeshare.ocpp.command_policy import DISCONNECTED_BEFORE_ANSWER, CommandPolicy
from chargeshare.ocpp.metering import MeteringPolicy
from chargeshare.ocpp.scripts import Effect, Order, Send, drive
from chargeshare.services.events import (
    BookingEnded,
    CertificateIssued,
    ChargerBooted,
    ChargerOnline,
    ConnectorStatusWanted,
    EnergyLimitReached,
    Event,
    ExportDue,
    GridLimitsDue,
    OverrideDue,
    ReservationDue,
    SessionClosedWithoutStop,
    SessionStopped,
    SmartSettingsChanged,
    TransactionEventsMissing,
)

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
DONE = cmd.Done(cmd.Status.ACCEPTED, None)
SETTINGS = SmartSettings(randomised_delay_max_s=600, default_charging_hours=False, demand_side_response=True)


@dataclass
class FakeLinks:
    here: set[str] = field(default_factory=set)  # links held here
    elsewhere: set[str] = field(default_factory=set)  # reachable through another process

    def reachable(self, cp_id: str) -> bool:
        return cp_id in self.here or cp_id in self.elsewhere

    def linked_here(self, cp_id: str) -> bool:
        return cp_id in self.here


@dataclass
class FakeBackend:
    """Bookings, charging, smart charging and reports in one: every call kept, in order."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    reservations: list[ReservationDue] = field(default_factory=list)
    cancellations: list[BookingEnded] = field(default_factory=list)
    stops: list[EnergyLimitReached] = field(default_factory=list)
    overrides: list[OverrideDue] = field(default_factory=list)
    exports: list[ExportDue] = field(default_factory=list)
    settings: SmartSettings | None = None
    limits: GridLimitsDue | None = None
    answered_ends_booking: bool = False
    ended: set[int] = field(default_factory=set)  # sessions no longer running
    # The units each charger said it takes schedules in (absent: never asked; default: it did not say).
    units: dict[str, frozenset[str]] = field(default_factory=lambda: {"CP1": frozenset()})
    # The phases each charger said its connectors are wired to (absent: never asked; {}: not said).
    wiring: dict[str, dict[int, int]] = field(default_factory=lambda: {"CP1": {}})
    connectors: dict[str, tuple[int, ...]] = field(default_factory=dict)
    fails: dict[str, Exception] = field(default_factory=dict)  # method name -> what it raises

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fails:
            raise self.fails[name]

    def reservations_unanswered(self, cp_id: str) -> list[ReservationDue]:
        self._call("reservations_unanswered", cp_id)
        return self.reservations

    def cancellations_unanswered(self, cp_id: str) -> list[BookingEnded]:
        return self.cancellations

    def reservation_answered(self, booking_id: int, status: str) -> bool:
        self._call("reservation_answered", booking_id, status)
        return self.answered_ends_booking

    def reservation_unanswered(self, booking_id: int) -> bool:
        self._call("reservation_unanswered", booking_id)
        return True

    def reservation_cancelled(self, booking_id: int) -> None:
        self._call("reservation_cancelled", booking_id)

    def stops_due(self, cp_id: str) -> list[EnergyLimitReached]:
        return self.stops

    def settings_due(self, charge_point_id: str) -> SmartSettings | None:
        self._call("settings_due", charge_point_id)
        return self.settings

    def overrides_due(self, charge_point_id: str) -> list[OverrideDue]:
        return self.overrides

    def exports_due(self, charge_point_id: str) -> list[ExportDue]:
        return self.exports

    def export_taken(self, session_id: int) -> None:
        self._call("export_taken", session_id)

    def export_refused(self, session_id: int) -> None:
        self._call("export_refused", session_id)

    def export_unanswered(self, session_id: int) -> None:
        self._call("export_unanswered", session_id)

    def session_running(self, session_id: int) -> bool:
        self._call("session_running", session_id)
        return session_id not in self.ended

    def override_taken(self, session_id: int) -> None:
        self._call("override_taken", session_id)

    def override_refused(self, session_id: int) -> None:
        self._call("override_refused", session_id)

    def override_unanswered(self, session_id: int) -> None:
        self._call("override_unanswered", session_id)

    def limits_due(self, charge_point_id: str) -> GridLimitsDue | None:
        self._call("limits_due", charge_point_id)
        return self.limits

    def limits_delivered(self, charge_point_id: str, decision: int) -> None:
        self._call("limits_delivered", charge_point_id, decision)

    def record(self, cp_id: str, action: str, summary: str, body: Mapping[str, Any]) -> bool:
        self._call("record", cp_id, action, summary)
        return True

    def rate_units(self, cp_id: str) -> frozenset[str] | None:
        self._call("rate_units", cp_id)
        return self.units.get(cp_id)

    def rate_units_learned(self, cp_id: str, units: frozenset[str]) -> bool:
        self._call("rate_units_learned", cp_id, units)
        changed = self.units.get(cp_id) != units
        self.units[cp_id] = units
        return changed

    def phases(self, cp_id: str) -> dict[int, int] | None:
        self._call("phases", cp_id)
        return self.wiring.get(cp_id)

    def phases_learned(self, cp_id: str, phases: Mapping[int, int]) -> bool:
        self._call("phases_learned", cp_id, phases)
        changed = self.wiring.get(cp_id) != phases
        self.wiring[cp_id] = ocpp_phases.Wiring(phases, switches_3to1=ocpp_phases.switches(phases))
        return changed

    def connector_numbers(self, cp_id: str) -> tuple[int, ...]:
        self._call("connector_numbers", cp_id)
        return self.connectors.get(cp_id, ())

    def recorded(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]


Answer = Callable[[cmd.Command[Any]], cmd.CommandResult[Any]]


def answer_with(result: cmd.CommandResult[Any], _command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
    return result


@dataclass
class World:
    links: FakeLinks
    backend: FakeBackend
    policy: CommandPolicy
    sent: list[tuple[str, cmd.Command[Any]]] = field(default_factory=list)

    def run(self, orders: list[Order], answer: Answer = lambda _c: DONE) -> None:
        """Run the orders to their end (and those they issue), each command answered by `answer`."""
        queue = list(orders)
        while queue:
            order = queue.pop(0)

            def send(command: cmd.Command[Any], cp_id: str = order.charge_point_id) -> Any:
                self.sent.append((cp_id, command))
                return answer(command)

            drive(order.script, send, lambda e: e.fn(*e.args), queue.append)

    def decide_and_run(self, event: Event, answer: Answer = lambda _c: DONE) -> list[Order]:
        orders = self.policy.decide(event)
        self.run(orders, answer)
        return orders

    def commands(self) -> list[cmd.Command[Any]]:
        return [c for _, c in self.sent]


def world(
    *, here: set[str] | None = None, elsewhere: set[str] | None = None, metering: bool = False
) -> World:
    links = FakeLinks({"CP1"} if here is None else here, elsewhere or set())
    backend = FakeBackend()
    policy = CommandPolicy(
        links,
        bookings=backend,
        charging=backend,
        smart=backend,
        grid=backend,
        reports=backend,
        metering=MeteringPolicy(60, 900) if metering else None,
        exports=backend,
    )
    return World(links, backend, policy)


def limit(session_id: int, cp_id: str = "CP1") -> EnergyLimitReached:
    return EnergyLimitReached(AT, cp_id, session_id)


def reservation(booking_id: int = 7, cp_id: str = "CP1") -> ReservationDue:
    return ReservationDue(AT, booking_id, cp_id, 1, "TAG", EXPIRES)


def override(session_id: int = 5, cp_id: str = "CP1") -> OverrideDue:
    return OverrideDue(AT, cp_id, 1, session_id, 7_400)


def gap(session_id: int = 5, cp_id: str = "CP1") -> TransactionEventsMissing:
    return TransactionEventsMissing(AT, cp_id, session_id, 3, 6)


# ---- the events it decides on ---------------------------------------------------------------------
def test_the_policy_decides_on_every_event_that_asks_something_of_a_charger() -> None:
    assert set(world().policy.events) == {
        EnergyLimitReached,
        ReservationDue,
        BookingEnded,
        SessionStopped,
        SessionClosedWithoutStop,
        ChargerBooted,
        SmartSettingsChanged,
        OverrideDue,
        CertificateIssued,
        TransactionEventsMissing,
        ConnectorStatusWanted,
        GridLimitsDue,
        ExportDue,
    }
    assert world().policy.decide(ChargerOnline(AT, "CP1")) == []


@pytest.mark.parametrize(
    "event",
    [
        limit(1),
        reservation(),
        BookingEnded(AT, 7, "cancelled", "CP1", "accepted"),
        SmartSettingsChanged(AT, "CP1", SETTINGS),
        override(),
        CertificateIssued(AT, "CP1", "CHAIN", None),
        ChargerBooted(AT, "CP1", V16),
        gap(),
        ConnectorStatusWanted(AT, "CP1", 2),
    ],
    ids=lambda e: type(e).__name__,
)
def test_nothing_is_ordered_for_a_charger_no_process_holds(event: Event) -> None:
    w = world(here=set())
    assert w.policy.decide(event) == []
    assert w.policy.stops_sent == {}


# ---- stops -----------------------------------------------------------------------------------------
def test_a_stop_is_sent_once_per_session_on_the_same_link() -> None:
    w = world()
    assert len(w.decide_and_run(limit(1))) == 1
    assert w.decide_and_run(limit(1)) == []  # the next reading over the limit
    assert w.commands() == [cmd.StopCharging(1)]
    assert w.policy.stops_sent == {1: "CP1"}


def test_a_stop_that_failed_is_sent_again_at_the_next_reading_over_the_limit() -> None:
    w = world()
    w.decide_and_run(limit(1), lambda _c: cmd.Timeout(30))
    assert w.policy.stops_sent == {}
    w.decide_and_run(limit(1))
    assert w.commands() == [cmd.StopCharging(1)] * 2


@pytest.mark.parametrize(
    "ended", [SessionStopped(AT, 1, 10, 900, 300), SessionClosedWithoutStop(AT, 1, "CP1")], ids=type
)
def test_a_stop_is_forgotten_once_its_session_ends(ended: Event) -> None:
    w = world()
    w.decide_and_run(limit(1))
    w.decide_and_run(limit(2))
    assert w.policy.decide(ended) == []
    assert w.policy.stops_sent == {2: "CP1"}


def test_a_link_closing_forgets_only_its_own_chargers_stops() -> None:
    w = world(here={"CP1", "CP2"})
    w.decide_and_run(limit(1, "CP1"))
    w.decide_and_run(limit(2, "CP2"))
    w.policy.disconnected("CP1")
    assert w.policy.stops_sent == {2: "CP2"}


def test_a_stop_goes_through_the_process_holding_the_link() -> None:
    w = world(here=set(), elsewhere={"CP1"})
    (order,) = w.decide_and_run(limit(1))
    assert not order.after_reply
    assert w.sent == [("CP1", cmd.StopCharging(1))]


# ---- reservations ------------------------------------------------------------------------------------
def test_a_reservation_answered_is_recorded_as_the_charger_answered() -> None:
    w = world()
    w.decide_and_run(reservation(), lambda _c: cmd.Rejected(cmd.Status.OCCUPIED))
    assert w.commands() == [cmd.Reserve(7, 1, "TAG", EXPIRES)]
    assert w.backend.recorded("reservation_answered") == [(7, "Occupied")]


def test_a_booking_cancelled_while_its_reservenow_was_on_its_way_is_cancelled_at_the_charger() -> None:
    w = world()
    w.backend.answered_ends_booking = True
    w.decide_and_run(reservation())
    assert w.commands() == [cmd.Reserve(7, 1, "TAG", EXPIRES), cmd.CancelReservation(7)]
    assert w.backend.recorded("reservation_cancelled") == [(7,)]


@pytest.mark.parametrize(
    ("answer", "unanswered"),
    [
        (cmd.Timeout(30), []),  # it may hold it: stays "sent"
        (cmd.NotConnected(DISCONNECTED_BEFORE_ANSWER), []),
        (cmd.CallError("InternalError"), [(7,)]),  # reached no charger: the sweep asks again
        (cmd.NotConnected(), [(7,)]),
    ],
    ids=str,
)
def test_a_reservenow_without_an_answer(answer: cmd.Failure, unanswered: list[tuple[int]]) -> None:
    w = world()
    w.decide_and_run(reservation(), lambda _c: answer)
    assert w.backend.recorded("reservation_answered") == []
    assert w.backend.recorded("reservation_unanswered") == unanswered


def test_recording_an_answer_that_fails_ends_the_script_without_raising() -> None:
    w = world()
    w.backend.fails["reservation_answered"] = Busy("locked", 1.0)
    w.backend.answered_ends_booking = True
    w.decide_and_run(reservation())
    assert w.commands() == [cmd.Reserve(7, 1, "TAG", EXPIRES)]


@pytest.mark.parametrize(("held", "cancelled"), [("none", False), ("sent", True), ("accepted", True)])
def test_a_booking_that_ends_cancels_a_reservation_the_charger_may_hold(held: str, cancelled: bool) -> None:
    w = world()
    w.decide_and_run(BookingEnded(AT, 7, "cancelled", "CP1", held))
    assert w.commands() == ([cmd.CancelReservation(7)] if cancelled else [])
    assert w.backend.recorded("reservation_cancelled") == ([(7,)] if cancelled else [])


def test_a_cancellation_without_an_answer_stays_on_record() -> None:
    w = world()
    w.decide_and_run(BookingEnded(AT, 7, "cancelled", "CP1", "sent"), lambda _c: cmd.Timeout(30))
    assert w.backend.recorded("reservation_cancelled") == []


# ---- boot, smart charging, overrides, certificates, missing events ------------------------------------
def test_a_boot_is_followed_by_the_smart_settings_after_its_answer() -> None:
    w = world()
    w.backend.settings = SETTINGS
    (order,) = w.decide_and_run(ChargerBooted(AT, "CP1", V16))
    assert order.after_reply
    assert w.commands() == list(ocpp_smart.settings_commands(SETTINGS))


def test_smart_settings_stop_at_the_first_the_charger_does_not_take() -> None:
    w = world()
    w.decide_and_run(SmartSettingsChanged(AT, "CP1", SETTINGS), lambda _c: cmd.Rejected(cmd.Status.REJECTED))
    assert w.commands() == list(ocpp_smart.settings_commands(SETTINGS))[:1]


def test_a_boot_reads_the_metering_settings_first_when_asked_to() -> None:
    w = world(metering=True)
    w.decide_and_run(ChargerBooted(AT, "CP1", V16), lambda _c: cmd.CallError("NotImplemented"))
    assert isinstance(w.commands()[0], cmd.GetSettings)
    assert [args[1] for args in w.backend.recorded("record")] == ["MeteringSetup"]
    assert w.backend.recorded("settings_due") == [("CP1",)]


def retries(
    attempts_key: cmd.SettingKey, attempts: str, interval_key: cmd.SettingKey, interval: str
) -> Answer:
    """A charger answering the read with these retry settings, and each change with `DONE`."""

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        values = {attempts_key: attempts, interval_key: interval}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(
                cmd.SettingValue(k, cmd.Status.ACCEPTED, values[k], readonly=False)
                if k in values
                else cmd.SettingValue(k, cmd.Status.UNKNOWN_VARIABLE)
                for k in command.keys
            ),
        )

    return answer


def test_retries_that_cannot_be_fitted_are_warned_of_naming_the_charger_and_figures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world(metering=True)
    w.policy.metering = MeteringPolicy(60, 900, retry_within_s=200)
    attempts, interval = (
        cmd.SettingKey("TransactionMessageAttempts"),
        cmd.SettingKey("TransactionMessageRetryInterval"),
    )
    with caplog.at_level(logging.INFO, logger="chargeshare.ocpp.command_policy"):
        w.decide_and_run(ChargerBooted(AT, "CP1", V16), retries(attempts, "10", interval, "60"))
    # Cut to 1 s, the attempts left as they are (a stop given up is lost).
    assert [c for c in w.commands() if isinstance(c, cmd.ChangeSetting)] == [cmd.ChangeSetting(interval, "1")]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "CP1 metering: set TransactionMessageRetryInterval=1: Accepted; retries cannot be fitted within "
        "200 s: TransactionMessageRetryInterval=1, TransactionMessageAttempts=10, 30 s response "
        "time-out: the last retry may be sent 355 s after the first sending"
    )
    ((_, _, summary),) = w.backend.recorded("record")
    assert summary == warning.getMessage().removeprefix("CP1 metering: ")


def test_a_201_charger_is_fitted_by_instance_and_a_refused_interval_is_sent_once_and_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world(metering=True)
    w.policy.metering = MeteringPolicy(60, 900, retry_within_s=200)
    comm, tx = "OCPPCommCtrlr", "TransactionEvent"
    attempts, interval = (
        cmd.SettingKey("MessageAttempts", comm, tx),
        cmd.SettingKey("MessageAttemptInterval", comm, tx),
    )
    answer = retries(attempts, "4", interval, "120")

    def read_only(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if isinstance(command, cmd.ChangeSetting):
            return cmd.Rejected(cmd.Status.REJECTED)
        return answer(command)

    with caplog.at_level(logging.INFO, logger="chargeshare.ocpp.command_policy"):
        w.decide_and_run(ChargerBooted(AT, "CP1", V201), read_only)
    assert [c for c in w.commands() if isinstance(c, cmd.ChangeSetting)] == [cmd.ChangeSetting(interval, "8")]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "CP1 metering: set OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]=8: Rejected; retries "
        "not fitted, OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]=8 Rejected, not within 200 s: "
        "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]=120, "
        "OCPPCommCtrlr.MessageAttempts[TransactionEvent]=4, 30 s response time-out: the last retry may be "
        "sent 1320 s after the first sending"
    )


def test_an_unregistered_chargers_boot_sends_no_settings() -> None:
    w = world()
    w.backend.fails["settings_due"] = NotFound("CP1")
    w.decide_and_run(ChargerBooted(AT, "CP1", V16))
    assert w.commands() == []


def test_a_boot_handled_by_another_process_is_configured_there() -> None:
    assert world(here=set(), elsewhere={"CP1"}).policy.decide(ChargerBooted(AT, "CP1", V16)) == []


@pytest.mark.parametrize(
    ("here", "after_reply"), [({"CP1"}, True), (set(), False)], ids=["linked here", "elsewhere"]
)
def test_an_override_follows_the_answer_here_or_goes_at_once_elsewhere(
    here: set[str], after_reply: bool
) -> None:
    w = world(here=here, elsewhere={"CP1"})
    (order,) = w.decide_and_run(override())
    assert order.after_reply is after_reply
    assert w.commands() == [ocpp_smart.override_command(1, 5, 7_400)]


def test_a_certificate_chain_is_sent_and_its_answer_kept() -> None:
    w = world()
    (order,) = w.decide_and_run(CertificateIssued(AT, "CP1", "CHAIN", None))
    assert order.after_reply
    assert w.commands() == [cmd.CertificateSigned("CHAIN", None)]
    assert w.backend.recorded("record") == [("CP1", "CertificateSigned", "sent: Accepted")]


def test_missing_events_are_asked_about_once_per_session_until_it_ends() -> None:
    w = world()
    queue = cmd.Done(cmd.Status.ACCEPTED, cmd.TransactionQueue(messages_in_queue=True, ongoing=True))
    w.decide_and_run(gap(), lambda _c: queue)
    assert w.decide_and_run(gap()) == []
    assert w.commands() == [cmd.GetTransactionStatus(5)]
    (summary,) = [args[2] for args in w.backend.recorded("record")]
    assert summary == "session 5: seqNo 3-5 missing, still queued at the charger, ongoing"
    w.policy.decide(SessionStopped(AT, 5, 10, 900, 300))
    assert len(w.policy.decide(gap())) == 1


def test_missing_events_on_a_link_held_elsewhere_are_left_to_that_process() -> None:
    w = world(here=set(), elsewhere={"CP1"})
    assert w.policy.decide(gap()) == []
    w.links.here.add("CP1")
    assert len(w.policy.decide(gap())) == 1  # not remembered as asked


# ---- a connector's status, asked for -----------------------------------------------------------------
def test_a_connector_s_status_is_triggered_behind_the_answer_being_made() -> None:
    w = world()
    (order,) = w.decide_and_run(ConnectorStatusWanted(AT, "CP1", 2))
    assert order.after_reply
    assert w.commands() == [cmd.TriggerMessage("StatusNotification", 2)]


@pytest.mark.parametrize(
    "answer",
    [cmd.Rejected(cmd.Status.NOT_IMPLEMENTED), cmd.CallError("NotImplemented"), cmd.Timeout(30.0)],
)
def test_a_charger_that_will_not_report_its_status_is_asked_once(answer: cmd.CommandResult[Any]) -> None:
    """A 1.6 charger without TriggerMessage (NotImplemented, as an answer or a CALLERROR), or one
    that says nothing: the request is not repeated and nothing is recorded, so the session stays
    open until the connector is next reported free, as it would without the request."""
    w = world()
    w.decide_and_run(ConnectorStatusWanted(AT, "CP1", 2), lambda _c: answer)
    assert w.commands() == [cmd.TriggerMessage("StatusNotification", 2)]
    assert w.backend.calls == []


def test_a_connector_s_status_on_a_link_held_elsewhere_is_asked_through_it_at_once() -> None:
    w = world(here=set(), elsewhere={"CP1"})
    (order,) = w.decide_and_run(ConnectorStatusWanted(AT, "CP1", 2))
    assert not order.after_reply
    assert w.commands() == [cmd.TriggerMessage("StatusNotification", 2)]


# ---- site and feeder limits --------------------------------------------------------------------------
LIMITS = GridLimitsDue(AT, "CP1", ((1, 3_000), (2, 4_000)))


def test_grid_limits_are_sent_in_turn_the_charger_maximum_first() -> None:
    w = world(here=set(), elsewhere={"CP1"})
    w.decide_and_run(LIMITS)
    assert w.commands() == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT))
    assert len(w.commands()) == 3


@pytest.mark.parametrize(
    "refusal",
    [cmd.Rejected(cmd.Status.REJECTED, None), cmd.Timeout(30.0), cmd.NotConnected("gone")],
    ids=lambda r: type(r).__name__,
)
def test_grid_limits_stop_at_the_first_refusal(refusal: cmd.CommandResult[Any]) -> None:
    w = world()
    w.decide_and_run(LIMITS, lambda _c: refusal)
    assert w.commands() == [ocpp_grid.limit_commands(LIMITS.limits_w, AT)[0]]


def test_grid_limits_stop_after_a_connector_refuses_its_share() -> None:
    w = world()
    answers: Iterator[cmd.CommandResult[Any]] = iter([DONE, cmd.Rejected(cmd.Status.REJECTED, None), DONE])
    w.decide_and_run(LIMITS, lambda _c: next(answers))
    assert w.commands() == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT)[:2])


def test_cleared_limits_clear_both_profiles() -> None:
    w = world()
    w.decide_and_run(GridLimitsDue(AT, "CP1", ()))
    assert w.commands() == list(ocpp_grid.limit_commands((), AT))
    assert all(isinstance(c, cmd.ClearChargingProfile) for c in w.commands())


def test_grid_limits_for_an_unreachable_charger_wait_for_it_to_connect() -> None:
    assert world(here=set()).policy.decide(LIMITS) == []


def test_a_decision_is_acknowledged_only_once_every_command_is_done() -> None:
    w = world()
    w.decide_and_run(replace(LIMITS, decision=4))
    assert w.backend.recorded("limits_delivered") == [("CP1", 4)]
    refused = world()
    answers: Iterator[cmd.CommandResult[Any]] = iter([DONE, cmd.Rejected(cmd.Status.REJECTED, None), DONE])
    refused.decide_and_run(replace(LIMITS, decision=4), lambda _c: next(answers))
    assert refused.backend.recorded("limits_delivered") == []  # still owed: sent again


def test_a_charger_refusing_a_profile_of_two_periods_still_gets_its_limits_now() -> None:
    """A charger holds at most `ChargingScheduleMaxPeriods` periods a profile (1.6; 2.0.1
    PeriodsPerSchedule), which may be 1: it refuses a profile carrying a flexibility event's edge.
    It is sent its limits as one period each, then, the edge left to the decision at it, and the
    decision is done; a charger refusing those too leaves it owed."""
    edge = AT + timedelta(minutes=3)
    due = replace(LIMITS, decision=4, steps=((1, edge, 1_380),))

    def one_period_only(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if isinstance(command, cmd.SetChargingProfile) and len(command.profile.periods) > 1:
            return cmd.Rejected(cmd.Status.REJECTED, None)
        return DONE

    w = world()
    w.decide_and_run(due, one_period_only)
    assert w.commands() == [
        ocpp_grid.limit_commands(due.limits_w, AT, due.steps)[0],
        *ocpp_grid.limit_commands(due.limits_w, AT),
    ]
    assert w.backend.recorded("limits_delivered") == [("CP1", 4)]
    refusing = world()
    refusing.decide_and_run(due, lambda _c: cmd.Rejected(cmd.Status.REJECTED, None))
    assert refusing.commands() == [
        ocpp_grid.limit_commands(due.limits_w, AT, due.steps)[0],
        ocpp_grid.limit_commands(due.limits_w, AT)[0],
    ]
    assert refusing.backend.recorded("limits_delivered") == []
    gone = world()  # not a refusal of the profile: nothing to send it without its steps
    gone.decide_and_run(due, lambda _c: cmd.NotConnected("gone"))
    assert gone.commands() == [ocpp_grid.limit_commands(due.limits_w, AT, due.steps)[0]]


def test_a_later_decision_is_never_overtaken_by_an_earlier_one_in_flight() -> None:
    w = world()
    earlier = replace(LIMITS, decision=1)
    later = GridLimitsDue(AT, "CP1", ((1, 5_000), (2, 2_000)), 2)
    (first,) = w.policy.decide(earlier)
    sent: list[cmd.Command[Any]] = []
    step = first.script.send(None)
    while isinstance(step, Effect):  # the units it takes, read from the store
        step = first.script.send(step.fn(*step.args))
    assert isinstance(step, Send)  # the earlier decision's first command is on its way
    sent.append(step.command)
    w.backend.limits = later  # what the database now holds
    w.run(w.policy.decide(later))  # the later decision, decided while it is in flight
    sent += w.commands()

    def answer(command: cmd.Command[Any]) -> Any:
        sent.append(command)
        return DONE

    reply: Any = DONE
    while True:  # the earlier order goes on from where it was
        try:
            step = first.script.send(reply)
        except StopIteration:
            break
        assert isinstance(step, Send | Effect)
        reply = answer(step.command) if isinstance(step, Send) else step.fn(*step.args)
    profiles = {
        (c.connector_no, c.profile.purpose): c.profile.periods[0].limit
        for c in sent
        if isinstance(c, cmd.SetChargingProfile)
    }
    assert profiles == {
        (no, purpose): limit
        for c in ocpp_grid.limit_commands(later.limits_w, AT)
        if isinstance(c, cmd.SetChargingProfile)
        for no, purpose, limit in [(c.connector_no, c.profile.purpose, c.profile.periods[0].limit)]
    }, "an earlier decision's command landed after the later one's"
    assert w.backend.recorded("limits_delivered")[-1] == ("CP1", 2)


def test_a_decision_made_in_another_process_during_a_round_follows_it() -> None:
    w = world()
    w.backend.limits = GridLimitsDue(AT, "CP1", ((1, 5_000), (2, 2_000)), 2)  # heard only there
    w.decide_and_run(replace(LIMITS, decision=1))
    assert w.commands() == [
        *ocpp_grid.limit_commands(LIMITS.limits_w, AT),
        *ocpp_grid.limit_commands(w.backend.limits.limits_w, AT),
    ]
    assert w.backend.recorded("limits_delivered") == [("CP1", 1), ("CP1", 2)]


def test_an_older_decision_heard_after_a_newer_one_was_sent_is_dropped() -> None:
    w = world()
    w.decide_and_run(replace(LIMITS, decision=2))
    assert w.policy.decide(replace(LIMITS, decision=1)) == []


# ---- what a charger is owed on connecting ----------------------------------------------------------
def test_on_connecting_a_charger_is_sent_everything_it_is_owed() -> None:
    w = world()
    w.backend.reservations = [reservation(7)]
    w.backend.cancellations = [BookingEnded(AT, 8, "cancelled", "CP1", "sent")]
    w.backend.stops = [limit(1)]
    w.backend.overrides = [override(5)]
    w.run(w.policy.connected("CP1"))
    assert w.commands() == [
        cmd.Reserve(7, 1, "TAG", EXPIRES),
        cmd.CancelReservation(8),
        cmd.StopCharging(1),
        ocpp_smart.override_command(1, 5, 7_400),
    ]


def test_on_connecting_a_charger_is_sent_its_grid_limits_as_last_decided() -> None:
    w = world()
    w.backend.overrides = [override(5)]
    w.backend.limits = LIMITS
    w.run(w.policy.connected("CP1"))
    assert w.commands() == [
        ocpp_smart.override_command(1, 5, 7_400),
        *ocpp_grid.limit_commands(LIMITS.limits_w, AT),
    ]
    assert w.backend.recorded("limits_due") == [("CP1",)]


@pytest.mark.parametrize("failure", [NotFound("CP1"), Busy("locked", 1.0)], ids=type)
def test_a_failed_grid_lookup_leaves_the_rest_owed(failure: Exception) -> None:
    w = world()
    w.backend.overrides = [override(5)]
    w.backend.fails["limits_due"] = failure
    w.run(w.policy.connected("CP1"))
    assert w.commands() == [ocpp_smart.override_command(1, 5, 7_400)]


def test_a_stop_sent_on_an_earlier_link_is_sent_again_on_connecting() -> None:
    w = world()
    w.decide_and_run(limit(1))
    w.backend.stops = [limit(1)]
    w.run(w.policy.connected("CP1"))
    assert w.commands() == [cmd.StopCharging(1)] * 2
    assert w.policy.stops_sent == {1: "CP1"}


@pytest.mark.parametrize("failure", [NotFound("CP9"), Busy("locked", 1.0)], ids=type)
def test_nothing_is_owed_when_the_lookup_fails(failure: Exception) -> None:
    w = world()
    w.backend.fails["reservations_unanswered"] = failure
    w.backend.stops = [limit(1)]
    w.run([w.policy.owed("CP1")])
    assert w.commands() == []


def test_the_owed_lookup_is_a_service_call_the_engine_makes() -> None:
    (order,) = world().policy.connected("CP1")
    step = order.script.send(None)
    assert isinstance(step, Effect)


# ---- the stops-sent memory, against a model -----------------------------------------------------------
Op = tuple[str, int, int]  # (what, charger number, session)

ops = st.lists(
    st.tuples(
        st.sampled_from(["reading", "reading-failed", "ended", "disconnected", "connected"]),
        st.integers(1, 2),
        st.integers(1, 3),
    ),
    max_size=30,
)


@given(ops)
def test_the_stops_sent_memory_follows_its_rules(steps: list[Op]) -> None:
    """A stop is sent at a reading over the limit unless one was sent and taken on the same link,
    and the session has not ended since; a reconnect sends every stop still due."""
    w = world(here={"CP1", "CP2"})
    remembered: dict[int, str] = {}
    open_on: dict[int, str] = {}  # sessions not ended, on their charger
    for what, charger, session in steps:
        cp_id = f"CP{charger}"
        if what.startswith("reading"):
            if open_on.setdefault(session, cp_id) != cp_id:
                continue  # a session belongs to one charger
            before = len(w.sent)
            answer: cmd.CommandResult[None] = cmd.Timeout(1) if what == "reading-failed" else DONE
            w.decide_and_run(limit(session, cp_id), partial(answer_with, answer))
            sent = len(w.sent) > before
            assert sent == (session not in remembered)
            if sent and what == "reading":
                remembered[session] = cp_id
        elif what == "ended":
            w.policy.decide(SessionStopped(AT, session, 1, 0, 0))
            remembered.pop(session, None)
            open_on.pop(session, None)
        elif what == "disconnected":
            w.policy.disconnected(cp_id)
            remembered = {s: c for s, c in remembered.items() if c != cp_id}
        else:
            w.backend.stops = [limit(s, c) for s, c in open_on.items() if c == cp_id]
            before = len(w.sent)
            w.run(w.policy.connected(cp_id))
            stops = [c for _, c in w.sent[before:] if isinstance(c, cmd.StopCharging)]
            assert sorted(c.transaction for c in stops) == sorted(s for s, c in open_on.items() if c == cp_id)
            remembered = {s: c for s, c in remembered.items() if c != cp_id}
            remembered.update({s: c for s, c in open_on.items() if c == cp_id})
        assert w.policy.stops_sent == remembered


# ---- site and feeder limits to a charger that takes A only -----------------------------------------
AMPS_ONLY = frozenset({cmd.RateUnit.AMPS})


def refusing_watts(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
    """An A-only charger: a profile in W is Rejected, as real ones answer it."""
    if isinstance(command, cmd.SetChargingProfile) and command.profile.rate_unit is not cmd.RateUnit.AMPS:
        return cmd.Rejected(cmd.Status.REJECTED, None)
    if isinstance(command, rate_units.GetRateUnits):
        return cmd.Done(cmd.Status.ACCEPTED, AMPS_ONLY)
    return DONE


def test_a_charger_that_takes_amps_only_gets_its_limits_in_amps_and_acknowledges_them() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    w.decide_and_run(replace(LIMITS, decision=3), refusing_watts)
    assert w.commands() == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT, unit=cmd.RateUnit.AMPS))
    assert w.backend.recorded("limits_delivered") == [("CP1", 3)]


def test_a_charger_never_asked_is_asked_its_units_before_its_first_profile() -> None:
    w = world()
    del w.backend.units["CP1"]
    w.decide_and_run(replace(LIMITS, decision=3), refusing_watts)
    assert w.commands()[0] == rate_units.GetRateUnits()
    assert w.commands()[1:] == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT, unit=cmd.RateUnit.AMPS))
    assert w.backend.recorded("rate_units_learned") == [("CP1", AMPS_ONLY)]
    assert w.backend.recorded("limits_delivered") == [("CP1", 3)]
    w.sent.clear()
    w.decide_and_run(replace(LIMITS, decision=4), refusing_watts)  # known now: not asked again
    assert not any(isinstance(c, rate_units.GetRateUnits) for c in w.commands())


@pytest.mark.parametrize(
    "said",
    [frozenset(), frozenset({cmd.RateUnit.AMPS, cmd.RateUnit.WATTS}), frozenset({cmd.RateUnit.WATTS})],
    ids=["unknown", "both", "W"],
)
def test_a_charger_that_takes_watts_or_does_not_say_keeps_watts(said: frozenset[str]) -> None:
    w = world()
    w.backend.units["CP1"] = said
    w.decide_and_run(LIMITS)
    assert w.commands() == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT))


def test_a_charger_that_does_not_answer_the_read_gets_watts_and_is_asked_again_next_time() -> None:
    w = world()
    del w.backend.units["CP1"]
    w.decide_and_run(LIMITS, lambda c: cmd.Timeout(30) if isinstance(c, rate_units.GetRateUnits) else DONE)
    assert w.commands()[1:] == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT))
    assert w.backend.recorded("rate_units_learned") == []


@pytest.mark.parametrize(("declared", "kept"), [("A", [("CP1", AMPS_ONLY)]), ("A,W", []), ("", [])])
def test_the_units_ride_on_the_boots_metering_read_and_amps_only_is_kept(
    declared: str, kept: list[tuple[str, frozenset[str]]]
) -> None:
    """A charger taking W as well is left to be asked with its first limits: no write at every boot."""
    w = world(metering=True)
    del w.backend.units["CP1"]

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        said = {rate_units.key(V201): declared}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, said.get(k, "60")) for k in command.keys),
        )

    w.decide_and_run(ChargerBooted(AT, "CP1", V201), answer)
    (read,) = [c for c in w.commands() if isinstance(c, cmd.GetSettings)]
    assert rate_units.key(V201) in read.keys
    assert w.backend.recorded("rate_units_learned") == kept


def test_a_charger_kept_as_amps_only_that_refuses_amps_is_asked_again() -> None:
    """New firmware taking W only: what it says now is kept, and the owed decision follows it."""
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY

    def watts_only(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if isinstance(command, rate_units.GetRateUnits):
            return cmd.Done(cmd.Status.ACCEPTED, frozenset({cmd.RateUnit.WATTS}))
        if isinstance(command, cmd.SetChargingProfile) and command.profile.rate_unit is cmd.RateUnit.AMPS:
            return cmd.Rejected(cmd.Status.REJECTED, None)
        return DONE

    w.decide_and_run(replace(LIMITS, decision=3), watts_only)
    assert w.commands()[-1] == rate_units.GetRateUnits()
    assert w.backend.recorded("rate_units_learned") == [("CP1", frozenset({cmd.RateUnit.WATTS}))]
    assert w.backend.recorded("limits_delivered") == []
    w.sent.clear()
    w.decide_and_run(replace(LIMITS, decision=3), watts_only)  # sent again: in W now
    assert w.commands() == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT))
    assert w.backend.recorded("limits_delivered") == [("CP1", 3)]


@pytest.mark.parametrize("declared", ["A,W", "W"])
def test_a_boot_saying_it_takes_watts_now_replaces_amps_only_kept(declared: str) -> None:
    """New firmware that takes W as well still takes A, so A would never be refused: the boot's
    read is what tells, and the limits go in W again (no longer on one phase, floored)."""
    w = world(metering=True)
    w.backend.units["CP1"] = AMPS_ONLY

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        said = {rate_units.key(V201): declared}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, said.get(k, "60")) for k in command.keys),
        )

    w.decide_and_run(ChargerBooted(AT, "CP1", V201), answer)
    assert w.backend.recorded("rate_units_learned") == [("CP1", rate_units.parse(declared))]
    w.sent.clear()
    w.decide_and_run(LIMITS)
    assert w.commands() == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT))


@pytest.mark.parametrize("declared", ["", "A,W"])
def test_a_boot_keeps_no_units_when_nothing_kept_was_amps_only(declared: str) -> None:
    """Most chargers boot without a write: only a kept A-only is replaced by a boot taking W."""
    w = world(metering=True)
    w.backend.units["CP1"] = frozenset({cmd.RateUnit.AMPS, cmd.RateUnit.WATTS})

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        said = {rate_units.key(V201): declared}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, said.get(k, "60")) for k in command.keys),
        )

    w.decide_and_run(ChargerBooted(AT, "CP1", V201), answer)
    assert w.backend.recorded("rate_units_learned") == []


@pytest.mark.parametrize(
    "refusal", [cmd.Rejected(cmd.Status.REJECTED, None), cmd.CallError("PropertyConstraintViolation")]
)
def test_a_charger_refusing_watts_it_was_kept_as_taking_is_asked_again(refusal: cmd.Failure) -> None:
    """What was kept can be out of date (a stale report written last by another process, or a
    write at boot that failed): an A-only charger refusing W is asked, and the owed decision
    follows what it says."""
    w = world()
    w.backend.units["CP1"] = frozenset({cmd.RateUnit.AMPS, cmd.RateUnit.WATTS})

    def amps_only(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if isinstance(command, cmd.SetChargingProfile) and command.profile.rate_unit is not cmd.RateUnit.AMPS:
            return refusal
        if isinstance(command, rate_units.GetRateUnits):
            return cmd.Done(cmd.Status.ACCEPTED, AMPS_ONLY)
        return DONE

    w.decide_and_run(replace(LIMITS, decision=3), amps_only)
    assert w.commands()[-1] == rate_units.GetRateUnits()
    assert w.backend.recorded("rate_units_learned") == [("CP1", AMPS_ONLY)]
    assert w.backend.recorded("limits_delivered") == []
    w.sent.clear()
    w.decide_and_run(replace(LIMITS, decision=3), amps_only)  # sent again: in A now
    assert w.commands() == list(ocpp_grid.limit_commands(LIMITS.limits_w, AT, unit=cmd.RateUnit.AMPS))
    assert w.backend.recorded("limits_delivered") == [("CP1", 3)]


def test_a_charger_kept_as_amps_only_refusing_amps_with_a_call_error_is_asked_again() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY

    def watts_only(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if isinstance(command, rate_units.GetRateUnits):
            return cmd.Done(cmd.Status.ACCEPTED, frozenset({cmd.RateUnit.WATTS}))
        if isinstance(command, cmd.SetChargingProfile) and command.profile.rate_unit is cmd.RateUnit.AMPS:
            return cmd.CallError("PropertyConstraintViolation")
        return DONE

    w.decide_and_run(replace(LIMITS, decision=3), watts_only)
    assert w.backend.recorded("rate_units_learned") == [("CP1", frozenset({cmd.RateUnit.WATTS}))]


def test_a_charger_that_does_not_say_its_units_is_not_asked_again_on_each_refusal() -> None:
    w = world()  # kept: it answered without saying
    w.decide_and_run(LIMITS, lambda c: cmd.Rejected(cmd.Status.REJECTED, None))
    assert not any(isinstance(c, rate_units.GetRateUnits) for c in w.commands())


def test_a_boot_whose_kept_units_cannot_be_read_still_gets_its_smart_settings() -> None:
    w = world(metering=True)
    w.backend.settings = SETTINGS
    w.backend.fails["rate_units"] = RuntimeError("the store went away")

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        said = {rate_units.key(V16): "Current,Power"}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, said.get(k, "60")) for k in command.keys),
        )

    w.decide_and_run(ChargerBooted(AT, "CP1", V16), answer)
    assert w.backend.recorded("rate_units") == [("CP1",)]
    assert w.commands()[-len(ocpp_smart.settings_commands(SETTINGS)) :] == list(
        ocpp_smart.settings_commands(SETTINGS)
    )


# ---- the driver's override and the V2G profile to a charger that takes A only ------------------------
EXPORT = ExportDue(AT, "CP1", 1, 5, 7_400, ((600, 1_200),))


def profiles(w: World) -> list[cmd.ChargingProfile]:
    return [c.profile for c in w.commands() if isinstance(c, cmd.SetChargingProfile)]


def test_an_override_to_a_charger_kept_as_amps_only_goes_in_amps_and_is_taken() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    w.decide_and_run(override(), refusing_watts)
    assert w.commands() == [ocpp_smart.override_command(1, 5, 7_400, cmd.RateUnit.AMPS)]
    (period,) = profiles(w)[0].periods
    assert (period.limit, period.phases) == (32, 1)  # 7,400 W floored on one phase: 7,360 W


def test_an_override_to_a_charger_never_asked_asks_its_units_first() -> None:
    w = world()
    del w.backend.units["CP1"]
    w.decide_and_run(override(), refusing_watts)
    assert w.commands() == [
        rate_units.GetRateUnits(),
        ocpp_smart.override_command(1, 5, 7_400, cmd.RateUnit.AMPS),
    ]
    assert w.backend.recorded("rate_units_learned") == [("CP1", AMPS_ONLY)]


def test_an_override_owed_on_connecting_goes_in_amps() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    w.backend.overrides = [override()]
    w.run(w.policy.connected("CP1"), refusing_watts)
    assert profiles(w) == [ocpp_smart.override_profile(7_400, 5, cmd.RateUnit.AMPS)]


@pytest.mark.parametrize("refusal", [cmd.Rejected(cmd.Status.REJECTED, None), cmd.CallError("NotSupported")])
def test_an_override_refused_in_watts_kept_asks_the_units_again_and_goes_once_in_amps(
    refusal: cmd.Failure,
) -> None:
    """A stale report kept it as taking W: the refusal asks again, and the override follows at once
    (nothing else would send it before the charger reconnects)."""
    w = world()
    w.backend.units["CP1"] = frozenset({cmd.RateUnit.WATTS})

    def amps_only(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if isinstance(command, cmd.SetChargingProfile) and command.profile.rate_unit is not cmd.RateUnit.AMPS:
            return refusal
        return refusing_watts(command)

    w.decide_and_run(override(), amps_only)
    assert w.commands() == [
        ocpp_smart.override_command(1, 5, 7_400),
        rate_units.GetRateUnits(),
        ocpp_smart.override_command(1, 5, 7_400, cmd.RateUnit.AMPS),
    ]
    assert w.backend.recorded("rate_units_learned") == [("CP1", AMPS_ONLY)]


def test_an_override_refused_in_the_unit_it_still_takes_is_not_sent_again() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    w.decide_and_run(
        override(),
        lambda c: (
            refusing_watts(c)
            if not isinstance(c, cmd.SetChargingProfile)
            else cmd.Rejected(cmd.Status.REJECTED, None)
        ),
    )
    assert [type(c) for c in w.commands()] == [cmd.SetChargingProfile, rate_units.GetRateUnits]


def test_a_v2g_profile_to_a_charger_kept_as_amps_only_goes_in_amps() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    w.decide_and_run(EXPORT, refusing_watts)
    allow, profile = w.commands()
    assert isinstance(allow, cmd.AllowEnergyTransfer)
    assert profile == ocpp_v2g.export_profile(1, 5, 7_400, ((600, 1_200),), AT, cmd.RateUnit.AMPS)
    (charging, discharging, after) = profiles(w)[0].periods
    assert (charging.limit, charging.phases) == (after.limit, after.phases) == (32, 1)
    assert (discharging.limit, discharging.setpoint, discharging.discharge_limit) == (0, -32, -32)
    assert discharging.phases == 1


def test_a_v2g_profile_refused_in_watts_kept_asks_the_units_again_and_goes_in_amps() -> None:
    w = world()
    w.backend.units["CP1"] = frozenset({cmd.RateUnit.WATTS})
    w.decide_and_run(EXPORT, refusing_watts)
    assert w.commands()[1:] == [
        ocpp_v2g.export_profile(1, 5, 7_400, ((600, 1_200),), AT),
        rate_units.GetRateUnits(),
        ocpp_v2g.export_profile(1, 5, 7_400, ((600, 1_200),), AT, cmd.RateUnit.AMPS),
    ]


def test_a_v2g_profile_to_a_charger_taking_watts_stays_in_watts() -> None:
    w = world()
    w.backend.units["CP1"] = frozenset({cmd.RateUnit.AMPS, cmd.RateUnit.WATTS})
    w.decide_and_run(EXPORT)
    assert w.commands() == list(ocpp_v2g.export_commands(1, 5, 7_400, ((600, 1_200),), AT))


# ---- V2G export owed on connecting -----------------------------------------------------------------
@pytest.mark.parametrize(
    "lost",
    [cmd.NotConnected(DISCONNECTED_BEFORE_ANSWER), cmd.Rejected(cmd.Status.REJECTED, None)],
    ids=["link-dropped", "refused"],
)
def test_a_v2g_profile_lost_with_the_link_or_refused_is_sent_on_reconnecting(
    lost: cmd.CommandResult[Any],
) -> None:
    w = world()
    w.decide_and_run(
        EXPORT, lambda c: lost if isinstance(c, cmd.SetChargingProfile) else DONE
    )  # permission taken, profile never taken
    w.policy.disconnected("CP1")
    w.sent.clear()
    w.backend.exports = [EXPORT]  # its session still runs
    w.run(w.policy.connected("CP1"))
    assert w.commands() == list(ocpp_v2g.export_commands(1, 5, 7_400, ((600, 1_200),), AT))


def test_a_v2g_permission_refused_on_reconnecting_sends_no_profile_then_either() -> None:
    w = world()
    w.backend.exports = [EXPORT]
    w.run(
        w.policy.connected("CP1"),
        lambda c: cmd.Rejected(cmd.Status.REJECTED, None) if isinstance(c, cmd.AllowEnergyTransfer) else DONE,
    )
    assert [type(c) for c in w.commands()] == [cmd.AllowEnergyTransfer]


@pytest.mark.parametrize(
    ("refuse", "taken"),
    [(None, [(5,)]), (cmd.AllowEnergyTransfer, []), (cmd.SetChargingProfile, [])],
    ids=["both-taken", "permission-refused", "profile-refused"],
)
def test_a_v2g_export_is_recorded_taken_only_once_the_charger_took_both(
    refuse: type[cmd.Command[Any]] | None, taken: list[tuple[int]]
) -> None:
    """Until then the sweep finds it owed and sends it again."""
    w = world()
    w.decide_and_run(
        EXPORT,
        lambda c: cmd.Rejected(cmd.Status.REJECTED, None) if refuse and isinstance(c, refuse) else DONE,
    )
    assert w.backend.recorded("export_taken") == taken


def test_a_v2g_export_with_no_window_left_sends_nothing_and_is_no_longer_owed() -> None:
    w = world()
    w.decide_and_run(replace(EXPORT, windows=()))
    assert w.commands() == []
    assert w.backend.recorded("export_taken") == [(5,)]


# ---- limits in A on the phases a charger is wired to ----------------------------------------------
THREE_PHASE = GridLimitsDue(AT, "CP1", ((1, 11_000),), decision=5)


def amps_only_wired(phases: str) -> Answer:
    """An A-only 2.0.1 charger whose `ChargingStation.SupplyPhases` is `phases`."""

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if isinstance(command, ocpp_phases.GetPhases):
            return cmd.Done(cmd.Status.ACCEPTED, ocpp_phases.parse(V201, phases))
        return refusing_watts(command)

    return answer


def shares(w: World) -> list[cmd.SchedulePeriod]:
    return [
        p
        for c in w.commands()
        if isinstance(c, cmd.SetChargingProfile) and c.connector_no != 0
        for p in c.profile.periods
    ]


def test_a_three_phase_charger_taking_amps_is_asked_its_phases_and_limited_on_all_three() -> None:
    """11 kW of room on three phases is 15 A each (10,350 W), not 47 A held to one phase."""
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    del w.backend.wiring["CP1"]
    w.decide_and_run(THREE_PHASE, amps_only_wired("3"))
    assert ocpp_phases.GetPhases() in w.commands()
    assert w.backend.recorded("phases_learned") == [("CP1", {0: 3})]
    assert [(p.limit, p.phases) for p in shares(w)] == [(15, 3)]
    assert w.backend.recorded("limits_delivered") == [("CP1", 5)]
    w.sent.clear()
    w.decide_and_run(replace(THREE_PHASE, decision=6), amps_only_wired("3"))  # kept: not asked again
    assert ocpp_phases.GetPhases() not in w.commands()
    assert [(p.limit, p.phases) for p in shares(w)] == [(15, 3)]


def test_a_charger_that_does_not_say_its_phases_is_held_to_one() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    del w.backend.wiring["CP1"]
    w.decide_and_run(THREE_PHASE, amps_only_wired("0"))  # 0: DC, or not said
    assert w.backend.recorded("phases_learned") == [("CP1", {})]
    assert [(p.limit, p.phases) for p in shares(w)] == [(47, 1)]


@pytest.mark.parametrize(("switches", "sent"), [(True, (2_000, 1)), (False, (0, None))])
def test_a_charger_taking_watts_is_asked_its_phases_and_told_to_switch_only_if_it_can(
    switches: bool, sent: tuple[int, int | None]
) -> None:
    """In W a three-phase connector's 2,000 W (under 6 A on each phase, decided before its phases
    were known) goes on one phase (numberPhases 1) for a charger that switches three phases to
    one; any other could not obey it, so it is sent 0 W, as in A 0 A (`obeyable_w`)."""
    w = world()
    del w.backend.wiring["CP1"]
    wiring = ocpp_phases.Wiring({0: 3}, switches_3to1=switches)

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        return cmd.Done(cmd.Status.ACCEPTED, wiring) if isinstance(command, ocpp_phases.GetPhases) else DONE

    two_kw = replace(THREE_PHASE, limits_w=((1, 2_000),))
    w.decide_and_run(two_kw, answer)  # sent first on what is kept (nothing), then asked
    assert ocpp_phases.GetPhases() in w.commands()
    (learned,) = w.backend.recorded("phases_learned")
    assert learned == ("CP1", {0: 3}) and ocpp_phases.switches(learned[1]) is switches
    w.sent.clear()
    w.decide_and_run(replace(two_kw, decision=6), answer)  # the decision its rise asks for
    assert ocpp_phases.GetPhases() not in w.commands()
    assert [(p.limit, p.phases) for p in shares(w)] == [sent]


@pytest.mark.parametrize("failure", [cmd.CallError("InternalError"), cmd.Timeout(30)])
def test_in_watts_limits_never_wait_on_a_phases_read_and_it_is_asked_after(failure: cmd.Failure) -> None:
    """A charger taking W whose phases read fails (nothing kept) is sent its limits first, each
    time, and asked its phases only once they are out, one read at a time."""
    w = world()
    del w.backend.wiring["CP1"]

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        return failure if isinstance(command, ocpp_phases.GetPhases) else DONE

    for decision in (5, 6):
        w.sent.clear()
        w.decide_and_run(replace(THREE_PHASE, decision=decision), answer)
        kinds = [type(c) for c in w.commands()]
        assert kinds.index(ocpp_phases.GetPhases) > max(
            i for i, k in enumerate(kinds) if k is cmd.SetChargingProfile
        )
        assert ("CP1", decision) in w.backend.recorded("limits_delivered")
    assert w.backend.recorded("phases_learned") == []
    # A read in flight is not asked again by the next round.
    orders = w.policy.decide(replace(THREE_PHASE, decision=7))
    asked: list[Order] = []
    for order in orders:
        drive(order.script, lambda c: DONE, lambda e: e.fn(*e.args), asked.append)
    assert len(asked) == 1
    more: list[Order] = []
    for order in w.policy.decide(replace(THREE_PHASE, decision=8)):
        drive(order.script, lambda c: DONE, lambda e: e.fn(*e.args), more.append)
    assert more == []


@pytest.mark.parametrize(("units", "kept"), [("A", [("CP1", {0: 3})]), ("A,W", [("CP1", {0: 3})])])
def test_the_phases_ride_on_the_boots_read_and_are_kept_in_either_unit(
    units: str, kept: list[tuple[str, dict[int, int]]]
) -> None:
    w = world(metering=True)
    del w.backend.units["CP1"]

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        said = {rate_units.key(V201): units, ocpp_phases.key(V201): "3"}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, said.get(k, "60")) for k in command.keys),
        )

    w.decide_and_run(ChargerBooted(AT, "CP1", V201), answer)
    (read,) = [c for c in w.commands() if isinstance(c, cmd.GetSettings)]
    assert ocpp_phases.key(V201) in read.keys
    assert w.backend.recorded("phases_learned") == kept


def test_a_201_boot_reads_each_evses_own_phases_beside_the_stations() -> None:
    """An EVSE's `EVSE.SupplyPhases` overrides the station's for its connector (evseId = number)."""
    w = world(metering=True)
    del w.backend.units["CP1"]
    w.backend.connectors["CP1"] = (1, 2)
    evse = {n: cmd.SettingKey("SupplyPhases", "EVSE", evse=n) for n in (1, 2)}

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        said = {rate_units.key(V201): "A", ocpp_phases.key(V201): "3", evse[2]: "1"}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, said.get(k, "60")) for k in command.keys),
        )

    w.decide_and_run(ChargerBooted(AT, "CP1", V201), answer)
    (read,) = [c for c in w.commands() if isinstance(c, cmd.GetSettings)]
    assert read.keys[-4:] == (ocpp_phases.key(V201), ocpp_phases.SWITCH_KEYS[V201], evse[1], evse[2])
    # EVSE 1 answered 60: more phases than there are, so it says nothing and the station's stands.
    assert w.backend.recorded("phases_learned") == [("CP1", {0: 3, 2: 1})]


def test_phases_asked_when_limits_are_due_name_the_evses_too() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    w.backend.connectors["CP1"] = (1,)
    del w.backend.wiring["CP1"]
    w.decide_and_run(THREE_PHASE, amps_only_wired("3"))
    assert ocpp_phases.GetPhases((1,)) in w.commands()


@pytest.mark.parametrize(("version", "declared"), [(V201, "\u00b2"), (V16, "\u00b2.RST, 1.RST")])
def test_a_boot_whose_phases_are_garbage_is_still_set_up(version: OcppVersion, declared: str) -> None:
    """A superscript two is a digit to str.isdigit but not to int(): the setting read at boot is
    the charger's word, and garbage in it must not end the boot's setup (the owner's settings
    under the regulations, and the metering report) with an exception."""
    w = world(metering=True)
    w.backend.settings = SETTINGS
    del w.backend.units["CP1"]

    def answer(command: cmd.Command[Any]) -> cmd.CommandResult[Any]:
        if not isinstance(command, cmd.GetSettings):
            return DONE
        said = {rate_units.key(version): "A", ocpp_phases.key(version): declared}
        return cmd.Done(
            cmd.Status.ACCEPTED,
            tuple(cmd.SettingValue(k, cmd.Status.ACCEPTED, said.get(k, "60")) for k in command.keys),
        )

    w.decide_and_run(ChargerBooted(AT, "CP1", version), answer)
    assert w.backend.recorded("phases_learned") == ([] if version == V201 else [("CP1", {1: 3})])
    assert w.commands()[-len(ocpp_smart.settings_commands(SETTINGS)) :] == list(
        ocpp_smart.settings_commands(SETTINGS)
    )


def test_an_override_to_a_three_phase_charger_taking_amps_goes_on_its_three_phases() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    w.backend.wiring["CP1"] = {0: 3}
    w.decide_and_run(OverrideDue(AT, "CP1", 1, 7, 22_000), refusing_watts)
    (profile,) = [c for c in w.commands() if isinstance(c, cmd.SetChargingProfile)]
    assert [(p.limit, p.phases) for p in profile.profile.periods] == [(31, 3)]  # 21,390 W of 22,000


def test_a_v2g_profile_in_amps_never_asks_the_phases() -> None:
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    del w.backend.wiring["CP1"]
    w.decide_and_run(ExportDue(AT, "CP1", 1, 7, 7_400, ((0, 3_600),)), refusing_watts)
    assert not any(isinstance(c, ocpp_phases.GetPhases) for c in w.commands())
    assert w.backend.recorded("phases") == []


# ---- what a charger took or refused of the commands owed to a session -----------------------------
REFUSED = cmd.Rejected(cmd.Status.REJECTED, None)
# The charger is on the link but gave no answer: no reply in time, or a reply that is none.
UNANSWERED: list[cmd.CommandResult[Any]] = [
    cmd.Timeout(30.0),
    cmd.Malformed("FormatViolation"),
    cmd.Malformed("PropertyConstraintViolation"),
]
# It never reached a charger, or the link dropped: sent again when the charger connects.
UNSENT: list[cmd.CommandResult[Any]] = [cmd.NotConnected(DISCONNECTED_BEFORE_ANSWER), cmd.NotConnected()]


@pytest.mark.parametrize(
    ("refuse", "answer", "taken", "refused", "unanswered"),
    [
        (None, DONE, [(5,)], [], []),
        (cmd.AllowEnergyTransfer, REFUSED, [], [(5,)], []),
        (cmd.SetChargingProfile, REFUSED, [], [(5,)], []),
        (cmd.AllowEnergyTransfer, cmd.CallError("NotSupported"), [], [(5,)], []),
        (cmd.AllowEnergyTransfer, cmd.CallError("FormatViolation"), [], [(5,)], []),
        *((cmd.AllowEnergyTransfer, u, [], [], [(5,)]) for u in UNANSWERED),
        *((cmd.SetChargingProfile, u, [], [], [(5,)]) for u in UNANSWERED),
        *((cmd.AllowEnergyTransfer, u, [], [], []) for u in UNSENT),
        *((cmd.SetChargingProfile, u, [], [], []) for u in UNSENT),
    ],
)
def test_a_v2g_export_refused_or_unanswered_moves_its_back_off_on_and_one_unsent_changes_nothing(
    refuse: type[cmd.Command[Any]] | None,
    answer: cmd.CommandResult[Any],
    taken: list[tuple[int]],
    refused: list[tuple[int]],
    unanswered: list[tuple[int]],
) -> None:
    w = world()
    w.decide_and_run(EXPORT, lambda c: answer if refuse and isinstance(c, refuse) else DONE)
    assert w.backend.recorded("export_taken") == taken
    assert w.backend.recorded("export_refused") == refused
    assert w.backend.recorded("export_unanswered") == unanswered


@pytest.mark.parametrize(
    ("answer", "taken", "refused", "unanswered"),
    [
        (DONE, [(5,)], [], []),
        (REFUSED, [], [(5,)], []),
        (cmd.CallError("NotSupported"), [], [(5,)], []),
        *((u, [], [], [(5,)]) for u in UNANSWERED),
        *((u, [], [], []) for u in UNSENT),
    ],
)
def test_an_override_taken_is_owed_no_more_refused_or_unanswered_moves_its_back_off_on(
    answer: cmd.CommandResult[Any],
    taken: list[tuple[int]],
    refused: list[tuple[int]],
    unanswered: list[tuple[int]],
) -> None:
    w = world()
    w.decide_and_run(override(), lambda _c: answer)
    assert w.backend.recorded("override_taken") == taken
    assert w.backend.recorded("override_refused") == refused
    assert w.backend.recorded("override_unanswered") == unanswered


def test_an_override_whose_session_ended_meanwhile_is_never_sent() -> None:
    w = world(here=set(), elsewhere={"CP1"})
    w.backend.ended.add(5)
    w.decide_and_run(override())
    assert w.commands() == []
    assert w.backend.recorded("override_taken") == w.backend.recorded("override_refused") == []


def test_an_override_owed_on_connecting_is_recorded_taken() -> None:
    w = world()
    w.backend.overrides = [override(5)]
    w.run(w.policy.connected("CP1"))
    assert w.backend.recorded("override_taken") == [(5,)]


def test_an_override_to_a_charger_reachable_nowhere_is_left_owed() -> None:
    w = world(here=set())
    assert w.decide_and_run(override()) == []


@pytest.mark.parametrize("here", [{"CP1"}, set()], ids=["linked here", "elsewhere"])
def test_a_driver_overriding_a_running_session_is_told_at_once_not_behind_a_reply(here: set[str]) -> None:
    """No frame of the charger's is being answered: waiting for a reply would wait for its next frame."""
    w = world(here=here, elsewhere={"CP1"})
    (order,) = w.decide_and_run(replace(override(), at_start=False))
    assert order.after_reply is False
    assert w.commands() == [ocpp_smart.override_command(1, 5, 7_400)]


def test_the_sweep_asks_only_for_the_overrides_and_exports_its_back_off_allows() -> None:
    w = world()
    w.backend.overrides = [override(5), override(6)]
    w.backend.exports = [EXPORT, replace(EXPORT, session_id=7)]
    w.run([w.policy.owed("CP1", only=frozenset({("override", 6), ("export", 5)}))])
    assert w.commands() == [
        ocpp_smart.override_command(1, 6, 7_400),
        *ocpp_v2g.export_commands(1, 5, 7_400, ((600, 1_200),), AT),
    ]


def test_a_charger_that_does_not_say_its_phases_is_limited_on_those_its_connector_was_seen_on() -> None:
    """Asked first with its limits and saying nothing, the phases its connector was seen drawing on
    (kept beside what it says, `ChargerReportsService.phases_seen`) stand: read again once kept."""
    w = world()
    w.backend.units["CP1"] = AMPS_ONLY
    del w.backend.wiring["CP1"]
    learned = w.backend.phases_learned

    def with_seen(cp_id: str, phases: Mapping[int, int]) -> bool:
        changed = learned(cp_id, phases)
        w.backend.wiring[cp_id] = ocpp_phases.with_seen(ocpp_phases.Wiring(phases), {1: 3})
        return changed

    w.backend.phases_learned = with_seen  # type: ignore[method-assign]
    w.decide_and_run(THREE_PHASE, amps_only_wired("0"))
    assert w.backend.recorded("phases") == [("CP1",), ("CP1",)]
    assert [(p.limit, p.phases) for p in shares(w)] == [(15, 3)]
