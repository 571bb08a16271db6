"""The charger's configuration: one store of settings, named the 1.6 way (a configuration key) and the
2.0.1 way (a component and a variable), so both dialects read and change the same values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from chargeshare.domain.smart_charge_points import DEFAULT_DELAY_MAX_S, DELAY_CAPABLE_MAX_S, SmartSettings
from chargeshare.ocpp import smart_charging as ocpp_smart


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
TRANSACTION_RETRY_INTERVAL = "transaction_retry_interval_s"
AUTHORIZE_REMOTE_START = "authorize_remote_start"
STOP_ON_INVALID_ID = "stop_on_invalid_id"
SUPPLY_PHASES = "supply_phases"
PHASE_SWITCHING = "phase_switching"
EVSE_SUPPLY_PHASES = "SupplyPhases"  # the 2.0.1 `EVSE` component's variable (`Settings.evse_values`)

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
    # The wait before sending a failed transaction message again, times the sendings so far; 3
    # attempts 60 s apart is the example OCPP 1.6 gives (60 s, then 120 s, then given up).
    Setting(
        TRANSACTION_RETRY_INTERVAL,
        "TransactionMessageRetryInterval",
        "OCPPCommCtrlr",
        "MessageAttemptInterval",
        "60",
        valid=_whole(0, 3_600),
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
    # The phases its connectors are wired to, in each version's words: 1.6 a rotation per connector
    # ("1.RST", "1.NotApplicable"), 2.0.1 the station's number of AC phases and each EVSE's own
    # (`Settings.evse_values`, `ChargerCore`).
    Setting(
        SUPPLY_PHASES, "ConnectorPhaseRotation", "ChargingStation", "SupplyPhases", "Unknown", readonly=True
    ),
    # Whether it switches a three-phase connector to one phase during a transaction when a
    # profile's period names one (`ChargerCore.switch_phases`).
    Setting(
        PHASE_SWITCHING,
        "ConnectorSwitch3to1PhaseSupported",
        "SmartChargingCtrlr",
        "Phases3to1",
        "true",
        readonly=True,
        valid=_boolean,
    ),
    Setting(
        "feature_profiles",
        "SupportedFeatureProfiles",
        "DeviceDataCtrlr",
        "SupportedFeatureProfiles",
        "Core,FirmwareManagement,Reservation,RemoteTrigger,SmartCharging,LocalAuthListManagement",
        readonly=True,
    ),
    # The most keys or variables one Get/ChangeConfiguration or Get/SetVariables may name.
    Setting(
        "items_per_message",
        "GetConfigurationMaxKeys",
        "DeviceDataCtrlr",
        "ItemsPerMessage",
        "4",
        readonly=True,
    ),
    Setting("vendor", "ChargePointVendor", "ChargingStation", "VendorName", "ChargeShare", readonly=True),
    Setting("model", "ChargePointModel", "ChargingStation", "Model", "Virtual-1", readonly=True),
)

# A relevant charge point under the UK's Smart Charge Points Regulations 2021 also has these (vendor
# keys, ours: chargeshare/ocpp/smart_charging.py). Defaults as the regulations pre-configure them.
RANDOMISED_DELAY_MAX = "randomised_delay_max_s"
RANDOMISED_DELAY_OVERRIDE = "randomised_delay_override"
DEFAULT_CHARGING_HOURS = "default_charging_hours"
DEMAND_SIDE_RESPONSE = "demand_side_response"
SMART_DEFINITIONS: tuple[Setting, ...] = (
    Setting(
        RANDOMISED_DELAY_MAX,
        ocpp_smart.RANDOMISED_DELAY_MAX,
        ocpp_smart.COMPONENT,
        ocpp_smart.RANDOMISED_DELAY_MAX,
        str(DEFAULT_DELAY_MAX_S),
        valid=_whole(0, DELAY_CAPABLE_MAX_S),
    ),
    Setting(
        RANDOMISED_DELAY_OVERRIDE,
        ocpp_smart.RANDOMISED_DELAY_OVERRIDE,
        ocpp_smart.COMPONENT,
        ocpp_smart.RANDOMISED_DELAY_OVERRIDE,
        "false",
        valid=_boolean,
    ),
    Setting(
        DEFAULT_CHARGING_HOURS,
        ocpp_smart.DEFAULT_CHARGING_HOURS,
        ocpp_smart.COMPONENT,
        ocpp_smart.DEFAULT_CHARGING_HOURS,
        "true",
        valid=_boolean,
    ),
    Setting(
        DEMAND_SIDE_RESPONSE,
        ocpp_smart.DEMAND_SIDE_RESPONSE,
        ocpp_smart.COMPONENT,
        ocpp_smart.DEMAND_SIDE_RESPONSE,
        "false",
        valid=_boolean,
    ),
)
ALL_DEFINITIONS = DEFINITIONS + SMART_DEFINITIONS
BY_NAME = {s.name: s for s in ALL_DEFINITIONS}
BY_KEY = {s.key: s for s in ALL_DEFINITIONS}
BY_COMPONENT_VARIABLE = {(s.component, s.variable): s for s in ALL_DEFINITIONS}
SMART_NAMES = frozenset(s.name for s in SMART_DEFINITIONS)


class Settings:
    """Current values, as strings (as both protocol versions carry them). A charger that is not a
    relevant charge point under the smart charging regulations has no such keys at all."""

    def __init__(self, connectors: int, *, smart_charge_point: bool = False) -> None:
        self.definitions = ALL_DEFINITIONS if smart_charge_point else DEFINITIONS
        self.values = {s.name: s.default for s in self.definitions}
        self.values["connectors"] = str(connectors)
        # 2.0.1 variables of one EVSE's own `EVSE` component ({(evse id, variable): value}), read-only.
        self.evse_values: dict[tuple[int, str], str] = {}

    def has(self, setting: Setting | None) -> Setting | None:
        """The setting if this charger has it (None otherwise: an unknown key)."""
        return setting if setting is not None and setting.name in self.values else None

    def smart(self) -> SmartSettings:
        """The smart charging settings in force (the regulations' defaults where there are none)."""
        if RANDOMISED_DELAY_MAX not in self.values:
            return SmartSettings()
        return SmartSettings(
            randomised_delay_max_s=self.number(RANDOMISED_DELAY_MAX),
            randomised_delay_override=self.flag(RANDOMISED_DELAY_OVERRIDE),
            default_charging_hours=self.flag(DEFAULT_CHARGING_HOURS),
            demand_side_response=self.flag(DEMAND_SIDE_RESPONSE),
        )

    def get(self, name: str) -> str:
        return self.values[name]

    def number(self, name: str) -> int:
        return int(self.values[name])

    def flag(self, name: str) -> bool:
        return self.values[name].lower() == "true"

    def set(self, setting: Setting | None, value: str, *, by_csms: bool = True) -> SetResult:
        """Change a value; the CSMS may not change a read-only one, nor set a value out of range."""
        if self.has(setting) is None:
            return SetResult.UNKNOWN
        assert setting is not None
        if (by_csms and setting.readonly) or not setting.valid(value):
            return SetResult.REJECTED
        self.values[setting.name] = value
        return SetResult.ACCEPTED
