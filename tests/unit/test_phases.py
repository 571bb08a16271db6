"""The phases a charger declares (chargeshare/ocpp/phases.py): whatever text it sends, a parse
returns phases it can stand behind, or nothing, and never raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp.phases import MAX_PHASES, parse


@pytest.mark.parametrize(
    ("version", "declared", "phases"),
    [
        (V16, "0.RST, 1.RST, 2.NotApplicable", {1: 3, 2: 1}),
        (V16, "TSR", {0: 3}),
        (V16, "1.Unknown, 2.rts", {2: 3}),
        (V201, "3", {0: 3}),
        (V201, " 1 ", {0: 1}),
        (V201, "0", {}),  # DC: nothing said
        # Digits to str.isdigit, yet not to int(): garbage, left out.
        (V201, "\u00b2", {}),
        (V16, "\u00b2.RST, 1.NotApplicable", {1: 1}),
        (V16, "1\u00b2.RST", {}),
        # Digits of other scripts: not what OCPP's ASCII strings say, left out too.
        (V201, "\u0663", {}),
        (V16, "\u0661.RST", {}),
    ],
)
def test_declared_phases(version: OcppVersion, declared: str, phases: dict[int, int]) -> None:
    assert parse(version, declared) == phases


# Mostly the words a declaration is made of, with any character among them.
_WORDS = st.sampled_from(["0", "1", "3", "12", ".", ",", " ", "RST", "NotApplicable", "\u00b2", "\u0663"])


@given(st.sampled_from([V16, V201]), st.lists(_WORDS | st.characters(), max_size=12).map("".join))
def test_any_declared_text_parses_to_phases_or_nothing_without_raising(
    version: OcppVersion, declared: str
) -> None:
    for connector, phases in parse(version, declared).items():
        assert connector >= 0
        assert 1 <= phases <= MAX_PHASES
