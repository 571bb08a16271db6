"""Charger reservations over real loopback WebSockets: ReserveNow when a booking comes due, the charger's
answer, CancelReservation when a reserved booking ends, and a reserved connector at the charger.

Two charge points speak to the backend: an independent client built on the `ocpp` library (its
answers are scripted by the test), and the project's own `VirtualCharger`, which decides for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import enums as enums16
from websockets.asyncio.client import connect

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.api.housekeeping import sweep_once
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.ocpp.timestamps import format_ts, parse_ts
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import Clock, ScaledClock
from chargeshare.services.housekeeping import SweepRun
from chargeshare.services.invariants import check_store
from chargeshare.services.records import BookingRecord
from simulators.charger import PlugRefused, VirtualCharger
from simulators.firmware import ConnectorState
from simulators.power import Vehicle
from tests.clocks import HandClock
from tests.conftest import T0, add_charger
from tests.waiting import eventually, settled

pytestmark = pytest.mark.e2e

GRACE = timedelta(minutes=15)  # the default no-show grace: a reservation expires this long after the start
LEAD = timedelta(minutes=15)  # the default reserve lead time: ReserveNow goes out this long before the start
SPEED = 60.0  # the ScaledClock used with the virtual charger: one real second is one simulated minute


# ---- the backend, served on loopback ---------------------------------------------------------------


@dataclass
class Backend:
    app: App
    port: int

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def gateway(self) -> SimulatedGateway:
        gateway = self.app.gateway
        assert isinstance(gateway, SimulatedGateway)
        return gateway

    def booking(self, booking_id: int) -> BookingRecord:
        with self.app.store.transaction() as tx:
            return tx.bookings.get(booking_id)

    def connector_status(self, cp_id: str, connector_no: int = 1) -> ConnectorStatus:
        with self.app.store.transaction() as tx:
            charger = tx.chargers.get(cp_id)
        return next(c.status for c in charger.connectors if c.connector_no == connector_no)

    def entry_kinds(self, booking_id: int) -> list[EntryKind]:
        with self.app.store.transaction() as tx:
            return sorted(e.kind for e in tx.ledger.entries(booking_id))

    def captures(self, booking_id: int) -> list[int]:
        with self.app.store.transaction() as tx:
            return [e.amount for e in tx.ledger.entries(booking_id) if e.kind is EntryKind.CAPTURE]

    def failing_invariants(self) -> list[str]:
        results = check_store(self.app.store, self.app.config.rules, now=self.app.clock.now())
        return [f"{r.name}: {r.failures}" for r in results if not r.ok]


@contextlib.asynccontextmanager
async def serve(clock: Clock) -> AsyncIterator[Backend]:
    app = build(Config(database_url="sqlite://"), clock=clock)
    try:
        async with LoopbackServer(create_api(app)) as server:
            yield Backend(app, server.port)
    finally:
        app.close()


@pytest.fixture
def manual_clock() -> HandClock:
    return HandClock(T0)


@pytest.fixture
async def manual(manual_clock: HandClock) -> AsyncIterator[Backend]:
    """The backend on a clock the test moves, whose housekeeping never comes round on its own: the
    test runs each sweep (`sweep`), so what a sweep did or did not send is known, not timed."""
    async with serve(manual_clock) as backend:
        yield backend


@pytest.fixture
def scaled_clock() -> ScaledClock:
    return ScaledClock(T0, SPEED)


@pytest.fixture
async def scaled(scaled_clock: ScaledClock) -> AsyncIterator[Backend]:
    async with serve(scaled_clock) as backend:
        yield backend


async def sweep(backend: Backend, **expected: int) -> SweepRun:
    """One housekeeping round, as the server runs it, checked to have done only what is `expected`
    (a count per step; every other step did nothing)."""
    run = await sweep_once(backend.app)
    assert run.failed == {}
    assert {step: n for step, n in run.counts.items() if n} == expected, run.counts
    return run


# ---- an independent charge point, on the `ocpp` library --------------------------------------------


@dataclass
class Reserve:
    connector_id: int
    id_tag: str
    reservation_id: int
    expires_at: datetime


class ReservingChargePoint(Cp16):  # type: ignore[misc]
    """Answers ReserveNow with whatever the test sets, and records what the backend asked."""

    reserve_answer: str
    reserves: list[Reserve]
    cancels: list[int]

    @on(enums16.Action.reserve_now)  # type: ignore[untyped-decorator]
    def on_reserve_now(
        self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int, **_: Any
    ) -> Any:
        self.reserves.append(Reserve(connector_id, id_tag, reservation_id, parse_ts(expiry_date)))
        return result16.ReserveNow(status=self.reserve_answer)

    @on(enums16.Action.cancel_reservation)  # type: ignore[untyped-decorator]
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        self.cancels.append(reservation_id)
        return result16.CancelReservation(status=enums16.CancelReservationStatus.accepted)

    async def heartbeat(self) -> None:
        """As it would have while the test moved the clock on: the watchdog leaves it online."""
        await self.call(call16.Heartbeat())

    async def status(self, status: str, connector_id: int = 1) -> None:
        await self.call(
            call16.StatusNotification(connector_id=connector_id, error_code="NoError", status=status)
        )


@contextlib.asynccontextmanager
async def library_cp(
    backend: Backend, cp_id: str, answer: str = "Accepted"
) -> AsyncIterator[ReservingChargePoint]:
    """Connected, booted and reporting its connector Available."""
    async with connect(f"{backend.ws}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = ReservingChargePoint(cp_id, ws, response_timeout=5)
        cp.reserve_answer, cp.reserves, cp.cancels = answer, [], []
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            assert boot.status == "Accepted"
            await cp.status("Available")
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


@dataclass
class World:
    backend: Backend
    charger_id: int
    drivers: dict[str, int] = field(default_factory=dict)

    def book(self, tag: str, minutes: int = 60, starts_at: datetime | None = None) -> BookingRecord:
        return self.backend.app.bookings.book(
            BookRequest(self.drivers[tag], self.charger_id, 1, minutes, 10_000, starts_at=starts_at)
        )


def world(backend: Backend, cp_id: str, *tags: str, price: int = 30) -> World:
    charger_id = add_charger(backend.app, cp_id, price=price, online=False)  # it boots over the socket
    w = World(backend, charger_id)
    for tag in tags:
        w.drivers[tag] = backend.app.marketplace.add_driver(f"driver {tag}", tag).driver_id
    return w


# ---- the library charge point ------------------------------------------------------------------------


async def test_charge_now_sends_reserve_now_and_an_accepted_answer_is_recorded(manual: Backend) -> None:
    w = world(manual, "RES1", "CARD-A")
    async with library_cp(manual, "RES1") as cp:
        booking = w.book("CARD-A")
        await eventually(lambda: manual.booking(booking.booking_id).reservation == "accepted", "Accepted")
        assert cp.reserves == [Reserve(1, "CARD-A", booking.booking_id, T0 + GRACE)]
        record = manual.booking(booking.booking_id)
        assert record.status is BookingStatus.CONFIRMED
        assert record.starts_at == T0 and record.starts_at + GRACE == cp.reserves[0].expires_at
        await sweep(manual)  # the sweep must not send a second ReserveNow, nor cancel it
        assert len(cp.reserves) == 1
        assert cp.cancels == []
    assert manual.gateway.holds[str(record.payment_ref)].state == "authorized"


@pytest.mark.parametrize("answer", ["Rejected", "Faulted", "Unavailable"])
async def test_a_refused_charge_now_reservation_fails_the_booking_and_releases_the_hold(
    manual: Backend, answer: str
) -> None:
    w = world(manual, "RES2", "CARD-A", "CARD-B")
    async with library_cp(manual, "RES2", answer=answer) as cp:
        booking = w.book("CARD-A")
        await eventually(lambda: manual.booking(booking.booking_id).status is BookingStatus.FAILED, "FAILED")
        assert [r.reservation_id for r in cp.reserves] == [booking.booking_id]
        record = manual.booking(booking.booking_id)
        assert record.fee == 0
        # The hold is released in our ledger and at the (simulated) card network, and nothing captured.
        await settled(manual.app)
        assert manual.entry_kinds(booking.booking_id) == sorted([EntryKind.HOLD, EntryKind.VOID])
        hold = manual.gateway.holds[str(record.payment_ref)]
        assert (hold.state, hold.captured) == ("released", 0)
        assert manual.gateway.total_captured == 0
        assert manual.failing_invariants() == []
        # The failed booking no longer holds the connector: the slot can be booked again at once.
        cp.reserve_answer = "Accepted"
        again = w.book("CARD-B")
        await eventually(lambda: manual.booking(again.booking_id).reservation == "accepted", "second booking")
        assert manual.booking(again.booking_id).status is BookingStatus.CONFIRMED


@pytest.mark.parametrize("how", ["driver", "host", "no-show"])
async def test_a_reserved_booking_that_ends_unused_sends_cancel_reservation(
    manual: Backend, manual_clock: HandClock, how: str
) -> None:
    w = world(manual, "RES3", "CARD-A")
    async with library_cp(manual, "RES3") as cp:
        booking = w.book("CARD-A")
        await eventually(lambda: manual.booking(booking.booking_id).reservation == "accepted", "Accepted")
        assert cp.cancels == []
        if how == "driver":
            manual.app.bookings.cancel(booking.booking_id, driver_id=booking.driver_id)
            status, fee = BookingStatus.CANCELLED, 150  # inside the late-cancellation window
        elif how == "host":
            manual.app.bookings.cancel(booking.booking_id, host_id=booking.host_id)
            status, fee = BookingStatus.CANCELLED, 0
        else:
            manual_clock.advance(GRACE.total_seconds())
            await sweep(manual, no_shows_expired=1)
            status, fee = BookingStatus.EXPIRED, 300
        await eventually(lambda: cp.cancels != [], "CancelReservation")
        assert cp.cancels == [booking.booking_id]
        record = manual.booking(booking.booking_id)
        assert (record.status, record.fee) == (status, fee)
        await settled(manual.app)
        assert manual.captures(booking.booking_id) == ([fee] if fee else [])
        assert manual.gateway.total_captured == fee
        await sweep(manual)  # nothing left for it: CancelReservation is sent once
        assert cp.cancels == [booking.booking_id]
        assert manual.failing_invariants() == []


async def test_a_scheduled_booking_is_reserved_only_when_the_sweep_finds_it_due(
    manual: Backend, manual_clock: HandClock
) -> None:
    w = world(manual, "RES4", "CARD-A")
    starts_at = T0 + timedelta(hours=2)
    async with library_cp(manual, "RES4") as cp:
        booking = w.book("CARD-A", starts_at=starts_at)
        assert booking.reservation == "none"
        await sweep(manual)
        assert cp.reserves == [] and manual.booking(booking.booking_id).reservation == "none"
        manual_clock.advance((starts_at - LEAD - T0).total_seconds() - 60)  # a minute before it is due
        await cp.heartbeat()
        await sweep(manual)
        assert cp.reserves == [] and manual.booking(booking.booking_id).reservation == "none"
        manual_clock.advance(60)  # exactly the lead time before the start: due
        await sweep(manual, reservations_due=1)
        await eventually(lambda: cp.reserves != [], "ReserveNow from the housekeeping sweep")
        assert cp.reserves == [Reserve(1, "CARD-A", booking.booking_id, starts_at + GRACE)]
        await eventually(lambda: manual.booking(booking.booking_id).reservation == "accepted", "Accepted")
        await sweep(manual)
        assert len(cp.reserves) == 1
        assert manual.booking(booking.booking_id).status is BookingStatus.CONFIRMED


async def test_occupied_by_the_booked_drivers_own_car_does_not_fail_the_booking(manual: Backend) -> None:
    """The driver plugs in as the charge-now booking's ReserveNow is on its way: the charger answers
    Occupied. No other session holds the connector, so it is the driver's own car: the booking stays
    and their start is accepted."""
    w = world(manual, "RES6", "CARD-A")
    async with library_cp(manual, "RES6", answer="Occupied") as cp:
        booking = w.book("CARD-A")
        await eventually(lambda: cp.reserves != [], "ReserveNow")
        await cp.status("Preparing")
        await eventually(
            lambda: manual.booking(booking.booking_id).reservation == "occupied", "Occupied heard"
        )
        assert manual.booking(booking.booking_id).status is BookingStatus.CONFIRMED
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="CARD-A", meter_start=0, timestamp=format_ts(T0))
        )
        assert started.id_tag_info["status"] == "Accepted" and started.transaction_id > 0
        assert manual.booking(booking.booking_id).status is BookingStatus.ACTIVE
        await sweep(manual)  # no second ReserveNow for a booking that has started
        assert len(cp.reserves) == 1
        await cp.call(
            call16.StopTransaction(
                transaction_id=started.transaction_id, meter_stop=5_000, timestamp=format_ts(T0)
            )
        )
        await settled(manual.app)
        assert manual.gateway.total_captured == 150  # 5 kWh at 30p, from the hold it kept
        assert manual.failing_invariants() == []


async def test_occupied_before_the_start_is_not_yet_and_the_reservation_is_sent_again_once_free(
    manual: Backend, manual_clock: HandClock
) -> None:
    w = world(manual, "RES5", "CARD-A")
    starts_at = T0 + timedelta(hours=1)
    async with library_cp(manual, "RES5", answer="Occupied") as cp:
        booking = w.book("CARD-A", starts_at=starts_at)
        manual_clock.advance((starts_at - LEAD - T0).total_seconds())
        await cp.heartbeat()
        await sweep(manual, reservations_due=1)
        await eventually(lambda: cp.reserves != [], "the first ReserveNow")
        await cp.status("Preparing")  # someone's car is still plugged in
        # Occupied before the start is "not yet": recorded, to be asked again once the connector is free.
        await eventually(
            lambda: manual.booking(booking.booking_id).reservation == "occupied", "Occupied heard"
        )
        record = manual.booking(booking.booking_id)
        assert record.status is BookingStatus.CONFIRMED
        assert manual.gateway.holds[str(record.payment_ref)].state == "authorized"
        await sweep(manual)  # no ReserveNow while the connector is not free
        assert len(cp.reserves) == 1
        cp.reserve_answer = "Accepted"
        await cp.status("Available")
        await sweep(manual, reservations_due=1)
        await eventually(lambda: manual.booking(booking.booking_id).reservation == "accepted", "Accepted")
        assert cp.reserves[-1] == Reserve(1, "CARD-A", booking.booking_id, starts_at + GRACE)
        assert manual.booking(booking.booking_id).status is BookingStatus.CONFIRMED


# ---- the project's virtual charger ---------------------------------------------------------------


def vehicle() -> Vehicle:
    return Vehicle(battery_wh=60_000, soc_wh=30_000, max_power_w=7_400)


@contextlib.asynccontextmanager
async def virtual_charger(backend: Backend, cp_id: str, clock: Clock) -> AsyncIterator[VirtualCharger]:
    vc = VirtualCharger(cp_id, backend.ws, clock, [7_400], meter_interval_s=10, call_timeout_s=5)
    await vc.start()
    try:
        yield vc
    finally:
        await vc.stop()


async def test_virtual_charger_holds_a_reserved_connector_for_the_booked_driver_only(
    scaled: Backend, scaled_clock: ScaledClock
) -> None:
    w = world(scaled, "VC1", "VC-A", "VC-B", price=36)
    async with virtual_charger(scaled, "VC1", scaled_clock) as vc:
        assert scaled.connector_status("VC1") is ConnectorStatus.AVAILABLE
        booking = w.book("VC-A")
        await eventually(
            lambda: (
                scaled.booking(booking.booking_id).reservation == "accepted"
                and scaled.connector_status("VC1") is ConnectorStatus.RESERVED
            ),
            "the connector Reserved, at the charger and in the backend",
        )
        assert vc.connectors[1].state is ConnectorState.RESERVED

        # Another driver: the charger will not take the card, and nor will the backend.
        with pytest.raises(PlugRefused):
            await vc.plug_in(1, "VC-B", vehicle(), 5_000)
        auth = await vc._call("Authorize", {"idTag": "VC-B"})
        assert auth.payload is not None and auth.payload["idTagInfo"]["status"] == "Blocked"
        refused = await vc._call(
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": "VC-B",
                "meterStart": vc.connectors[1].meter.register_wh,
                "timestamp": format_ts(scaled_clock.now()),
            },
        )
        assert refused.payload is not None
        assert (refused.payload["transactionId"], refused.payload["idTagInfo"]["status"]) == (0, "Blocked")
        with scaled.app.store.transaction() as tx:
            assert tx.sessions.all() == []

        # The booked driver plugs in and charges.
        plugged = await vc.plug_in(1, "VC-A", vehicle(), 5_000)
        assert isinstance(plugged.transaction_id, int)  # OCPP 1.6: the backend's session id
        transaction_id = plugged.transaction_id
        assert scaled.booking(booking.booking_id).status is BookingStatus.ACTIVE

        def metered() -> bool:
            with scaled.app.store.transaction() as tx:
                s = tx.sessions.get(transaction_id)
            # Enough energy to cost at least a penny (36p/kWh), so the capture below is not zero.
            return s is not None and s.meter_last_wh - s.meter_start_wh >= 50

        await eventually(metered, "MeterValues to reach the backend")
        await vc.unplug(1)
        record = scaled.booking(booking.booking_id)
        assert record.status is BookingStatus.COMPLETED
        with scaled.app.store.transaction() as tx:
            session = tx.sessions.get(transaction_id)
        assert session is not None and session.billed_wh is not None and session.meter_stop_wh is not None
        assert session.billed_wh == session.meter_stop_wh - session.meter_start_wh > 0
        cost = Tariff(36).cost(session.billed_wh)
        assert session.cost == cost > 0
        await settled(scaled.app)
        assert scaled.captures(booking.booking_id) == [cost]
        assert scaled.gateway.total_captured == cost

        # A repeated StopTransaction is acknowledged and bills nothing more.
        again = await vc._call(
            "StopTransaction",
            {
                "transactionId": transaction_id,
                "meterStop": session.meter_stop_wh + 500,
                "timestamp": format_ts(scaled_clock.now()),
            },
        )
        assert again.payload is not None and again.payload["idTagInfo"]["status"] == "Accepted"
        await settled(scaled.app)
        assert scaled.captures(booking.booking_id) == [cost]
        assert scaled.gateway.total_captured == cost
        assert scaled.failing_invariants() == []


async def test_a_back_to_back_booking_survives_the_reservation_of_the_booking_before_it(
    scaled: Backend, scaled_clock: ScaledClock
) -> None:
    w = world(scaled, "VC2", "VC-A", "VC-B")
    async with virtual_charger(scaled, "VC2", scaled_clock) as vc:
        first = w.book("VC-A", minutes=15)
        await eventually(lambda: vc.connectors[1].state is ConnectorState.RESERVED, "the first reservation")
        # The next slot, straight after the first: it starts within the lead time, so ReserveNow goes now.
        second = w.book("VC-B", minutes=30, starts_at=first.ends_at)
        await eventually(
            lambda: (
                scaled.booking(second.booking_id).reservation != "sent"
                or scaled.booking(second.booking_id).status is not BookingStatus.CONFIRMED
            ),
            "the charger's answer to the second ReserveNow",
        )
        record = scaled.booking(second.booking_id)
        assert record.status is BookingStatus.CONFIRMED, "a valid booking must not fail"
        assert scaled.gateway.holds[str(record.payment_ref)].state == "authorized"
