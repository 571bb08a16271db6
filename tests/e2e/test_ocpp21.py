"""OCPP 2.1 over real loopback WebSockets, spoken by an independent charge point built on the `ocpp`
library's v21 package (its own 2.1 schema checks both ways): it boots, authorises, charges under a
booking and is billed once, exactly as a 2.0.1 charger is; its offline replays count once; the
charger messages the backend acts on land; what 2.1 adds to them is accepted and left unread; and
the backend judges its frames by the 2.1 schemas. The commands the backend sends are exercised
against the same client in tests/e2e/test_ocpp_commands.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ocpp import exceptions
from ocpp.v21 import call as call21
from typer.testing import CliRunner

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, build
from chargeshare.cli.app import app as cli
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.session import SessionStatus
from chargeshare.services.clock import SystemClock
from tests.api_helpers import admin
from tests.e2e.conftest import Served, as_serve_runs, serving
from tests.e2e.ocpp_clients import Script, boot21, energy201, library_cp21, now, tx_event
from tests.e2e.transactions import (
    assert_invariants,
    book,
    captures,
    offline_queue_replayed_twice_counts_once,
    sessions,
)
from tests.waiting import eventually, settled

pytestmark = pytest.mark.e2e


def event(*args: Any, **kw: Any) -> Any:
    """A 2.1 TransactionEvent, framed by the library's v21 classes."""
    return tx_event(*args, calls=call21, **kw)


# What the charger computes of the cost itself (2.1 local cost calculation): never what we bill.
ITS_OWN_COST = {
    "total_cost": {"currency": "GBP", "type_of_cost": "NormalCost", "total": {"incl_tax": 99.0}},
    "total_usage": {"energy": 6_000.0, "charging_time": 3_600, "idle_time": 0},
}


@pytest.fixture
async def on_file(tmp_path: Path) -> AsyncIterator[Served]:
    """Served as `chargeshare serve` serves, on a database file the CLI can read too."""
    async with serving(build(as_serve_runs(f"sqlite:///{tmp_path / 'cs.db'}"), clock=SystemClock())) as s:
        yield s


async def test_a_21_charger_boots_authorises_charges_a_booking_and_is_billed_once(
    on_file: Served, tmp_path: Path
) -> None:
    app = on_file.app
    booking = book(app, "T21", "TAG21", price=40)
    async with library_cp21(on_file.ws, "T21") as cp:
        assert (await boot21(cp)).status == "Accepted"
        assert (await cp.call(call21.Heartbeat())).current_time
        await cp.call(
            call21.StatusNotification(timestamp=now(), connector_status="Occupied", evse_id=1, connector_id=1)
        )
        auth = await cp.call(call21.Authorize(id_token={"id_token": "TAG21", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        started = await cp.call(
            event("Started", 0, "TX-21", trigger="Authorized", wh=500, id_tag="TAG21", evse=1)
        )
        assert started.id_token_info["status"] == "Accepted"
        # 2.1's own fields and words ride along; billing reads none of them.
        await cp.call(
            event(
                "Updated",
                1,
                "TX-21",
                trigger="RunningCost",
                wh=2_000,
                charging_state="Charging",
                evse_sleep=False,
                preconditioning_status="Ready",
            )
        )
        for seq, wh in ((2, 4_000), (2, 4_000), (1, 2_000)):  # then a retry and a replay
            await cp.call(event("Updated", seq, "TX-21", wh=wh, charging_state="Charging"))
        (session,) = sessions(app)
        assert session.meter_start_wh == 500 and session.meter_last_wh == 4_000
        for _ in range(2):  # a duplicated Ended must not bill twice
            ended = event(
                "Ended", 3, "TX-21", trigger="EVCommunicationLost", wh=6_500, cost_details=ITS_OWN_COST
            )
            await cp.call(ended)
    (session,) = sessions(app)
    assert session.status is SessionStatus.STOPPED and session.billed_wh == 6_000
    await settled(app)
    assert captures(app, booking.booking_id) == [240]  # 6.000 kWh x 40p, once: not the charger's 99
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway) and gateway.total_captured == 240
    with app.store.transaction() as tx:
        assert tx.bookings.get(booking.booking_id).status is BookingStatus.COMPLETED
        assert tx.chargers.get("T21").ocpp_version == "2.1"
    assert_invariants(app)
    # Operators see the version: the admin API and the CLI.
    ops = admin(app)
    async with httpx.AsyncClient(base_url=on_file.http) as http:
        listed = (await http.get("/admin/chargers", headers=ops.headers)).json()
    assert [c["ocpp_version"] for c in listed if c["charge_point_id"] == "T21"] == ["2.1"]
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    shown = CliRunner().invoke(cli, ["chargers", "list", "--json", "-", *db])
    assert shown.exit_code == 0, shown.output
    assert [r["ocpp_version"] for r in json.loads(shown.stdout) if r["charge_point_id"] == "T21"] == ["2.1"]


async def test_an_offline_21_queue_replayed_twice_with_old_timestamps_counts_once(served: Served) -> None:
    await offline_queue_replayed_twice_counts_once(served, library_cp21, boot21, event, "OFF21")


async def test_a_21_charger_is_refused_what_a_201_charger_is(served: Served) -> None:
    app = served.app
    booking = book(app, "BLK21", "OWNER21")
    app.marketplace.add_driver("other", "OTHER21")
    async with library_cp21(served.ws, "BLK21") as cp:
        await boot21(cp)
        auth = await cp.call(call21.Authorize(id_token={"id_token": "OTHER21", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Blocked"
        started = await cp.call(event("Started", 0, "X21", wh=0, id_tag="OTHER21", evse=1))
        assert started.id_token_info["status"] == "Blocked"
        await cp.call(event("Ended", 1, "X21", wh=5_000))  # the charger stops what we refused
    assert sessions(app) == []
    with app.store.transaction() as tx:
        assert tx.bookings.get(booking.booking_id).status is BookingStatus.CONFIRMED


async def test_21_meter_values_events_and_reports_land_as_201s_do(served: Served) -> None:
    app = served.app
    booking = book(app, "MV21", "MV21")
    with app.store.transaction() as tx:
        assert tx.bookings.get(booking.booking_id).reservation == "sent"  # the charger was offline
    async with library_cp21(served.ws, "MV21", Script()) as cp:
        await boot21(cp)
        # The ReserveNow owed goes out on connecting; then the driver's card takes the reservation
        # up without a transaction following (2.1's NoTransaction): it is asked for again.
        await eventually(lambda: bool(cp.script.asked("ReserveNow")), "the ReserveNow owed")
        await eventually(lambda: reservation(app, booking.booking_id) == "accepted", "it accepted")
        await cp.call(
            call21.ReservationStatusUpdate(
                reservation_id=booking.booking_id, reservation_update_status="NoTransaction"
            )
        )
        assert reservation(app, booking.booking_id) == "none"
        assert app.bookings.reservations_due() == [booking.booking_id]  # the sweep's next round
        await eventually(lambda: len(cp.script.asked("ReserveNow")) == 2, "the reservation asked again")
        await cp.call(
            event("Started", 0, "M21", wh=0, id_tag="MV21", evse=1, reservation_id=booking.booking_id)
        )
        await cp.call(call21.MeterValues(evse_id=1, meter_value=energy201(1_500)))
        await cp.call(call21.MeterValues(evse_id=0, meter_value=energy201(900_000)))  # the main meter
        (session,) = sessions(app)
        assert session.meter_last_wh == 1_500
        availability = {
            "event_id": 1,
            "timestamp": now(),
            "trigger": "Delta",
            "actual_value": "Faulted",
            "event_notification_type": "HardWiredNotification",
            "severity": 2,  # 2.1's own field
            "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
            "variable": {"name": "AvailabilityState"},
        }
        await cp.call(call21.NotifyEvent(generated_at=now(), seq_no=0, event_data=[availability]))
        with app.store.transaction() as tx:
            assert tx.chargers.get("MV21").connectors[0].status is ConnectorStatus.FAULTED
        failed = {"reason_code": "InvalidURL", "additional_info": "2.1's statusInfo"}
        await cp.call(
            call21.FirmwareStatusNotification(status="DownloadFailed", request_id=4, status_info=failed)
        )
        await cp.call(call21.SecurityEventNotification(type="TamperDetectionActivated", timestamp=now()))
        refusal = await cp.call(call21.DataTransfer(vendor_id="acme"))
        assert refusal.status == "UnknownVendorId"
    kept = {r.action: r.summary for r in app.reports.reports("MV21")}
    assert kept["ReservationStatusUpdate"].startswith(
        f"reservation {booking.booking_id} NoTransaction: used without a transaction on the charger"
    )
    assert kept["FirmwareStatusNotification"] == "DownloadFailed (request 4)"
    with app.store.transaction() as tx:
        (found,) = [e for e in tx.security.all() if e.charge_point_id == "MV21"]
    assert found.kind == "TamperDetectionActivated"


async def test_21_frames_are_judged_by_the_21_schemas(served: Served) -> None:
    app = served.app
    book(app, "SCH21", "SCH21")
    async with library_cp21(served.ws, "SCH21") as cp:
        await boot21(cp)
        # 2.1 lets a token be any type word and 255 characters long (2.0.1: an enum, 36): an unknown
        # token of either kind is Invalid, not a broken frame.
        for token in (
            {"id_token": "WBA12345678901234", "type": "VIN"},
            {"id_token": "x" * 255, "type": "Local"},
        ):
            auth = await cp.call(call21.Authorize(id_token=token), suppress=False)
            assert auth.id_token_info["status"] == "Invalid"
        # ... and sets minimums 2.0.1 did not have: a negative seqNo breaks the 2.1 schema.
        with pytest.raises(exceptions.PropertyConstraintViolationError):
            await cp.call(
                event("Started", -1, "NEG", wh=0, id_tag="SCH21", evse=1),
                suppress=False,
                skip_schema_validation=True,
            )
        # What 2.1 adds beyond the 2.0.1 core is not built here, and says so.
        settlement = call21.NotifySettlement(
            psp_ref="psp-1", settlement_amount=1.0, settlement_time=now(), status="Settled"
        )
        with pytest.raises(exceptions.NotSupportedError):
            await cp.call(settlement, suppress=False)
    assert sessions(app) == []


def reservation(app: App, booking_id: int) -> str:
    with app.store.transaction() as tx:
        return tx.bookings.get(booking_id).reservation
