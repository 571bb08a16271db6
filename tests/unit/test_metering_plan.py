"""The metering the backend asks of a charger: only what falls short of the policy is changed."""

from __future__ import annotations

import pytest

from chargeshare.domain.session import unmetered
from chargeshare.ocpp import V16, V21, V201
from chargeshare.ocpp.commands import ChangeSetting, SettingKey, SettingValue, Status
from chargeshare.ocpp.metering import ENERGY, Kind, MeteringPolicy, keys, plan, retry_interval, wanted_value

POLICY = MeteringPolicy(sample_interval_s=60, quarter_interval_s=900)


@pytest.mark.parametrize(
    ("kind", "value", "wanted"),
    [
        (Kind.SAMPLE_INTERVAL, "0", "60"),  # off
        (Kind.SAMPLE_INTERVAL, "", "60"),
        (Kind.SAMPLE_INTERVAL, "soon", "60"),
        (Kind.SAMPLE_INTERVAL, None, "60"),
        (Kind.SAMPLE_INTERVAL, "300", "60"),  # too seldom for billing's energy limit
        (Kind.SAMPLE_INTERVAL, "60", None),
        (Kind.SAMPLE_INTERVAL, " 10 ", None),  # more often is fine
        (Kind.QUARTER_INTERVAL, "0", "900"),
        (Kind.QUARTER_INTERVAL, "3600", "900"),
        (Kind.QUARTER_INTERVAL, "900", None),
        (Kind.MEASURANDS, "", ENERGY),
        (Kind.MEASURANDS, None, ENERGY),
        (Kind.MEASURANDS, "Power.Active.Import, SoC", f"{ENERGY},Power.Active.Import,SoC"),
        (Kind.MEASURANDS, f"Power.Active.Import,{ENERGY}", None),
        (Kind.MEASURANDS, "Energy.Active.Import.Interval", f"{ENERGY},Energy.Active.Import.Interval"),
    ],
)
def test_what_each_setting_should_become(kind: Kind, value: str | None, wanted: str | None) -> None:
    assert wanted_value(kind, value, POLICY) == wanted


def test_a_16_charger_is_changed_only_where_it_falls_short() -> None:
    assert keys(V16) == (SettingKey("MeterValueSampleInterval"), SettingKey("MeterValuesSampledData"))
    answered = [
        SettingValue(SettingKey("MeterValueSampleInterval"), Status.ACCEPTED, "0", readonly=False),
        SettingValue(SettingKey("MeterValuesSampledData"), Status.ACCEPTED, ENERGY, readonly=False),
    ]
    assert plan(V16, answered, POLICY) == [ChangeSetting(SettingKey("MeterValueSampleInterval"), "60")]
    read_only = [
        SettingValue(SettingKey("MeterValueSampleInterval"), Status.ACCEPTED, "0", readonly=True),
        SettingValue(SettingKey("MeterValuesSampledData"), Status.UNKNOWN_VARIABLE),
    ]
    assert plan(V16, read_only, POLICY) == []  # what it cannot change, or does not have, is left


def test_a_201_charger_with_default_settings_is_made_to_meter() -> None:
    sampled = "SampledDataCtrlr"
    answered = [
        SettingValue(SettingKey("TxUpdatedInterval", sampled), Status.ACCEPTED, "0"),
        SettingValue(SettingKey("TxEndedInterval", sampled), Status.ACCEPTED, "0"),
        SettingValue(SettingKey("TxStartedMeasurands", sampled), Status.ACCEPTED, ""),
        SettingValue(SettingKey("TxUpdatedMeasurands", sampled), Status.ACCEPTED, "Power.Active.Import"),
        SettingValue(SettingKey("TxEndedMeasurands", sampled), Status.ACCEPTED, ENERGY),
        SettingValue(SettingKey("Interval", "AlignedDataCtrlr"), Status.UNKNOWN_COMPONENT),
        SettingValue(SettingKey("Measurands", "AlignedDataCtrlr"), Status.UNKNOWN_COMPONENT),
    ]
    assert keys(V201) == tuple(v.key for v in answered)
    assert plan(V201, answered, POLICY) == [
        ChangeSetting(SettingKey("TxUpdatedInterval", sampled), "60"),
        ChangeSetting(SettingKey("TxEndedInterval", sampled), "900"),
        ChangeSetting(SettingKey("TxStartedMeasurands", sampled), ENERGY),
        ChangeSetting(SettingKey("TxUpdatedMeasurands", sampled), f"{ENERGY},Power.Active.Import"),
    ]
    assert plan(V201, [], POLICY) == []  # nothing answered: nothing known to change
    # A 2.1 charger has the same sampling variables (SampledDataCtrlr, AlignedDataCtrlr).
    assert keys(V21) == keys(V201) and plan(V21, answered, POLICY) == plan(V201, answered, POLICY)


@pytest.mark.parametrize(
    ("start_read", "stop_read", "register_moved", "flagged"),
    [
        (True, True, True, False),  # 1.6: meterStart and meterStop
        (True, True, False, False),  # read at both ends, nothing drawn: a true 0 Wh
        (True, False, True, False),  # no reading at the end, but one moved the register since
        (True, False, False, True),  # nothing read after the start
        (False, True, True, True),  # the first reading came with the end: the start is unknown
        (False, False, False, True),  # no reading at all
    ],
)
def test_when_a_session_counts_as_unmetered(
    start_read: bool, stop_read: bool, register_moved: bool, flagged: bool
) -> None:
    assert unmetered(start_read=start_read, stop_read=stop_read, register_moved=register_moved) is flagged


@pytest.mark.parametrize(
    ("attempts", "interval", "wanted"),
    [
        ("3", "60", None),  # waits 60 + 120 s: within 200 s
        ("4", "60", "33"),  # waits 60 + 120 + 180 s: 360 s; 33 x 6 = 198 s
        ("10", "60", "4"),  # 45 intervals of waiting
        ("10", "1", None),
        ("1", "600", None),  # never sent again
        ("4", "0", None),  # sent again at once
        ("many", "60", None),  # nothing usable: left as it is
        ("4", None, None),
    ],
)
def test_retries_of_a_failed_transaction_message_are_fitted_within_the_bound(
    attempts: str, interval: str | None, wanted: str | None
) -> None:
    assert retry_interval(attempts, interval, 200) == wanted
    if wanted is not None:
        waits = int(attempts) * (int(attempts) - 1) // 2
        assert int(wanted) * waits <= 200


def test_the_retries_are_read_and_fitted_only_when_the_policy_bounds_them() -> None:
    bounded = MeteringPolicy(60, 900, retry_within_s=200)
    assert keys(V16, bounded) == (
        SettingKey("MeterValueSampleInterval"),
        SettingKey("MeterValuesSampledData"),
        SettingKey("TransactionMessageAttempts"),
        SettingKey("TransactionMessageRetryInterval"),
    )
    answered = [
        SettingValue(SettingKey("MeterValueSampleInterval"), Status.ACCEPTED, "60", readonly=False),
        SettingValue(SettingKey("MeterValuesSampledData"), Status.ACCEPTED, ENERGY, readonly=False),
        SettingValue(SettingKey("TransactionMessageAttempts"), Status.ACCEPTED, "5", readonly=True),
        SettingValue(SettingKey("TransactionMessageRetryInterval"), Status.ACCEPTED, "60", readonly=False),
    ]
    # The attempts are never cut (a stop given up is lost): the interval is shortened to fit.
    assert plan(V16, answered, bounded) == [
        ChangeSetting(SettingKey("TransactionMessageRetryInterval"), "20")
    ]
    assert plan(V16, answered, POLICY) == []
    comm = "OCPPCommCtrlr"
    answered_201 = [
        SettingValue(SettingKey("MessageAttempts", comm), Status.ACCEPTED, "4"),
        SettingValue(SettingKey("MessageAttemptInterval", comm), Status.ACCEPTED, "120"),
    ]
    assert SettingKey("MessageAttemptInterval", comm) in keys(V201, bounded)
    assert plan(V201, answered_201, bounded) == [
        ChangeSetting(SettingKey("MessageAttemptInterval", comm), "33")
    ]
    unknown = [SettingValue(SettingKey("MessageAttempts", comm), Status.UNKNOWN_VARIABLE), answered_201[1]]
    assert plan(V201, unknown, bounded) == []
