"""Independent charge points built directly on the `ocpp` library (not the project's simulator), for
end-to-end tests of the central system over real WebSockets, in OCPP 1.6, 2.0.1 and 2.1.

Each answers every CSMS command with a scripted status, records what it was asked, and can be told
to stay silent (for timeouts) or answer with a CALLERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.exceptions import GenericError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v21 import ChargePoint as Cp21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Script:
    """What a library charge point answers: a status per action (default Accepted), actions it
    answers only after `late_s` (the library handles one message at a time, so it cannot stay
    silent for good without blocking everything after), and actions it answers with a CALLERROR."""

    status: dict[str, str] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    late_s: float = 1.0
    fail: set[str] = field(default_factory=set)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    schedule_start: str = "2026-03-02T09:00:00Z"  # in an accepted GetCompositeSchedule's answer
    # What GetConfiguration (1.6) and GetVariables (2.0.1) read; an accepted change is kept.
    config16: dict[str, str] = field(
        default_factory=lambda: {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}
    )
    readonly16: set[str] = field(default_factory=lambda: {"MeterValueSampleInterval"})
    variables: dict[tuple[str, str], str] = field(
        default_factory=lambda: {("OCPPCommCtrlr", "HeartbeatInterval"): "300"}
    )
    # The periods of an accepted 2.x GetCompositeSchedule's answer, in the library's snake_case.
    composite_periods: list[dict[str, Any]] = field(
        default_factory=lambda: [{"start_period": 0, "limit": 16}]
    )
    local_list_version: int = 0  # 2.x: what GetLocalListVersion answers; an accepted SendLocalList sets it
    # What GetInstalledCertificateIds lists, in the library's snake_case: (use, hash data).
    certificates: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def answer(self, action: str, request: dict[str, Any], default: str = "Accepted") -> str:
        self.received.append((action, request))
        if action in self.fail:
            raise GenericError(f"{action} failed on the charger")
        if action in self.silent:
            await asyncio.sleep(self.late_s)
        return self.status.get(action, default)

    def asked(self, action: str) -> list[dict[str, Any]]:
        return [r for a, r in self.received if a == action]


class LibraryCp16(Cp16):  # type: ignore[misc]
    script: Script

    @on("RemoteStartTransaction")  # type: ignore[untyped-decorator]
    async def remote_start(self, **kw: Any) -> Any:
        return result16.RemoteStartTransaction(status=await self.script.answer("RemoteStartTransaction", kw))

    @on("RemoteStopTransaction")  # type: ignore[untyped-decorator]
    async def remote_stop(self, **kw: Any) -> Any:
        return result16.RemoteStopTransaction(status=await self.script.answer("RemoteStopTransaction", kw))

    @on("ReserveNow")  # type: ignore[untyped-decorator]
    async def reserve_now(self, **kw: Any) -> Any:
        return result16.ReserveNow(status=await self.script.answer("ReserveNow", kw))

    @on("CancelReservation")  # type: ignore[untyped-decorator]
    async def cancel_reservation(self, **kw: Any) -> Any:
        return result16.CancelReservation(status=await self.script.answer("CancelReservation", kw))

    @on("ChangeAvailability")  # type: ignore[untyped-decorator]
    async def change_availability(self, **kw: Any) -> Any:
        return result16.ChangeAvailability(status=await self.script.answer("ChangeAvailability", kw))

    @on("Reset")  # type: ignore[untyped-decorator]
    async def reset(self, **kw: Any) -> Any:
        return result16.Reset(status=await self.script.answer("Reset", kw))

    @on("TriggerMessage")  # type: ignore[untyped-decorator]
    async def trigger_message(self, **kw: Any) -> Any:
        return result16.TriggerMessage(status=await self.script.answer("TriggerMessage", kw))

    @on("UnlockConnector")  # type: ignore[untyped-decorator]
    async def unlock_connector(self, **kw: Any) -> Any:
        return result16.UnlockConnector(status=await self.script.answer("UnlockConnector", kw, "Unlocked"))

    @on("SetChargingProfile")  # type: ignore[untyped-decorator]
    async def set_charging_profile(self, **kw: Any) -> Any:
        return result16.SetChargingProfile(status=await self.script.answer("SetChargingProfile", kw))

    @on("ClearChargingProfile")  # type: ignore[untyped-decorator]
    async def clear_charging_profile(self, **kw: Any) -> Any:
        return result16.ClearChargingProfile(status=await self.script.answer("ClearChargingProfile", kw))

    @on("GetCompositeSchedule")  # type: ignore[untyped-decorator]
    async def get_composite_schedule(self, connector_id: int, duration: int, **kw: Any) -> Any:
        status = await self.script.answer(
            "GetCompositeSchedule", {"connector_id": connector_id, "duration": duration, **kw}
        )
        if status != "Accepted":
            return result16.GetCompositeSchedule(status=status)
        return result16.GetCompositeSchedule(
            status=status,
            connector_id=connector_id,
            schedule_start=self.script.schedule_start,
            charging_schedule={
                "charging_rate_unit": "W",
                "duration": duration,
                "charging_schedule_period": [
                    {"start_period": 0, "limit": 7400},
                    {"start_period": 600, "limit": 3700},
                ],
            },
        )

    @on("GetConfiguration")  # type: ignore[untyped-decorator]
    async def get_configuration(self, key: list[str] | None = None, **kw: Any) -> Any:
        await self.script.answer("GetConfiguration", {"key": key})
        known = self.script.config16
        wanted = key if key else list(known)
        return result16.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": k in self.script.readonly16, "value": known[k]}
                for k in wanted
                if k in known
            ],
            unknown_key=[k for k in wanted if k not in known] or None,
        )

    @on("ChangeConfiguration")  # type: ignore[untyped-decorator]
    async def change_configuration(self, key: str, value: str, **kw: Any) -> Any:
        status = await self.script.answer("ChangeConfiguration", {"key": key, "value": value, **kw})
        if status == "Accepted":
            self.script.config16[key] = value
        return result16.ChangeConfiguration(status=status)

    @on("InstallCertificate")  # type: ignore[untyped-decorator]
    async def install_certificate(self, **kw: Any) -> Any:
        return result16.InstallCertificate(status=await self.script.answer("InstallCertificate", kw))

    @on("GetInstalledCertificateIds")  # type: ignore[untyped-decorator]
    async def get_installed_certificate_ids(self, certificate_type: str, **kw: Any) -> Any:
        await self.script.answer("GetInstalledCertificateIds", {"certificate_type": certificate_type})
        found = [h for use, h in self.script.certificates if use == certificate_type]
        if not found:
            return result16.GetInstalledCertificateIds(status="NotFound")
        return result16.GetInstalledCertificateIds(status="Accepted", certificate_hash_data=found)

    @on("DeleteCertificate")  # type: ignore[untyped-decorator]
    async def delete_certificate(self, **kw: Any) -> Any:
        return result16.DeleteCertificate(status=await self.script.answer("DeleteCertificate", kw))

    @on("CertificateSigned")  # type: ignore[untyped-decorator]
    async def certificate_signed(self, **kw: Any) -> Any:
        return result16.CertificateSigned(status=await self.script.answer("CertificateSigned", kw))


class _Commands2x:
    """The CSMS commands a 2.0.1 or 2.1 library charge point answers, each with the `ocpp` library's
    own answer type of its version (`results`): the two versions share these messages' shapes."""

    script: Script
    results: Any  # ocpp.v201.call_result or ocpp.v21.call_result

    @on("RequestStartTransaction")  # type: ignore[untyped-decorator]
    async def request_start(self, **kw: Any) -> Any:
        status = await self.script.answer("RequestStartTransaction", kw)
        return self.results.RequestStartTransaction(status=status, transaction_id="LIB-TX-9")

    @on("RequestStopTransaction")  # type: ignore[untyped-decorator]
    async def request_stop(self, **kw: Any) -> Any:
        return self.results.RequestStopTransaction(
            status=await self.script.answer("RequestStopTransaction", kw)
        )

    @on("ReserveNow")  # type: ignore[untyped-decorator]
    async def reserve_now(self, **kw: Any) -> Any:
        return self.results.ReserveNow(status=await self.script.answer("ReserveNow", kw))

    @on("CancelReservation")  # type: ignore[untyped-decorator]
    async def cancel_reservation(self, **kw: Any) -> Any:
        return self.results.CancelReservation(status=await self.script.answer("CancelReservation", kw))

    @on("ChangeAvailability")  # type: ignore[untyped-decorator]
    async def change_availability(self, **kw: Any) -> Any:
        return self.results.ChangeAvailability(status=await self.script.answer("ChangeAvailability", kw))

    @on("Reset")  # type: ignore[untyped-decorator]
    async def reset(self, **kw: Any) -> Any:
        return self.results.Reset(status=await self.script.answer("Reset", kw))

    @on("TriggerMessage")  # type: ignore[untyped-decorator]
    async def trigger_message(self, **kw: Any) -> Any:
        return self.results.TriggerMessage(status=await self.script.answer("TriggerMessage", kw))

    @on("UnlockConnector")  # type: ignore[untyped-decorator]
    async def unlock_connector(self, **kw: Any) -> Any:
        return self.results.UnlockConnector(
            status=await self.script.answer("UnlockConnector", kw, "Unlocked")
        )

    @on("SetChargingProfile")  # type: ignore[untyped-decorator]
    async def set_charging_profile(self, **kw: Any) -> Any:
        return self.results.SetChargingProfile(status=await self.script.answer("SetChargingProfile", kw))

    @on("ClearChargingProfile")  # type: ignore[untyped-decorator]
    async def clear_charging_profile(self, **kw: Any) -> Any:
        return self.results.ClearChargingProfile(status=await self.script.answer("ClearChargingProfile", kw))

    @on("GetCompositeSchedule")  # type: ignore[untyped-decorator]
    async def get_composite_schedule(self, duration: int, evse_id: int, **kw: Any) -> Any:
        status = await self.script.answer(
            "GetCompositeSchedule", {"duration": duration, "evse_id": evse_id, **kw}
        )
        if status != "Accepted":
            return self.results.GetCompositeSchedule(status=status)
        return self.results.GetCompositeSchedule(
            status=status,
            schedule={
                "evse_id": evse_id,
                "duration": duration,
                "schedule_start": self.script.schedule_start,
                "charging_rate_unit": "A",
                "charging_schedule_period": self.script.composite_periods,
            },
        )

    @on("GetVariables")  # type: ignore[untyped-decorator]
    async def get_variables(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        await self.script.answer("GetVariables", {"get_variable_data": get_variable_data})
        known = self.script.variables
        results = []
        for d in get_variable_data:
            key = (d["component"]["name"], d["variable"]["name"])
            result: dict[str, Any] = {
                "attribute_status": "Accepted" if key in known else "UnknownVariable",
                "component": d["component"],
                "variable": d["variable"],
            }
            if key in known:
                result["attribute_value"] = known[key]
            results.append(result)
        return self.results.GetVariables(get_variable_result=results)

    @on("SetVariables")  # type: ignore[untyped-decorator]
    async def set_variables(self, set_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        status = await self.script.answer("SetVariables", {"set_variable_data": set_variable_data})
        if status == "Accepted":
            for d in set_variable_data:
                self.script.variables[(d["component"]["name"], d["variable"]["name"])] = d["attribute_value"]
        return self.results.SetVariables(
            set_variable_result=[
                {"attribute_status": status, "component": d["component"], "variable": d["variable"]}
                for d in set_variable_data
            ]
        )

    @on("SendLocalList")  # type: ignore[untyped-decorator]
    async def send_local_list(self, version_number: int, **kw: Any) -> Any:
        status = await self.script.answer("SendLocalList", {"version_number": version_number, **kw})
        if status == "Accepted":
            self.script.local_list_version = version_number
        return self.results.SendLocalList(status=status)

    @on("GetLocalListVersion")  # type: ignore[untyped-decorator]
    async def get_local_list_version(self, **kw: Any) -> Any:
        await self.script.answer("GetLocalListVersion", kw)
        return self.results.GetLocalListVersion(version_number=self.script.local_list_version)

    @on("ClearCache")  # type: ignore[untyped-decorator]
    async def clear_cache(self, **kw: Any) -> Any:
        return self.results.ClearCache(status=await self.script.answer("ClearCache", kw))

    @on("GetTransactionStatus")  # type: ignore[untyped-decorator]
    async def get_transaction_status(self, **kw: Any) -> Any:
        await self.script.answer("GetTransactionStatus", kw)
        ongoing = None if kw.get("transaction_id") is None else kw["transaction_id"] == "LIB-TX-9"
        return self.results.GetTransactionStatus(messages_in_queue=False, ongoing_indicator=ongoing)

    @on("InstallCertificate")  # type: ignore[untyped-decorator]
    async def install_certificate(self, **kw: Any) -> Any:
        return self.results.InstallCertificate(status=await self.script.answer("InstallCertificate", kw))

    @on("GetInstalledCertificateIds")  # type: ignore[untyped-decorator]
    async def get_installed_certificate_ids(
        self, certificate_type: list[str] | None = None, **kw: Any
    ) -> Any:
        await self.script.answer("GetInstalledCertificateIds", {"certificate_type": certificate_type})
        chain = [
            {"certificate_type": use, "certificate_hash_data": h}
            for use, h in self.script.certificates
            if not certificate_type or use in certificate_type
        ]
        if not chain:
            return self.results.GetInstalledCertificateIds(status="NotFound")
        return self.results.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=chain)

    @on("DeleteCertificate")  # type: ignore[untyped-decorator]
    async def delete_certificate(self, **kw: Any) -> Any:
        return self.results.DeleteCertificate(status=await self.script.answer("DeleteCertificate", kw))


class LibraryCp201(_Commands2x, Cp201):  # type: ignore[misc]
    results = result201


class LibraryCp21(_Commands2x, Cp21):  # type: ignore[misc]
    """A 2.1 charge point built on the library's v21 package: its frames are checked against the
    library's 2.1 schemas, both ways, independently of the project's own code."""

    results = result21


@contextlib.asynccontextmanager
async def library_cp16(
    url: str, cp_id: str, script: Script | None = None, **connect_kw: Any
) -> AsyncIterator[LibraryCp16]:
    async with connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"], **connect_kw) as ws:  # type: ignore[list-item]
        cp = LibraryCp16(cp_id, ws)
        cp.script = script or Script()
        async with _running(cp):
            yield cp


@contextlib.asynccontextmanager
async def library_cp201(
    url: str, cp_id: str, script: Script | None = None, **connect_kw: Any
) -> AsyncIterator[LibraryCp201]:
    async with connect(f"{url}/{cp_id}", subprotocols=["ocpp2.0.1"], **connect_kw) as ws:  # type: ignore[list-item]
        cp = LibraryCp201(cp_id, ws)
        cp.script = script or Script()
        async with _running(cp):
            yield cp


@contextlib.asynccontextmanager
async def library_cp21(
    url: str, cp_id: str, script: Script | None = None, **connect_kw: Any
) -> AsyncIterator[LibraryCp21]:
    async with connect(f"{url}/{cp_id}", subprotocols=["ocpp2.1"], **connect_kw) as ws:  # type: ignore[list-item]
        cp = LibraryCp21(cp_id, ws)
        cp.script = script or Script()
        async with _running(cp):
            yield cp


@contextlib.asynccontextmanager
async def _running(cp: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(cp.start())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await task


async def boot16(cp: LibraryCp16) -> Any:
    return await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))


async def boot201(cp: LibraryCp201) -> Any:
    return await cp.call(
        call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
    )


async def boot21(cp: LibraryCp21) -> Any:
    return await cp.call(
        call21.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
    )


def energy201(wh: int, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    """One 2.0.1 (or 2.1: the same shape) meterValue carrying the energy register in Wh."""
    return [
        {
            "timestamp": now(),
            "sampled_value": [
                {
                    "value": wh,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unit_of_measure": {"unit": "Wh"},
                }
            ],
        }
    ]


def tx_event(
    event_type: str,
    seq_no: int,
    transaction_id: str,
    *,
    trigger: str = "MeterValuePeriodic",
    wh: int | None = None,
    id_tag: str | None = None,
    evse: int | None = None,
    timestamp: str | None = None,
    offline: bool | None = None,
    charging_state: str | None = None,
    calls: Any = call201,
    **more: Any,
) -> Any:
    """A TransactionEvent as the `ocpp` library frames it, in the version of `calls` (the library's
    call module), with `more` of that version's fields."""
    info: dict[str, Any] = {"transaction_id": transaction_id}
    if charging_state is not None:
        info["charging_state"] = charging_state
    return calls.TransactionEvent(
        event_type=event_type,
        timestamp=timestamp or now(),
        trigger_reason=trigger,
        seq_no=seq_no,
        transaction_info=info,
        meter_value=None if wh is None else energy201(wh),
        offline=offline,
        evse=None if evse is None else {"id": evse, "connector_id": 1},
        id_token=None if id_tag is None else {"id_token": id_tag, "type": "ISO14443"},
        **more,
    )
