"""The charger's configuration: one store of settings, named the 1.6 way (a configuration key) and the
2.0.1 way (a component and a variable), so both dialects read and change the same values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class SetResult(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # read-only, or a value the setting cannot take
    UNKNOWN = "unknown"


def _whole(minimum: int, maximum: int) -> Callable[[str], bool]:
    def ok(value: str) -> bool:
        return value.strip().isdigit() and minimum <= int(value) <= maximum

    return ok


def _boolean(value: str) -> bool:
    return value.lower() in ("true", "false")


def _anything(value: str) -> bool:
    return len(value) <= 500


@dataclass(frozen=True)
class Setting:
    name: str  # the charger's own name for it
    key: str  # OCPP 1.6 configuration key
    component: str  # OCPP 2.0.1 component ...
    variable: str  # ... and variable
    default: str
    readonly: bool = False
    valid: Callable[[str], bool] = _anything


HEARTBEAT_INTERVAL = "heartbeat_interval_s"
METER_INTERVAL = "meter_interval_s"
CONNECTION_TIMEOUT = "connection_timeout_s"
TRANSACTION_ATTEMPTS = "transaction_attempts"
AUTHORIZE_REMOTE_START = "authorize_remote_start"
STOP_ON_INVALID_ID = "stop_on_invalid_id"

DEFINITIONS: tuple[Setting, ...] = (
    Setting(
        HEARTBEAT_INTERVAL,
        "HeartbeatInterval",
        "OCPPCommCtrlr",
        "HeartbeatInterval",
        "300",
        valid=_whole(1, 86_400),
    ),
    Setting(
        METER_INTERVAL,
        "MeterValueSampleInterval",
        "SampledDataCtrlr",
        "TxUpdatedInterval",
        "60",
        valid=_whole(1, 86_400),
    ),
    Setting(
        CONNECTION_TIMEOUT,
        "ConnectionTimeOut",
        "TxCtrlr",
        "EVConnectionTimeOut",
        "120",
        valid=_whole(1, 3_600),
    ),
    Setting(
        TRANSACTION_ATTEMPTS,
        "TransactionMessageAttempts",
        "OCPPCommCtrlr",
        "MessageAttempts",
        "3",
        valid=_whole(1, 10),
    ),
    Setting(
        AUTHORIZE_REMOTE_START,
        "AuthorizeRemoteTxRequests",
        "AuthCtrlr",
        "AuthorizeRemoteStart",
        "false",
        valid=_boolean,
    ),
    Setting(
        STOP_ON_INVALID_ID,
        "StopTransactionOnInvalidId",
        "TxCtrlr",
        "StopTxOnInvalidId",
        "true",
        valid=_boolean,
    ),
    Setting(
        "meter_measurands",
        "MeterValuesSampledData",
        "SampledDataCtrlr",
        "TxUpdatedMeasurands",
        "Energy.Active.Import.Register,Power.Active.Import",
    ),
    # What the end of a transaction carries: the register, always (2.0.1 Ended event, 1.6 meterStop).
    Setting(
        "ended_measurands",
        "StopTxnSampledData",
        "SampledDataCtrlr",
        "TxEndedMeasurands",
        "Energy.Active.Import.Register",
    ),
    Setting("connectors", "NumberOfConnectors", "EVSE", "Count", "1", readonly=True),
    Setting(
        "profile_max_stack",
        "ChargeProfileMaxStackLevel",
        "SmartChargingCtrlr",
        "ProfileStackLevel",
        "8",
        readonly=True,
    ),
    Setting(
        "rate_units",
        "ChargingScheduleAllowedChargingRateUnit",
        "SmartChargingCtrlr",
        "RateUnit",
        "Current,Power",
        readonly=True,
    ),
    Setting(
        "feature_profiles",
        "SupportedFeatureProfiles",
        "DeviceDataCtrlr",
        "SupportedFeatureProfiles",
        "Core,Reservation,RemoteTrigger,SmartCharging,LocalAuthListManagement",
        readonly=True,
    ),
    Setting("vendor", "ChargePointVendor", "ChargingStation", "VendorName", "ChargeShare", readonly=True),
    Setting("model", "ChargePointModel", "ChargingStation", "Model", "Virtual-1", readonly=True),
)

BY_NAME = {s.name: s for s in DEFINITIONS}
BY_KEY = {s.key: s for s in DEFINITIONS}
BY_COMPONENT_VARIABLE = {(s.component, s.variable): s for s in DEFINITIONS}
COMPONENTS = frozenset(s.component for s in DEFINITIONS)


class Settings:
    """Current values, as strings (as both protocol versions carry them)."""

    def __init__(self, connectors: int) -> None:
        self.values = {s.name: s.default for s in DEFINITIONS}
        self.values["connectors"] = str(connectors)

    def get(self, name: str) -> str:
        return self.values[name]

    def number(self, name: str) -> int:
        return int(self.values[name])

    def flag(self, name: str) -> bool:
        return self.values[name].lower() == "true"

    def set(self, setting: Setting | None, value: str, *, by_csms: bool = True) -> SetResult:
        """Change a value; the CSMS may not change a read-only one, nor set a value out of range."""
        if setting is None:
            return SetResult.UNKNOWN
        if (by_csms and setting.readonly) or not setting.valid(value):
            return SetResult.REJECTED
        self.values[setting.name] = value
        return SetResult.ACCEPTED
