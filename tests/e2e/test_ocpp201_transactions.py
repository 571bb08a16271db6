"""OCPP 2.0.1 transactions over real loopback WebSockets, spoken by an independent client built on the
`ocpp` library: TransactionEvent, MeterValues, Authorize and NotifyEvent land on the same charging
service as 1.6, so bookings, billing and the ledger behave identically, and nothing counts twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from ocpp.v201 import call as call201

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.session import SessionStatus
from tests.conftest import add_charger
from tests.e2e.conftest import Served
from tests.e2e.ocpp_clients import boot201, energy201, library_cp201, now, tx_event
from tests.e2e.transactions import (
    assert_invariants,
    book,
    captures,
    offline_queue_replayed_twice_counts_once,
    sessions,
)
from tests.waiting import settled

pytestmark = pytest.mark.e2e


async def test_boot_authorize_started_updated_ended_is_billed_once(served: Served) -> None:
    app = served.app
    booking = book(app, "T201", "TAG201", price=40)
    async with library_cp201(served.ws, "T201") as cp:
        assert (await boot201(cp)).status == "Accepted"
        auth = await cp.call(call201.Authorize(id_token={"id_token": "TAG201", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        started = await cp.call(
            tx_event("Started", 0, "TX-A", trigger="Authorized", wh=500, id_tag="TAG201", evse=1)
        )
        assert started.id_token_info["status"] == "Accepted"
        for seq, wh in ((1, 2_000), (2, 4_000), (2, 4_000), (1, 2_000)):  # then a retry and a replay
            await cp.call(tx_event("Updated", seq, "TX-A", wh=wh, charging_state="Charging"))
        (session,) = sessions(app)
        assert session.meter_start_wh == 500 and session.meter_last_wh == 4_000
        for _ in range(2):  # a duplicated Ended must not bill twice
            await cp.call(tx_event("Ended", 3, "TX-A", trigger="EVCommunicationLost", wh=6_500))
    (session,) = sessions(app)
    assert session.status is SessionStatus.STOPPED and session.billed_wh == 6_000
    await settled(app)
    assert captures(app, booking.booking_id) == [240]  # 6.000 kWh x 40p, once
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway) and gateway.total_captured == 240
    with app.store.transaction() as tx:
        assert tx.bookings.get(booking.booking_id).status.value == "completed"
    assert_invariants(app)


async def test_unplugging_reports_available_before_ended_and_ended_is_billed(served: Served) -> None:
    """Real firmware sends StatusNotification Available and then TransactionEvent Ended on unplug: the
    free connector alone does not close the session, so Ended's reading is the one billed."""
    app = served.app
    booking = book(app, "UNPLUG", "TAGUNP", price=40)
    async with library_cp201(served.ws, "UNPLUG") as cp:
        assert (await boot201(cp)).status == "Accepted"
        await cp.call(tx_event("Started", 0, "TX-U", trigger="Authorized", wh=0, id_tag="TAGUNP", evse=1))
        await cp.call(tx_event("Updated", 1, "TX-U", wh=300, charging_state="Charging"))
        await cp.call(
            call201.StatusNotification(
                timestamp=now(), connector_status="Available", evse_id=1, connector_id=1
            )
        )
        (session,) = sessions(app)
        assert session.status is SessionStatus.CHARGING  # free, but its stop is on the way
        await cp.call(tx_event("Ended", 2, "TX-U", trigger="EVCommunicationLost", wh=900))
    (session,) = sessions(app)
    assert session.status is SessionStatus.STOPPED and session.billed_wh == 900
    await settled(app)
    assert captures(app, booking.booking_id) == [36]  # 0.900 kWh x 40p
    assert app.charging.close_lost_stops(grace=timedelta(0)) == []  # nothing left to take as lost
    assert_invariants(app)


async def test_an_offline_queue_replayed_twice_with_old_timestamps_counts_once(served: Served) -> None:
    await offline_queue_replayed_twice_counts_once(served, library_cp201, boot201, tx_event, "OFF201")


async def test_a_start_on_someone_elses_booking_is_blocked_and_opens_nothing(served: Served) -> None:
    app = served.app
    booking = book(app, "BLK201", "OWNER")
    app.marketplace.add_driver("other", "OTHER")
    async with library_cp201(served.ws, "BLK201") as cp:
        await boot201(cp)
        auth = await cp.call(call201.Authorize(id_token={"id_token": "OTHER", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Blocked"
        unknown = await cp.call(call201.Authorize(id_token={"id_token": "NOBODY", "type": "ISO14443"}))
        assert unknown.id_token_info["status"] == "Invalid"
        started = await cp.call(tx_event("Started", 0, "X1", wh=0, id_tag="OTHER", evse=1))
        assert started.id_token_info["status"] == "Blocked"
        started = await cp.call(tx_event("Started", 0, "X2", wh=0, id_tag="NOBODY", evse=1))
        assert started.id_token_info["status"] == "Invalid"
        await cp.call(tx_event("Ended", 1, "X1", wh=5_000))  # the charger stops what we refused
    assert sessions(app) == []
    with app.store.transaction() as tx:
        assert tx.bookings.get(booking.booking_id).status.value == "confirmed"  # still the owner's


async def test_a_transaction_started_on_plug_in_opens_our_session_once_authorised(served: Served) -> None:
    app = served.app
    book(app, "PLUG201", "LATE")
    async with library_cp201(served.ws, "PLUG201") as cp:
        await boot201(cp)
        plugged = await cp.call(tx_event("Started", 0, "P1", trigger="CablePluggedIn", wh=100, evse=1))
        assert plugged.id_token_info is None and sessions(app) == []
        authorised = await cp.call(tx_event("Updated", 1, "P1", trigger="Authorized", wh=120, id_tag="LATE"))
        assert authorised.id_token_info["status"] == "Accepted"
        await cp.call(tx_event("Ended", 2, "P1", wh=1_120))
    (session,) = sessions(app)
    assert (session.meter_start_wh, session.billed_wh) == (120, 1_000)
    await settled(app)
    assert_invariants(app)


async def test_a_start_without_a_reading_counts_from_the_first_reading_not_from_zero(
    served: Served,
) -> None:
    app = served.app
    booking = book(app, "NOREG201", "NOREG", price=50)
    async with library_cp201(served.ws, "NOREG201") as cp:
        await boot201(cp)
        started = await cp.call(tx_event("Started", 0, "N1", trigger="Authorized", id_tag="NOREG", evse=1))
        assert started.id_token_info["status"] == "Accepted"
        await cp.call(call201.MeterValues(evse_id=1, meter_value=energy201(1_000_000)))  # a lifetime register
        await cp.call(tx_event("Updated", 1, "N1", wh=1_001_000))
        await cp.call(tx_event("Ended", 2, "N1", wh=1_002_000))
    (session,) = sessions(app)
    assert (session.meter_start_wh, session.billed_wh) == (1_000_000, 2_000)
    await settled(app)
    assert captures(app, booking.booking_id) == [100]  # 2.000 kWh x 50p
    assert_invariants(app)


async def test_meter_values_by_evse_reach_the_running_transaction(served: Served) -> None:
    app = served.app
    book(app, "MV201", "MV")
    async with library_cp201(served.ws, "MV201") as cp:
        await boot201(cp)
        await cp.call(tx_event("Started", 0, "M1", wh=0, id_tag="MV", evse=1))
        await cp.call(call201.MeterValues(evse_id=1, meter_value=energy201(1_500)))
        await cp.call(call201.MeterValues(evse_id=0, meter_value=energy201(900_000)))  # main meter
        await cp.call(
            call201.MeterValues(
                evse_id=1,
                meter_value=[
                    {
                        "timestamp": now(),
                        "sampled_value": [
                            {"value": 2.25, "unit_of_measure": {"unit": "kWh"}},
                            {"value": 230, "measurand": "Voltage"},
                        ],
                    }
                ],
            )
        )
    (session,) = sessions(app)
    assert session.meter_last_wh == 2_250


async def test_energy_limit_sends_request_stop_with_the_chargers_own_transaction_id(
    served: Served,
) -> None:
    app = served.app
    book(app, "LIM201", "LIM", max_wh=1_000)
    async with library_cp201(served.ws, "LIM201") as cp:
        await boot201(cp)
        await cp.call(tx_event("Started", 0, "charger-tx-77", wh=0, id_tag="LIM", evse=1))
        await cp.call(tx_event("Updated", 1, "charger-tx-77", wh=1_200))
        for _ in range(100):
            if cp.script.asked("RequestStopTransaction"):
                break
            await asyncio.sleep(0.02)
    assert cp.script.asked("RequestStopTransaction") == [{"transaction_id": "charger-tx-77"}]


async def test_suspended_ev_starts_the_idle_clock(served: Served) -> None:
    app = served.app
    book(app, "IDLE201", "IDLE")
    async with library_cp201(served.ws, "IDLE201") as cp:
        await boot201(cp)
        await cp.call(tx_event("Started", 0, "I1", wh=0, id_tag="IDLE", evse=1))
        await cp.call(tx_event("Updated", 1, "I1", wh=500, charging_state="SuspendedEV"))
        (session,) = sessions(app)
        assert session.idle_since is not None
        await cp.call(tx_event("Updated", 2, "I1", wh=600, charging_state="Charging"))
    (session,) = sessions(app)
    assert session.idle_since is None


async def test_notify_event_availability_and_status_notification_set_the_connector(
    served: Served,
) -> None:
    app = served.app
    add_charger(app, "EV201")

    def status() -> ConnectorStatus:
        with app.store.transaction() as tx:
            return tx.chargers.get("EV201").connectors[0].status

    async with library_cp201(served.ws, "EV201") as cp:
        await boot201(cp)
        await cp.call(
            call201.NotifyEvent(
                generated_at=now(),
                seq_no=0,
                event_data=[
                    {
                        "event_id": 1,
                        "timestamp": now(),
                        "trigger": "Delta",
                        "actual_value": "Faulted",
                        "event_notification_type": "HardWiredNotification",
                        "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
                        "variable": {"name": "AvailabilityState"},
                    },
                    {
                        "event_id": 2,
                        "timestamp": now(),
                        "trigger": "Alerting",
                        "actual_value": "87",
                        "event_notification_type": "HardWiredNotification",
                        "component": {"name": "TemperatureSensor"},
                        "variable": {"name": "Temperature"},
                    },
                ],
            )
        )
        assert status() is ConnectorStatus.FAULTED
        await cp.call(
            call201.StatusNotification(
                timestamp=now(), connector_status="Available", evse_id=1, connector_id=1
            )
        )
        assert status() is ConnectorStatus.AVAILABLE
        problem = {
            "event_id": 3,
            "timestamp": now(),
            "trigger": "Alerting",
            "actual_value": "true",
            "event_notification_type": "HardWiredNotification",
            "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
            "variable": {"name": "Problem"},
        }
        await cp.call(call201.NotifyEvent(generated_at=now(), seq_no=1, event_data=[problem]))
        assert status() is ConnectorStatus.FAULTED
        for request in (
            call201.FirmwareStatusNotification(status="Downloaded"),
            call201.LogStatusNotification(status="Uploaded"),
        ):
            assert await cp.call(request) is not None
        refusal = await cp.call(call201.DataTransfer(vendor_id="acme"))
        assert refusal.status == "UnknownVendorId"
