"""The metering the backend asks of every charger it accepts, so that billing has readings.

Firmware defaults vary: a 2.0.1 (or 2.1) charger may sample nothing during a transaction (TxUpdatedInterval
0) or leave the energy register out of its measurands, and is then billed 0 Wh. On each accepted
boot the backend reads the charger's sampling settings and changes only those that fall short:

- an interval that is off (0), unreadable or longer than the policy's is set to the policy's
  (a charger that samples more often is left alone);
- a measurand list without Energy.Active.Import.Register gets it added in front, keeping the rest;
- with `retry_within_s`, a failed transaction message's retries (TransactionMessageAttempts, waits
  of TransactionMessageRetryInterval times the sendings so far) must all be over within it, so a
  stop the backend failed to process arrives before the lost-stop sweep closes its session on an
  older reading: a longer interval is shortened to fit; the attempts are never cut, since a stop
  given up is lost for good.

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
    RETRY_ATTEMPTS = "retry_attempts"  # sendings of a transaction message the CSMS failed to process
    RETRY_INTERVAL = "retry_interval"  # the wait before the next, times the sendings so far


@dataclass(frozen=True)
class MeteringPolicy:
    sample_interval_s: int = 60
    # Samples kept for the Ended event (what a charger replays after a lost link) and clock-aligned
    # readings: at least every quarter hour, the periods UK half-hourly settlement splits into.
    quarter_interval_s: int = 900
    # Within how many seconds a failed transaction message's retries must be over (None: as is).
    retry_within_s: int | None = None


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


# 2.0.1 names the transaction message retries' instance (TransactionEvent); a charger that only
# answers with it finds these UnknownVariable and is left as it is.
RETRIES: dict[str, tuple[tuple[SettingKey, Kind], ...]] = {
    V16: (
        (SettingKey("TransactionMessageAttempts"), Kind.RETRY_ATTEMPTS),
        (SettingKey("TransactionMessageRetryInterval"), Kind.RETRY_INTERVAL),
    ),
    V201: (
        (SettingKey("MessageAttempts", "OCPPCommCtrlr"), Kind.RETRY_ATTEMPTS),
        (SettingKey("MessageAttemptInterval", "OCPPCommCtrlr"), Kind.RETRY_INTERVAL),
    ),
}


def _settings(version: OcppVersion, policy: MeteringPolicy | None) -> tuple[tuple[SettingKey, Kind], ...]:
    retries = RETRIES[family(version)] if policy is not None and policy.retry_within_s is not None else ()
    return SETTINGS[family(version)] + retries


def keys(version: OcppVersion, policy: MeteringPolicy | None = None) -> tuple[SettingKey, ...]:
    """The settings to read from a charger of this version (its retries too, if the policy bounds them)."""
    return tuple(key for key, _ in _settings(version, policy))


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
    if policy.retry_within_s is not None:
        (attempts_key, _), (interval_key, _) = RETRIES[family(version)]
        attempts, interval = answered.get(attempts_key), answered.get(interval_key)
        if (
            attempts is not None
            and interval is not None
            and attempts.status is Status.ACCEPTED
            and interval.status is Status.ACCEPTED
            and not interval.readonly
        ):
            wanted = retry_interval(attempts.value, interval.value, policy.retry_within_s)
            if wanted is not None:
                changes.append(ChangeSetting(interval_key, wanted))
    return changes


def retry_interval(attempts: str | None, interval: str | None, within_s: int) -> str | None:
    """The retry interval that puts every retry of a failed transaction message within `within_s`
    (the waits are interval x 1, x 2, ... up to attempts - 1), or None when it already does or the
    charger's answer says nothing usable."""
    try:
        sendings, every_s = int((attempts or "").strip()), int((interval or "").strip())
    except ValueError:
        return None
    waits = sendings * (sendings - 1) // 2  # in units of the interval
    if sendings < 2 or every_s < 0 or every_s * waits <= within_s:
        return None
    return str(max(1, within_s // waits))


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
