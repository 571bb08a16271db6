"""What a BootNotification says of the device that sent it, in either OCPP version."""

from __future__ import annotations

from typing import Any


def device_of(boot: dict[str, Any]) -> dict[str, str]:
    """What a BootNotification (1.6 or 2.0.1) says of the device: the fields it gave, by our names."""
    station = boot.get("chargingStation")
    if isinstance(station, dict):
        named = {
            "vendor": station.get("vendorName"),
            "model": station.get("model"),
            "serial": station.get("serialNumber"),
            "firmware": station.get("firmwareVersion"),
        }
    else:
        named = {
            "vendor": boot.get("chargePointVendor"),
            "model": boot.get("chargePointModel"),
            "serial": boot.get("chargePointSerialNumber") or boot.get("chargeBoxSerialNumber"),
            "firmware": boot.get("firmwareVersion"),
        }
    return {k: str(v) for k, v in named.items() if v}
