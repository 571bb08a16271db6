"""The metering the backend asks of a charger: only what falls short of the policy is changed."""

from __future__ import annotations

import pytest

from chargeshare.domain.session import unmetered
from chargeshare.ocpp import V16, V21, V201
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.commands import ChangeSetting, SettingKey, SettingValue, Status
from chargeshare.ocpp.metering import (
    ENERGY,
    Kind,
    MeteringPolicy,
    RetryFit,
    fit_retries,
    keys,
    last_sending_s,
    plan,
    retry_plan,
    wanted_value,
)

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
    ("attempts", "interval", "fitted", "last"),
    [
        (2, 20, 20, 120),  # 2 x 30 s time-outs, waits 20 + 40 s: within 200 s
        (3, 60, 18, 198),  # 3 x 30 s, waits 18 x (1 + 2 + 3) s
        (4, 60, 8, 200),
        (5, 60, 3, 195),
        (1, 600, 170, 200),  # one retry after the first sending
        (4, 0, 0, 120),  # sent again at once: nothing shorter to set
        (0, 600, 600, 0),  # never sent again
        (6, 60, 1, 201),  # 180 s of time-outs leave too little: cut to 1 s, and still past 200 s
        (10, 60, 1, 355),
        (10, 1, 1, 355),  # as short as it goes already
    ],
)
def test_retries_of_a_failed_transaction_message_are_fitted_within_the_bound(
    attempts: int, interval: int, fitted: int, last: int
) -> None:
    fit = fit_retries(attempts, interval, 200, 30)
    assert fit == RetryFit(fitted, last, last <= 200)
    assert fit.last_sending_s == last_sending_s(attempts, fitted, 30)


def test_each_failed_sending_waits_its_response_time_out_first() -> None:
    """Three sendings 60 s apart wait 60 + 120 s: within 200 s only if the charger never waited for
    an answer. Each failed sending first waits its time-out (30 s, our own calls' by default)."""
    assert last_sending_s(3, 60, 0) == 360 and last_sending_s(3, 60, 30) == 450
    assert MeteringPolicy(retry_within_s=200).response_timeout_s == 30
    answered = [
        SettingValue(SettingKey("TransactionMessageAttempts"), Status.ACCEPTED, "3", readonly=True),
        SettingValue(SettingKey("TransactionMessageRetryInterval"), Status.ACCEPTED, "30", readonly=False),
    ]
    # Waits of 30 + 60 + 90 s (read as retries after the first) fit 200 s; with time-outs they do not.
    at_once = MeteringPolicy(retry_within_s=200, response_timeout_s=0)
    assert plan(V16, answered, at_once) == []
    assert plan(V16, answered, MeteringPolicy(retry_within_s=200)) == [
        ChangeSetting(SettingKey("TransactionMessageRetryInterval"), "18")  # 3 x 30 + 18 x 6 = 198 s
    ]


def test_attempts_are_read_as_retries_after_the_first_the_longer_reading() -> None:
    """Firmware reads TransactionMessageAttempts = n as n sendings (n - 1 retries, waits of
    interval x n(n - 1)/2) or as n retries after the first (interval x n(n + 1)/2): the fit takes the
    longer, so it holds for both."""
    assert last_sending_s(4, 10, 0) == 10 * (1 + 2 + 3 + 4)
    answered = [
        SettingValue(SettingKey("TransactionMessageAttempts"), Status.ACCEPTED, "4", readonly=False),
        SettingValue(SettingKey("TransactionMessageRetryInterval"), Status.ACCEPTED, "30", readonly=False),
    ]
    # 30 x (1 + 2 + 3) = 180 s fits 200 s for four sendings; four retries wait 30 x 10 = 300 s.
    at_once = MeteringPolicy(retry_within_s=200, response_timeout_s=0)
    assert plan(V16, answered, at_once) == [
        ChangeSetting(SettingKey("TransactionMessageRetryInterval"), "20")
    ]
    # One attempt: never sent again, or sent once more after a wait of the interval.
    one = [SettingValue(answered[0].key, Status.ACCEPTED, "1", readonly=False), answered[1]]
    assert plan(V16, one, MeteringPolicy(retry_within_s=20, response_timeout_s=0)) == [
        ChangeSetting(SettingKey("TransactionMessageRetryInterval"), "20")
    ]


def test_retries_that_cannot_be_fitted_are_cut_to_1_s_and_noted_with_the_figures() -> None:
    answered = [
        SettingValue(SettingKey("TransactionMessageAttempts"), Status.ACCEPTED, "10", readonly=False),
        SettingValue(SettingKey("TransactionMessageRetryInterval"), Status.ACCEPTED, "60", readonly=False),
    ]
    bounded = MeteringPolicy(retry_within_s=200)
    fitted = retry_plan(V16, answered, bounded)
    # The attempts are never cut (a stop given up is lost): only the interval, as short as it goes.
    assert fitted.change == ChangeSetting(SettingKey("TransactionMessageRetryInterval"), "1")
    assert plan(V16, answered, bounded) == [fitted.change]
    assert fitted.note == (
        "retries cannot be fitted within 200 s: TransactionMessageRetryInterval=1, "
        "TransactionMessageAttempts=10, 30 s response time-out: the last retry may be sent 355 s after "
        "the first sending"
    )
    assert retry_plan(V16, answered, MeteringPolicy(retry_within_s=400)).note is None


def test_a_read_only_interval_is_noted_not_changed() -> None:
    answered = [
        SettingValue(SettingKey("TransactionMessageAttempts"), Status.ACCEPTED, "3", readonly=True),
        SettingValue(SettingKey("TransactionMessageRetryInterval"), Status.ACCEPTED, "60", readonly=True),
    ]
    bounded = MeteringPolicy(retry_within_s=200)
    assert plan(V16, answered, bounded) == []
    assert retry_plan(V16, answered, bounded).note == (
        "retries not fitted, the interval is read-only, not within 200 s: "
        "TransactionMessageRetryInterval=60, TransactionMessageAttempts=3, 30 s response time-out: the "
        "last retry may be sent 450 s after the first sending"
    )
    unusable = [answered[0], SettingValue(answered[1].key, Status.ACCEPTED, "soon", readonly=False)]
    assert plan(V16, unusable, bounded) == []
    assert "unusable" in (retry_plan(V16, unusable, bounded).note or "")


def test_a_201_charger_is_read_and_fitted_by_the_retries_instance() -> None:
    """OCPP 2.0.1 names the retry variables OCPPCommCtrlr.MessageAttempts[TransactionEvent] and
    MessageAttemptInterval[TransactionEvent]; firmware that leaves the instance out is fitted too."""
    comm, tx = "OCPPCommCtrlr", "TransactionEvent"
    bounded = MeteringPolicy(60, 900, retry_within_s=200)
    attempts, interval = (
        SettingKey("MessageAttempts", comm, tx),
        SettingKey("MessageAttemptInterval", comm, tx),
    )
    assert keys(V201, bounded)[-4:] == (
        attempts,
        interval,
        SettingKey("MessageAttempts", comm),
        SettingKey("MessageAttemptInterval", comm),
    )
    answered = [
        SettingValue(attempts, Status.ACCEPTED, "4"),
        SettingValue(interval, Status.ACCEPTED, "120"),
        SettingValue(SettingKey("MessageAttempts", comm), Status.UNKNOWN_VARIABLE),
        SettingValue(SettingKey("MessageAttemptInterval", comm), Status.UNKNOWN_VARIABLE),
    ]
    assert plan(V201, answered, bounded) == [ChangeSetting(interval, "8")]
    # Said and read with the instance, both ways.
    read = cmd.GetSettings((attempts,)).payload(V201, lambda _session: None)
    assert read == {
        "getVariableData": [
            {"component": {"name": comm}, "variable": {"name": "MessageAttempts", "instance": tx}}
        ]
    }
    said = {
        "getVariableResult": [
            {"attributeStatus": "Accepted", "attributeValue": "4", **read["getVariableData"][0]}
        ]
    }
    assert cmd.GetSettings((attempts,)).details(V201, said) == (SettingValue(attempts, Status.ACCEPTED, "4"),)
    assert str(interval) == "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]"


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
        ChangeSetting(SettingKey("TransactionMessageRetryInterval"), "3")  # 5 x 30 + 3 x 15 = 195 s
    ]
    assert plan(V16, answered, POLICY) == []
    comm = "OCPPCommCtrlr"
    answered_201 = [
        SettingValue(SettingKey("MessageAttempts", comm), Status.ACCEPTED, "4"),
        SettingValue(SettingKey("MessageAttemptInterval", comm), Status.ACCEPTED, "120"),
    ]
    assert SettingKey("MessageAttemptInterval", comm) in keys(V201, bounded)
    assert plan(V201, answered_201, bounded) == [
        ChangeSetting(SettingKey("MessageAttemptInterval", comm), "8")  # 4 x 30 + 8 x 10 = 200 s
    ]
    unknown = [SettingValue(SettingKey("MessageAttempts", comm), Status.UNKNOWN_VARIABLE), answered_201[1]]
    assert plan(V201, unknown, bounded) == []
