"""The project's virtual charger against the real backend over loopback WebSockets, in OCPP 2.0.1 and
2.1 (and, where the behaviour is shared, 1.6J too): sessions billed from TransactionEvents, an offline
replay billed once, the backend's own commands (energy-limit stop, reservations) and the typed
command registry answered, and wire faults seen from the server side."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import DatabaseBusy
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.connection import Outcome
from chargeshare.ocpp.metering import ENERGY
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ScaledClock
from chargeshare.services.invariants import check_store
from chargeshare.services.records import ChargerReport, SessionRecord
from simulators import live_faults
from simulators.charger import VirtualCharger
from simulators.evse import Transaction, VirtualConnector
from simulators.faults import Fault
from simulators.firmware import ConnectorState
from simulators.power import Vehicle
from simulators.settings import TRANSACTION_RETRY_INTERVAL
from tests.conftest import T0, add_charger
from tests.waiting import eventually, settled

pytestmark = pytest.mark.e2e

SPEED = 60.0  # one real second is one simulated minute
PRICE = 36


@dataclass
class Backend:
    app: App
    registry: ChargerRegistry
    port: int
    frames: list[tuple[str, str, list[Any]]] = field(default_factory=list)  # (cp, direction, frame)

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def sessions(self) -> list[SessionRecord]:
        with self.app.store.transaction() as tx:
            return list(tx.sessions.all())

    def booking_status(self, booking_id: int) -> BookingStatus:
        with self.app.store.transaction() as tx:
            return tx.bookings.get(booking_id).status

    def connector_status(self, cp_id: str) -> ConnectorStatus:
        with self.app.store.transaction() as tx:
            return tx.chargers.get(cp_id).connectors[0].status

    def failing_invariants(self) -> list[str]:
        results = check_store(self.app.store, self.app.config.rules, now=self.app.clock.now())
        return [f"{r.name}: {r.failures}" for r in results if not r.ok]

    async def book(self, vc: VirtualCharger, tag: str, *, max_wh: int = 20_000, minutes: int = 120) -> int:
        """Book `vc` (registered by `charger`, and online) to charge now, and wait for the backend's
        ReserveNow to hold it (a driver plugged in before that would find it refused as Occupied)."""
        cp_id = vc.cp_id
        with self.app.store.transaction() as tx:
            charger_id = tx.chargers.get(cp_id).charger_id
        driver = self.app.marketplace.add_driver(f"driver {tag}", tag)
        booking = self.app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, minutes, max_wh))
        await eventually(lambda: vc.connectors[1].state is ConnectorState.RESERVED, "the reservation")
        return booking.booking_id


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(T0, SPEED)


@pytest.fixture
async def backend(clock: ScaledClock) -> AsyncIterator[Backend]:
    app = build(Config(database_url="sqlite://"), clock=clock)
    registry = ChargerRegistry(app, call_timeout_s=5)
    try:
        async with LoopbackServer(create_api(app, registry)) as server:
            b = Backend(app, registry, server.port)
            registry.add_tap(lambda cp, direction, text: b.frames.append((cp, direction, json.loads(text))))
            yield b
    finally:
        app.close()


@contextlib.asynccontextmanager
async def charger(
    backend: Backend, cp_id: str, clock: ScaledClock, protocol: OcppVersion
) -> AsyncIterator[VirtualCharger]:
    add_charger(backend.app, cp_id, price=PRICE, online=False)  # it boots over the socket
    vc = VirtualCharger(
        cp_id, backend.ws, clock, [7_400], protocol=protocol, meter_interval_s=60, call_timeout_s=5
    )
    await vc.start()
    try:
        yield vc
    finally:
        await vc.stop()


def car() -> Vehicle:
    return Vehicle(battery_wh=60_000, soc_wh=20_000, max_power_w=7_400)


def metered(backend: Backend) -> bool:
    return any(s.meter_last_wh > s.meter_start_wh for s in backend.sessions())


async def billed_once(backend: Backend, booking_id: int) -> SessionRecord:
    """The booking completed, its one session billed from the meter, captured once, books balanced."""
    await settled(backend.app)
    assert backend.booking_status(booking_id) is BookingStatus.COMPLETED
    (session,) = backend.sessions()
    assert session.billed_wh is not None and session.meter_stop_wh is not None
    assert session.billed_wh == session.meter_stop_wh - session.meter_start_wh > 0
    gateway = backend.app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.total_captured == Tariff(PRICE).cost(session.billed_wh)
    assert backend.failing_invariants() == []
    return session


@pytest.mark.parametrize("protocol", [V201, V21])
async def test_a_2x_session_is_billed_from_its_transaction_events(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    async with charger(backend, "V201A", clock, protocol) as vc:
        booking_id = await backend.book(vc, "TAG-A")
        with backend.app.store.transaction() as tx:
            assert tx.chargers.get("V201A").ocpp_version == protocol
        plugged = await vc.plug_in(1, "TAG-A", car(), 20_000)
        assert isinstance(plugged.transaction_id, str)  # the charger's own id
        assert backend.booking_status(booking_id) is BookingStatus.ACTIVE
        await eventually(lambda: metered(backend), "TransactionEvent Updated readings to reach the backend")
        await vc.unplug(1)
        session = await billed_once(backend, booking_id)
        assert session.meter_stop_wh == vc.connectors[1].meter.register_wh
    events = [f[3] for _, d, f in backend.frames if d == "in" and f[0] == 2 and f[2] == "TransactionEvent"]
    assert [e["eventType"] for e in (events[0], events[-1])] == ["Started", "Ended"]
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    answers = [f for _, d, f in backend.frames if d == "out" and f[0] == 4]
    assert answers == [], "the backend refused nothing the charger sent"


@pytest.mark.parametrize("protocol", [V201, V21])
async def test_a_2x_charger_offline_mid_session_replays_its_events_and_is_billed_once(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    async with charger(backend, "V201B", clock, protocol) as vc:
        booking_id = await backend.book(vc, "TAG-B")
        await vc.plug_in(1, "TAG-B", car(), 20_000)
        await vc.go_offline()  # the outage lasts until the test ends it, however loaded the machine
        assert not vc.connected
        offline_at = clock.now()
        await eventually(
            lambda: clock.now() - offline_at >= timedelta(minutes=1), "a minute charging offline"
        )
        await vc.unplug(1)  # the car leaves while the charger is offline, having drawn energy
        assert vc.queue and all(q.payload.get("offline") is True for q in vc.queue)
        await vc.come_back()
        await eventually(lambda: not vc.queue, "the queue replayed")
        await billed_once(backend, booking_id)
    replayed = [f[3] for _, d, f in backend.frames if d == "in" and f[0] == 2 and f[2] == "TransactionEvent"]
    assert any(e.get("offline") for e in replayed)


@pytest.mark.parametrize("protocol", [V16, V201])
async def test_a_replayed_stop_the_backend_failed_to_process_is_sent_again_and_billed_once(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    stop = backend.app.charging.stop
    failed: list[tuple[Any, ...]] = []

    def busy_once(*args: Any, **kwargs: Any) -> Any:
        if not failed:  # a lock not granted in time: nothing kept, answered InternalError
            failed.append(args)
            raise DatabaseBusy("the database is busy: a lock was not granted in time", 1.0)
        return stop(*args, **kwargs)

    async with charger(backend, "VRETRY", clock, protocol) as vc:
        vc.settings.values[TRANSACTION_RETRY_INTERVAL] = "0"  # sent again at once: the test is of billing
        booking_id = await backend.book(vc, "TAG-R")
        await vc.plug_in(1, "TAG-R", car(), 20_000)
        await vc.go_offline()
        offline_at = clock.now()
        await eventually(lambda: clock.now() - offline_at >= timedelta(minutes=1), "a minute offline")
        await vc.unplug(1)
        backend.app.charging.stop = busy_once  # type: ignore[method-assign]
        await vc.come_back()
        await eventually(lambda: not vc.queue, "the queue replayed")
        await billed_once(backend, booking_id)
    assert len(failed) == 1 and vc.messages_given_up == 0
    errors = [f for _, d, f in backend.frames if d == "out" and f[0] == 4]
    assert [f[2] for f in errors] == ["InternalError"]


@pytest.mark.parametrize("protocol", [V16, V201])
async def test_a_car_gone_before_its_start_is_answered_leaves_no_session_open(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    async with charger(backend, "VLEFT", clock, protocol) as vc:
        booking_id = await backend.book(vc, "TAG-U")
        take = vc.take_start

        def car_leaves_first(c: VirtualConnector, tx: Transaction, outcome: Outcome) -> bool | None:
            vc.unplugged(c)  # the car is gone by the time the start's answer is read
            return take(c, tx, outcome)

        vc.take_start = car_leaves_first  # type: ignore[method-assign]
        await vc.plug_in(1, "TAG-U", car(), 20_000)
        vc.take_start = take  # type: ignore[method-assign]
        await vc.report_status(vc.connectors[1])
        assert vc.connectors[1].transaction is None

        def stops() -> list[list[Any]]:  # the charger's own, not the lost-stop sweep's close
            return [
                f
                for _, d, f in backend.frames
                if d == "in"
                and f[0] == 2
                and (
                    f[2] == "StopTransaction" or (f[2] == "TransactionEvent" and f[3]["eventType"] == "Ended")
                )
            ]

        await eventually(lambda: len(stops()) == 1, "the charger's stop of the start it abandoned")
        await eventually(
            lambda: [s.status for s in backend.sessions()] == [SessionStatus.STOPPED], "the session's stop"
        )
        await settled(backend.app)
    assert backend.booking_status(booking_id) is BookingStatus.COMPLETED
    assert backend.failing_invariants() == []


@pytest.mark.parametrize("protocol", [V16, V201, V21])
async def test_the_backend_stops_a_session_at_its_energy_limit(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    async with charger(backend, "VLIM", clock, protocol) as vc:
        booking_id = await backend.book(vc, "TAG-L", max_wh=150)
        await vc.plug_in(1, "TAG-L", car(), 20_000)
        c = vc.connectors[1]
        await eventually(lambda: c.state is ConnectorState.FINISHING, "the backend's remote stop", tries=600)
        stop = "RemoteStopTransaction" if protocol == V16 else "RequestStopTransaction"
        assert any(d == "out" and f[0] == 2 and f[2] == stop for _, d, f in backend.frames)
        await vc.unplug(1)
    assert backend.booking_status(booking_id) is BookingStatus.COMPLETED
    # The stop overshoots the booked energy by up to a meter interval: the payments worker captures
    # the hold, then charges the rest as a top-up, after the stop. The books balance once it is done.
    await settled(backend.app)
    (session,) = backend.sessions()
    gateway = backend.app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert session.cost is not None and gateway.total_captured == session.cost
    assert backend.failing_invariants() == []


@pytest.mark.parametrize("protocol", [V16, V201, V21])
async def test_a_due_booking_reserves_the_connector_for_its_driver(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    async with charger(backend, "VRES", clock, protocol) as vc:
        booking_id = await backend.book(vc, "TAG-R")
        await eventually(lambda: vc.connectors[1].state is ConnectorState.RESERVED, "ReserveNow")
        await eventually(
            lambda: backend.connector_status("VRES") is ConnectorStatus.RESERVED, "Reserved reported"
        )
        with backend.app.store.transaction() as tx:
            assert tx.bookings.get(booking_id).reservation == "accepted"
        plugged = await vc.plug_in(1, "TAG-R", car(), 2_000)
        assert plugged.transaction_id is not None


@pytest.mark.parametrize("protocol", [V16, V201, V21])
async def test_the_typed_command_registry_is_answered_in_either_version(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    reg = backend.registry
    async with charger(backend, "VCMD", clock, protocol) as vc:
        interval = cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr")
        assert isinstance(await reg.change_setting("VCMD", interval, "120"), cmd.Done)
        got = await reg.get_settings("VCMD", interval, cmd.SettingKey("NoSuchThing", "OCPPCommCtrlr"))
        assert isinstance(got, cmd.Done)
        assert [(s.status, s.value) for s in got.details] == [
            (cmd.Status.ACCEPTED, "120"),
            (cmd.Status.UNKNOWN_VARIABLE, None),
        ]
        assert isinstance(await reg.change_availability("VCMD", 1, operative=False), cmd.Done)
        await eventually(
            lambda: backend.connector_status("VCMD") is ConnectorStatus.UNAVAILABLE, "Unavailable"
        )
        assert isinstance(await reg.change_availability("VCMD", 1, operative=True), cmd.Done)
        await eventually(lambda: backend.connector_status("VCMD") is ConnectorStatus.AVAILABLE, "Available")
        profile = cmd.ChargingProfile(
            1,
            0,
            cmd.ProfilePurpose.TX_DEFAULT,
            cmd.ProfileKind.ABSOLUTE,
            cmd.RateUnit.WATTS,
            (cmd.SchedulePeriod(0, 3_000),),
            starts_at=clock.now(),
        )
        assert isinstance(await reg.set_charging_profile("VCMD", 1, profile), cmd.Done)
        schedule = await reg.get_composite_schedule("VCMD", 1, 600, cmd.RateUnit.WATTS)
        assert isinstance(schedule, cmd.Done) and schedule.details is not None
        assert schedule.details.periods[0].limit == 3_000
        assert vc.limit_w(vc.connectors[1]) == 3_000
        trigger = await reg.trigger_message("VCMD", "StatusNotification", 1)
        assert isinstance(trigger, cmd.Done)
        boots = vc.boots
        assert isinstance(await reg.reset("VCMD", hard=True), cmd.Done)
        await eventually(lambda: vc.boots > boots and vc.online.is_set(), "the reboot")
        assert vc.resets == 1


@pytest.mark.parametrize("protocol", [V16, V201, V21])
async def test_wire_faults_as_the_server_sees_them(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    reg = backend.registry
    async with charger(backend, "VFLT", clock, protocol) as vc:
        vc.wire.reject = frozenset({"Reset"})
        refused = await reg.reset("VFLT", hard=True)
        assert isinstance(refused, cmd.Rejected) and vc.resets == 0
        vc.wire.reject = frozenset()
        vc.wire.delay_s = SPEED  # one real second: past the half second the registry waits here
        late = await reg.trigger_message("VFLT", "Heartbeat", timeout_s=0.5)
        assert isinstance(late, cmd.Timeout)
        vc.wire.delay_s = 0
        await vc.send_malformed(4)
        await eventually(lambda: len(vc.wire.malformed_answers) == 4, "a CALLERROR for each broken frame")
        errors = [f for cp, d, f in backend.frames if cp == "VFLT" and d == "out" and f[0] == 4]
        assert [e[2] for e in errors] == vc.wire.malformed_answers
        assert isinstance(await reg.trigger_message("VFLT", "Heartbeat"), cmd.Done)  # still talking


@pytest.mark.parametrize("protocol", [V16, V201, V21])
async def test_the_virtual_charger_takes_the_metering_the_backend_asks_for(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    add_charger(backend.app, "VMTR", price=PRICE, online=False)
    vc = VirtualCharger(
        "VMTR", backend.ws, clock, [7_400], protocol=protocol, meter_interval_s=600, call_timeout_s=5
    )
    vc.settings.values["meter_measurands"] = "Power.Active.Import"  # firmware that would bill nothing

    def kept() -> list[ChargerReport]:
        return backend.app.reports.reports("VMTR", ["MeteringSetup"])

    await vc.start()
    try:
        await eventually(lambda: bool(kept()), "the metering set up")
        assert vc.meter_interval_s == 60
        assert vc.settings.get("meter_measurands") == f"{ENERGY},Power.Active.Import"
    finally:
        await vc.stop()
    (setup,) = kept()
    assert setup.summary.count(": Accepted") == 3 and "Rejected" not in setup.summary
    # Its retries (3 attempts, 60 s apart) fitted within 200 s, response time-outs counted: 3 x 30 +
    # 18 x (1 + 2 + 3) = 198 s; a 2.x charger's named with their instance.
    assert vc.settings.get(TRANSACTION_RETRY_INTERVAL) == "18"
    retry_interval = (
        "TransactionMessageRetryInterval"
        if protocol == V16
        else ("OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]")
    )
    assert f"set {retry_interval}=18: Accepted" in setup.summary


@pytest.mark.parametrize("protocol", [V201, V21])
async def test_the_virtual_2x_charger_says_when_a_reservation_lapses(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    async with charger(backend, "VEXP", clock, protocol) as vc:
        booking_id = await backend.book(vc, "TAG-X")
        c = vc.connectors[1]
        assert c.reservation is not None
        # Its clock says the reservation is over before the backend's does (skew, or a rounding).
        c.reservation = replace(c.reservation, expires_at=clock.now())

        def reservation() -> str:
            with backend.app.store.reading() as tx:
                return tx.bookings.get(booking_id).reservation

        await eventually(lambda: reservation() == "expired", "ReservationStatusUpdate Expired")
        assert c.state is ConnectorState.AVAILABLE
        assert backend.booking_status(booking_id) is BookingStatus.CONFIRMED  # the driver's grace stands
    updates = [
        f[3] for _, d, f in backend.frames if d == "in" and f[0] == 2 and f[2] == "ReservationStatusUpdate"
    ]
    assert updates == [{"reservationId": booking_id, "reservationUpdateStatus": "Expired"}]


@pytest.mark.parametrize("protocol", [V16, V201])
async def test_a_charger_whose_clock_jumps_back_mid_session_is_shown_free_when_the_car_leaves(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    """The scenario fault `clock_jump` sets the charger's clock an hour back mid-session, its link up
    past the replay window: the car leaves, and the connector is shown free (its reports after the
    jump are stamped before those it made before it), the booking completed and billed once."""
    window = timedelta(seconds=backend.app.config.rules.replay_window_s)
    async with charger(backend, "VJUMP", clock, protocol) as vc:
        connected = clock.now()
        booking_id = await backend.book(vc, "TAG-J")
        await vc.plug_in(1, "TAG-J", car(), 20_000)
        await eventually(lambda: backend.connector_status("VJUMP") is ConnectorStatus.CHARGING, "Charging")
        await eventually(
            lambda: clock.now() - connected > window + timedelta(minutes=1), "the link settled", tries=1_000
        )
        await live_faults.CHARGER_ACTIONS["clock_jump"](vc, Fault(0, "clock_jump", skew_s=-3_600))
        await vc.unplug(1)
        await eventually(
            lambda: backend.connector_status("VJUMP") is ConnectorStatus.AVAILABLE, "the connector shown free"
        )
        session = await billed_once(backend, booking_id)
        with backend.app.store.transaction() as tx:
            ends_at = tx.bookings.get(booking_id).ends_at
        assert session.stopped_at is not None and ends_at > clock.now() - timedelta(minutes=10)


def _ended(action: str, payload: dict[str, Any]) -> bool:
    return action == "TransactionEvent" and payload["eventType"] == "Ended"


@pytest.mark.parametrize("protocol", [V201, V21])
async def test_a_session_whose_end_was_lost_offline_is_freed_when_the_charger_is_back(
    backend: Backend, clock: ScaledClock, protocol: OcppVersion
) -> None:
    """A car plugs in and the link drops; offline, the charger's clock jumps an hour back, the card
    is presented (its transaction announced and, unanswered, ended: both queued), and the car leaves;
    the end is lost from the queue. Back, the charger boots, replays the start first and reports no
    connector of its own accord: the start cannot be placed against the free report (no status on
    the link yet), so the backend asks the connector's status, and the answer (free) frees the
    session. (A 1.6 virtual charger sends its stop as its replayed start is answered: nothing to
    lose; tests/services/test_clock_jump.py covers 1.6 through its handlers.)"""
    async with charger(backend, "VLOST", clock, protocol) as vc:
        await backend.book(vc, "TAG-L")
        await vc.plug_car(1, car(), 20_000, id_tag="TAG-L")
        await vc.go_offline()
        await live_faults.CHARGER_ACTIONS["clock_jump"](vc, Fault(0, "clock_jump", skew_s=-3_600))
        await vc.start_transaction(vc.connectors[1], "TAG-L")
        await vc.unplug(1)
        assert [_ended(q.action, q.payload) for q in vc.queue] == [False, True]
        del vc.queue[1]  # lost with the power
        vc.reports_on_resume = False
        await vc.come_back()
        await eventually(lambda: not vc.queue, "the queue replayed")
        await eventually(
            lambda: [s.freed_at is not None for s in backend.sessions()] == [True], "the session freed"
        )
    triggers = [f[3] for _, d, f in backend.frames if d == "out" and f[0] == 2 and f[2] == "TriggerMessage"]
    assert [t["requestedMessage"] for t in triggers] == ["StatusNotification"]
