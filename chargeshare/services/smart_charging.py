"""The UK's smart charging regulations on the backend's side: the owner's choices for each charger
(the randomised delay's maximum, its override, the default charging hours), the operator's DSR flag,
and a driver's override of a booking. The charger carries the duties out; the backend keeps these
durably and has them sent: settings when the charger boots and when they change (`SmartSettingsChanged`),
a driver's override when the session starts and whenever the charger connects while it runs
(`OverrideDue`). See chargeshare/domain/smart_charge_points.py and chargeshare/ocpp/smart_charging.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from chargeshare.domain.errors import NotFound
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.services.clock import Clock
from chargeshare.services.events import MessageBus, OverrideDue, SessionStarted, SmartSettingsChanged
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.records import ChargerView

_Change = Callable[[SmartSettings], SmartSettings]


@dataclass(frozen=True)
class SmartChargingView:
    charger_id: int
    charge_point_id: str
    settings: SmartSettings
    configured: bool  # False: nobody chose anything, the charger's own (the regulations') defaults stand


class SmartChargingService:
    def __init__(self, store: Store, bus: MessageBus, clock: Clock) -> None:
        self.store, self.bus, self.clock = store, bus, clock
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
        """The same, read in the caller's unit of work (see `owed_commands.due_at_connect`)."""
        now = self.clock.now()
        running = [(c, tx.sessions.open_on(c.connector_id)) for c in charger.connectors]
        open_ = [(c, s) for c, s in running if s is not None]
        overridden = tx.smart.overridden([s.booking_id for _, s in open_])
        return [
            OverrideDue(now, charger.charge_point_id, c.connector_no, s.session_id, c.max_power_w)
            for c, s in open_
            if s.booking_id in overridden
        ]

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
    def _on_session_started(self, event: SessionStarted) -> None:
        with self.store.reading() as tx:
            if not tx.smart.overridden([event.booking_id]):
                return
            cp_id = tx.sessions.charger_of(event.session_id)
            session = tx.sessions.get(event.session_id)
            charger = None if cp_id is None else tx.chargers.get(cp_id)
        if charger is None or session is None:
            return
        connector = next(c for c in charger.connectors if c.connector_id == session.connector_id)
        self.bus.publish(
            OverrideDue(
                event.at,
                charger.charge_point_id,
                connector.connector_no,
                event.session_id,
                connector.max_power_w,
            )
        )
