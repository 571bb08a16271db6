"""Kill the real server on the newer money paths, restart it on the same database, let the charger
send again what went unanswered, and check each movement happened exactly once.

- A guest's V2G export on an OCPP 2.1 charger: the stop's export reading recorded and the stop not
  yet (`stop-export-metered`), or the stop, its capture step and its export credit committed and
  the charger not answered (`stop-committed`). The credit is in the ledger once, the card captured once.
- A fleet's block occurrence, paid on account: the stop committed and unanswered. The fleet's
  account is charged once, and no card is touched.
- A fleet's block occurrence cancelled late by its host: the cancellation, its penalty and its
  release committed and unanswered (`cancel-committed`). The penalty is credited once.
- A fleet's month: its invoice issued and unanswered (`invoice-issued`), asked again; then its
  payment recorded and unanswered (`fleet-payment-recorded`), sent again under its Idempotency-Key.
- The grid buyer's month of export credits: its payment recorded and unanswered
  (`grid-payment-recorded`), recorded again.

The months are made last month, before the server starts, by a view of the database on a clock
set back (a month must be over to be invoiced or settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v21 import call as call21

from chargeshare.bootstrap import App, build
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.fleet import BlockRule, ContractPolicy, month_of
from chargeshare.domain.grid_settlement import settlement_entry_id
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.v2g import ExportTerms, export_credit
from chargeshare.ocpp import V16, V21
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.fleet import ConnectorRef, FleetService
from chargeshare.services.v2g import export_entry_id
from tests.crash.harness import (
    ANSWER_WITHIN_S,
    CONFIG,
    Crash,
    World,
    bookings,
    charger,
    entries,
    failing,
    payment_steps,
    provider,
    worked_off,
)
from tests.crash.test_money_path_crashes import BOOKED_WH, COST, METER_START, METER_STOP, book_now, client
from tests.e2e.ocpp_clients import Script, boot21, library_cp21, now

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

UK = ZoneInfo("Europe/London")
EXPORT_PRICE = 30  # pence per kWh the driver is paid for export
EXPORT_START, EXPORT_STOP = 2_000, 7_000
FLEET_TAG = "CRASH-FLEET-1"


def kinds_of(world: World, booking_id: int) -> list[str]:
    return sorted(e.kind.value for e in entries(world.app) if e.booking_id == booking_id)


def steps_of(world: World, booking_id: int) -> list[tuple[str, str]]:
    return [(i.step, i.status) for i in payment_steps(world.app) if i.booking_id == booking_id]


def readings(import_wh: int, export_wh: int, soc: int) -> list[dict[str, Any]]:
    """One 2.1 meterValue with both registers and the car's state of charge."""

    def sampled(measurand: str, value: int, unit: str) -> dict[str, Any]:
        return {"value": value, "measurand": measurand, "unit_of_measure": {"unit": unit}}

    return [
        {
            "timestamp": now(),
            "sampled_value": [
                sampled("Energy.Active.Import.Register", import_wh, "Wh"),
                sampled("Energy.Active.Export.Register", export_wh, "Wh"),
                {"value": soc, "measurand": "SoC", "unit_of_measure": {"unit": "Percent"}},
            ],
        }
    ]


def event(event_type: str, seq_no: int, trigger: str, meter: list[dict[str, Any]], **more: Any) -> Any:
    return call21.TransactionEvent(
        event_type=event_type,
        timestamp=now(),
        trigger_reason=trigger,
        seq_no=seq_no,
        transaction_info={"transaction_id": "CRASH-TX-21"},
        meter_value=meter,
        **more,
    )


async def boot_21(cp: Any) -> None:
    assert (await boot21(cp)).status == "Accepted"
    await cp.call(
        call21.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1)
    )


async def unanswered(cp: Any, request: Any) -> bool:
    """Send `request`; True once the link drops (the server died) before an answer came."""
    answer = asyncio.ensure_future(cp.call(request, suppress=False))
    closed = asyncio.ensure_future(cp._connection.wait_closed())
    await asyncio.wait({answer, closed}, return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    if answer.done():
        answer.result()
        return False
    answer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await answer
    return True


async def v2g_session_crashed(crash: Crash, failpoint: str) -> None:
    world, server = await crash.start(failpoint), crash.server
    ended = event("Ended", 2, "EVCommunicationLost", readings(METER_STOP, EXPORT_STOP, 60))
    async with (
        library_cp21(server.ocpp, World.CP_ID, Script(), open_timeout=ANSWER_WITHIN_S) as cp,
        client(server, world.driver) as http,
    ):
        await boot_21(cp)
        booking_id = await book_now(http, world)
        terms = {"price_per_kwh": EXPORT_PRICE, "soc_floor_pct": 30}
        r = await http.put(f"/bookings/{booking_id}/export-terms", json=terms)
        assert r.status_code == 200, r.text
        started = event(
            "Started",
            0,
            "Authorized",
            readings(METER_START, EXPORT_START, 80),
            evse={"id": 1, "connector_id": 1},
            id_token={"id_token": World.ID_TAG, "type": "ISO14443"},
        )
        assert (await cp.call(started)).id_token_info["status"] == "Accepted"
        await cp.call(event("Updated", 1, "MeterValuePeriodic", readings(METER_START + 2_500, 4_000, 70)))
        assert await unanswered(cp, ended)
    await server.died_at(failpoint)

    # The crash's window: the export reading is in, and the stop with its credit is in too or not.
    (session,) = _sessions(world)
    committed = failpoint == "stop-committed"
    assert session.status is (SessionStatus.STOPPED if committed else SessionStatus.CHARGING)
    assert kinds_of(world, booking_id) == (["export_credit", "hold"] if committed else ["hold"])
    if not committed:  # (a stop's capture waits in the outbox: captured_equals_metered_cost waits too)
        assert failing(world.app, final=False) == []

    await server.restart()
    async with library_cp21(server.ocpp, World.CP_ID, Script(), open_timeout=ANSWER_WITHIN_S) as cp:
        await boot_21(cp)
        await cp.call(ended, suppress=False)  # the charger's queued Ended, as it was
    await worked_off(world.app)

    (booking,) = bookings(world.app)
    assert booking.status is BookingStatus.COMPLETED
    (session,) = _sessions(world)
    assert (session.status, session.billed_wh, session.cost) == (
        SessionStatus.STOPPED,
        METER_STOP - METER_START,
        COST,
    )
    assert steps_of(world, booking_id) == [("hold", "done"), ("capture", "done")]
    assert kinds_of(world, booking_id) == ["capture", "export_credit", "hold", "processor_fee", "split"]
    (credit,) = (e for e in entries(world.app) if e.kind is EntryKind.EXPORT_CREDIT)
    assert (credit.entry_id, credit.amount) == (
        export_entry_id(booking_id),
        export_credit(EXPORT_STOP - EXPORT_START, EXPORT_PRICE),
    )
    assert provider(world.app).total_captured == COST
    assert failing(world.app) == []


def _sessions(world: World) -> list[Any]:
    with world.app.store.reading() as tx:
        return [s for b in bookings(world.app) if (s := tx.sessions.for_booking(b.booking_id)) is not None]


def book_a_block_running_now(world: World) -> int:
    """A fleet and one block occurrence that began ten minutes ago, booked as an hour earlier (a block
    must start in the future when it is booked); its booking id."""
    app = world.app
    fleet = app.fleet.create_account("Crash Fleet", FLEET_TAG)
    wall = (datetime.now(UTC) - timedelta(minutes=10)).astimezone(UK).replace(second=0, microsecond=0)
    end = (wall + timedelta(minutes=60)).time()
    rule = BlockRule(
        frozenset({wall.weekday()}), wall.time().replace(tzinfo=None), end, wall.date(), wall.date()
    )
    earlier = FleetService(
        app.store, app.bus, ManualClock(datetime.now(UTC) - timedelta(hours=1)), app.config.rules
    )
    booked = earlier.book_block(
        fleet.fleet_id, rule, [ConnectorRef(world.charger_id, 1)], max_energy_wh=BOOKED_WH
    )
    (occurrence,) = booked.bookings
    return occurrence.booking_id


async def fleet_session_crashed(crash: Crash, failpoint: str) -> None:
    world, server = crash.world, crash.server
    booking_id = book_a_block_running_now(world)
    await crash.start(failpoint)
    async with charger(server, World.CP_ID) as cp:
        started = await cp.must(
            call16.StartTransaction(
                connector_id=1, id_tag=FLEET_TAG, meter_start=METER_START, timestamp=now()
            )
        )
        assert started.id_tag_info["status"] == "Accepted"
        stop = call16.StopTransaction(
            meter_stop=METER_STOP, timestamp=now(), transaction_id=started.transaction_id, id_tag=FLEET_TAG
        )
        assert await cp.send(stop) is None
    await server.died_at(failpoint)
    assert steps_of(world, booking_id) == [("capture", "pending")]
    assert kinds_of(world, booking_id) == []

    await server.restart()
    async with charger(server, World.CP_ID) as cp:
        answer = await cp.must(stop)
        assert answer.id_tag_info["status"] == "Accepted"
    await worked_off(world.app)

    (booking,) = (b for b in bookings(world.app) if b.booking_id == booking_id)
    assert booking.status is BookingStatus.COMPLETED
    assert steps_of(world, booking_id) == [("capture", "done")]
    assert kinds_of(world, booking_id) == ["on_account", "split"]
    (charged,) = (e for e in entries(world.app) if e.kind is EntryKind.ON_ACCOUNT)
    assert (charged.entry_id, charged.amount) == (f"b{booking_id}:capture", COST)
    assert provider(world.app).holds == {} and provider(world.app).total_captured == 0
    assert failing(world.app) == []


def last_month() -> datetime:
    """Noon UTC five days before this UK month began."""
    first = datetime.now(UK).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=5)).astimezone(UTC)


def set_back(world: World, at: datetime) -> tuple[App, ManualClock]:
    """The database seen on a clock at `at`, its payment steps worked inline."""
    clock = ManualClock(at)
    return build(dataclasses.replace(CONFIG, database_url=world.app.config.database_url), clock=clock), clock


def fleet_session_last_month(world: World) -> tuple[int, str]:
    """A fleet's block session last month, charged on account; the fleet's id and the month."""
    past, clock = set_back(world, last_month())
    try:
        fleet = past.fleet.create_account("Crash Fleet", FLEET_TAG)
        wall = (clock.now() + timedelta(hours=2)).astimezone(UK).replace(minute=0, second=0, microsecond=0)
        end = (wall + timedelta(hours=1)).time()
        rule = BlockRule(frozenset({wall.weekday()}), wall.time(), end, wall.date(), wall.date())
        ref = ConnectorRef(world.charger_id, 1)
        (occurrence,) = past.fleet.book_block(fleet.fleet_id, rule, [ref], max_energy_wh=BOOKED_WH).bookings
        clock.advance((occurrence.starts_at - clock.now()).total_seconds() + 300)
        past.charging.boot(World.CP_ID, V16)
        past.charging.status(World.CP_ID, 1, ConnectorStatus.AVAILABLE)
        started = past.charging.start(World.CP_ID, 1, FLEET_TAG, METER_START, clock.now())
        clock.advance(600)
        past.charging.stop(World.CP_ID, started.transaction_id, METER_STOP, clock.now())
        assert kinds_of(world, occurrence.booking_id) == ["on_account", "split"]
        return fleet.fleet_id, month_of(clock.now())
    finally:
        past.close()


def kinds(world: World, *wanted: EntryKind) -> list[str]:
    return sorted(e.entry_id for e in entries(world.app) if e.kind in wanted)


async def fleet_month_crashed(crash: Crash, failpoint: str) -> None:
    world, server = crash.world, crash.server
    fleet_id, month = fleet_session_last_month(world)
    await crash.start(failpoint)
    issue = f"/fleets/{fleet_id}/invoices/{month}"
    async with client(server, world.admin) as http:
        with pytest.raises(httpx.TransportError):
            await http.post(issue)
    await server.died_at(failpoint)
    assert kinds(world, EntryKind.INVOICE) == [f"f{fleet_id}:{month}:invoice"]  # issued; never answered
    assert failing(world.app, final=False) == []

    server.start("fleet-payment-recorded")
    await server.healthy()
    async with client(server, world.admin) as http:
        again = await http.post(issue)
        assert again.status_code == 200, again.text
        invoice = again.json()
        assert (invoice["total"], invoice["outstanding"], len(invoice["lines"])) == (COST, COST, 1)
        key = {"Idempotency-Key": "ops-payment-1"}
        with pytest.raises(httpx.TransportError):
            await http.post(f"{issue}/payments", json={"amount": COST}, headers=key)
    await server.died_at("fleet-payment-recorded")
    assert kinds(world, EntryKind.INVOICE_PAID) == [f"f{fleet_id}:{month}:paid:{COST}"]

    await server.restart()
    async with client(server, world.admin) as http:
        paid = await http.post(f"{issue}/payments", json={"amount": COST}, headers=key)
        assert paid.status_code == 200, paid.text
        assert (paid.json()["id"], paid.json()["paid"], paid.json()["outstanding"]) == (
            invoice["id"],
            COST,
            0,
        )
        (listed,) = (await http.get(f"/fleets/{fleet_id}/invoices")).json()
        assert (listed["id"], listed["paid"]) == (invoice["id"], COST)
    assert kinds(world, EntryKind.INVOICE, EntryKind.INVOICE_PAID) == [
        f"f{fleet_id}:{month}:invoice",
        f"f{fleet_id}:{month}:paid:{COST}",
    ]
    statement = world.app.fleet.statement(fleet_id)
    assert (statement.unbilled, statement.receivable) == (0, 0)
    assert failing(world.app) == []


def export_last_month(world: World) -> tuple[str, int]:
    """A guest's V2G session last month on a 2.1 charger, its export credited to the grid buyer;
    the month and the credit."""
    past, clock = set_back(world, last_month())
    try:
        past.charging.boot(World.CP_ID, V21)
        past.charging.status(World.CP_ID, 1, ConnectorStatus.AVAILABLE)
        booking = past.bookings.book(BookRequest(world.driver.did, world.charger_id, 1, 60, BOOKED_WH))
        with past.store.transaction() as tx:
            tx.v2g.set_terms(ExportTerms(booking.booking_id, EXPORT_PRICE, 30, clock.now()))
        at = clock.now()
        started = past.charging.start(World.CP_ID, 1, World.ID_TAG, METER_START, at, charger_tx_id="PAST-TX")
        past.charging.meter_export(World.CP_ID, started.transaction_id, EXPORT_START, 80)
        clock.advance(600)
        past.charging.meter_export(World.CP_ID, started.transaction_id, EXPORT_STOP, 60)
        past.charging.stop(World.CP_ID, started.transaction_id, METER_STOP, clock.now())
        credit = export_credit(EXPORT_STOP - EXPORT_START, EXPORT_PRICE)
        assert kinds(world, EntryKind.EXPORT_CREDIT) == [export_entry_id(booking.booking_id)]
        return month_of(clock.now()), credit
    finally:
        past.close()


async def grid_month_crashed(crash: Crash, failpoint: str) -> None:
    world, server = crash.world, crash.server
    month, credit = export_last_month(world)
    await crash.start(failpoint)
    pay = f"/admin/grid-buyer/statements/{month}/payment"
    async with client(server, world.admin) as http:
        with pytest.raises(httpx.TransportError):
            await http.post(pay, json={"amount": credit})
    await server.died_at(failpoint)
    assert kinds(world, EntryKind.GRID_SETTLEMENT) == [settlement_entry_id(month)]  # recorded; unanswered
    assert failing(world.app, final=False) == []

    await server.restart()
    async with client(server, world.admin) as http:
        again = await http.post(pay, json={"amount": credit})
        assert again.status_code == 200, again.text
        assert (again.json()["recorded_now"], again.json()["settlement"]["amount"]) == (False, credit)
        statement = (await http.get(f"/admin/grid-buyer/statements/{month}")).json()
        assert statement["total"] == credit, statement
    assert kinds(world, EntryKind.GRID_SETTLEMENT) == [settlement_entry_id(month)]
    assert failing(world.app) == []


async def fleet_cancel_crashed(crash: Crash, failpoint: str) -> None:
    """The host cancels tomorrow's occurrence, inside the contract's notice: the fleet is owed its penalty."""
    world, server = crash.world, crash.server
    fleet = world.app.fleet.create_account("Crash Fleet", FLEET_TAG)
    day = (datetime.now(UK) + timedelta(days=1)).date()
    rule = BlockRule(frozenset({day.weekday()}), time(10), time(11), day, day)
    ref = ConnectorRef(world.charger_id, 1)
    (occurrence,) = world.app.fleet.book_block(fleet.fleet_id, rule, [ref], max_energy_wh=BOOKED_WH).bookings
    booking_id = occurrence.booking_id
    await crash.start(failpoint)
    async with client(server, world.host) as http:
        with pytest.raises(httpx.TransportError):
            await http.post(f"/bookings/{booking_id}/cancel")
    await server.died_at(failpoint)
    assert steps_of(world, booking_id) == [("release", "pending")]
    assert kinds_of(world, booking_id) == ["fleet_penalty"]
    assert failing(world.app, final=False) == []

    await server.restart()
    async with client(server, world.host) as http:
        again = await http.post(f"/bookings/{booking_id}/cancel")  # committed before: nothing to cancel
        assert again.status_code == 409, again.text
    await worked_off(world.app)
    (booking,) = (b for b in bookings(world.app) if b.booking_id == booking_id)
    assert (booking.status, booking.cancelled_by) == (BookingStatus.CANCELLED, "host")
    assert steps_of(world, booking_id) == [("release", "done")]
    assert kinds_of(world, booking_id) == ["fleet_penalty"]
    penalty = ContractPolicy().late_penalty
    assert world.app.fleet.statement(fleet.fleet_id).unbilled == -penalty
    assert provider(world.app).holds == {}
    assert failing(world.app) == []


CASES = {
    "v2g-export-metered": (v2g_session_crashed, "stop-export-metered"),
    "v2g-stop-committed": (v2g_session_crashed, "stop-committed"),
    "fleet-stop-committed": (fleet_session_crashed, "stop-committed"),
    "fleet-host-cancel": (fleet_cancel_crashed, "cancel-committed"),
    "fleet-month": (fleet_month_crashed, "invoice-issued"),
    "grid-month": (grid_month_crashed, "grid-payment-recorded"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_crash_on_a_newer_money_path_moves_the_money_exactly_once(crash: Crash, case: str) -> None:
    run, failpoint = CASES[case]
    await run(crash, failpoint)
