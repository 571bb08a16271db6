"""The phases a charger declares (chargeshare/ocpp/phases.py): whatever text it sends, a parse
returns phases it can stand behind, or nothing, and never raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.phases import (
    MAX_PHASES,
    SWITCH_KEYS,
    GetPhases,
    Wiring,
    from_read,
    key,
    keys,
    of_connector,
    parse,
    switches,
)


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


def _read(*values: tuple[cmd.SettingKey, str | None, cmd.Status]) -> tuple[cmd.SettingValue, ...]:
    return tuple(cmd.SettingValue(k, status, value) for k, value, status in values)


def test_an_evses_own_supply_phases_override_the_stations_for_it() -> None:
    """2.0.1: `EVSE.SupplyPhases` of EVSE 2 is its connector's; the station's stands for the rest."""
    ok, unknown = cmd.Status.ACCEPTED, cmd.Status.UNKNOWN_COMPONENT
    station, _switch, evse1, evse2 = keys(V201, (2, 1))
    assert (station, evse1.evse, evse2.evse) == (cmd.SettingKey("SupplyPhases", "ChargingStation"), 1, 2)
    assert {evse1.component, evse1.name} == {"EVSE", "SupplyPhases"}
    read = _read((station, "3", ok), (evse1, None, unknown), (evse2, "1", ok))
    said = from_read(V201, read)
    assert said == {0: 3, 2: 1}
    assert (of_connector(said, 1), of_connector(said, 2)) == (3, 1)
    # An EVSE saying 0 (DC) or garbage says nothing of its own.
    assert from_read(V201, _read((station, "3", ok), (evse2, "0", ok))) == {0: 3}
    # 1.6 has no EVSEs: its one key (and the switch), whatever connectors there are.
    assert keys(V16, (1, 2)) == (key(V16), SWITCH_KEYS[V16])


def test_the_evse_is_named_in_the_component_and_read_back_from_the_answer() -> None:
    read = GetPhases((1,))
    payload = read.payload(V201, lambda _tx: None)
    assert payload["getVariableData"][2] == {
        "component": {"name": "EVSE", "evse": {"id": 1}},
        "variable": {"name": "SupplyPhases"},
    }
    answer = {
        "getVariableResult": [
            {**d, "attributeStatus": "Accepted", "attributeValue": v}
            for d, v in zip(payload["getVariableData"], ("3", "false", "1"), strict=True)
        ]
    }
    assert read.details(V201, answer) == Wiring({0: 3, 1: 1})


def test_a_read_of_many_evses_goes_in_parts_the_charger_takes_and_joins() -> None:
    read = GetPhases((1, 2, 3)).at_most(2)
    assert isinstance(read, cmd.InParts) and read.items() == 2
    parts = read.parts(V201)
    assert [len(p.payload(V201, lambda _tx: None)["getVariableData"]) for p in parts] == [2, 2, 1]
    joined = read.joined(
        [cmd.Done(cmd.Status.ACCEPTED, Wiring({0: 3, 1: 1})), cmd.Done(cmd.Status.ACCEPTED, Wiring({3: 1}))]
    )
    assert joined.details == {0: 3, 1: 1, 3: 1}
    # Halving always ends: a 1.6 read is one key whatever it is asked for.
    assert GetPhases((1, 2)).at_most(1).items() == 1
    assert len(GetPhases((1, 2)).parts(V16)) == 1


@pytest.mark.parametrize("version", [V16, V201])
@pytest.mark.parametrize(
    ("declared", "switch"), [("true", True), ("TRUE", True), ("false", False), (None, False)]
)
def test_a_charger_switching_three_phases_to_one_says_so_with_its_phases(
    version: OcppVersion, declared: str | None, switch: bool
) -> None:
    """1.6 `ConnectorSwitch3to1PhaseSupported`, 2.0.1 `SmartChargingCtrlr.Phases3to1`: "if
    defined and true"; unsaid, it does not switch."""
    assert SWITCH_KEYS[V16] == cmd.SettingKey("ConnectorSwitch3to1PhaseSupported")
    assert SWITCH_KEYS[V201] == cmd.SettingKey("Phases3to1", "SmartChargingCtrlr")
    phases, switch_key = keys(version)[:2]
    status = cmd.Status.ACCEPTED if declared is not None else cmd.Status.UNKNOWN_VARIABLE
    said = from_read(
        version,
        _read(
            (phases, "3" if version == V201 else "1.RST", cmd.Status.ACCEPTED), (switch_key, declared, status)
        ),
    )
    assert said == Wiring({0 if version == V201 else 1: 3}, switches_3to1=switch)
    assert switches(said) is switch and said.said()
    assert not switches({0: 3})  # a plain mapping says nothing of it
    assert Wiring({0: 3}, switches_3to1=True) != Wiring({0: 3})
