"""The metering the backend asks of every charger it accepts, so that billing has readings.

Firmware defaults vary: a 2.0.1 (or 2.1) charger may sample nothing during a transaction (TxUpdatedInterval
0) or leave the energy register out of its measurands, and is then billed 0 Wh. On each accepted
boot the backend reads the charger's sampling settings and changes only those that fall short:

- an interval that is off (0), unreadable or longer than the policy's is set to the policy's
  (a charger that samples more often is left alone);
- a measurand list without Energy.Active.Import.Register gets it added in front, keeping the rest;
- with `retry_within_s`, a failed transaction message's retries (TransactionMessageAttempts, each
  sending's response time-out, then a wait of TransactionMessageRetryInterval times the sendings so
  far) must all be sent within it, so a stop the backend failed to process arrives before the
  lost-stop sweep closes its session on an older reading: a longer interval is shortened to fit
  (`fit_retries`), to 1 s at least; the attempts are never cut, since a stop given up is lost for
  good. Retries that cannot be brought within, or whose interval is read-only, are noted.

A setting the charger does not have (UnknownVariable, UnknownComponent) or will not change (1.6
read-only) is left as it is. Pure: `plan` turns what the charger answered into the commands to send,
`retry_plan` says what it makes of the retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from chargeshare.ocpp import V16, V201, OcppVersion, family
from chargeshare.ocpp.commands import ChangeSetting, SettingKey, SettingValue, Status
from chargeshare.ocpp.connection import CALL_TIMEOUT_S

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
    # Within how many seconds of its first sending a failed transaction message's last retry must be
    # sent (None: the retries are left as they are).
    retry_within_s: int | None = None
    # How long a charger waits for the answer to each sending before it counts as failed. Chargers
    # do not say (1.6 has no such key), so the time-out our own calls take is assumed.
    response_timeout_s: int = CALL_TIMEOUT_S


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


COMM = "OCPPCommCtrlr"
TX_EVENT = "TransactionEvent"

# The transaction message retries, as (attempts, interval) pairs in the order tried: 2.0.1 names
# the variables with the instance TransactionEvent; firmware that leaves the instance out is fitted
# too.
RETRIES: dict[str, tuple[tuple[SettingKey, SettingKey], ...]] = {
    V16: ((SettingKey("TransactionMessageAttempts"), SettingKey("TransactionMessageRetryInterval")),),
    V201: (
        (SettingKey("MessageAttempts", COMM, TX_EVENT), SettingKey("MessageAttemptInterval", COMM, TX_EVENT)),
        (SettingKey("MessageAttempts", COMM), SettingKey("MessageAttemptInterval", COMM)),
    ),
}


def keys(version: OcppVersion, policy: MeteringPolicy | None = None) -> tuple[SettingKey, ...]:
    """The settings to read from a charger of this version (its retries too, if the policy bounds them)."""
    retries = RETRIES[family(version)] if policy is not None and policy.retry_within_s is not None else ()
    return tuple(key for key, _ in SETTINGS[family(version)]) + tuple(k for pair in retries for k in pair)


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
    retries = retry_plan(version, current, policy).change
    if retries is not None:
        changes.append(retries)
    return changes


@dataclass(frozen=True)
class RetryFit:
    """A charger's retries at `interval_s`: at worst the last is sent `last_sending_s` after the first
    sending; `met` when that is within the bound."""

    interval_s: int
    last_sending_s: int
    met: bool


def last_sending_s(attempts: int, interval_s: int, timeout_s: int) -> int:
    """At worst, how long after a transaction message's first sending its last retry is sent: each
    failed sending waits its response time-out, then the interval times the sendings so far."""
    # Read as retries after the first (n(n+1)/2 intervals), longer than as every sending: safe for both.
    failed = max(attempts, 0)
    return failed * timeout_s + interval_s * failed * (failed + 1) // 2


def fit_retries(attempts: int, interval_s: int, within_s: int, timeout_s: int) -> RetryFit:
    """The interval, the charger's own or the longest shorter one (1 s at least), at which every retry
    of a failed transaction message is sent within `within_s` of the first sending."""
    every_s = interval_s
    waits = last_sending_s(attempts, 1, 0)  # in intervals
    if waits and last_sending_s(attempts, interval_s, timeout_s) > within_s:
        every_s = min(interval_s, max(1, (within_s - last_sending_s(attempts, 0, timeout_s)) // waits))
    last = last_sending_s(attempts, every_s, timeout_s)
    return RetryFit(every_s, last, last <= within_s)


@dataclass(frozen=True)
class RetryPlan:
    """The change that fits a charger's retries (None: none needed, or none possible), a note when
    they are left outside the bound, and (`as_is`) where they stand unchanged, should the change fail."""

    change: ChangeSetting | None = None
    note: str | None = None
    as_is: str = ""


def retry_plan(version: OcppVersion, current: Sequence[SettingValue], policy: MeteringPolicy) -> RetryPlan:
    """What to make of the charger's retries, given what it answered: the first pair of retry
    settings it answered both of is fitted (`fit_retries`); one without them is left as it is."""
    if policy.retry_within_s is None:
        return RetryPlan()
    answered = {v.key: v for v in current}
    for attempts_key, interval_key in RETRIES[family(version)]:
        attempts, interval = answered.get(attempts_key), answered.get(interval_key)
        if attempts is None or interval is None:
            continue
        if attempts.status is Status.ACCEPTED and interval.status is Status.ACCEPTED:
            return _fitted(attempts, interval, policy.retry_within_s, policy.response_timeout_s)
    return RetryPlan()


def _fitted(attempts: SettingValue, interval: SettingValue, within_s: int, timeout_s: int) -> RetryPlan:
    try:
        sendings, every_s = int((attempts.value or "").strip()), int((interval.value or "").strip())
    except ValueError:
        sendings = every_s = -1
    if sendings < 0 or every_s < 0:
        said = f"{attempts.key}={attempts.value!r}, {interval.key}={interval.value!r}"
        return RetryPlan(note=f"retries not fitted, the charger's values are unusable: {said}")

    def figures(at_s: int) -> str:
        return (
            f"{interval.key}={at_s}, {attempts.key}={sendings}, {timeout_s} s response time-out: the "
            f"last retry may be sent {last_sending_s(sendings, at_s, timeout_s)} s after the first sending"
        )

    fit = fit_retries(sendings, every_s, within_s, timeout_s)
    if fit.interval_s == every_s and fit.met:
        return RetryPlan()
    as_is = f"not within {within_s} s: {figures(every_s)}"
    if interval.readonly:
        return RetryPlan(note=f"retries not fitted, the interval is read-only, {as_is}")
    change = ChangeSetting(interval.key, str(fit.interval_s)) if fit.interval_s != every_s else None
    if fit.met:
        return RetryPlan(change, as_is=as_is)
    note = f"retries cannot be fitted within {within_s} s: {figures(fit.interval_s)}"
    return RetryPlan(change, note, as_is)


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
