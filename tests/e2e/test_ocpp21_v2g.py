"""V2G in OCPP 2.1 over real loopback WebSockets, against an independent charge point built on the
`ocpp` library's v21 package (its own 2.1 schema checks on every frame, both ways): a guest's
session on a booking with export terms is allowed the bidirectional transfer
(NotifyAllowedEnergyTransfer, CSMS to charger) and sent a TxProfile whose CentralSetpoint period
discharges (negative setpoint and discharge limit); the charger reports its export register and
state of charge apart from the import register, and the stop bills import and credits export
each from its own register."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v21 import call as call21
from websockets.asyncio.client import connect

from chargeshare.bootstrap import build
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.ledger import EntryKind
from chargeshare.services.clock import SystemClock
from tests.e2e.conftest import Served, as_serve_runs, serving
from tests.e2e.ocpp_clients import LibraryCp21, Script, _running, boot21, now
from tests.e2e.transactions import assert_invariants, book, sessions
from tests.waiting import eventually, settled

pytestmark = pytest.mark.e2e


class BidirectionalCp21(LibraryCp21):
    """The library's 2.1 charge point, also taking NotifyAllowedEnergyTransfer."""

    @on("NotifyAllowedEnergyTransfer")  # type: ignore[untyped-decorator]
    async def allowed_energy_transfer(self, **kw: Any) -> Any:
        return self.results.NotifyAllowedEnergyTransfer(
            status=await self.script.answer("NotifyAllowedEnergyTransfer", kw)
        )


def readings(import_wh: int, export_wh: int, soc: int, context: str) -> list[dict[str, Any]]:
    """One 2.1 meterValue: import and export registers apart, and the car's state of charge."""
    unit = {"unit": "Wh"}
    return [
        {
            "timestamp": now(),
            "sampled_value": [
                {
                    "value": import_wh,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unit_of_measure": unit,
                },
                {
                    "value": export_wh,
                    "context": context,
                    "measurand": "Energy.Active.Export.Register",
                    "unit_of_measure": unit,
                },
                {
                    "value": soc,
                    "context": context,
                    "measurand": "SoC",
                    "unit_of_measure": {"unit": "Percent"},
                },
            ],
        }
    ]


def event(kind: str, seq_no: int, trigger: str, meter_value: list[dict[str, Any]], **more: Any) -> Any:
    return call21.TransactionEvent(
        event_type=kind,
        timestamp=now(),
        trigger_reason=trigger,
        seq_no=seq_no,
        transaction_info={"transaction_id": "TX-V2G"},
        meter_value=meter_value,
        **more,
    )


def whole(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    return [(start, end)]  # the grid buyer takes export all booking long (the wall clock is not peak)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(build(as_serve_runs(f"sqlite:///{tmp_path / 'cs.db'}"), clock=SystemClock())) as s:
        s.app.v2g.windows = whole
        yield s


@pytest.mark.parametrize(
    ("declared", "unit", "figure", "phases"),
    [("A,W", "W", 7_400, None), ("A", "A", 32, 1)],
    ids=["W", "A only"],
)
async def test_a_21_v2g_session_is_allowed_to_discharge_and_credited_its_export_register(
    served: Served, declared: str, unit: str, figure: int, phases: int | None
) -> None:
    """A charger declaring A only is sent its discharge in A: 7,400 W is 32 A on one phase."""
    app = served.app
    booking = book(app, "V21", "TAGV", price=40)
    app.v2g.set_terms(Principal(0, Role.DRIVER, driver_id=booking.driver_id), booking.booking_id, 30, 40)
    script = Script()
    script.variables[("SmartChargingCtrlr", "RateUnit")] = declared
    async with connect(f"{served.ws}/V21", subprotocols=["ocpp2.1"]) as ws:  # type: ignore[list-item]
        cp = BidirectionalCp21("V21", ws)
        cp.script = script
        async with _running(cp):
            assert (await boot21(cp)).status == "Accepted"
            started = await cp.call(
                event(
                    "Started",
                    0,
                    "Authorized",
                    readings(500, 10_000, 80, "Transaction.Begin"),
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": "TAGV", "type": "ISO14443"},
                )
            )
            assert started.id_token_info["status"] == "Accepted"
            await eventually(lambda: bool(script.asked("SetChargingProfile")), "the discharging profile")
            (allowed,) = script.asked("NotifyAllowedEnergyTransfer")
            assert allowed["transaction_id"] == "TX-V2G" and "AC_BPT" in allowed["allowed_energy_transfer"]
            (profile,) = [p["charging_profile"] for p in script.asked("SetChargingProfile")]
            assert (
                profile["charging_profile_purpose"] == "TxProfile" and profile["transaction_id"] == "TX-V2G"
            )
            (schedule,) = profile["charging_schedule"]
            assert schedule["charging_rate_unit"] == unit
            (period,) = schedule["charging_schedule_period"][:1]
            assert period["operation_mode"] == "CentralSetpoint"
            assert period["setpoint"] == period["discharge_limit"] == -figure and period["limit"] == 0
            assert period.get("number_phases") == phases
            await cp.call(
                call21.MeterValues(evse_id=1, meter_value=readings(500, 12_500, 61, "Sample.Periodic"))
            )
            await cp.call(
                event("Ended", 1, "EVCommunicationLost", readings(700, 13_333, 55, "Transaction.End"))
            )
    await settled(app)  # the capture runs behind the stop's answer
    view = app.v2g.export(Principal(0, Role.DRIVER, driver_id=booking.driver_id), booking.booking_id)
    assert (view.record.exported_wh, view.record.credit, view.record.lowest_soc_pct) == (3_333, 99, 55)
    (session,) = sessions(app)
    assert session.billed_wh == 200  # import alone, from the import register
    with app.store.reading() as tx:
        credits = [
            e.amount for e in tx.ledger.entries(booking.booking_id) if e.kind is EntryKind.EXPORT_CREDIT
        ]
    assert credits == [99]  # 3,333 Wh x 30p per kWh = 99.99p, rounded down
    assert_invariants(app)


async def test_a_21_charger_that_refused_the_discharging_profile_is_sent_it_on_reconnecting(
    served: Served,
) -> None:
    """The export is owed while the session runs: the permission and profile go again when the
    charger's link opens again, and it discharges as promised."""
    app = served.app
    booking = book(app, "V21", "TAGV", price=40)
    app.v2g.set_terms(Principal(0, Role.DRIVER, driver_id=booking.driver_id), booking.booking_id, 30, 40)
    script = Script(status={"SetChargingProfile": "Rejected"})
    async with connect(f"{served.ws}/V21", subprotocols=["ocpp2.1"]) as ws:  # type: ignore[list-item]
        cp = BidirectionalCp21("V21", ws)
        cp.script = script
        async with _running(cp):
            assert (await boot21(cp)).status == "Accepted"
            started = await cp.call(
                event(
                    "Started",
                    0,
                    "Authorized",
                    readings(500, 10_000, 80, "Transaction.Begin"),
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": "TAGV", "type": "ISO14443"},
                )
            )
            assert started.id_token_info["status"] == "Accepted"
            await eventually(lambda: bool(script.asked("SetChargingProfile")), "the refused profile")
    again = Script()
    async with connect(f"{served.ws}/V21", subprotocols=["ocpp2.1"]) as ws:  # type: ignore[list-item]
        cp = BidirectionalCp21("V21", ws)
        cp.script = again
        async with _running(cp):
            await eventually(lambda: bool(again.asked("SetChargingProfile")), "the profile sent again")
            (allowed,) = again.asked("NotifyAllowedEnergyTransfer")
            assert allowed["transaction_id"] == "TX-V2G"
            (profile,) = [p["charging_profile"] for p in again.asked("SetChargingProfile")]
            assert profile["transaction_id"] == "TX-V2G"
            (period,) = profile["charging_schedule"][0]["charging_schedule_period"][:1]
            assert period["setpoint"] == period["discharge_limit"] == -7_400
            await cp.call(
                event("Ended", 1, "EVCommunicationLost", readings(700, 13_333, 55, "Transaction.End"))
            )
    await settled(app)
    view = app.v2g.export(Principal(0, Role.DRIVER, driver_id=booking.driver_id), booking.booking_id)
    assert (view.record.exported_wh, view.record.credit) == (3_333, 99)
    assert_invariants(app)
