"""OCPP 2.0.1 actions a charger sends us. The skeleton covers provisioning and availability;
transactions (TransactionEvent) answer NotSupported until the full 2.0.1 ingest lands."""

from __future__ import annotations

import contextlib
from typing import Any

from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import NotFound
from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.provisioning import acknowledge, boot_reply, heartbeat_reply, unknown_vendor
from chargeshare.services.charging import ChargingService

# 2.0.1 reports fewer connector states; map each onto the 1.6 set the store keeps.
CONNECTOR_STATUS = {
    "Available": ConnectorStatus.AVAILABLE,
    "Occupied": ConnectorStatus.CHARGING,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}


def handlers(charging: ChargingService, cp_id: str) -> dict[str, Handler]:
    def boot(p: dict[str, Any]) -> dict[str, Any]:
        return boot_reply(charging, cp_id, "2.0.1")

    def heartbeat(p: dict[str, Any]) -> dict[str, Any]:
        return heartbeat_reply(charging, cp_id)

    def status(p: dict[str, Any]) -> dict[str, Any]:
        with contextlib.suppress(NotFound):
            charging.status(cp_id, p["connectorId"], CONNECTOR_STATUS[p["connectorStatus"]])
        return {}

    return {
        "BootNotification": boot,
        "Heartbeat": heartbeat,
        "StatusNotification": status,
        "DataTransfer": unknown_vendor,
        "FirmwareStatusNotification": acknowledge,
        "LogStatusNotification": acknowledge,
        "NotifyEvent": acknowledge,
    }
