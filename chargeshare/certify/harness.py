"""The certifier's Central System: the backend's registry (authentication, links, taps, commands)
with test-bench handlers in place of the marketplace's, so that every card the test plan names is
accepted without bookings, and every transaction gets a fresh id the checks can follow."""

from __future__ import annotations

import itertools
from typing import Any

from chargeshare.bootstrap import App
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, OcppVersion
from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.frames import CALL, has_schema
from chargeshare.ocpp.timestamps import format_ts

HEARTBEAT_INTERVAL_S = 300
FIRST_TRANSACTION_ID = 1001

# Charger-initiated notifications a test bench acknowledges with an empty confirmation.
_ACKNOWLEDGED = (
    "StatusNotification",
    "MeterValues",
    "FirmwareStatusNotification",
    "DiagnosticsStatusNotification",
    "LogStatusNotification",
    "NotifyEvent",
    "NotifyReport",
    "SecurityEventNotification",
    "ReservationStatusUpdate",
    "NotifyChargingLimit",
    "ReportChargingProfiles",
    "ClearedChargingLimit",
    "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule",
    "NotifyMonitoringReport",
    "NotifyCustomerInformation",
    "NotifyDisplayMessages",
    "PublishFirmwareStatusNotification",
)


class TestBench:
    """Which cards are valid, and the transaction ids handed out (1.6) or seen (2.0.1)."""

    def __init__(self, accepted_tags: set[str]) -> None:
        self.accepted_tags = accepted_tags
        self._ids = itertools.count(FIRST_TRANSACTION_ID)

    def next_transaction_id(self) -> int:
        return next(self._ids)

    def verdict(self, id_tag: str | None) -> str:
        return "Accepted" if id_tag in self.accepted_tags else "Invalid"


def bench_handlers(app: App, bench: TestBench, version: OcppVersion) -> dict[str, Handler]:
    def now() -> str:
        return format_ts(app.clock.now())

    def boot(_p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted", "currentTime": now(), "interval": HEARTBEAT_INTERVAL_S}

    def heartbeat(_p: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": now()}

    def ack(_p: dict[str, Any]) -> dict[str, Any]:
        return {}

    def data_transfer(_p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}

    handlers: dict[str, Handler] = {
        "BootNotification": boot,
        "Heartbeat": heartbeat,
        "DataTransfer": data_transfer,
    }
    handlers.update({action: ack for action in _ACKNOWLEDGED})
    if version == V16:

        def authorize16(p: dict[str, Any]) -> dict[str, Any]:
            return {"idTagInfo": {"status": bench.verdict(p["idTag"])}}

        def start(p: dict[str, Any]) -> dict[str, Any]:
            status = bench.verdict(p["idTag"])
            tx = bench.next_transaction_id() if status == "Accepted" else 0
            return {"transactionId": tx, "idTagInfo": {"status": status}}

        def stop(_p: dict[str, Any]) -> dict[str, Any]:
            return {"idTagInfo": {"status": "Accepted"}}

        handlers.update({"Authorize": authorize16, "StartTransaction": start, "StopTransaction": stop})
    else:

        def authorize201(p: dict[str, Any]) -> dict[str, Any]:
            return {"idTokenInfo": {"status": bench.verdict(p["idToken"]["idToken"])}}

        def transaction_event(p: dict[str, Any]) -> dict[str, Any]:
            token = p.get("idToken")
            if token is None:
                return {}
            return {"idTokenInfo": {"status": bench.verdict(token["idToken"])}}

        handlers.update({"Authorize": authorize201, "TransactionEvent": transaction_event})
    return {action: h for action, h in handlers.items() if has_schema(action, version, CALL)}


class CertificationRegistry(ChargerRegistry):
    """The backend's registry answering with the test bench instead of the marketplace."""

    def __init__(self, app: App, bench: TestBench, *, call_timeout_s: float = 30.0) -> None:
        super().__init__(app, call_timeout_s=call_timeout_s)
        self.bench = bench

    def _handlers(self, cp_id: str, version: OcppVersion, credentials: str) -> dict[str, Handler]:
        return bench_handlers(self.app, self.bench, version)
