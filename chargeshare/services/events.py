"""Domain events and the in-process bus that fans them out (to chargers, apps, observers)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.ocpp import OcppVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    at: datetime


@dataclass(frozen=True)
class ChargerOnline(Event):
    charge_point_id: str


@dataclass(frozen=True)
class ChargerOffline(Event):
    charge_point_id: str


@dataclass(frozen=True)
class ChargerBooted(Event):
    """A registered charger's BootNotification was accepted: it may be configured (metering)."""

    charge_point_id: str
    ocpp_version: OcppVersion


@dataclass(frozen=True)
class TransactionEventsMissing(Event):
    """A 2.0.1 TransactionEvent skipped seqNos [first_missing, arrived): the charger is asked
    whether it still holds them (GetTransactionStatus)."""

    charge_point_id: str
    session_id: int
    first_missing: int
    arrived: int


@dataclass(frozen=True)
class ConnectorStatusWanted(Event):
    """A start came on a link that has not yet said where the charger's clock is, so it could not be
    ordered against the connector's free report: the charger is asked for the connector's status
    (TriggerMessage StatusNotification), whose answer is its state now (a session that ended while
    the charger was away, its stop lost, is freed by an Available)."""

    charge_point_id: str
    connector_no: int


@dataclass(frozen=True)
class CertificateIssued(Event):
    """Our CA signed a charger's SignCertificate request: the chain goes to it (CertificateSigned).
    Not kept: a charger that never receives it asks again (its CertSigningWaitMinimum and
    CertSigningRepeatTimes settings)."""

    charge_point_id: str
    chain: str
    certificate_type: str | None


@dataclass(frozen=True)
class SmartSettingsChanged(Event):
    """A charger's settings under the smart charging regulations changed: the charger is told."""

    charge_point_id: str
    settings: SmartSettings


@dataclass(frozen=True)
class OverrideDue(Event):
    """A session started on a booking whose driver overrode the randomised delay and the default
    charging hours, or its driver overrode it while it runs: the charger is told, for that
    transaction (chargeshare/ocpp/smart_charging.py)."""

    charge_point_id: str
    connector_no: int
    session_id: int
    rating_w: int
    # Published while the start's frame is handled: told behind its answer. Otherwise (the driver
    # overrode a running session) told at once.
    at_start: bool = True


@dataclass(frozen=True)
class GridLimitsDue(Event):
    """A charger's connectors have new limits under its site's and feeder's supply limits
    (chargeshare/services/grid.py): (connector number, W) for each; empty when the charger is on no
    limited site any more and the limits it holds are to be cleared. `steps`: (connector number,
    when, W) for a limit already known to change at a later moment (a flexibility event beginning
    or ending), put on the charger ahead so it changes on time. `decision`: the charger's decision
    number, acknowledged once every command is done (0: none recorded). `phases_at_most`:
    (connector number, phases) for a connector whose rating carries 6 A on fewer than three phases
    (chargeshare.domain.grid_limits.phases_carried): declared on more, it is told one (`phases_on`)."""

    charge_point_id: str
    limits_w: tuple[tuple[int, int], ...]
    decision: int = 0
    steps: tuple[tuple[int, datetime, int], ...] = ()
    phases_at_most: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class WiringRose(Event):
    """A charger's kept wiring (chargeshare/services/charger_reports.py: declared, or seen drawing)
    now gives a connector more phases than before, or its switch to one phase changed: its minimum
    and its limits in A change, so the grid decides again and tells it (chargeshare/services/grid.py)."""

    charge_point_id: str


@dataclass(frozen=True)
class ExportDue(Event):
    """A V2G session started on an OCPP 2.1 charger (chargeshare/services/v2g.py): it is told the
    bidirectional transfer is allowed, and given the TxProfile that discharges in the windows."""

    charge_point_id: str
    connector_no: int
    session_id: int
    rating_w: int
    windows: tuple[tuple[int, int], ...]  # (from s, to s) after `at`: discharge at the rating


@dataclass(frozen=True)
class BookingConfirmed(Event):
    booking_id: int
    driver_id: int


@dataclass(frozen=True)
class ReservationDue(Event):
    """A confirmed booking starts soon: hold the connector for its driver (OCPP ReserveNow)."""

    booking_id: int
    charge_point_id: str
    connector_no: int
    id_tag: str
    expires_at: datetime


@dataclass(frozen=True)
class BookingEnded(Event):
    booking_id: int
    status: str
    charge_point_id: str
    reservation: str  # "accepted" means the charger still holds a reservation to cancel


@dataclass(frozen=True)
class SessionStarted(Event):
    session_id: int
    booking_id: int


@dataclass(frozen=True)
class EnergyLimitReached(Event):
    """The session used the energy its hold covers: the charger must be told to stop."""

    charge_point_id: str
    transaction_id: int


@dataclass(frozen=True)
class SessionClosedWithoutStop(Event):
    """A charger reported a connector free while its transaction was open: its stop was lost."""

    session_id: int
    charge_point_id: str


@dataclass(frozen=True)
class SessionUnmetered(Event):
    """A session ended billed without a meter measurement (see domain.session.unmetered)."""

    session_id: int
    booking_id: int
    charge_point_id: str
    billed_wh: int


@dataclass(frozen=True)
class SessionSettled(Event):
    session_id: int
    booking_id: int
    captured: int


Handler = Callable[[Any], None]


class MessageBus(Protocol):
    """Events fan out to every handler subscribed to their type."""

    def subscribe(self, event_type: type[Event], handler: Handler) -> None: ...
    def publish(self, event: Event) -> None: ...


class InProcessBus:
    """Synchronous fan-out. A failing subscriber is logged and never breaks the publisher's use case."""

    def __init__(self) -> None:
        self._subs: dict[type[Event], list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type[Event], handler: Handler) -> None:
        self._subs[event_type].append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._subs.get(type(event), []):
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed for %r", event)


@dataclass(frozen=True)
class MeterReading(Event):
    """A charging session's meter moved (a live tick for the apps)."""

    session_id: int
    booking_id: int
    charge_point_id: str
    energy_wh: int  # since the session started


@dataclass(frozen=True)
class SessionStopped(Event):
    session_id: int
    booking_id: int
    energy_wh: int
    cost: int
