"""A charger reaches only its own sessions: frames naming another charger's transaction, from a
registered charger or an unregistered one (dev mode), change nothing, get the answer the spec
allows, and are kept as security events for the operator."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call as call16
from ocpp.v16.datatypes import MeterValue, SampledValue
from ocpp.v201 import call as call201

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.session import SessionStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import FOREIGN_TRANSACTION
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger
from tests.e2e.conftest import Served
from tests.e2e.ocpp_clients import boot201, library_cp16, library_cp201, now, tx_event
from tests.waiting import settled

pytestmark = pytest.mark.e2e


def meter16(transaction_id: int, wh: int) -> call16.MeterValues:
    return call16.MeterValues(
        connector_id=1,
        transaction_id=transaction_id,
        meter_value=[MeterValue(timestamp=now(), sampled_value=[SampledValue(value=str(wh))])],
    )


def captured(app: App, booking_id: int) -> int:
    with app.store.reading() as tx:
        return sum(e.amount for e in tx.ledger.entries(booking_id) if e.kind is EntryKind.CAPTURE)


def assert_invariants(app: App) -> None:
    failing = [r for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok]
    assert not failing, failing


async def test_a_16_charger_cannot_stop_or_meter_another_chargers_transaction(served: Served) -> None:
    app = served.app
    victim_id = add_charger(app, "VICTIM", price=40)
    add_charger(app, "ROGUE")
    driver = app.marketplace.add_driver("D", "CARD-V")
    booking = app.bookings.book(BookRequest(driver.driver_id, victim_id, 1, 60, 10_000))
    async with (
        library_cp16(served.ws, "VICTIM") as victim,
        library_cp16(served.ws, "ROGUE") as rogue,
        library_cp16(served.ws, "NOBODY") as unknown,  # not registered: dev mode lets it talk
    ):
        for cp in (victim, rogue, unknown):
            await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        started = await victim.call(
            call16.StartTransaction(connector_id=1, id_tag="CARD-V", meter_start=1_000, timestamp=now())
        )
        tx_id = started.transaction_id
        assert tx_id > 0
        await victim.call(meter16(tx_id, 1_500))

        # Readings far beyond the booking's energy limit: applied, they would also make the server
        # send RemoteStopTransaction (to whichever charger named the transaction).
        for spoofer in (rogue, unknown):
            await spoofer.call(meter16(tx_id, 1_000_000))
            stop = await spoofer.call(
                call16.StopTransaction(meter_stop=1_000_000, timestamp=now(), transaction_id=tx_id)
            )
            assert stop.id_tag_info["status"] == "Invalid"

        with app.store.reading() as tx:
            session = tx.sessions.get(tx_id)
            assert session is not None
            assert session.status is SessionStatus.CHARGING
            assert session.meter_last_wh == 1_500
            events = tx.security.all()
        assert {e.charge_point_id for e in events} == {"ROGUE", "NOBODY"}
        assert {e.kind for e in events} == {FOREIGN_TRANSACTION}
        assert len(events) == 4  # a MeterValues and a StopTransaction from each
        assert not rogue.script.asked("RemoteStopTransaction")
        assert not unknown.script.asked("RemoteStopTransaction")

        # The real charger's stop is the one billed: 4,000 Wh at 40p/kWh.
        stop = await victim.call(
            call16.StopTransaction(meter_stop=5_000, timestamp=now(), transaction_id=tx_id)
        )
        assert stop.id_tag_info["status"] == "Accepted"
    with app.store.reading() as tx:
        session = tx.sessions.get(tx_id)
        assert session is not None and session.billed_wh == 4_000
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    await settled(app)  # the payments worker captures after the stop's answer: wait for it first
    assert captured(app, booking.booking_id) == 160
    assert gateway.total_captured == 160
    assert_invariants(app)


async def test_a_201_charger_cannot_reach_another_chargers_transaction(served: Served) -> None:
    app = served.app
    victim_id = add_charger(app, "V201", price=40)
    add_charger(app, "R201")
    driver = app.marketplace.add_driver("D", "TAG-V")
    app.bookings.book(BookRequest(driver.driver_id, victim_id, 1, 60, 10_000))
    async with library_cp201(served.ws, "V201") as victim, library_cp201(served.ws, "R201") as rogue:
        for cp in (victim, rogue):
            assert (await boot201(cp)).status == "Accepted"
        await victim.call(
            tx_event("Started", 0, "TX-V", trigger="Authorized", wh=100, id_tag="TAG-V", evse=1)
        )
        # The rogue names the victim's transaction id: to us it is a transaction of its own, never
        # opened (no idToken), so nothing is billed anywhere; since the victim runs one under that
        # id, each such event is kept as a security event.
        await rogue.call(tx_event("Updated", 1, "TX-V", trigger="MeterValuePeriodic", wh=900_000))
        ended = tx_event("Ended", 2, "TX-V", trigger="StopAuthorized", wh=900_000)
        await rogue.call(ended)
        await rogue.call(
            call201.MeterValues(
                evse_id=1,
                meter_value=[
                    {
                        "timestamp": now(),
                        "sampled_value": [{"value": 900_000, "measurand": "Energy.Active.Import.Register"}],
                    }
                ],
            )
        )
        await asyncio.sleep(0)
        with app.store.reading() as tx:
            (session,) = tx.sessions.all()
        assert session.status is SessionStatus.CHARGING
        assert session.meter_last_wh == 100
        with app.store.reading() as tx:
            events = tx.security.all()
        assert [(e.charge_point_id, e.kind) for e in events] == [("R201", FOREIGN_TRANSACTION)] * 2
        await victim.call(tx_event("Ended", 1, "TX-V", trigger="EVCommunicationLost", wh=1_100))
        # Once the victim's transaction has ended, its id names nothing running: no event.
        await rogue.call(tx_event("Updated", 3, "TX-V", trigger="MeterValuePeriodic", wh=900_000))
    with app.store.reading() as tx:
        (session,) = tx.sessions.all()
        assert len(tx.security.all()) == 2
    assert session.status is SessionStatus.STOPPED and session.billed_wh == 1_000
    await settled(app)
    assert_invariants(app)
