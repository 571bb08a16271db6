"""Which command goes to which charger, decided from the services' events: one policy for the OCPP
server (`ChargerRegistry`) and the DES engine (`DesCentral`).

`CommandPolicy` is sans-I/O. Given an event, or a charger's link opening or closing, it returns
`Order`s: a charger and a command script (chargeshare/ocpp/scripts.py) that sends the commands and
records the answers. The engine holding the links runs each script with its own I/O. The policy asks
the engine only what `Links` says (is a charger reachable from here, is its link held here), and
keeps the one memory deciding needs: the stops sent, and the sessions whose missing events were
asked about.

A new kind of event is one handler: a method returning the orders, entered in `_handlers`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from chargeshare.domain.errors import Busy, NotFound
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.ocpp import V201, OcppVersion, family, metering_setup, rate_units
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import grid_limits as ocpp_grid
from chargeshare.ocpp import phases as ocpp_phases
from chargeshare.ocpp import smart_charging as ocpp_smart
from chargeshare.ocpp import v2g as ocpp_v2g
from chargeshare.ocpp.metering import MeteringPolicy
from chargeshare.ocpp.scripts import Effect, Issue, Order, Script, Send, Step
from chargeshare.services.events import (
    BookingEnded,
    CertificateIssued,
    ChargerBooted,
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
from chargeshare.services.owed_commands import Dues

log = logging.getLogger(__name__)

T = TypeVar("T")

# The link closed after the call was sent: the charger may have acted on it.
DISCONNECTED_BEFORE_ANSWER = "disconnected before answering"
# A booking's reservation the charger may hold: cancelled when the booking ends.
HELD_RESERVATIONS = ("sent", "accepted")


class Links(Protocol):
    """What the policy needs to know of the engine's links."""

    def reachable(self, cp_id: str) -> bool:
        """A command sent now could reach the charger (over a link here, or through the process
        holding its link)."""
        ...

    def linked_here(self, cp_id: str) -> bool:
        """The charger's link is held here, so a command can follow the answer being made on it."""
        ...


class Bookings(Protocol):
    def reservations_unanswered(self, cp_id: str) -> list[ReservationDue]: ...
    def cancellations_unanswered(self, cp_id: str) -> list[BookingEnded]: ...
    def reservation_answered(self, booking_id: int, status: str) -> bool: ...
    def reservation_unanswered(self, booking_id: int) -> bool: ...
    def reservation_cancelled(self, booking_id: int) -> None: ...


class Stops(Protocol):
    def stops_due(self, cp_id: str) -> list[EnergyLimitReached]: ...


class Smart(Protocol):
    def settings_due(self, charge_point_id: str) -> SmartSettings | None: ...
    def overrides_due(self, charge_point_id: str) -> list[OverrideDue]: ...
    def session_running(self, session_id: int) -> bool: ...
    def override_taken(self, session_id: int) -> None: ...
    def override_refused(self, session_id: int) -> object: ...
    def override_unanswered(self, session_id: int) -> object: ...


class Exports(Protocol):
    def exports_due(self, charge_point_id: str) -> list[ExportDue]: ...
    def export_taken(self, session_id: int) -> None: ...
    def export_refused(self, session_id: int) -> object: ...
    def export_unanswered(self, session_id: int) -> object: ...


class Grid(Protocol):
    def limits_due(self, charge_point_id: str) -> GridLimitsDue | None: ...
    def limits_delivered(self, charge_point_id: str, decision: int) -> None: ...


class Reports(Protocol):
    def record(self, cp_id: str, action: str, summary: str, body: Mapping[str, Any]) -> bool: ...
    def rate_units(self, cp_id: str) -> frozenset[str] | None: ...
    def rate_units_learned(self, cp_id: str, units: frozenset[str]) -> bool: ...
    def phases(self, cp_id: str) -> dict[int, int] | None: ...
    def phases_learned(self, cp_id: str, phases: Mapping[int, int]) -> bool: ...
    def connector_numbers(self, cp_id: str) -> tuple[int, ...]: ...


def maybe_delivered(result: cmd.CommandResult[Any]) -> bool:
    """A command that ended without an answer, yet may have reached the charger."""
    return isinstance(result, cmd.Timeout) or result == cmd.NotConnected(DISCONNECTED_BEFORE_ANSWER)


class CommandPolicy:
    def __init__(
        self,
        links: Links,
        *,
        bookings: Bookings,
        charging: Stops,
        smart: Smart,
        grid: Grid,
        reports: Reports,
        metering: MeteringPolicy | None,
        exports: Exports | None = None,
        dues: Callable[[str], Dues] | None = None,
    ) -> None:
        """`metering`: the sampling asked of every charger after its accepted boot (None: left as is).
        `dues`: what a charger is owed when it connects, read at once (`owed_commands.due_at_connect`);
        None asks the services one by one (`exports`: the V2G exports due; None, no V2G)."""
        self.dues = dues
        self.exports = exports
        self.links = links
        self.bookings = bookings
        self.charging = charging
        self.smart = smart
        self.grid = grid
        self.reports = reports
        self.metering = metering
        # Sessions (by id, with their charger) whose stop was sent and taken: not asked again at
        # every reading over the limit. Forgotten once the session stops, once the stop fails, or
        # once the charger's link here opens or closes: a charger that comes back with the session
        # still open is asked again (it may have lost the stop).
        self._stops_sent: dict[int, str] = {}
        self._gaps_asked: set[int] = set()  # sessions whose missing events were asked about
        # Grid limits go to a charger one round at a time, so an earlier decision's commands can
        # never land after a later one's: the round in flight (by a token, so a round left over
        # from a closed link cannot end a newer one), chargers with a newer decision waiting for it,
        # and the latest decision number each charger was sent (an older event arriving late is stale).
        self._grid_sending: dict[str, object] = {}
        self._grid_again: set[str] = set()
        self._grid_latest: dict[str, int] = {}
        # Chargers taking W whose phases are being asked apart from their limits (by a token, as the
        # rounds are), so limits never wait on that read and one read is in flight at a time.
        self._phases_asking: dict[str, object] = {}
        self._handlers: dict[type[Event], Callable[[Any], list[Order]]] = {
            EnergyLimitReached: self._energy_limit,
            ReservationDue: self._reservation_due,
            BookingEnded: self._booking_ended,
            SessionStopped: self._session_ended,
            SessionClosedWithoutStop: self._session_ended,
            ChargerBooted: self._booted,
            SmartSettingsChanged: self._smart_settings_changed,
            OverrideDue: self._override_due,
            CertificateIssued: self._certificate_issued,
            TransactionEventsMissing: self._events_missing,
            ConnectorStatusWanted: self._status_wanted,
            GridLimitsDue: self._grid_limits_due,
            ExportDue: self._export_due,
        }

    @property
    def events(self) -> tuple[type[Event], ...]:
        """The kinds of event the policy decides on: an engine subscribes `decide` to each."""
        return tuple(self._handlers)

    @property
    def stops_sent(self) -> Mapping[int, str]:
        """Session id -> charger, of the stops sent and not yet forgotten."""
        return dict(self._stops_sent)

    def decide(self, event: Event) -> list[Order]:
        handler = self._handlers.get(type(event))
        return [] if handler is None else handler(event)

    # ---- links -----------------------------------------------------------------------------------
    def connected(self, cp_id: str) -> list[Order]:
        """The charger's link opened here: what it is owed is asked again."""
        return [self.owed(cp_id)]

    def disconnected(self, cp_id: str) -> None:
        """Its link here closed: a stop sent on it may be lost, and is sent again when it is due;
        grid limits in flight on it fail, and are sent again on connecting (still owed)."""
        self._forget_stops_sent(cp_id)
        self._grid_sending.pop(cp_id, None)
        self._grid_again.discard(cp_id)
        self._grid_latest.pop(cp_id, None)
        self._phases_asking.pop(cp_id, None)

    def owed(self, cp_id: str, *, only: frozenset[tuple[str, int]] | None = None) -> Order:
        """What was decided for this charger and never acknowledged (reservations still "sent",
        cancelled ones it may still hold, stops still due, overrides and V2G exports for its running
        sessions but those it refused too often), and its site and feeder limits as last decided,
        asked again. The database, not any process's memory, says what. `only` (the sweep's):
        the overrides and exports, as (kind, session), whose back-off lets them be asked now."""
        return Order(cp_id, self._owed(cp_id, only))

    def _owed(self, cp_id: str, only: frozenset[tuple[str, int]] | None = None) -> Script:
        try:
            reservations, cancellations, stops, overrides, exports = yield Effect(self._due, (cp_id,))
        except NotFound:
            return  # an unregistered charger: nothing is ever decided for it
        except Busy as exc:
            log.warning("could not look up what %r is due (asked when it next connects): %s", cp_id, exc)
            return
        orders = [o for r in reservations for o in self._reservation_due(r)]
        orders += [o for c in cancellations for o in self._booking_ended(c)]
        self._forget_stops_sent(cp_id)  # sent on a link before this one: asked again
        orders += [o for s in stops for o in self._energy_limit(s)]
        if only is not None:
            overrides = [o for o in overrides if ("override", o.session_id) in only]
            exports = [e for e in exports if ("export", e.session_id) in only]
        orders += [Order(cp_id, self._send_override(cp_id, o)) for o in overrides]
        orders += [Order(cp_id, self._allow_export(cp_id, e)) for e in exports]
        try:
            limits = yield Effect(self.grid.limits_due, (cp_id,))
        except (NotFound, Busy) as exc:
            log.warning(
                "could not read %r's site and feeder limits (sent at the next decision): %s", cp_id, exc
            )
        else:
            if limits is not None:
                orders += self._grid_round(limits)
        yield Issue(tuple(orders))

    def _due(self, cp_id: str) -> Dues:
        if self.dues is not None:
            return self.dues(cp_id)
        return (
            self.bookings.reservations_unanswered(cp_id),
            self.bookings.cancellations_unanswered(cp_id),
            self.charging.stops_due(cp_id),
            self.smart.overrides_due(cp_id),
            [] if self.exports is None else self.exports.exports_due(cp_id),
        )

    # ---- stops -----------------------------------------------------------------------------------
    def _energy_limit(self, event: EnergyLimitReached) -> list[Order]:
        cp_id, session_id = event.charge_point_id, event.transaction_id
        if not self.links.reachable(cp_id) or session_id in self._stops_sent:
            return []
        self._stops_sent[session_id] = cp_id
        return [Order(cp_id, self._stop(cp_id, session_id))]

    def _stop(self, cp_id: str, session_id: int) -> Script:
        if not (yield from self._logged(cp_id, cmd.StopCharging(session_id))):
            self._stops_sent.pop(session_id, None)  # the next reading over the limit, or a reconnect, asks

    def _session_ended(self, event: SessionStopped | SessionClosedWithoutStop) -> list[Order]:
        self._stops_sent.pop(event.session_id, None)
        self._gaps_asked.discard(event.session_id)
        return []

    def _forget_stops_sent(self, cp_id: str) -> None:
        for session_id in [s for s, cp in self._stops_sent.items() if cp == cp_id]:
            del self._stops_sent[session_id]

    # ---- reservations ----------------------------------------------------------------------------
    def _reservation_due(self, event: ReservationDue) -> list[Order]:
        if not self.links.reachable(event.charge_point_id):
            return []  # offline: the booking stands, and the backend alone refuses other drivers
        command = cmd.Reserve(event.booking_id, event.connector_no, event.id_tag, event.expires_at)
        return [self.reserve(event.charge_point_id, command)]

    def reserve(self, cp_id: str, command: cmd.Reserve) -> Order:
        """ReserveNow, and its answer recorded on the booking."""
        return Order(cp_id, self._reserve(cp_id, command))

    def _reserve(self, cp_id: str, command: cmd.Reserve) -> Script:
        result = yield Send(command)
        if isinstance(result, cmd.Done | cmd.Rejected):
            # A refusal fails the booking and releases its hold.
            try:
                ended = yield Effect(
                    self.bookings.reservation_answered, (command.reservation_id, result.status.value)
                )
            except Exception:
                log.exception("recording %s's answer to ReserveNow %s failed", cp_id, command.reservation_id)
                return
            if ended:  # cancelled while the ReserveNow was on its way
                yield from self._cancel_reservation(cp_id, command.reservation_id)
            return
        log.warning(
            "ReserveNow for booking %s to %s got no answer: %s", command.reservation_id, cp_id, result
        )
        if maybe_delivered(result):
            # The charger may hold it (its answer was lost, or the process carrying it died):
            # "sent" keeps it on record, asked again when the charger connects and cancelled
            # with its booking. Back to "none", nothing would ever cancel it at the charger,
            # and its connector, shown Reserved, would never be asked again by the sweep.
            return
        # It reached no charger: the next sweep asks again (a routing gap costs one sweep).
        try:
            yield Effect(self.bookings.reservation_unanswered, (command.reservation_id,))
        except Exception:
            log.exception("could not mark ReserveNow %s unanswered", command.reservation_id)

    def _booking_ended(self, event: BookingEnded) -> list[Order]:
        if not self.links.reachable(event.charge_point_id) or event.reservation not in HELD_RESERVATIONS:
            return []
        return [
            Order(event.charge_point_id, self._cancel_reservation(event.charge_point_id, event.booking_id))
        ]

    def _cancel_reservation(self, cp_id: str, booking_id: int) -> Script:
        """CancelReservation; once the charger holds it no more (cancelled, or it had none), that is
        recorded. Otherwise the booking's reservation stays on record, asked again on connecting."""
        result = yield Send(cmd.CancelReservation(booking_id))
        if not isinstance(result, cmd.Done | cmd.Rejected):
            log.warning("CancelReservation to %s: %s", cp_id, result)
            return
        try:
            yield Effect(self.bookings.reservation_cancelled, (booking_id,))
        except Exception:
            log.exception("recording %s's answer to CancelReservation %s failed", cp_id, booking_id)

    # ---- boot: metering and smart charging settings ------------------------------------------------
    def _booted(self, event: ChargerBooted) -> list[Order]:
        cp_id = event.charge_point_id
        if not self.links.linked_here(cp_id):
            return []
        # Only once the boot's answer has left: nothing may reach a charger before it.
        return [Order(cp_id, self._configure(cp_id, event.ocpp_version), after_reply=True)]

    def _configure(self, cp_id: str, version: OcppVersion) -> Script:
        """Metering first (if asked for), then the owner's smart charging settings, one command at a
        time."""
        if self.metering is not None:
            yield from self._configure_metering(cp_id, version, self.metering)
        yield from self._configure_smart_charging(cp_id)

    def _configure_metering(self, cp_id: str, version: OcppVersion, policy: MeteringPolicy) -> Script:
        """Bring the charger's sampling up to the rules, so billing has readings; what had to change,
        or could not, is kept among its reports for the operator."""
        # The units it takes schedules in, and its phases, ride on the same read (kept only when they
        # change what is sent).
        evses = (yield from self._evses(cp_id)) if family(version) == V201 else ()
        also = (rate_units.key(version), *ocpp_phases.keys(version, evses))
        setup = yield from metering_setup.configure(version, policy, also)
        if setup.read_failure is None:
            units = rate_units.from_read(version, setup.read)
            yield from self._boot_units(cp_id, units)
            said = ocpp_phases.from_read(version, setup.read)
            if said.said():  # the allocation's minimum depends on them, in W as in A
                yield from self._phases_learned(cp_id, said)
        if setup.needed_nothing:
            return
        # Retries left outside the lost-stop bound may lose a stop: warned of, charger and figures.
        log.log(logging.WARNING if setup.notes else logging.INFO, "%s metering: %s", cp_id, setup.summary())
        try:
            yield Effect(self.reports.record, (cp_id, "MeteringSetup", setup.summary(), setup.body()))
        except Exception:
            log.exception("keeping %s's metering setup failed", cp_id)

    def _configure_smart_charging(self, cp_id: str) -> Script:
        """The owner's choices and the DSR flag, if anyone set them: otherwise the charger's own
        defaults (the regulations' pre-configured ones) stand and nothing is sent."""
        try:
            settings = yield Effect(self.smart.settings_due, (cp_id,))
        except (NotFound, Busy) as exc:
            log.warning(
                "could not read %r's smart charging settings (sent when it next boots): %s", cp_id, exc
            )
            return
        if settings is not None:
            yield from self._send_smart_settings(cp_id, settings)

    def _send_smart_settings(self, cp_id: str, settings: SmartSettings) -> Script:
        for command in ocpp_smart.settings_commands(settings):
            if not (yield from self._logged(cp_id, command)):
                return  # the rest waits for the next boot, when every setting is sent again

    def _smart_settings_changed(self, event: SmartSettingsChanged) -> list[Order]:
        cp_id = event.charge_point_id
        if not self.links.reachable(cp_id):
            return []
        return [Order(cp_id, self._send_smart_settings(cp_id, event.settings))]

    def _override_due(self, event: OverrideDue) -> list[Order]:
        # Published while its start frame is handled, the charger learns of the transaction only
        # from our answer, so the override follows it. The driver overriding a running session:
        # at once, here or through the process holding the link.
        cp_id = event.charge_point_id
        if event.at_start:
            return self._after_reply_or_now(cp_id, self._send_override, event)
        return [Order(cp_id, self._send_override(cp_id, event))] if self.links.reachable(cp_id) else []

    def _send_override(self, cp_id: str, event: OverrideDue) -> Script:
        """The override TxProfile, in A to a charger taking A only, while its session runs. Taken,
        it is owed no more; refused or unanswered, it is asked again on the back-off (on
        connecting, or by the sweep): see `_outcome`."""
        try:
            if not (yield Effect(self.smart.session_running, (event.session_id,))):
                return  # ended meanwhile: an override is never sent after its session
        except (NotFound, Busy) as exc:
            log.warning(
                "could not read whether session %s runs (override owed still): %s", event.session_id, exc
            )
            return
        result = yield from self._in_units(
            cp_id,
            lambda unit, phases: ocpp_smart.override_command(
                event.connector_no,
                event.session_id,
                event.rating_w,
                unit,
                ocpp_phases.of_connector(phases, event.connector_no),
            ),
        )
        yield from self._outcome(
            cp_id,
            result,
            (self.smart.override_taken, self.smart.override_refused, self.smart.override_unanswered),
            event,
        )

    # ---- site and feeder limits (chargeshare/ocpp/grid_limits.py) ---------------------------------
    def _grid_limits_due(self, event: GridLimitsDue) -> list[Order]:
        if not self.links.reachable(event.charge_point_id):
            return []  # offline: owed, told on connecting or by the sweep
        return self._grid_round(event)

    def _grid_round(self, event: GridLimitsDue) -> list[Order]:
        cp_id = event.charge_point_id
        if event.decision and event.decision < self._grid_latest.get(cp_id, 0):
            return []  # a newer decision was sent or is on its way
        if cp_id in self._grid_sending:
            self._grid_again.add(cp_id)  # the round in flight reads the latest when it is done
            return []
        token = self._grid_sending[cp_id] = object()
        return [Order(cp_id, self._send_grid_limits(event, token))]

    def _send_grid_limits(self, event: GridLimitsDue, token: object) -> Script:
        """The charger-wide maximum, then each connector's share, in turn; once all are done the
        decision is acknowledged. Then the latest decision is read: one made meanwhile, here or in
        another process, goes out in a further round, so the charger ends on the latest."""
        cp_id = event.charge_point_id
        due = event
        try:
            while True:
                self._grid_latest[cp_id] = max(due.decision, self._grid_latest.get(cp_id, 0))
                yield from self._grid_commands(due)
                if self._grid_sending.get(cp_id) is not token:
                    return  # its link closed: a round on the new one sends the latest
                if not due.decision and cp_id not in self._grid_again:
                    return  # an unnumbered decision, and none since
                self._grid_again.discard(cp_id)  # what is decided from here on asks once more
                try:
                    latest = yield Effect(self.grid.limits_due, (cp_id,))
                except (NotFound, Busy) as exc:
                    log.warning("could not read %r's latest limits (the sweep sends them): %s", cp_id, exc)
                    return
                if latest is None or (due.decision and latest.decision <= due.decision):
                    return
                due = latest
        finally:
            if self._grid_sending.get(cp_id) is token:
                del self._grid_sending[cp_id]

    def _boot_units(self, cp_id: str, units: frozenset[cmd.RateUnit]) -> Generator[Step, Any, None]:
        """A-only is kept from a boot; so is taking W, only over a kept A-only (new firmware that
        takes W as well still takes A, so it never refuses it). Most chargers boot without a write."""
        if rate_units.amps_only(units):
            yield from self._rate_units_learned(cp_id, units)
            return
        if cmd.RateUnit.WATTS not in units:
            return  # it did not say: nothing kept is contradicted
        try:
            kept = yield Effect(self.reports.rate_units, (cp_id,))
        except Exception:  # the rest of its boot's setup still goes out
            log.exception("reading the units %s was kept as taking failed (read at its next boot)", cp_id)
            return
        if kept is not None and rate_units.amps_only(kept):
            yield from self._rate_units_learned(cp_id, units)

    def _unit_for(self, cp_id: str) -> Generator[Step, Any, tuple[cmd.RateUnit, bool]]:
        """The unit a profile goes to `cp_id` in: A in place of W for a charger that takes A only.
        What it said at boot is kept in the store; one never asked (its first profile, or an engine
        that reads no settings at boot) is asked here, before any profile. Unknown keeps W.
        Also whether the unit came from units kept before this send, which may be out of date when
        the charger refuses it."""
        try:
            units = yield Effect(self.reports.rate_units, (cp_id,))
        except (NotFound, Busy) as exc:
            log.warning("could not read the units %r takes (sent in W): %s", cp_id, exc)
            return cmd.RateUnit.WATTS, False
        kept = units is not None and bool(units)
        if units is None:
            units = yield from rate_units.learn()
            if units is None:
                return cmd.RateUnit.WATTS, False  # no answer: asked again with its next limits
            yield from self._rate_units_learned(cp_id, units)
        return rate_units.unit_for(units), kept

    def _units_again(self, cp_id: str) -> Generator[Step, Any, cmd.RateUnit | None]:
        """After a refusal of the unit taken from kept units: those may be out of date (new firmware,
        a stale report written last by another process), so the charger is asked again and what it
        says kept. The unit it takes now, or None if it did not answer."""
        units = yield from rate_units.learn()
        if units is None:
            return None
        yield from self._rate_units_learned(cp_id, units)
        return rate_units.unit_for(units)

    def _in_units(
        self,
        cp_id: str,
        command: Callable[[cmd.RateUnit, Mapping[int, int]], cmd.SetChargingProfile],
        *,
        on_phases: bool = True,
    ) -> Generator[Step, Any, cmd.CommandResult[Any]]:
        """Send a profile in the unit the charger takes (`_unit_for`; in A, with the phases it is
        wired to when the profile goes `on_phases`). Refused in a unit taken from kept units, they
        are asked again (`_units_again`), and if that names another unit it goes once more in it at
        once rather than at the next sweep (an override is owed to none)."""

        def wiring(unit: cmd.RateUnit) -> Generator[Step, Any, dict[int, int]]:
            if on_phases and unit is cmd.RateUnit.AMPS:
                return (yield from self._phases_for(cp_id))
            return {}

        unit, kept = yield from self._unit_for(cp_id)
        result: cmd.CommandResult[Any] = yield Send(command(unit, (yield from wiring(unit))))
        if kept and isinstance(result, cmd.Rejected | cmd.CallError):
            now = yield from self._units_again(cp_id)
            if now is not None and now is not unit:
                result = yield Send(command(now, (yield from wiring(now))))
        if not isinstance(result, cmd.Done):
            log.warning("SetChargingProfile to %s: %s", cp_id, result)
        return result

    def _rate_units_learned(self, cp_id: str, units: frozenset[cmd.RateUnit]) -> Generator[Step, Any, None]:
        try:
            yield Effect(self.reports.rate_units_learned, (cp_id, frozenset(units)))
        except Exception:
            log.exception("keeping the units %s takes schedules in failed (asked again)", cp_id)

    def _phases_for(self, cp_id: str) -> Generator[Step, Any, dict[int, int]]:
        """The phases a charger's connectors are wired to, and its switch to one phase
        (`ocpp_phases.Wiring`), for its limits: kept in the store, or asked here when never asked
        (as the units are), with those seen drawing where it says nothing. Unknown is empty: one phase
        each, no switch."""
        try:
            kept: dict[int, int] | None = yield Effect(self.reports.phases, (cp_id,))
        except (NotFound, Busy) as exc:
            log.warning("could not read the phases %r is wired to (held to one): %s", cp_id, exc)
            return {}
        if kept is not None:
            return kept
        said = yield from ocpp_phases.learn((yield from self._evses(cp_id)))
        if said is None:
            return {}  # no answer: asked again with its next limits
        yield from self._phases_learned(cp_id, said)
        if ocpp_phases.WHOLE_CHARGER not in said:
            # Where it said nothing, what a connector was seen drawing on stands, as in its allocation.
            try:
                kept = yield Effect(self.reports.phases, (cp_id,))
            except (NotFound, Busy) as exc:
                log.warning("could not read the phases %r was seen drawing on: %s", cp_id, exc)
            return kept or said
        return said

    def _evses(self, cp_id: str) -> Generator[Step, Any, tuple[int, ...]]:
        """The charger's connector numbers, which on 2.0.1 are its EVSE ids (none: not known)."""
        try:
            found: tuple[int, ...] = yield Effect(self.reports.connector_numbers, (cp_id,))
        except Exception:
            log.exception("could not read %s's connectors (its EVSEs' phases not asked)", cp_id)
            return ()
        return found

    def _phases_learned(self, cp_id: str, phases: Mapping[int, int]) -> Generator[Step, Any, None]:
        try:
            yield Effect(self.reports.phases_learned, (cp_id, phases))
        except Exception:
            log.exception("keeping the phases %s is wired to failed (asked again)", cp_id)

    def _phases_kept(self, cp_id: str) -> Generator[Step, Any, tuple[dict[int, int], bool]]:
        """The phases kept for a charger, never asking it (empty: unknown); and whether it was never
        asked."""
        try:
            kept: dict[int, int] | None = yield Effect(self.reports.phases, (cp_id,))
        except (NotFound, Busy) as exc:
            log.warning("could not read the phases %r is wired to (held to one): %s", cp_id, exc)
            return {}, False
        return ({}, True) if kept is None else (kept, False)

    def _ask_phases(self, cp_id: str, token: object) -> Script:
        """Ask a charger its phases and keep them, apart from its limits; a rise in what is kept has
        the grid decide again (`ChargerReportsService.phases_learned`)."""
        try:
            yield from self._phases_for(cp_id)
        finally:
            if self._phases_asking.get(cp_id) is token:
                del self._phases_asking[cp_id]

    def _grid_commands(self, due: GridLimitsDue) -> Generator[Step, Any, None]:
        cp_id = due.charge_point_id
        unit, kept = cmd.RateUnit.WATTS, False
        phases: dict[int, int] = {}
        unasked = False
        if due.limits_w:  # clearing names no unit
            unit, kept = yield from self._unit_for(cp_id)
            if unit is cmd.RateUnit.AMPS:
                phases = yield from self._phases_for(cp_id)  # in A the phases carry the limit
            else:
                # In W they only say a switch to one phase: the limits, safety lowerings included,
                # go on what is kept, and a charger never asked is asked once they are out.
                phases, unasked = yield from self._phases_kept(cp_id)
        yield from self._grid_send(due, unit, kept, phases)
        if unasked and cp_id not in self._phases_asking:
            token = self._phases_asking[cp_id] = object()
            yield Issue((Order(cp_id, self._ask_phases(cp_id, token)),))

    def _grid_send(
        self, due: GridLimitsDue, unit: cmd.RateUnit, kept: bool, phases: Mapping[int, int]
    ) -> Generator[Step, Any, None]:
        """Send the decision's profiles in `unit` on `phases`, and acknowledge it once all are done."""
        refused = yield from self._grid_profiles(due, due.steps, unit, phases)
        if due.steps and isinstance(refused, cmd.Rejected | cmd.CallError):
            # A charger holding fewer periods a profile than a step needs (ChargingScheduleMaxPeriods,
            # PeriodsPerSchedule) refuses it: its limits alone, the edge left to the decision at it.
            refused = yield from self._grid_profiles(due, (), unit, phases)
        if kept and isinstance(refused, cmd.Rejected | cmd.CallError):
            yield from self._units_again(due.charge_point_id)  # the decision, still owed, follows them
        if refused is not None:
            return  # the rest stays owed: sent again on connecting or by the sweep
        if not due.decision:
            return
        try:
            yield Effect(self.grid.limits_delivered, (due.charge_point_id, due.decision))
        except Exception:
            log.exception("recording that %s took its limits failed (sent again)", due.charge_point_id)

    def _grid_profiles(
        self,
        due: GridLimitsDue,
        steps: tuple[tuple[int, datetime, int], ...],
        unit: cmd.RateUnit,
        phases: Mapping[int, int],
    ) -> Generator[Send, Any, cmd.Failure | None]:
        """Send the decision's profiles, with `steps`, in `unit` (in A on `phases`), in turn; the
        first failure stops them."""
        for command in ocpp_grid.limit_commands(
            due.limits_w, due.at, steps, unit, phases, dict(due.phases_at_most)
        ):
            result: cmd.CommandResult[Any] = yield Send(command)
            if not isinstance(result, cmd.Done):
                log.warning("%s to %s: %s", type(command).__name__, due.charge_point_id, result)
                return result
        return None

    # ---- V2G (chargeshare/ocpp/v2g.py) ------------------------------------------------------------
    def _export_due(self, event: ExportDue) -> list[Order]:
        # Published while the start is handled: the session is the charger's once our answer is out.
        return self._after_reply_or_now(event.charge_point_id, self._allow_export, event)

    def _allow_export(self, cp_id: str, event: ExportDue) -> Script:
        """The transfer allowed, then the discharging profile; a refusal of the first sends no profile.
        Once both are taken (or no window is left to send) the export is no longer owed to the sweep;
        refused or unanswered, it is asked again on the back-off (`_outcome`)."""
        result: cmd.CommandResult[Any] | None = None  # no window left: nothing to take
        if event.windows:
            allow = cmd.AllowEnergyTransfer(event.session_id, ocpp_v2g.ALLOWED_TRANSFER)
            result = yield from self._sent(cp_id, allow)
            if isinstance(result, cmd.Done):
                result = yield from self._in_units(
                    cp_id,
                    lambda unit, _phases: ocpp_v2g.export_profile(
                        event.connector_no, event.session_id, event.rating_w, event.windows, event.at, unit
                    ),
                    on_phases=False,  # a discharge goes on one phase (chargeshare/ocpp/v2g.py)
                )
        if self.exports is not None:
            yield from self._outcome(
                cp_id,
                result,
                (self.exports.export_taken, self.exports.export_refused, self.exports.export_unanswered),
                event,
            )

    def _outcome(
        self,
        cp_id: str,
        result: cmd.CommandResult[Any] | None,
        records: tuple[Callable[[int], object], Callable[[int], object], Callable[[int], object]],
        event: OverrideDue | ExportDue,
    ) -> Generator[Step, Any, None]:
        """Record a command owed to a session as taken (owed no more), refused (its back-off moves
        on, to giving up), or unanswered by a charger on the link (no reply in time, or a reply
        that is no answer: its back-off moves on, never giving up). One that never reached a
        charger changes nothing: it goes again when the charger connects. None: nothing to send."""
        taken, refused, unanswered = records
        if result is None or isinstance(result, cmd.Done):
            record, what = taken, "took"
        elif isinstance(result, cmd.Timeout | cmd.Malformed):
            record, what = unanswered, "left unanswered"
        elif isinstance(result, cmd.Rejected | cmd.CallError):
            record, what = refused, "refused"
        else:
            return
        try:
            yield Effect(record, (event.session_id,))
        except Exception:
            log.exception("recording that %s %s %s failed (asked again)", cp_id, what, type(event).__name__)

    # ---- certificates ------------------------------------------------------------------------------
    def _certificate_issued(self, event: CertificateIssued) -> list[Order]:
        command = cmd.CertificateSigned(event.chain, event.certificate_type)
        # Published while its SignCertificate is handled: sent once the answer has left.
        return self._after_reply_or_now(event.charge_point_id, self._certificate_signed, command)

    def _certificate_signed(self, cp_id: str, command: cmd.CertificateSigned) -> Script:
        """Send the chain, and keep the charger's answer among its reports for operators to see (a
        charger refusing its own new certificate is something to look into)."""
        result = yield Send(command)
        said = result.status.value if isinstance(result, cmd.Done | cmd.Rejected) else str(result)
        try:
            yield Effect(self.reports.record, (cp_id, "CertificateSigned", f"sent: {said}", {"answer": said}))
        except Exception:
            log.exception("could not record %s's answer to CertificateSigned", cp_id)

    # ---- missing transaction events ----------------------------------------------------------------
    def _events_missing(self, event: TransactionEventsMissing) -> list[Order]:
        # Once per session: a charger numbering events across its EVSEs skips numbers all the time.
        if event.session_id in self._gaps_asked or not self.links.linked_here(event.charge_point_id):
            return []
        self._gaps_asked.add(event.session_id)
        return [Order(event.charge_point_id, self._transaction_status(event), after_reply=True)]

    def _transaction_status(self, gap: TransactionEventsMissing) -> Script:
        """Ask whether the missing events are still queued at the charger, and keep the answer
        among its reports for operators: queued ones will come; if none is queued, they are lost."""
        result = yield Send(cmd.GetTransactionStatus(gap.session_id))
        if isinstance(result, cmd.Done):
            queue = result.details
            said = "still queued at the charger" if queue.messages_in_queue else "not queued: lost"
            ongoing = {True: ", ongoing", False: ", ended", None: ""}[queue.ongoing]
        else:
            said, ongoing = f"not known ({result})", ""
        missing = f"seqNo {gap.first_missing}" + (
            f"-{gap.arrived - 1}" if gap.arrived - 1 > gap.first_missing else ""
        )
        summary = f"session {gap.session_id}: {missing} missing, {said}{ongoing}"
        cp_id = gap.charge_point_id
        try:
            yield Effect(
                self.reports.record, (cp_id, "GetTransactionStatus", summary, {"session": gap.session_id})
            )
        except Exception:
            log.exception("could not record %s's transaction status", cp_id)

    # ---- a connector's status, asked for ------------------------------------------------------------
    def _status_wanted(self, event: ConnectorStatusWanted) -> list[Order]:
        """Behind the start's answer: the triggered report follows it on the link, so the start is
        stored before the status that may free it."""
        command = cmd.TriggerMessage("StatusNotification", event.connector_no)
        return self._after_reply_or_now(event.charge_point_id, self._logged, command)

    # ---- helpers -----------------------------------------------------------------------------------
    def _after_reply_or_now(
        self, cp_id: str, script: Callable[[str, T], Generator[Step, Any, object]], what: T
    ) -> list[Order]:
        """`script` for `what` (a command, or the event it is made from), behind the answer being
        made on the charger's link here; failing that, at once if it is reachable through another
        process; unreachable, nothing (what is owed goes on connecting)."""
        if self.links.linked_here(cp_id):
            return [Order(cp_id, script(cp_id, what), after_reply=True)]
        if self.links.reachable(cp_id):
            return [Order(cp_id, script(cp_id, what))]
        return []

    def _sent(self, cp_id: str, command: cmd.Command[Any]) -> Generator[Send, Any, cmd.CommandResult[Any]]:
        """Send one command; anything but Done is logged. Returns its result."""
        result: cmd.CommandResult[Any] = yield Send(command)
        if not isinstance(result, cmd.Done):
            log.warning("%s to %s: %s", type(command).__name__, cp_id, result)
        return result

    def _logged(self, cp_id: str, command: cmd.Command[Any]) -> Generator[Send, Any, bool]:
        """Send one command; anything but Done is logged. Returns whether it was done."""
        return isinstance((yield from self._sent(cp_id, command)), cmd.Done)
