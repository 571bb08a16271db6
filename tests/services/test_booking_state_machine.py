"""The booking lifecycle as a hypothesis state machine over the real services and an in-memory SQLite.

Random interleavings of booking, cancelling (driver and host), time passing, no-show expiry, reservation
answers, starts (fresh and replayed), meter readings and stops (and duplicate stops) are checked against a
small model after every step: statuses, fees, captured amounts, the connector calendars, the simulated
gateway's books and the store-wide invariants. At the end everything is wound down and the final
invariants must hold too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.booking import LEAST_PERIOD, BookingStatus
from chargeshare.domain.charger import (
    ChargerSpec,
    ChargerStatus,
    ConnectorSpec,
    ConnectorStatus,
    ConnectorType,
)
from chargeshare.domain.errors import (
    BookingConflict,
    ChargerUnavailable,
    InvalidRequest,
    InvalidTransition,
    NotFound,
    PaymentDeclined,
)
from chargeshare.domain.geo import Point
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import REFUSED_TRANSACTION_ID, AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import T0, add_charger, examples

B = BookingStatus
# Independent of the domain's own constant on purpose: the states that hold a connector's time.
LIVE = frozenset({B.REQUESTED, B.CONFIRMED, B.ACTIVE, B.COMPLETED})
N_DRIVERS = 3
UNKNOWN_TAG = "NO-SUCH-TAG"

SETTINGS = settings(
    max_examples=examples(60),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class MCharger:
    cp_id: str
    charger_id: int
    host_id: int
    price: int
    connectors: dict[int, int]  # connector_no -> connector_id
    online: bool = True


@dataclass
class MBooking:
    booking_id: int
    driver: int  # index into the machine's drivers
    charger: int  # index into the machine's chargers
    connector_no: int
    starts_at: datetime
    ends_at: datetime
    max_wh: int
    hold: int
    status: BookingStatus
    fee: int = 0
    captured: int = 0
    gateway: str = "authorized"  # authorized | captured | released | none (declined: no hold at all)
    reservation: str = "none"
    answered: bool = False
    held: bool = False  # its connector was seen taken, or unusable, after its start


@dataclass
class MSession:
    session_id: int
    booking_id: int
    charger: int
    connector_no: int
    id_tag: str
    meter_start: int
    started_at: datetime
    meter_last: int
    meter_stop: int | None = None
    billed: int | None = None
    cost: int | None = None
    idle_since: datetime | None = None  # the car stopped drawing power (the idle fee's clock)
    stopped_at: datetime | None = None

    @property
    def charging(self) -> bool:
        return self.meter_stop is None


@dataclass
class Model:
    bookings: dict[int, MBooking] = field(default_factory=dict)
    sessions: dict[int, MSession] = field(default_factory=dict)
    registers: dict[tuple[int, int], int] = field(default_factory=dict)  # (charger, connector_no) -> Wh


T = TypeVar("T")


def _pick(items: list[T], index: int) -> T:
    return items[index % len(items)]


class BookingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.app: App = build(Config(database_url="memory://"), clock=self.clock)
        self.rules = self.app.config.rules
        gateway = self.app.gateway
        assert isinstance(gateway, SimulatedGateway)
        self.gateway = gateway
        self.model = Model()
        self.chargers: list[MCharger] = []
        for cp_id, price in (("SM0", 30), ("SM1", 45)):
            self._remember_charger(add_charger(self.app, cp_id, price=price))
        self._remember_charger(self._two_connector_charger("SM2", price=25))
        self.drivers: list[tuple[int, str]] = []
        for i in range(N_DRIVERS):
            tag = f"TAG{i}"
            self.drivers.append((self.app.marketplace.add_driver(f"driver {i}", tag).driver_id, tag))
        self.declined: set[int] = set()
        self.connector_status = {
            (i, no): ConnectorStatus.AVAILABLE for i, c in enumerate(self.chargers) for no in c.connectors
        }
        for i, c in enumerate(self.chargers):
            for no in c.connectors:
                self.model.registers[(i, no)] = 1_000 * (i + 1)

    # ---- set-up helpers --------------------------------------------------------------------------
    def _two_connector_charger(self, cp_id: str, *, price: int) -> int:
        host = self.app.marketplace.add_host(f"host of {cp_id}")
        view = self.app.marketplace.add_charger(
            ChargerSpec(
                cp_id,
                host,
                Point(51.46, -2.58),
                Tariff(price),
                (ConnectorSpec(1, ConnectorType.TYPE2, 7_400), ConnectorSpec(2, ConnectorType.CCS, 50_000)),
            )
        )
        self.app.charging.boot(cp_id, V16)
        self.app.charging.status(cp_id, 0, ConnectorStatus.AVAILABLE)
        return view.charger_id

    def _remember_charger(self, charger_id: int) -> None:
        with self.app.store.transaction() as tx:
            view = tx.chargers.by_id(charger_id)
        self.chargers.append(
            MCharger(
                view.charge_point_id,
                charger_id,
                view.host_id,
                view.price_per_kwh,
                {c.connector_no: c.connector_id for c in view.connectors},
            )
        )

    # ---- model helpers ---------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.clock.now()

    def _snapshot(self, heard_from: int | None = None) -> tuple[object, ...]:
        """Everything a frame could change. `heard_from`: the charger about to send one, read as
        online, since any frame from a charger marked offline brings it back."""
        back = None if heard_from is None else self.chargers[heard_from].cp_id
        with self.app.store.transaction() as tx:
            bookings = tuple(tx.bookings.all())
            sessions = tuple(tx.sessions.all())
            entries = tuple(e.entry_id for e in tx.ledger.entries())
            chargers = tuple(
                (ChargerStatus.ONLINE if c.charge_point_id == back else c.status, tuple(c.connectors))
                for c in tx.chargers.all()
            )
        holds = tuple((h.reference, h.state, h.captured) for h in self.gateway.holds.values())
        return bookings, sessions, entries, chargers, holds

    def _starts_soon(self, starts_at: datetime) -> bool:
        return starts_at <= self.now + timedelta(minutes=self.rules.reserve_lead_minutes)

    def _live_clash(self, charger: int, connector_no: int, starts_at: datetime, ends_at: datetime) -> bool:
        return any(
            b.charger == charger
            and b.connector_no == connector_no
            and b.status in LIVE
            and b.starts_at < ends_at
            and starts_at < b.ends_at
            for b in self.model.bookings.values()
        )

    def _current_booking(self, driver: int, charger: int, connector_no: int) -> MBooking | None:
        """The driver's confirmed booking on this connector that covers this moment."""
        now = self.now
        found = [
            b
            for b in self.model.bookings.values()
            if b.driver == driver
            and b.charger == charger
            and b.connector_no == connector_no
            and b.status is B.CONFIRMED
            and b.starts_at <= now < b.ends_at
        ]
        assert len(found) <= 1, "the model itself holds overlapping bookings"
        return found[0] if found else None

    def _close_unused(self, b: MBooking, status: BookingStatus, fee: int) -> None:
        b.status, b.fee, b.captured = status, fee, fee
        b.gateway = "captured" if fee > 0 else "released"

    def _booking_ids(self) -> set[int]:
        with self.app.store.transaction() as tx:
            return {b.booking_id for b in tx.bookings.all()}

    # ---- rules: booking --------------------------------------------------------------------------
    @rule(
        driver=st.integers(0, N_DRIVERS - 1),
        charger=st.integers(0, 2),
        connector_no=st.sampled_from([1, 1, 1, 2]),
        minutes=st.sampled_from([10, 15, 20, 30, 45, 60, 90, 240, 1_441]),
        max_wh=st.sampled_from([0, 10, 1_000, 4_000, 12_000, 150_000, 150_001]),
        start_in=st.none() | st.integers(0, 36).map(lambda k: k * 5),
    )
    def book_anything(
        self, driver: int, charger: int, connector_no: int, minutes: int, max_wh: int, start_in: int | None
    ) -> None:
        self.book(driver, charger, connector_no, minutes, max_wh, start_in)

    @rule(
        driver=st.integers(0, N_DRIVERS - 1),
        charger=st.integers(0, 2),
        minutes=st.sampled_from([15, 20, 30, 60, 90]),
        max_wh=st.sampled_from([1_000, 4_000, 12_000, 30_000]),
    )
    def book_to_charge_now(self, driver: int, charger: int, minutes: int, max_wh: int) -> None:
        self.book(driver, charger, 1, minutes, max_wh, None)

    @rule(
        driver=st.integers(0, N_DRIVERS - 1),
        charger=st.integers(0, 2),
        connector_no=st.sampled_from([1, 1, 2]),
        minutes=st.sampled_from([15, 20, 30, 60, 90]),
        max_wh=st.sampled_from([1_000, 4_000, 12_000, 30_000]),
        start_in=st.integers(1, 24).map(lambda k: k * 5),
    )
    def book_ahead(
        self, driver: int, charger: int, connector_no: int, minutes: int, max_wh: int, start_in: int
    ) -> None:
        self.book(driver, charger, connector_no, minutes, max_wh, start_in)

    def book(
        self, driver: int, charger: int, connector_no: int, minutes: int, max_wh: int, start_in: int | None
    ) -> None:
        c = self.chargers[charger]
        now = self.now
        starts_at = now if start_in is None else now + timedelta(minutes=start_in)
        ends_at = starts_at + timedelta(minutes=minutes)
        r = self.rules
        hold = Tariff(c.price).cost(r.hold_energy(max_wh)) if max_wh > 0 else 0
        # Every reason the request may be refused for; the service may report any one of them.
        refusals: set[type[Exception]] = set()
        if not r.min_booking_minutes <= minutes <= r.max_booking_minutes:
            refusals.add(InvalidRequest)
        if not 0 < max_wh <= r.max_energy_wh or hold <= 0:
            refusals.add(InvalidRequest)
        if connector_no not in c.connectors:
            refusals.add(NotFound)
        if self._starts_soon(starts_at) and not c.online:
            refusals.add(ChargerUnavailable)
        if self._live_clash(charger, connector_no, starts_at, ends_at):
            refusals.add(BookingConflict)

        driver_id = self.drivers[driver][0]
        req = BookRequest(driver_id, c.charger_id, connector_no, minutes, max_wh, starts_at=starts_at)
        if start_in is None:
            req = BookRequest(driver_id, c.charger_id, connector_no, minutes, max_wh)
        before = self._snapshot()
        ids_before = self._booking_ids()
        try:
            record = self.app.bookings.book(req)
        except (BookingConflict, InvalidRequest, NotFound) as exc:
            assert type(exc) in refusals, f"refused with {exc!r}, expected one of {refusals}"
            event("book: refused", type(exc).__name__)
            assert self._snapshot() == before, "a refused booking changed something"
            return
        except PaymentDeclined:
            assert not refusals, f"expected a refusal {refusals}, got a declined card"
            assert driver in self.declined
            (new_id,) = self._booking_ids() - ids_before
            event("book: card declined")
            self.model.bookings[new_id] = MBooking(
                new_id,
                driver,
                charger,
                connector_no,
                starts_at,
                ends_at,
                max_wh,
                hold,
                B.FAILED,
                gateway="none",
            )
            return
        assert not refusals, f"booked although it should have been refused: {refusals}"
        assert driver not in self.declined, "booked on a declined card"
        assert (record.status, record.starts_at, record.ends_at, record.hold_amount) == (
            B.CONFIRMED,
            starts_at,
            ends_at,
            hold,
        )
        soon = self._starts_soon(starts_at)
        event("book: confirmed", "starts soon" if soon else "later")
        self.model.bookings[record.booking_id] = MBooking(
            record.booking_id,
            driver,
            charger,
            connector_no,
            starts_at,
            ends_at,
            max_wh,
            hold,
            B.CONFIRMED,
            # ReserveNow goes out at once only if the connector is free; else the sweep sends it later.
            reservation="sent"
            if soon and self.connector_status[(charger, connector_no)] is ConnectorStatus.AVAILABLE
            else "none",
        )

    @rule()
    def toggle_card_declined(self) -> None:
        driver = N_DRIVERS - 1  # one driver's card comes and goes; the others always work
        key = f"driver:{self.drivers[driver][0]}"
        if driver in self.declined:
            self.declined.discard(driver)
            self.gateway.decline_customers.discard(key)
        else:
            self.declined.add(driver)
            self.gateway.decline_customers.add(key)

    @rule(charger=st.integers(0, 2))
    def toggle_charger_online(self, charger: int) -> None:
        c = self.chargers[charger]
        if c.online:
            self.app.charging.disconnected(c.cp_id)
        else:
            self.app.charging.boot(c.cp_id, V16)
            self.app.charging.status(c.cp_id, 0, ConnectorStatus.AVAILABLE)
            for no in c.connectors:
                self.connector_status[(charger, no)] = ConnectorStatus.AVAILABLE
        c.online = not c.online

    @rule(
        charger=st.integers(0, 2),
        connector_no=st.integers(1, 2),
        status=st.sampled_from(
            [
                ConnectorStatus.AVAILABLE,
                ConnectorStatus.CHARGING,
                ConnectorStatus.FINISHING,
                ConnectorStatus.RESERVED,
            ]
        ),
    )
    def status_notification(self, charger: int, connector_no: int, status: ConnectorStatus) -> None:
        c = self.chargers[charger]
        if connector_no not in c.connectors:
            return
        self.app.charging.status(c.cp_id, connector_no, status)
        self.connector_status[(charger, connector_no)] = status
        c.online = True  # a StatusNotification from an offline charger is the sign it is back
        open_ = [x for x in self._charging() if (x.charger, x.connector_no) == (charger, connector_no)]
        if not open_:
            return
        latest = max(open_, key=lambda x: x.session_id)  # the backend looks at the newest one
        if status in (ConnectorStatus.SUSPENDED_EV, ConnectorStatus.FINISHING):
            latest.idle_since = latest.idle_since or self.now
        elif status is ConnectorStatus.CHARGING:
            latest.idle_since = None
        elif status is ConnectorStatus.AVAILABLE:
            # Free while its transaction is open: only marked; the stop that follows is the one billed
            # (a stop never coming is the housekeeping sweep's, after the lost-stop grace).
            event("status", "a session's connector reported free before its stop")

    # ---- rules: ending unused bookings -----------------------------------------------------------
    @precondition(lambda self: self.model.bookings)
    @rule(index=st.integers(0, 1_000), wrong_driver=st.booleans())
    def cancel_by_driver(self, index: int, wrong_driver: bool) -> None:
        b = _pick(sorted(self.model.bookings.values(), key=lambda x: x.booking_id), index)
        driver = (b.driver + 1) % N_DRIVERS if wrong_driver else b.driver
        before = self._snapshot()
        if wrong_driver or b.status is not B.CONFIRMED:
            expected: type[Exception] = NotFound if wrong_driver else InvalidTransition
            try:
                self.app.bookings.cancel(b.booking_id, driver_id=self.drivers[driver][0])
            except (NotFound, InvalidTransition) as exc:
                assert type(exc) is expected, exc
            else:
                raise AssertionError(f"cancelling booking {b.booking_id} ({b.status}) should be refused")
            assert self._snapshot() == before
            return
        late = self.now >= b.starts_at - timedelta(minutes=self.rules.cancellation.late_cancel_minutes)
        fee = min(self.rules.cancellation.late_cancel_fee, b.hold) if late else 0
        record = self.app.bookings.cancel(b.booking_id, driver_id=self.drivers[driver][0])
        event("cancel by driver", "late fee" if fee else "free")
        assert (record.status, record.fee, record.cancelled_by) == (B.CANCELLED, fee, "driver")
        self._close_unused(b, B.CANCELLED, fee)

    @precondition(lambda self: self.model.bookings)
    @rule(index=st.integers(0, 1_000), wrong_host=st.booleans())
    def cancel_by_host(self, index: int, wrong_host: bool) -> None:
        b = _pick(sorted(self.model.bookings.values(), key=lambda x: x.booking_id), index)
        host_id = self.chargers[(b.charger + 1) % len(self.chargers) if wrong_host else b.charger].host_id
        before = self._snapshot()
        if wrong_host or b.status is not B.CONFIRMED:
            expected: type[Exception] = NotFound if wrong_host else InvalidTransition
            try:
                self.app.bookings.cancel(b.booking_id, host_id=host_id)
            except (NotFound, InvalidTransition) as exc:
                assert type(exc) is expected, exc
            else:
                raise AssertionError(f"host cancelling booking {b.booking_id} ({b.status}) should be refused")
            assert self._snapshot() == before
            return
        record = self.app.bookings.cancel(b.booking_id, host_id=host_id)
        assert (record.status, record.fee, record.cancelled_by) == (B.CANCELLED, 0, "host")
        self._close_unused(b, B.CANCELLED, 0)

    @rule(minutes=st.sampled_from([1, 5, 14, 15, 16, 30, 61, 240]))
    def advance_clock(self, minutes: int) -> None:
        self.clock.advance(minutes * 60)

    @rule()
    def expire_no_shows(self) -> None:
        policy = self.rules.cancellation
        grace = timedelta(minutes=policy.no_show_grace_minutes)
        # One on an offline charger waits (its driver may be charging there) until its period ends.
        due = sorted(
            b.booking_id
            for b in self.model.bookings.values()
            if b.status is B.CONFIRMED
            and b.starts_at + grace <= self.now
            and (self.chargers[b.charger].online or b.ends_at <= self.now)
        )
        assert sorted(self.app.bookings.expire_no_shows()) == due
        event("no-shows expired", str(min(len(due), 2)))
        for booking_id in due:
            b = self.model.bookings[booking_id]
            taken = self._held_by_another(b, min(self.now, b.starts_at + grace))
            offline = not self.chargers[b.charger].online
            # A car, maybe not the driver's, held the connector (and may have left since).
            occupied = b.reservation == "occupied" or b.held
            why = (
                "connector taken"
                if taken
                else "charger offline"
                if offline
                else "occupied"
                if occupied
                else "no"
            )
            event("no-show excused", why)
            excused = taken or offline or occupied
            self._close_unused(b, B.EXPIRED, policy.no_show_charge(b.hold, excused=excused))

    def _held_by_another(self, b: MBooking, until: datetime) -> bool:
        """Another booking's session on b's connector at some instant of [b's start, until)."""
        return any(
            (s.charger, s.connector_no) == (b.charger, b.connector_no)
            and s.booking_id != b.booking_id
            and s.started_at < until
            and (s.stopped_at is None or s.stopped_at > b.starts_at)
            for s in self.model.sessions.values()
        )

    # ---- rules: reservations ---------------------------------------------------------------------
    @rule()
    def reservations_due(self) -> None:
        for b in self.model.bookings.values():
            if (
                b.status is B.CONFIRMED
                and b.reservation in ("none", "occupied")
                and b.starts_at <= self.now
                and self.connector_status[(b.charger, b.connector_no)] is not ConnectorStatus.AVAILABLE
            ):
                b.held = True
        due = sorted(
            b.booking_id
            for b in self.model.bookings.values()
            if b.status is B.CONFIRMED
            and b.reservation in ("none", "occupied")
            and self._starts_soon(b.starts_at)
            and self.connector_status[(b.charger, b.connector_no)] is ConnectorStatus.AVAILABLE
        )
        assert sorted(self.app.bookings.reservations_due()) == due
        for booking_id in due:
            self.model.bookings[booking_id].reservation = "sent"

    def _awaiting_answer(self) -> list[MBooking]:
        return sorted(
            (b for b in self.model.bookings.values() if b.reservation == "sent" and not b.answered),
            key=lambda b: b.booking_id,
        )

    @precondition(lambda self: self._awaiting_answer())
    @rule(
        index=st.integers(0, 1_000),
        answer=st.sampled_from(["Accepted", "Accepted", "Occupied", "Rejected", "Faulted", "Unavailable"]),
    )
    def reservation_answered(self, index: int, answer: str) -> None:
        b = _pick(self._awaiting_answer(), index)
        b.answered = True
        self.app.bookings.reservation_answered(b.booking_id, answer)
        event("reservation answered", f"{answer} while {b.status}")
        if b.status is not B.CONFIRMED:
            return  # a late answer for a booking that already ended changes nothing
        if answer == "Accepted":
            b.reservation = "accepted"
        elif answer == "Occupied" and (self.now < b.starts_at or not self._held_by_another(b, self.now)):
            # The previous driver has not left yet, or the car is b's own: ask again once free.
            b.reservation, b.answered = "occupied", False
            b.held = b.held or self.now >= b.starts_at
        else:
            self._close_unused(b, B.FAILED, 0)

    # ---- rules: at the charger -------------------------------------------------------------------
    @rule(
        driver=st.integers(0, N_DRIVERS - 1),
        charger=st.integers(0, 2),
        unknown_tag=st.sampled_from([False, False, False, True]),
    )
    def authorize(self, driver: int, charger: int, unknown_tag: bool) -> None:
        c = self.chargers[charger]
        tag = UNKNOWN_TAG if unknown_tag else self.drivers[driver][1]
        before = self._snapshot(heard_from=charger)
        verdict = self.app.charging.authorize(c.cp_id, tag)
        c.online = True
        assert self._snapshot() == before
        if unknown_tag:
            assert verdict is AuthStatus.INVALID
            return
        current = any(self._current_booking(driver, charger, no) is not None for no in c.connectors)
        assert verdict is (AuthStatus.ACCEPTED if current else AuthStatus.BLOCKED)

    @rule(
        driver=st.integers(0, N_DRIVERS - 1),
        charger=st.integers(0, 2),
        connector_no=st.integers(1, 2),
        unknown_tag=st.sampled_from([False, False, False, True]),
    )
    def start(self, driver: int, charger: int, connector_no: int, unknown_tag: bool) -> None:
        c = self.chargers[charger]
        tag = UNKNOWN_TAG if unknown_tag else self.drivers[driver][1]
        meter_start = self.model.registers.get((charger, connector_no), 0)
        now = self.now
        before = self._snapshot(heard_from=charger)
        result = self.app.charging.start(c.cp_id, connector_no, tag, meter_start, now)
        c.online = True
        if unknown_tag or connector_no not in c.connectors:
            assert (result.transaction_id, result.status) == (REFUSED_TRANSACTION_ID, AuthStatus.INVALID)
            assert self._snapshot() == before
            return
        replay = next(
            (
                s
                for s in self.model.sessions.values()
                if (s.charger, s.connector_no, s.id_tag, s.meter_start, s.started_at)
                == (charger, connector_no, tag, meter_start, now)
            ),
            None,
        )
        if replay is not None:
            assert (result.transaction_id, result.status) == (replay.session_id, AuthStatus.ACCEPTED)
            assert self._snapshot() == before
            return
        booking = self._current_booking(driver, charger, connector_no)
        if booking is None:
            # No current confirmed booking: refused, and nothing is recorded.
            assert (result.transaction_id, result.status) == (REFUSED_TRANSACTION_ID, AuthStatus.BLOCKED)
            assert self._snapshot() == before
            event("start", "blocked")
            return
        event("start", "accepted")
        assert result.status is AuthStatus.ACCEPTED and result.transaction_id != REFUSED_TRANSACTION_ID
        assert result.transaction_id not in self.model.sessions
        booking.status = B.ACTIVE
        self.model.sessions[result.transaction_id] = MSession(
            result.transaction_id,
            booking.booking_id,
            charger,
            connector_no,
            tag,
            meter_start,
            now,
            meter_start,
        )

    def _confirmed(self) -> list[MBooking]:
        return sorted(
            (b for b in self.model.bookings.values() if b.status is B.CONFIRMED), key=lambda b: b.booking_id
        )

    @precondition(lambda self: self._confirmed())
    @rule(index=st.integers(0, 1_000))
    def start_a_booking(self, index: int) -> None:
        """The booked driver presents their card at the booked connector (maybe too early)."""
        b = _pick(self._confirmed(), index)
        self.start(b.driver, b.charger, b.connector_no, False)

    def _current(self) -> list[MBooking]:
        now = self.now
        return [b for b in self._confirmed() if b.starts_at <= now < b.ends_at]

    @precondition(lambda self: self._current())
    @rule(index=st.integers(0, 1_000))
    def start_a_current_booking(self, index: int) -> None:
        b = _pick(self._current(), index)
        self.start(b.driver, b.charger, b.connector_no, False)

    def _charging(self) -> list[MSession]:
        return sorted((s for s in self.model.sessions.values() if s.charging), key=lambda s: s.session_id)

    def _stopped(self) -> list[MSession]:
        return sorted((s for s in self.model.sessions.values() if not s.charging), key=lambda s: s.session_id)

    def _deliver(self, s: MSession, add_wh: int) -> int:
        """Energy flows on the session's connector; returns the register afterwards.

        The register is shared by everything charging on that connector: each session's energy stays
        within what its booking holds (the charger is stopped at the booked energy)."""
        key = (s.charger, s.connector_no)
        budget = min(
            self.model.bookings[x.booking_id].max_wh - (self.model.registers[key] - x.meter_start)
            for x in self._charging()
            if (x.charger, x.connector_no) == key
        )
        self.model.registers[key] += max(0, min(add_wh, budget))
        return self.model.registers[key]

    @precondition(lambda self: self._charging())
    @rule(
        index=st.integers(0, 1_000),
        add_wh=st.sampled_from([0, 1, 250, 999, 2_500, 6_000]),
        replay_old=st.booleans(),
    )
    def meter(self, index: int, add_wh: int, replay_old: bool) -> None:
        s = _pick(self._charging(), index)
        reading = self._deliver(s, add_wh)
        cp_id = self.chargers[s.charger].cp_id
        self.app.charging.meter(cp_id, s.session_id, reading)
        self.chargers[s.charger].online = True
        s.meter_last = max(s.meter_last, reading)
        if replay_old:  # an old reading arriving late never moves the register back
            self.app.charging.meter(cp_id, s.session_id, s.meter_start)

    def _expected_ends_at(self, b: MBooking) -> datetime:
        """Stopping frees the connector from now on: never before the booking starts, and a stop
        within that instant leaves it the least period, never its whole time."""
        return min(b.ends_at, max(self.now, b.starts_at + LEAST_PERIOD))

    @precondition(lambda self: self._charging())
    @rule(
        index=st.integers(0, 1_000),
        add_wh=st.sampled_from([0, 1, 250, 999, 2_500, 8_000]),
        reading=st.sampled_from(["register"] * 5 + ["below"]),
    )
    def stop(self, index: int, add_wh: int, reading: str) -> None:
        s = _pick(self._charging(), index)
        cp_id = self.chargers[s.charger].cp_id
        meter_stop = self._deliver(s, add_wh)
        if reading == "below" and s.meter_start > 0:
            meter_stop = s.meter_start - 1  # a broken meter: billed as nothing, never as negative
        assert self.app.charging.stop(cp_id, s.session_id, meter_stop, self.now) is AuthStatus.ACCEPTED
        self.chargers[s.charger].online = True
        cost = self._record_stop(s, meter_stop)
        event("stop", "billed" if cost else "nothing to bill")
        # The charger did not hear our answer and sends the same stop again: nothing changes.
        before = self._snapshot()
        assert self.app.charging.stop(cp_id, s.session_id, meter_stop, self.now) is AuthStatus.ACCEPTED
        assert self._snapshot() == before

    def _record_stop(self, s: MSession, meter_stop: int) -> int:
        b = self.model.bookings[s.booking_id]
        billed = max(0, meter_stop - s.meter_start)
        idle_fee: int = self.rules.idle_fee(s.idle_since, self.now)
        cost = Tariff(self.chargers[s.charger].price).cost(billed) + idle_fee
        s.meter_stop = s.meter_start + billed
        s.meter_last = max(s.meter_last, s.meter_stop)
        s.billed, s.cost, s.stopped_at = billed, cost, self.now
        b.ends_at = self._expected_ends_at(b)
        b.status, b.captured, b.gateway = B.COMPLETED, cost, "captured"
        return cost

    @precondition(lambda self: self._stopped())
    @rule(index=st.integers(0, 1_000), extra_wh=st.integers(0, 5_000))
    def duplicate_stop_later(self, index: int, extra_wh: int) -> None:
        s = _pick(self._stopped(), index)
        assert s.meter_stop is not None
        before = self._snapshot(heard_from=s.charger)
        verdict = self.app.charging.stop(
            self.chargers[s.charger].cp_id, s.session_id, s.meter_stop + extra_wh, self.now
        )
        self.chargers[s.charger].online = True
        assert verdict is AuthStatus.ACCEPTED
        assert self._snapshot() == before

    @rule()
    def stop_unknown_transaction(self) -> None:
        before = self._snapshot(heard_from=0)
        unknown = max(self.model.sessions, default=0) + 1_000
        assert self.app.charging.stop(self.chargers[0].cp_id, unknown, 0, self.now) is AuthStatus.INVALID
        self.chargers[0].online = True
        assert self._snapshot() == before

    @precondition(lambda self: self.model.sessions)
    @rule(index=st.integers(0, 1_000))
    def replayed_start(self, index: int) -> None:
        s = _pick(sorted(self.model.sessions.values(), key=lambda x: x.session_id), index)
        before = self._snapshot(heard_from=s.charger)
        result = self.app.charging.start(
            self.chargers[s.charger].cp_id, s.connector_no, s.id_tag, s.meter_start, s.started_at
        )
        self.chargers[s.charger].online = True
        assert (result.transaction_id, result.status) == (s.session_id, AuthStatus.ACCEPTED)
        assert self._snapshot() == before

    # ---- after every step ------------------------------------------------------------------------
    @invariant()
    def store_agrees_with_the_model(self) -> None:
        self._check(final=False)

    def _check(self, *, final: bool) -> None:
        failed = [r for r in check_store(self.app.store, self.rules, now=self.now, final=final) if not r.ok]
        assert failed == [], failed
        with self.app.store.transaction() as tx:
            bookings = tx.bookings.all()
            sessions = tx.sessions.all()
            entries = tx.ledger.entries()
        model = self.model
        assert {b.booking_id for b in bookings} == set(model.bookings)
        captured: dict[int, int] = {}
        for e in entries:
            if e.kind is EntryKind.CAPTURE and e.booking_id is not None:
                captured[e.booking_id] = captured.get(e.booking_id, 0) + e.amount
        for b in bookings:
            m = model.bookings[b.booking_id]
            c = self.chargers[m.charger]
            got = (b.status, b.fee, b.starts_at, b.ends_at, b.hold_amount, b.connector_id, b.driver_id)
            want = (
                m.status,
                m.fee,
                m.starts_at,
                m.ends_at,
                m.hold,
                c.connectors[m.connector_no],
                self.drivers[m.driver][0],
            )
            assert got == want, f"booking {b.booking_id}: store {got}, model {want}"
            if m.status is B.CONFIRMED:
                assert b.reservation == m.reservation, (b.booking_id, b.reservation, m.reservation)
            assert captured.get(b.booking_id, 0) == m.captured, (
                f"booking {b.booking_id} ({m.status}): captured {captured.get(b.booking_id, 0)}p, "
                f"expected {m.captured}p"
            )
            hold = None if b.payment_ref is None else self.gateway.holds.get(b.payment_ref)
            if m.gateway == "none":
                assert hold is None, f"booking {b.booking_id}: a declined card left a hold {hold}"
            else:
                # Beyond the hold (an idle fee), the rest is captured from a top-up hold of its own.
                assert hold is not None and (hold.state, hold.captured, hold.amount) == (
                    m.gateway,
                    min(m.captured, m.hold),
                    m.hold,
                ), f"booking {b.booking_id}: gateway {hold}, model {m.gateway} {m.captured}p of {m.hold}p"
        # No two live bookings overlap on one connector (computed here, not by the invariants module).
        live = sorted((b for b in bookings if b.status in LIVE), key=lambda b: (b.connector_id, b.starts_at))
        for a, z in itertools.pairwise(live):
            assert a.connector_id != z.connector_id or a.ends_at <= z.starts_at, (a, z)
        assert {s.session_id for s in sessions} == set(model.sessions)
        for s in sessions:
            ms = model.sessions[s.session_id]
            got_s = (s.booking_id, s.status, s.meter_start_wh, s.meter_last_wh, s.meter_stop_wh, s.billed_wh)
            want_s = (
                ms.booking_id,
                SessionStatus.CHARGING if ms.charging else SessionStatus.STOPPED,
                ms.meter_start,
                ms.meter_last,
                ms.meter_stop,
                ms.billed,
            )
            assert got_s == want_s, f"session {s.session_id}: store {got_s}, model {want_s}"
            assert s.cost == ms.cost
        ledger_total = sum(captured.values())
        assert self.gateway.total_captured == ledger_total == sum(m.captured for m in model.bookings.values())

    # ---- the end of the run ----------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            while self._charging():
                self.stop(0, 250, "register")
            self.clock.advance(60)
            # Bookings not yet started are cancelled by their host; the rest are no-shows.
            for b in sorted(self.model.bookings.values(), key=lambda x: x.booking_id):
                if b.status is B.CONFIRMED and b.starts_at > self.now:
                    self.cancel_by_host(sorted(self.model.bookings).index(b.booking_id), False)
            self.clock.advance(self.rules.cancellation.no_show_grace_minutes * 60 + 60)
            # Those on an offline charger wait for it until their period is over.
            waiting = [b.ends_at for b in self.model.bookings.values() if b.status is B.CONFIRMED]
            if waiting and max(waiting) > self.now:
                self.clock.advance((max(waiting) - self.now).total_seconds())
            self.expire_no_shows()
            assert all(
                b.status not in (B.REQUESTED, B.CONFIRMED, B.ACTIVE) for b in self.model.bookings.values()
            )
            # No charger here ever answered a reservation: each connects at the end, is asked to
            # cancel those of ended bookings, and answers, as a connecting charger is (the registry).
            for charger in self.chargers:
                for ended in self.app.bookings.cancellations_unanswered(charger.cp_id):
                    self.app.bookings.reservation_cancelled(ended.booking_id)
            self._check(final=True)
        finally:
            self.app.close()


@pytest.mark.slow
def test_booking_lifecycle_keeps_the_model_and_every_invariant() -> None:
    run_state_machine_as_test(BookingMachine, settings=SETTINGS)  # type: ignore[no-untyped-call]


# ---- edges the machine keeps clear of (its meter never passes the booked energy, its starts are
# ---- never in the past), pinned down on their own -----------------------------------------------


def _one_charger_app(price: int) -> tuple[App, ManualClock, int, int]:
    clock = ManualClock(T0)
    app = build(Config(database_url="memory://"), clock=clock)
    charger_id = add_charger(app, "EDGE", price=price)
    driver_id = app.marketplace.add_driver("D", "EDGE-TAG").driver_id
    return app, clock, charger_id, driver_id


def test_an_overshoot_within_the_hold_headroom_is_captured() -> None:
    app, clock, charger_id, driver_id = _one_charger_app(price=35)
    try:
        rules = app.config.rules
        booked_wh = 1_000
        booking = app.bookings.book(BookRequest(driver_id, charger_id, 1, 60, booked_wh))
        assert booking.hold_amount == Tariff(35).cost(rules.hold_energy(booked_wh))
        started = app.charging.start("EDGE", 1, "EDGE-TAG", 0, clock.now())
        clock.advance(600)
        # The last meter interval overshot the booked energy by exactly the headroom the hold is for.
        overshoot_wh = booked_wh * (100 + rules.hold_headroom_pct) // 100
        assert (
            app.charging.stop("EDGE", started.transaction_id, overshoot_wh, clock.now())
            is AuthStatus.ACCEPTED
        )
        cost = Tariff(35).cost(overshoot_wh)
        with app.store.transaction() as tx:
            captured = [
                e.amount for e in tx.ledger.entries(booking.booking_id) if e.kind is EntryKind.CAPTURE
            ]
        assert captured == [cost], f"hold {booking.hold_amount}p, metered cost {cost}p, captured {captured}"
        failed = [r.name for r in check_store(app.store, rules, now=clock.now()) if not r.ok]
        assert failed == []
    finally:
        app.close()


def test_a_booking_is_never_a_no_show_the_moment_it_is_made() -> None:
    app, clock, charger_id, driver_id = _one_charger_app(price=35)
    try:
        req = BookRequest(driver_id, charger_id, 1, 60, 10_000, starts_at=clock.now() - timedelta(minutes=20))
        try:
            booking = app.bookings.book(req)
        except InvalidRequest:
            return  # refusing a start in the past is one right answer
        # Accepting it is another, as long as the driver is given the time to turn up.
        assert app.bookings.expire_no_shows() == []
        with app.store.transaction() as tx:
            assert tx.bookings.get(booking.booking_id).fee == 0
    finally:
        app.close()
