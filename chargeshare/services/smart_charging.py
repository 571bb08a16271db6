"""The UK's smart charging regulations on the backend's side: the owner's choices for each charger
(the randomised delay's maximum, its override, the default charging hours), the operator's DSR flag,
and a driver's override of a booking. The charger carries the duties out; the backend keeps these
durably and has them sent: settings when the charger boots and when they change (`SmartSettingsChanged`),
a driver's override when the session starts, when the driver overrides a running session, and
whenever the charger connects while it runs (`OverrideDue`). An override is owed until the session's
charger takes it: the sweep asks again, on the back-off a refusing charger earns
(services/owed_commands.py). See chargeshare/domain/smart_charge_points.py and
chargeshare/ocpp/smart_charging.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.errors import InvalidTransition, NotFound
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.services.clock import Clock
from chargeshare.services.events import MessageBus, OverrideDue, SessionStarted, SmartSettingsChanged
from chargeshare.services.owed_commands import not_given_up, record_refusal, record_unanswered
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.queries.tenancy import can_see
from chargeshare.services.records import ChargerView

_ENDED = frozenset({"completed", "cancelled", "expired", "failed"})
_Change = Callable[[SmartSettings], SmartSettings]


@dataclass(frozen=True)
class SmartChargingView:
    charger_id: int
    charge_point_id: str
    settings: SmartSettings
    configured: bool  # False: nobody chose anything, the charger's own (the regulations') defaults stand


class SmartChargingService:
    def __init__(self, store: Store, bus: MessageBus, clock: Clock, backoff: Backoff | None = None) -> None:
        """`backoff`: how a charger refusing a driver's override is asked again."""
        self.store, self.bus, self.clock = store, bus, clock
        self.backoff = backoff or Backoff()
        bus.subscribe(SessionStarted, self._on_session_started)

    # ---- reading ----------------------------------------------------------------------------------
    def view(self, charger_id: int, *, host_id: int | None = None) -> SmartChargingView:
        """A charger's settings; with `host_id`, only that host's charger (another's is NotFound)."""
        with self.store.reading() as tx:
            charger = self._charger(tx, charger_id, host_id)
            settings = tx.smart.settings(charger_id)
        return SmartChargingView(
            charger_id, charger.charge_point_id, settings or SmartSettings(), settings is not None
        )

    def settings_due(self, charge_point_id: str) -> SmartSettings | None:
        """What a charger is sent when it boots: the settings chosen for it, if any were."""
        with self.store.reading() as tx:
            return tx.smart.settings(tx.chargers.get(charge_point_id).charger_id)

    def overrides_due(self, charge_point_id: str) -> list[OverrideDue]:
        """The overrides a charger holds for its running sessions: sent again when it connects, since
        it may have rebooted, or never heard the first."""
        with self.store.reading() as tx:
            return self.overrides_due_in(tx, tx.chargers.get(charge_point_id))

    def overrides_due_in(self, tx: UnitOfWork, charger: ChargerView) -> list[OverrideDue]:
        """The same, read in the caller's unit of work (see `owed_commands.due_at_connect`); none
        the charger refused too often."""
        now = self.clock.now()
        running = [(c, tx.sessions.open_on(c.connector_id)) for c in charger.connectors]
        open_ = [(c, s) for c, s in running if s is not None]
        overridden = tx.smart.overridden([s.booking_id for _, s in open_])
        askable = not_given_up(
            tx, OwedKind.OVERRIDE, [s.session_id for _, s in open_ if s.booking_id in overridden]
        )
        return [
            OverrideDue(now, charger.charge_point_id, c.connector_no, s.session_id, c.max_power_w)
            for c, s in open_
            if s.session_id in askable
        ]

    def session_running(self, session_id: int) -> bool:
        """Whether the session is still open (an override is sent only while it runs)."""
        with self.store.reading() as tx:
            session = tx.sessions.get(session_id)
        return session is not None and session.status is SessionStatus.CHARGING

    def override_taken(self, session_id: int) -> None:
        """The session's charger took its override: no longer owed to the sweep (still sent on
        connecting, in case the charger lost it), and its refusals forgotten."""
        with self.store.transaction() as tx:
            session = tx.sessions.get(session_id)
            if session is not None:
                tx.smart.override_taken(session.booking_id, session_id)
                tx.refusals.clear(session_id, OwedKind.OVERRIDE)

    def override_refused(self, session_id: int) -> Refusals | None:
        """The session's charger refused its override: asked again on the back-off, or never again
        for the session once it gives up."""
        return record_refusal(self.store, self.backoff, OwedKind.OVERRIDE, session_id, self.clock.now())

    def override_unanswered(self, session_id: int) -> Refusals | None:
        """A send of the session's override went unanswered: asked again on the back-off, for as
        long as it is owed."""
        return record_unanswered(self.store, self.backoff, OwedKind.OVERRIDE, session_id, self.clock.now())

    # ---- the owner's and the operator's choices ---------------------------------------------------
    def set_owner_choices(
        self,
        charger_id: int,
        *,
        randomised_delay_max_s: int,
        randomised_delay_override: bool,
        default_charging_hours: bool,
        host_id: int | None = None,
    ) -> SmartChargingView:
        """The owner accepts, changes or removes the defaults (regulations 10 and 11); the DSR flag is
        the operator's and stays as it is. With `host_id`, only that host's charger."""
        return self._change(
            charger_id,
            host_id,
            lambda s: SmartSettings(
                randomised_delay_max_s=randomised_delay_max_s,
                randomised_delay_override=randomised_delay_override,
                default_charging_hours=default_charging_hours,
                demand_side_response=s.demand_side_response,
            ),
        )

    def set_demand_side_response(self, charger_id: int, active: bool) -> SmartChargingView:
        """The operator says whether the charger is providing response DSR services now: while it
        is, the randomised delay does not operate."""
        return self._change(charger_id, None, lambda s: replace(s, demand_side_response=active))

    def _change(self, charger_id: int, host_id: int | None, change: _Change) -> SmartChargingView:
        now = self.clock.now()
        with self.store.transaction() as tx:
            charger = self._charger(tx, charger_id, host_id)
            settings = change(tx.smart.settings(charger_id) or SmartSettings())
            tx.smart.save(charger_id, settings, now)
        self.bus.publish(SmartSettingsChanged(now, charger.charge_point_id, settings))
        return SmartChargingView(charger_id, charger.charge_point_id, settings, True)

    @staticmethod
    def _charger(tx: UnitOfWork, charger_id: int, host_id: int | None) -> ChargerView:
        charger = tx.chargers.by_id(charger_id)
        if host_id is not None and charger.host_id != host_id:
            raise NotFound(f"no charger {charger_id}")  # another host's: as if it did not exist
        return charger

    # ---- a driver's override ----------------------------------------------------------------------
    def override(self, who: Principal, booking_id: int) -> bool:
        """The booking's driver overrides the randomised delay and default charging hours ("charge
        now"), before or during its session. Running, the session's charger is told at once through
        whichever process holds its link (`OverrideDue`), and it stays owed until taken. Another
        driver's booking is NotFound, an ended one InvalidTransition. Returns whether a session was
        running (so the charger was told now)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            if who.role is not Role.DRIVER or not can_see(who, tx.bookings.get(booking_id)):
                raise NotFound(f"no booking {booking_id}")  # before any lock: nobody else's row held
            # The booking's row, which a start changes before it adds its session: a start
            # meanwhile commits first and its session is found running here, or waits for this
            # and its own send (`_on_session_started`) finds the override. Never neither.
            tx.bookings.lock(booking_id)
            booking = tx.bookings.get(booking_id)
            if str(booking.status) in _ENDED:
                raise InvalidTransition(f"booking {booking_id} has ended: nothing left to override")
            tx.smart.add_override(booking_id, now)
            session = tx.sessions.open_on(booking.connector_id)
            running = session is not None and session.booking_id == booking_id
        if running:
            assert session is not None
            self._publish_override(session.session_id, now, at_start=False)
        return running

    def _on_session_started(self, event: SessionStarted) -> None:
        with self.store.reading() as tx:
            if not tx.smart.overridden([event.booking_id]):
                return
        self._publish_override(event.session_id, event.at)

    def _publish_override(self, session_id: int, at: datetime, *, at_start: bool = True) -> None:
        with self.store.reading() as tx:
            cp_id = tx.sessions.charger_of(session_id)
            session = tx.sessions.get(session_id)
            charger = None if cp_id is None else tx.chargers.get(cp_id)
        if charger is None or session is None:
            return
        c = next(c for c in charger.connectors if c.connector_id == session.connector_id)
        self.bus.publish(
            OverrideDue(at, charger.charge_point_id, c.connector_no, session_id, c.max_power_w, at_start)
        )
