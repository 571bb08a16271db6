"""Metering configured by the backend after an accepted boot, over real loopback WebSockets with
chargers built on the `ocpp` library: what falls short is set, nothing is sent before the boot's
answer, and a session that ends without a measurement is flagged on its receipt and to the
operator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargeshare.bootstrap import App, Config, build
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp.metering import ENERGY
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import SystemClock
from tests.api_helpers import admin, driver
from tests.conftest import add_charger
from tests.e2e.ocpp_clients import Script, boot16, boot201, library_cp16, library_cp201, now, tx_event
from tests.waiting import eventually, settled

pytestmark = pytest.mark.e2e

SAMPLED, ALIGNED = "SampledDataCtrlr", "AlignedDataCtrlr"


@dataclass
class Central:
    app: App
    port: int
    frames: list[tuple[str, str, list[object]]] = field(default_factory=list)  # (cp, direction, frame)

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def sent_to(self, cp_id: str) -> list[list[object]]:
        return [f for cp, d, f in self.frames if cp == cp_id and d == "out"]

    def kept(self, cp_id: str, action: str) -> list[str]:
        return [k.summary for k in self.app.reports.reports(cp_id, [action])]


@pytest.fixture
async def central() -> AsyncIterator[Central]:
    app = build(
        Config(database_url="sqlite://", allow_unknown_chargers=True, password_hash="fast"),
        clock=SystemClock(),
    )
    registry = ChargerRegistry(app, call_timeout_s=5)
    async with LoopbackServer(create_api(app, registry)) as server:
        c = Central(app, server.port)
        registry.add_tap(lambda cp, direction, text: c.frames.append((cp, direction, json.loads(text))))
        yield c
    app.close()


async def test_a_16_charger_is_made_to_meter_after_its_boot_is_answered(central: Central) -> None:
    add_charger(central.app, "M16", online=False)
    script = Script(
        config16={"MeterValueSampleInterval": "0", "MeterValuesSampledData": "Power.Active.Import"},
        readonly16=set(),
    )
    async with library_cp16(central.ws, "M16", script) as cp:
        assert (await boot16(cp)).status == "Accepted"
        await eventually(lambda: len(script.asked("ChangeConfiguration")) == 2, "the metering settings")
        # Kept once the last answer is back: closing the link before then would fail that change.
        await eventually(lambda: bool(central.kept("M16", "MeteringSetup")), "the setup kept")
    assert script.asked("GetConfiguration") == [
        {
            "key": [
                "MeterValueSampleInterval",
                "MeterValuesSampledData",
                "TransactionMessageAttempts",
                "TransactionMessageRetryInterval",
                "ChargingScheduleAllowedChargingRateUnit",  # for its grid limits: W or A
                "ConnectorPhaseRotation",  # and, in A, on how many phases
                "ConnectorSwitch3to1PhaseSupported",  # and whether it can draw on one of three
            ]
        }
    ]
    assert script.config16 == {
        "MeterValueSampleInterval": "60",
        "MeterValuesSampledData": f"{ENERGY},Power.Active.Import",  # the charger's own measurand kept
    }
    boot_answer, first_call = central.sent_to("M16")[:2]
    assert boot_answer[0] == 3 and first_call[:3] == [2, first_call[1], "GetConfiguration"]
    (kept,) = central.kept("M16", "MeteringSetup")
    assert kept == (
        "set MeterValueSampleInterval=60: Accepted; "
        f"set MeterValuesSampledData={ENERGY},Power.Active.Import: Accepted"
    )


async def test_a_charger_that_already_meters_or_is_unregistered_is_left_alone(central: Central) -> None:
    add_charger(central.app, "GOOD16", online=False)
    good = Script(config16={"MeterValueSampleInterval": "30", "MeterValuesSampledData": ENERGY})
    async with library_cp16(central.ws, "GOOD16", good) as cp:
        await boot16(cp)
        # Its answer in: whatever the backend makes of it is sent before the next frame is served.
        await eventually(
            lambda: any(d == "in" and f[0] == 3 for c, d, f in central.frames if c == "GOOD16"), "read"
        )
        refused = Script(
            config16={"MeterValueSampleInterval": "0"},
            readonly16=set(),
            status={"ChangeConfiguration": "Rejected"},
        )
        add_charger(central.app, "STUBBORN", online=False)
        async with library_cp16(central.ws, "STUBBORN", refused) as stubborn:
            await boot16(stubborn)
            await eventually(lambda: bool(central.kept("STUBBORN", "MeteringSetup")), "the refusal kept")
        stranger = Script(config16={"MeterValueSampleInterval": "0"}, readonly16=set())
        async with library_cp16(central.ws, "STRANGER", stranger) as unknown:
            assert (await boot16(unknown)).status == "Accepted"  # allowed to talk, never configured
            # A round trip after the boot: a configuration would have been sent before its answer.
            await unknown.call(call16.Heartbeat())
    assert good.asked("ChangeConfiguration") == [] and central.kept("GOOD16", "MeteringSetup") == []
    assert central.kept("STUBBORN", "MeteringSetup") == ["set MeterValueSampleInterval=60: Rejected"]
    (refusal,) = central.app.reports.reports("STUBBORN", ["MeteringSetup"])
    assert refusal.body == {
        "readFailure": None,
        "changes": [{"setting": "MeterValueSampleInterval", "value": "60", "result": "Rejected"}],
    }
    assert refused.config16 == {"MeterValueSampleInterval": "0"}
    assert stranger.received == [] and central.sent_to("STRANGER")[0][0] == 3


async def test_a_charger_retrying_for_longer_than_the_lost_stop_grace_retries_sooner(
    central: Central,
) -> None:
    """Five attempts 60 s apart wait up to 900 s in all (read as retries after the first, each
    sending first waiting 30 s for its answer), past the 300 s after which a session whose
    connector is free is closed on its last reading: the interval is shortened so every retry of
    a stop the backend failed to process comes within two thirds of it."""
    add_charger(central.app, "RETRY16", online=False)
    script = Script(
        config16={
            "MeterValueSampleInterval": "60",
            "MeterValuesSampledData": ENERGY,
            "TransactionMessageAttempts": "5",
            "TransactionMessageRetryInterval": "60",
        },
        readonly16=set(),
    )
    async with library_cp16(central.ws, "RETRY16", script) as cp:
        assert (await boot16(cp)).status == "Accepted"
        await eventually(lambda: len(script.asked("ChangeConfiguration")) == 1, "the retry interval")
        await eventually(lambda: bool(central.kept("RETRY16", "MeteringSetup")), "the setup kept")
    assert central.app.config.rules.lost_stop_grace_s == 300
    assert script.config16["TransactionMessageAttempts"] == "5"  # never cut: a stop given up is lost
    # 5 x 30 s time-outs + 3 x (1 + 2 + 3 + 4 + 5) s = 195 s
    assert script.config16["TransactionMessageRetryInterval"] == "3"
    assert central.kept("RETRY16", "MeteringSetup") == ["set TransactionMessageRetryInterval=3: Accepted"]


async def test_a_201_charger_with_default_settings_is_made_to_meter(central: Central) -> None:
    add_charger(central.app, "M201", online=False)
    script = Script(
        variables={
            (SAMPLED, "TxUpdatedInterval"): "0",
            (SAMPLED, "TxEndedInterval"): "900",
            (SAMPLED, "TxUpdatedMeasurands"): "Power.Active.Import",
            (SAMPLED, "TxEndedMeasurands"): ENERGY,
            (ALIGNED, "Measurands"): "",
        }
    )
    async with library_cp201(central.ws, "M201", script) as cp:
        assert (await boot201(cp)).status == "Accepted"
        await eventually(lambda: len(script.asked("SetVariables")) == 3, "the metering settings")
    (read,) = script.asked("GetVariables")
    assert [(d["component"]["name"], d["variable"]["name"]) for d in read["get_variable_data"]] == [
        (SAMPLED, "TxUpdatedInterval"),
        (SAMPLED, "TxEndedInterval"),
        (SAMPLED, "TxStartedMeasurands"),
        (SAMPLED, "TxUpdatedMeasurands"),
        (SAMPLED, "TxEndedMeasurands"),
        (ALIGNED, "Interval"),
        (ALIGNED, "Measurands"),
        ("OCPPCommCtrlr", "MessageAttempts"),
        ("OCPPCommCtrlr", "MessageAttemptInterval"),
        ("OCPPCommCtrlr", "MessageAttempts"),
        ("OCPPCommCtrlr", "MessageAttemptInterval"),
        ("SmartChargingCtrlr", "RateUnit"),  # for its grid limits: W or A
        ("ChargingStation", "SupplyPhases"),  # and, in A, on how many phases
        ("SmartChargingCtrlr", "Phases3to1"),  # and whether it can draw on one of three
        ("EVSE", "SupplyPhases"),  # its one EVSE's own, which overrides the station's
    ]
    assert read["get_variable_data"][-1]["component"]["evse"] == {"id": 1}
    # The retries as OCPP 2.0.1 names them (instance TransactionEvent), then without the instance.
    assert [d["variable"].get("instance") for d in read["get_variable_data"]][-8:-4] == [
        "TransactionEvent",
        "TransactionEvent",
        None,
        None,
    ]
    assert script.variables == {
        (SAMPLED, "TxUpdatedInterval"): "60",
        (SAMPLED, "TxEndedInterval"): "900",  # already a quarter hour
        (SAMPLED, "TxUpdatedMeasurands"): f"{ENERGY},Power.Active.Import",
        (SAMPLED, "TxEndedMeasurands"): ENERGY,
        (ALIGNED, "Measurands"): ENERGY,
    }
    boot_answer, first_call = central.sent_to("M201")[:2]
    assert boot_answer[0] == 3 and first_call[2] == "GetVariables"


async def test_a_201_session_without_readings_is_flagged_on_its_receipt_and_to_the_operator(
    central: Central,
) -> None:
    app = central.app
    charger_id = add_charger(app, "BLIND", online=False)
    una = driver(app, "Una", "TAG-UNA")
    ops = admin(app)
    script = Script(variables={(SAMPLED, "TxUpdatedInterval"): "0"}, status={"SetVariables": "Rejected"})
    async with library_cp201(central.ws, "BLIND", script) as cp:
        await boot201(cp)
        await cp.call(
            call201.StatusNotification(
                timestamp=now(), connector_status="Available", evse_id=1, connector_id=1
            )
        )
        booking = app.bookings.book(BookRequest(una.did, charger_id, 1, 60, 10_000))
        # A charger the backend could not configure: no reading at the start, nor after, nor at the end.
        started = await cp.call(
            tx_event("Started", 0, "BLIND-1", trigger="Authorized", id_tag="TAG-UNA", evse=1)
        )
        assert started.id_token_info["status"] == "Accepted"
        await cp.call(tx_event("Ended", 1, "BLIND-1", trigger="EVCommunicationLost"))
    await settled(app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{central.port}") as http:
        receipt = (await http.get(f"/bookings/{booking.booking_id}/receipt", headers=una.headers)).json()
        flagged = (await http.get("/admin/unmetered-sessions", headers=ops.headers)).json()
    assert (receipt["energy_wh"], receipt["cost"], receipt["unmetered"]) == (0, 0, True)
    (session,) = flagged
    assert (session["booking_id"], session["charge_point_id"], session["billed_wh"]) == (
        booking.booking_id,
        "BLIND",
        0,
    )
