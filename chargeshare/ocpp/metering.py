"""The metering the backend asks of every charger it accepts, so that billing has readings.

Firmware defaults vary: a 2.0.1 (or 2.1) charger may sample nothing during a transaction (TxUpdatedInterval
0) or leave the energy register out of its measurands, and is then billed 0 Wh. On each accepted
boot the backend reads the charger's sampling settings and changes only those that fall short:

- an interval that is off (0), unreadable or longer than the policy's is set to the policy's
  (a charger that samples more often is left alone);
- a measurand list without Energy.Active.Import.Register gets it added in front, keeping the rest.

A setting the charger does not have (UnknownVariable, UnknownComponent) or will not change (1.6
read-only) is left as it is. Pure: `plan` turns what the charger answered into the commands to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from chargeshare.ocpp import V16, V201, OcppVersion, family
from chargeshare.ocpp.commands import ChangeSetting, SettingKey, SettingValue, Status

ENERGY = "Energy.Active.Import.Register"


class Kind(StrEnum):
    SAMPLE_INTERVAL = "sample_interval"  # readings during a transaction
    QUARTER_INTERVAL = "quarter_interval"  # readings in the Ended event, clock-aligned readings
    MEASURANDS = "measurands"


@dataclass(frozen=True)
class MeteringPolicy:
    sample_interval_s: int = 60
    # Samples kept for the Ended event (what a charger replays after a lost link) and clock-aligned
    # readings: at least every quarter hour, the periods UK half-hourly settlement splits into.
    quarter_interval_s: int = 900


SETTINGS: dict[str, tuple[tuple[SettingKey, Kind], ...]] = {
    V16: (
        (SettingKey("MeterValueSampleInterval"), Kind.SAMPLE_INTERVAL),
        (SettingKey("MeterValuesSampledData"), Kind.MEASURANDS),
    ),
    V201: (
        (SettingKey("TxUpdatedInterval", "SampledDataCtrlr"), Kind.SAMPLE_INTERVAL),
        (SettingKey("TxEndedInterval", "SampledDataCtrlr"), Kind.QUARTER_INTERVAL),
        (SettingKey("TxStartedMeasurands", "SampledDataCtrlr"), Kind.MEASURANDS),
        (SettingKey("TxUpdatedMeasurands", "SampledDataCtrlr"), Kind.MEASURANDS),
        (SettingKey("TxEndedMeasurands", "SampledDataCtrlr"), Kind.MEASURANDS),
        (SettingKey("Interval", "AlignedDataCtrlr"), Kind.QUARTER_INTERVAL),
        (SettingKey("Measurands", "AlignedDataCtrlr"), Kind.MEASURANDS),
    ),
}


def keys(version: OcppVersion) -> tuple[SettingKey, ...]:
    """The settings to read from a charger of this version."""
    return tuple(key for key, _ in SETTINGS[family(version)])


def plan(
    version: OcppVersion, current: Sequence[SettingValue], policy: MeteringPolicy
) -> list[ChangeSetting]:
    """The changes that bring the charger's metering up to the policy, given what it answered."""
    answered = {v.key: v for v in current}
    changes = []
    for key, kind in SETTINGS[family(version)]:
        found = answered.get(key)
        if found is None or found.status is not Status.ACCEPTED or found.readonly:
            continue
        wanted = wanted_value(kind, found.value, policy)
        if wanted is not None:
            changes.append(ChangeSetting(key, wanted))
    return changes


def wanted_value(kind: Kind, value: str | None, policy: MeteringPolicy) -> str | None:
    """The value this setting should take, or None when it already serves billing."""
    if kind is Kind.MEASURANDS:
        measurands = [m.strip() for m in (value or "").split(",") if m.strip()]
        return None if ENERGY in measurands else ",".join([ENERGY, *measurands])
    bound = policy.sample_interval_s if kind is Kind.SAMPLE_INTERVAL else policy.quarter_interval_s
    try:
        seconds = int((value or "").strip())
    except ValueError:
        return str(bound)
    return None if 0 < seconds <= bound else str(bound)
