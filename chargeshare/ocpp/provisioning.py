"""Replies that are the same in OCPP 1.6 and 2.0.1: boot, heartbeat, and the vendor-neutral refusals."""

from __future__ import annotations

import contextlib
from typing import Any

from chargeshare.domain.errors import NotFound
from chargeshare.ocpp import OcppVersion
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.charging import ChargingService


def boot_reply(charging: ChargingService, cp_id: str, version: OcppVersion) -> dict[str, Any]:
    result = charging.boot(cp_id, version)
    if result.status is not None:
        status = result.status.value
    else:  # unregistered
        status = "Accepted" if charging.allow_unknown else "Rejected"
    return {
        "status": status,
        "currentTime": format_ts(charging.clock.now()),
        "interval": result.interval_s,
    }


def heartbeat_reply(charging: ChargingService, cp_id: str) -> dict[str, Any]:
    with contextlib.suppress(NotFound):  # an unregistered charger may talk; nothing is stored
        charging.heartbeat(cp_id)
    return {"currentTime": format_ts(charging.clock.now())}


def unknown_vendor(_payload: dict[str, Any]) -> dict[str, Any]:
    """DataTransfer: we implement no vendor extensions, and say so clearly."""
    return {"status": "UnknownVendorId"}
