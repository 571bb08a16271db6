"""The phases a connector is seen drawing on (chargeshare/ocpp/phases.py, `drawing`, `with_seen`,
`Seen`): counted from per-phase Current.Import readings as 1.6 and 2.0.1 write them, never raised
on whatever a charger sends, and standing only where nothing was declared."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeshare.ocpp.phases import CURRENT_IMPORT, MAX_PHASES, Seen, Wiring, drawing, of_connector, with_seen

PHASE_WORDS = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")


def v16(*readings: tuple[str | None, str], measurand: str = CURRENT_IMPORT) -> list[dict[str, Any]]:
    values = [
        {"value": value, "measurand": measurand, "unit": "A", **({"phase": phase} if phase else {})}
        for phase, value in readings
    ]
    return [{"timestamp": "2026-12-07T12:00:00Z", "sampledValue": values}]


def v201(*readings: tuple[str, float], multiplier: int = 0) -> list[dict[str, Any]]:
    values = [
        {
            "value": value,
            "measurand": CURRENT_IMPORT,
            "phase": phase,
            "unitOfMeasure": {"unit": "A", "multiplier": multiplier},
        }
        for phase, value in readings
    ]
    return [{"timestamp": "2026-12-07T12:00:00Z", "sampledValue": values}]


@pytest.mark.parametrize(
    ("meter_value", "phases"),
    [
        (v16(("L1", "16.0"), ("L2", "15.8"), ("L3", "16.1")), 3),
        (v16(("L1-N", "16"), ("L2-N", "16"), ("L3-N", "16")), 3),  # against neutral: the same lines
        (v16(("L1", "16"), ("L2", "0.2"), ("L3", "0.1")), 1),  # a one-phase car: the idle lines' milliamps
        (v16(("L1", "16"), ("L1-N", "16")), 1),  # one line, twice
        (v16(("N", "16"), ("L1-L2", "16"), ("L1", "16")), 1),  # neutral and line pairs name no line
        (v16((None, "32")), 0),  # the total current says nothing of phases
        (v16(("L1", "16"), ("L2", "16"), measurand="Current.Offered"), 0),
        (v16(("L1", "nan"), ("L2", "inf"), ("L3", "-16")), 0),
        ([{"sampledValue": [{"value": "16", "measurand": CURRENT_IMPORT, "phase": "L1", "unit": "W"}]}], 0),
        (v201(("L1", 16), ("L2", 16.5)), 2),
        (v201(("L1", 160), ("L2", 160), ("L3", 160), multiplier=-1), 3),  # 16 A in tenths
        (v201(("L1", 9), ("L2", 9), ("L3", 9), multiplier=-1), 0),  # 0.9 A: idle
        ([], 0),
        ("garbage", 0),
    ],
)
def test_the_lines_drawing_above_the_threshold_are_counted(meter_value: Any, phases: int) -> None:
    assert drawing(meter_value) == phases


def _unitless(value: Any, unit: dict[str, Any] | None) -> list[dict[str, Any]]:
    values = [
        {
            "value": value,
            "measurand": CURRENT_IMPORT,
            "phase": line,
            **({} if unit is None else {"unitOfMeasure": unit}),
        }
        for line in ("L1", "L2", "L3")
    ]
    return [{"timestamp": "2026-12-07T12:00:00Z", "sampledValue": values}]


@pytest.mark.parametrize(
    "meter_value",
    [
        _unitless("16", None),  # 1.6 with no `unit`
        _unitless(16, None),  # 2.0.1 with no `unitOfMeasure`
        _unitless(16, {"multiplier": 0}),  # 2.0.1 `unitOfMeasure` with no `unit`
    ],
)
def test_a_reading_with_no_unit_is_wh_not_a_current(meter_value: Any) -> None:
    # Both specs default a sampled value's unit to Wh: a unitless figure is no current.
    assert drawing(meter_value) == 0


readings = st.fixed_dictionaries(
    {},
    optional={
        "value": st.one_of(st.text(max_size=8), st.floats(), st.integers(), st.booleans(), st.none()),
        "measurand": st.one_of(
            st.sampled_from((CURRENT_IMPORT, "Voltage", "Energy.Active.Import.Register")), st.text(max_size=4)
        ),
        "phase": st.one_of(st.sampled_from(PHASE_WORDS), st.text(max_size=4), st.integers()),
        "unit": st.one_of(st.just("A"), st.text(max_size=3)),
        "unitOfMeasure": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "unit": st.one_of(st.just("A"), st.text(max_size=3)),
                    "multiplier": st.one_of(st.integers(), st.floats(), st.text(max_size=3)),
                },
            ),
            st.text(max_size=3),
        ),
    },
)
frames = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"sampledValue": st.one_of(st.lists(readings, max_size=4), st.text(max_size=3))}
        ),
        st.integers(),
        st.none(),
    ),
    max_size=3,
)


@settings(deadline=None)  # nested frames: a loaded machine can take one past the default deadline
@given(frames)
def test_any_mix_of_readings_gives_a_count_of_lines_and_never_raises(meter_value: Any) -> None:
    assert 0 <= drawing(meter_value) <= MAX_PHASES


def test_seen_stands_only_where_nothing_was_declared() -> None:
    seen = {1: 3, 2: 3, 3: 1}
    assert with_seen(Wiring(), seen) == {1: 3, 2: 3}
    assert of_connector(with_seen(Wiring(), seen), 3) == 1
    assert with_seen(Wiring({2: 1}), seen) == {1: 3, 2: 1}  # a declared value wins
    assert with_seen(Wiring({0: 1}), seen) == {0: 1}  # the whole charger's too
    switching = with_seen(Wiring({2: 1}, switches_3to1=True), seen)
    assert switching.switches_3to1


def test_a_link_keeps_only_what_shows_more_than_it_kept() -> None:
    kept: list[tuple[int, int]] = []
    seen = Seen(lambda no, n: kept.append((no, n)))
    three = v16(("L1", "16"), ("L2", "16"), ("L3", "16"))
    two = v16(("L1", "16"), ("L2", "16"))
    seen.frame(v16(("L1", "16")), lambda: 1)  # one phase: nothing to keep
    seen.frame(two, lambda: 1)
    seen.frame(two, lambda: 1)  # the same again: no store work
    seen.frame(three, lambda: 1)
    seen.frame(two, lambda: 1)  # never falls
    seen.frame(three, lambda: 0)  # the main meter is no connector
    seen.frame(three, lambda: None)
    assert kept == [(1, 2), (1, 3)]


def test_a_failure_to_keep_is_tried_again_with_the_next_frame() -> None:
    calls: list[int] = []

    def keep(no: int, n: int) -> None:
        calls.append(n)
        if len(calls) == 1:
            raise RuntimeError("store down")

    seen = Seen(keep)
    three = v16(("L1", "16"), ("L2", "16"), ("L3", "16"))
    seen.frame(three, lambda: 1)
    seen.frame(three, lambda: 1)
    seen.frame(three, lambda: 1)
    assert calls == [3, 3]
