"""Every message a charger may send about itself, over real loopback WebSockets, from independent
chargers built on the `ocpp` library's message classes, in OCPP 1.6 (with the security extension)
and 2.0.1: each is answered, kept for the registered charger that sent it, and shown to operators
through the admin API. A charger reaches only its own reservations; an unregistered one is answered
and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargeshare.bootstrap import App, Config, build
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.services.booking import BookRequest
from chargeshare.services.charger_reports import VendorAnswer
from chargeshare.services.clock import SystemClock
from tests.api_helpers import admin
from tests.conftest import add_charger
from tests.e2e.ocpp_clients import Script, boot16, boot201, library_cp16, library_cp201, now
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@dataclass
class Central:
    app: App
    registry: ChargerRegistry
    port: int
    admin_headers: dict[str, str]

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def get(self, path: str) -> Any:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as http:
            response = await http.get(path, headers=self.admin_headers)
        assert response.status_code == 200, response.text
        return response.json()

    def charger_id(self, cp_id: str) -> int:
        with self.app.store.reading() as tx:
            return tx.chargers.get(cp_id).charger_id


@pytest.fixture
async def central() -> AsyncIterator[Central]:
    app = build(
        Config(database_url="sqlite://", allow_unknown_chargers=True, password_hash="fast"),
        clock=SystemClock(),
    )
    registry = ChargerRegistry(app, call_timeout_s=5)
    headers = admin(app).headers
    async with LoopbackServer(create_api(app, registry)) as server:
        yield Central(app, registry, server.port, headers)
    app.close()


def echo(cp_id: str, message_id: str | None, data: Any) -> VendorAnswer:
    return VendorAnswer("Accepted", {"charger": cp_id, "asked": message_id, "got": data})


async def test_16_security_extension_messages_are_answered_kept_and_shown(central: Central) -> None:
    add_charger(central.app, "MSG16", online=False)
    central.app.reports.add_vendor_hook("com.example", echo)
    async with library_cp16(central.ws, "MSG16") as cp:
        assert (await boot16(cp)).status == "Accepted"
        assert await cp.call(
            call16.SecurityEventNotification(
                type="TamperDetectionActivated", timestamp="2026-03-02T08:59:00Z", tech_info="lid opened"
            )
        )
        signed = await cp.call(call16.SignCertificate(csr="-----BEGIN CERTIFICATE REQUEST-----"))
        assert signed.status == "Rejected"  # no certificate authority here yet
        await cp.call(call16.SignedFirmwareStatusNotification(status="Downloading", request_id=9))
        await cp.call(call16.FirmwareStatusNotification(status="Installed"))
        await cp.call(call16.LogStatusNotification(status="Uploading", request_id=4))
        await cp.call(call16.LogStatusNotification(status="Uploaded", request_id=4))
        await cp.call(call16.DiagnosticsStatusNotification(status="UploadFailed"))
        unknown = await cp.call(call16.DataTransfer(vendor_id="com.nobody", message_id="x"))
        assert unknown.status == "UnknownVendorId"
        hooked = await cp.call(call16.DataTransfer(vendor_id="com.example", message_id="ping", data="42"))
        assert hooked.status == "Accepted"
        assert json.loads(hooked.data) == {"charger": "MSG16", "asked": "ping", "got": "42"}  # 1.6: text

    (event,) = await central.get("/admin/security-events?charge_point_id=MSG16")
    assert (event["kind"], event["detail"], event["source"]) == (
        "TamperDetectionActivated",
        "lid opened",
        "charger",
    )
    assert event["at"].startswith("2026-03-02T08:59:00")  # the charger's own time
    charger_id = central.charger_id("MSG16")
    kept = await central.get(f"/admin/chargers/{charger_id}/reports")
    assert [k["action"] for k in kept] == [
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "LogStatusNotification",
        "DiagnosticsStatusNotification",
        "DataTransfer",
        "DataTransfer",
    ]
    assert kept[0]["body"] == {"csr": "-----BEGIN CERTIFICATE REQUEST-----"}
    assert [k["summary"] for k in kept[-2:]] == [
        "com.nobody/x: UnknownVendorId",
        "com.example/ping: Accepted",
    ]
    state = await central.get(f"/admin/chargers/{charger_id}/reported-state")
    assert [(s["kind"], s["status"], s["request_id"]) for s in state["statuses"]] == [
        ("diagnostics", "UploadFailed", None),
        ("firmware", "Installed", None),  # the latest, signed or not
        ("log", "Uploaded", 4),
    ]
    only_logs = await central.get(f"/admin/chargers/{charger_id}/reports?action=LogStatusNotification")
    assert [k["body"]["status"] for k in only_logs] == ["Uploading", "Uploaded"]


def report_data(name: str, value: str, evse: int | None = None) -> dict[str, Any]:
    component: dict[str, Any] = {"name": "EVSE" if evse is not None else "OCPPCommCtrlr"}
    if evse is not None:
        component["evse"] = {"id": evse}
    return {
        "component": component,
        "variable": {"name": name},
        "variable_attribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
    }


SCHEDULE = {
    "id": 1,
    "charging_rate_unit": "W",
    "charging_schedule_period": [{"start_period": 0, "limit": 3_600.0}],
}


async def test_201_every_charger_message_is_answered_kept_and_shown(central: Central) -> None:
    add_charger(central.app, "MSG201", online=False)
    central.app.reports.add_vendor_hook("com.example", echo)
    async with library_cp201(central.ws, "MSG201") as cp:
        assert (await boot201(cp)).status == "Accepted"
        # A device-model report in two parts; the second changes a value the first gave.
        await cp.call(
            call201.NotifyReport(
                request_id=1,
                generated_at=now(),
                seq_no=0,
                tbc=True,
                report_data=[report_data("HeartbeatInterval", "300"), report_data("Power", "7400", evse=1)],
            )
        )
        await cp.call(
            call201.NotifyReport(
                request_id=1,
                generated_at=now(),
                seq_no=1,
                report_data=[report_data("HeartbeatInterval", "600")],
            )
        )
        await cp.call(
            call201.NotifyMonitoringReport(
                request_id=2,
                seq_no=0,
                generated_at=now(),
                monitor=[
                    {
                        "component": {"name": "EVSE", "evse": {"id": 1}},
                        "variable": {"name": "Power"},
                        "variable_monitoring": [
                            {
                                "id": 5,
                                "transaction": False,
                                "value": 7_400.0,
                                "type": "UpperThreshold",
                                "severity": 4,
                            }
                        ],
                    }
                ],
            )
        )
        await cp.call(
            call201.NotifyCustomerInformation(
                data="card 0412 used 3 times", seq_no=0, generated_at=now(), request_id=3
            )
        )
        await cp.call(
            call201.NotifyDisplayMessages(
                request_id=4,
                message_info=[
                    {"id": 1, "priority": "NormalCycle", "message": {"format": "UTF8", "content": "Hi"}}
                ],
            )
        )
        await cp.call(
            call201.ReportChargingProfiles(
                request_id=6,
                charging_limit_source="CSO",
                evse_id=1,
                charging_profile=[
                    {
                        "id": 11,
                        "stack_level": 0,
                        "charging_profile_purpose": "TxDefaultProfile",
                        "charging_profile_kind": "Absolute",
                        "charging_schedule": [{**SCHEDULE, "start_schedule": "2026-03-02T09:00:00Z"}],
                    }
                ],
            )
        )
        ems = {"charging_limit_source": "EMS", "is_grid_critical": False}
        await cp.call(
            call201.NotifyChargingLimit(charging_limit=ems, evse_id=1, charging_schedule=[SCHEDULE])
        )
        await cp.call(
            call201.NotifyChargingLimit(
                charging_limit={"charging_limit_source": "SO", "is_grid_critical": True}
            )
        )
        await cp.call(call201.ClearedChargingLimit(charging_limit_source="EMS", evse_id=1))
        needs = await cp.call(
            call201.NotifyEVChargingNeeds(
                evse_id=1,
                charging_needs={
                    "requested_energy_transfer": "AC_single_phase",
                    "departure_time": "2026-03-02T17:00:00Z",
                    "ac_charging_parameters": {
                        "energy_amount": 20_000,
                        "ev_min_current": 6,
                        "ev_max_current": 32,
                        "ev_max_voltage": 230,
                    },
                },
            )
        )
        assert needs.status == "Accepted"  # taken in
        plan = await cp.call(
            call201.NotifyEVChargingSchedule(
                time_base="2026-03-02T09:00:00Z", evse_id=1, charging_schedule=SCHEDULE
            )
        )
        assert plan.status == "Accepted"
        await cp.call(
            call201.SecurityEventNotification(type="FirmwareUpdated", timestamp=now(), tech_info="1.2.3")
        )
        signed = await cp.call(call201.SignCertificate(csr="CSR", certificate_type="V2GCertificate"))
        assert signed.status == "Rejected" and signed.status_info["reason_code"] == "NoCAConfigured"
        ev_cert = await cp.call(
            call201.Get15118EVCertificate(
                iso15118_schema_version="urn:iso:15118:2:2013:MsgDef", action="Install", exi_request="AAEC"
            )
        )
        assert (ev_cert.status, ev_cert.exi_response) == ("Failed", "")
        ocsp = {
            "hash_algorithm": "SHA256",
            "issuer_name_hash": "aa",
            "issuer_key_hash": "bb",
            "serial_number": "01",
            "responder_url": "http://ocsp.example",
        }
        status = await cp.call(call201.GetCertificateStatus(ocsp_request_data=ocsp))
        assert status.status == "Failed" and "OCSP" in status.status_info["additional_info"]
        await cp.call(call201.LogStatusNotification(status="Uploaded", request_id=7))
        await cp.call(call201.FirmwareStatusNotification(status="InstallScheduled", request_id=8))
        await cp.call(
            call201.PublishFirmwareStatusNotification(
                status="Published", request_id=9, location=["http://lc/fw"]
            )
        )
        hooked = await cp.call(
            call201.DataTransfer(vendor_id="com.example", message_id="ping", data={"n": 1})
        )
        assert (hooked.status, hooked.data) == (
            "Accepted",
            {"charger": "MSG201", "asked": "ping", "got": {"n": 1}},
        )

    charger_id = central.charger_id("MSG201")
    kept = await central.get(f"/admin/chargers/{charger_id}/reports")
    assert {k["action"] for k in kept} == {
        "NotifyReport",
        "NotifyMonitoringReport",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "ReportChargingProfiles",
        "NotifyChargingLimit",
        "ClearedChargingLimit",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "SignCertificate",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "PublishFirmwareStatusNotification",
        "DataTransfer",
    }
    first = kept[0]
    assert (
        first["summary"] == "request 1 part 0: 2 variables, more to come" and first["reported_at"] is not None
    )
    state = await central.get(f"/admin/chargers/{charger_id}/reported-state")
    model = {(v["component"], v["evse_id"], v["variable"]): v["value"] for v in state["device_model"]}
    assert model == {("OCPPCommCtrlr", None, "HeartbeatInterval"): "600", ("EVSE", 1, "Power"): "7400"}
    assert [(x["source"], x["evse_id"], x["grid_critical"]) for x in state["charging_limits"]] == [
        ("SO", None, True)
    ]
    (car,) = state["ev_charging_needs"]
    assert (car["evse_id"], car["transfer_mode"], car["energy_wh"]) == (1, "AC_single_phase", 20_000)
    assert car["schedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 3_600.0}]
    assert [(s["kind"], s["status"]) for s in state["statuses"]] == [
        ("firmware", "InstallScheduled"),
        ("firmware_publishing", "Published"),
        ("log", "Uploaded"),
    ]
    (event,) = await central.get("/admin/security-events?charge_point_id=MSG201")
    assert (event["kind"], event["detail"], event["source"]) == ("FirmwareUpdated", "1.2.3", "charger")


async def test_a_reservation_update_acts_on_the_chargers_own_reservation_only(central: Central) -> None:
    app = central.app
    owner_id = add_charger(app, "RSV-A", online=False)
    add_charger(app, "RSV-B", online=False)
    driver = app.marketplace.add_driver("Res", "TAG-RSV").driver_id
    script = Script()
    async with (
        library_cp201(central.ws, "RSV-A", script) as owner,
        library_cp201(central.ws, "RSV-B") as other,
    ):
        await boot201(owner)
        await boot201(other)
        await owner.call(
            call201.StatusNotification(
                timestamp=now(), connector_status="Available", evse_id=1, connector_id=1
            )
        )
        booking = app.bookings.book(BookRequest(driver, owner_id, 1, 60, 10_000))

        def reservation() -> str:
            with app.store.reading() as tx:
                return tx.bookings.get(booking.booking_id).reservation

        await eventually(lambda: reservation() == "accepted", "ReserveNow accepted")

        assert reservation() == "accepted"
        await other.call(
            call201.ReservationStatusUpdate(
                reservation_id=booking.booking_id, reservation_update_status="Removed"
            )
        )
        assert reservation() == "accepted"  # another charger's word changes nothing
        (event,) = await central.get("/admin/security-events?charge_point_id=RSV-B")
        assert (event["kind"], event["source"]) == ("ForeignReservation", "backend")
        # The owner drops it (a local operator, say): the backend asks for it again once free.
        await owner.call(
            call201.ReservationStatusUpdate(
                reservation_id=booking.booking_id, reservation_update_status="Removed"
            )
        )
        assert reservation() == "none"
        assert app.bookings.reservations_due() == [booking.booking_id]
        await eventually(
            lambda: len(script.asked("ReserveNow")) == 2 and reservation() == "accepted", "reserved again"
        )
        await owner.call(
            call201.ReservationStatusUpdate(
                reservation_id=booking.booking_id, reservation_update_status="Expired"
            )
        )
        assert reservation() == "expired"
    kept = await central.get(f"/admin/chargers/{owner_id}/reports?action=ReservationStatusUpdate")
    assert [k["summary"] for k in kept] == [
        f"reservation {booking.booking_id} Removed: removed on the charger: "
        "asked again when the connector is free",
        f"reservation {booking.booking_id} Expired: expired",
    ]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_unregistered_chargers_messages_are_answered_and_change_nothing(
    central: Central, version: str
) -> None:
    if version == "1.6":
        async with library_cp16(central.ws, "GHOST16") as cp:
            await cp.call(call16.SecurityEventNotification(type="Tamper", timestamp=now(), tech_info="case"))
            await cp.call(call16.FirmwareStatusNotification(status="Installed"))
            assert (await cp.call(call16.SignCertificate(csr="CSR"))).status == "Rejected"
    else:
        async with library_cp201(central.ws, "GHOST201") as cp:
            await cp.call(call201.SecurityEventNotification(type="Tamper", timestamp=now()))
            await cp.call(call201.FirmwareStatusNotification(status="Installed"))
            await cp.call(
                call201.ReservationStatusUpdate(reservation_id=1, reservation_update_status="Expired")
            )
    assert await central.get("/admin/security-events") == []
    with central.app.store.reading() as tx:
        assert all(tx.reports.of(c.charger_id) == [] for c in tx.chargers.all())
