"""Domain events as messages for drivers' and hosts' apps: who should hear of each, and what it says.

A `Push` names its audience (driver ids, host ids; admins hear everything) and carries a JSON-ready
body. The sink delivers it: to this process's connections, or through Redis to every process's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.services.events import (
    BookingConfirmed,
    BookingEnded,
    ChargerOffline,
    ChargerOnline,
    Event,
    MessageBus,
    MeterReading,
    SessionSettled,
    SessionStarted,
    SessionStopped,
)
from chargeshare.services.ports import Store
from chargeshare.services.receipts import receipt_for
from chargeshare.services.rules import MarketplaceRules

log = logging.getLogger(__name__)

# Drivers whose booking on a charger is in these states hear of its going online or offline.
_HEARING = frozenset({BookingStatus.CONFIRMED, BookingStatus.ACTIVE})

MAX_TRACKED_SESSIONS = 100_000


@dataclass(frozen=True)
class Push:
    kind: str
    at: datetime
    body: dict[str, Any]
    drivers: frozenset[int] = field(default_factory=frozenset)
    hosts: frozenset[int] = field(default_factory=frozenset)

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "body": self.body,
            "drivers": sorted(self.drivers),
            "hosts": sorted(self.hosts),
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Push:
        return cls(
            str(d["kind"]),
            datetime.fromisoformat(d["at"]),
            dict(d["body"]),
            frozenset(int(x) for x in d["drivers"]),
            frozenset(int(x) for x in d["hosts"]),
        )

    def message(self) -> dict[str, Any]:
        """What a connected app receives (the audience stays on the server)."""
        return {"type": self.kind, "at": self.at.isoformat(), **self.body}


Sink = Callable[[Push], None]


@dataclass(frozen=True)
class _TickOf:
    charger_id: int
    price_per_kwh: int
    driver_id: int
    host_id: int


class LivePush:
    """Subscribes to the bus and turns events into pushes for the parties concerned."""

    def __init__(
        self, store: Store, rules: MarketplaceRules, sink: Sink, heard: Callable[[], bool] = lambda: True
    ) -> None:
        self.store, self.rules, self.sink = store, rules, sink
        # False when nobody could hear a push (no app connected, no other process): skip the lookups.
        self.heard = heard
        # Last reading per session, for the power between two ticks (kW is energy over time).
        self._last: dict[int, tuple[datetime, int]] = {}
        # What a tick needs of its booking, none of which changes once booked: read once per
        # booking rather than once per meter reading.
        self._ticking: dict[int, _TickOf] = {}
        self._lock = threading.Lock()

    def subscribe(self, bus: MessageBus) -> None:
        handlers: dict[type[Event], Callable[[Any], None]] = {
            BookingConfirmed: self.booking_confirmed,
            BookingEnded: self.booking_ended,
            SessionStarted: self.session_started,
            MeterReading: self.meter_reading,
            SessionStopped: self.session_stopped,
            SessionSettled: self.session_settled,
            ChargerOffline: self.charger_offline,
            ChargerOnline: self.charger_online,
        }
        for event_type, handler in handlers.items():
            bus.subscribe(event_type, self._if_heard(handler))

    def _if_heard(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        def handle(event: Any) -> None:
            if self.heard():
                handler(event)

        return handle

    def _booking_push(self, kind: str, at: datetime, booking_id: int, **body: Any) -> None:
        with self.store.reading() as tx:
            b = tx.bookings.get(booking_id)
        self.sink(
            Push(
                kind,
                at,
                {"booking_id": booking_id, "charger_id": b.charger_id, "status": b.status.value, **body},
                frozenset({b.driver_id}),
                frozenset({b.host_id}),
            )
        )

    def booking_confirmed(self, e: BookingConfirmed) -> None:
        self._booking_push("booking.confirmed", e.at, e.booking_id)

    def booking_ended(self, e: BookingEnded) -> None:
        self._booking_push("booking.ended", e.at, e.booking_id)

    def session_started(self, e: SessionStarted) -> None:
        with self._lock:
            self._last.pop(e.session_id, None)
        self._booking_push("charging.started", e.at, e.booking_id, session_id=e.session_id)

    def meter_reading(self, e: MeterReading) -> None:
        with self._lock:
            before = self._last.get(e.session_id)
            if len(self._last) >= MAX_TRACKED_SESSIONS:
                self._last.clear()
            self._last[e.session_id] = (e.at, e.energy_wh)
        power_w = 0
        if before is not None and e.at > before[0]:
            power_w = max(0, round((e.energy_wh - before[1]) * 3600 / (e.at - before[0]).total_seconds()))
        b = self._tick_of(e.booking_id)
        self.sink(
            Push(
                "charging.tick",
                e.at,
                {
                    "booking_id": e.booking_id,
                    "session_id": e.session_id,
                    "charger_id": b.charger_id,
                    "energy_wh": e.energy_wh,
                    "power_w": power_w,
                    "cost": Tariff(b.price_per_kwh).cost(max(0, e.energy_wh)),
                },
                frozenset({b.driver_id}),
                frozenset({b.host_id}),
            )
        )

    def _tick_of(self, booking_id: int) -> _TickOf:
        with self._lock:
            found = self._ticking.get(booking_id)
        if found is not None:
            return found
        with self.store.reading() as tx:
            b = tx.bookings.get(booking_id)
        found = _TickOf(b.charger_id, b.price_per_kwh, b.driver_id, b.host_id)
        with self._lock:
            if len(self._ticking) >= MAX_TRACKED_SESSIONS:
                self._ticking.clear()
            self._ticking[booking_id] = found
        return found

    def session_stopped(self, e: SessionStopped) -> None:
        with self._lock:
            self._last.pop(e.session_id, None)
            self._ticking.pop(e.booking_id, None)
        self._booking_push(
            "charging.stopped",
            e.at,
            e.booking_id,
            session_id=e.session_id,
            energy_wh=e.energy_wh,
            cost=e.cost,
        )

    def session_settled(self, e: SessionSettled) -> None:
        with self.store.reading() as tx:
            b = tx.bookings.get(e.booking_id)
            r = receipt_for(tx, b, self.rules)
        if r is None:
            return  # part of the cost is still being collected: the receipt is not ready yet
        receipt = {
            "energy_wh": r.energy_wh,
            "price_per_kwh": r.price_per_kwh,
            "energy_cost": r.energy_cost,
            "idle_fee": r.idle_fee,
            "cost": r.cost,
            "platform_fee": r.platform_fee,
            "vat": r.vat,
            "host_share": r.host_share,
            "unmetered": r.unmetered,
        }
        self._booking_push("receipt.ready", e.at, e.booking_id, receipt=receipt)

    def _charger_push(self, kind: str, at: datetime, charge_point_id: str) -> None:
        with self.store.reading() as tx:
            c = tx.chargers.get(charge_point_id)
            drivers = frozenset(b.driver_id for b in tx.bookings.on_charger(c.charger_id, _HEARING))
        self.sink(
            Push(
                kind,
                at,
                {"charger_id": c.charger_id, "charge_point_id": charge_point_id, "title": c.title},
                drivers,
                frozenset({c.host_id}),
            )
        )

    def charger_offline(self, e: ChargerOffline) -> None:
        self._charger_push("charger.offline", e.at, e.charge_point_id)

    def charger_online(self, e: ChargerOnline) -> None:
        self._charger_push("charger.online", e.at, e.charge_point_id)
