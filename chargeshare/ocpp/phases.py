"""How many phases a charger's connectors are wired to, as it declares them, so a limit in A goes
on all of them (chargeshare/ocpp/grid_limits.py) rather than held to one phase's worth.

1.6: `ConnectorPhaseRotation`, a list such as "0.RST, 1.RST, 2.NotApplicable": a rotation (any
order of R, S, T) is three phases, `NotApplicable` one phase (or DC), `Unknown` says nothing; index
0 is the grid connection to the main meter, not a connector. 2.0.1: `ChargingStation.SupplyPhases`,
the number of AC phases the whole station has (0 for DC: nothing said).

Kept as {connector number: phases}, 0 for the whole charger. Pure but for `learn`, a command script
reading the one setting in whichever version the charger speaks.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeshare.ocpp import V16, V201, OcppVersion, family
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.scripts import Send

WHOLE_CHARGER = 0
MAX_PHASES = 3
KEYS: dict[OcppVersion, cmd.SettingKey] = {
    V16: cmd.SettingKey("ConnectorPhaseRotation"),
    V201: cmd.SettingKey("SupplyPhases", "ChargingStation"),
}
_ROTATIONS = frozenset({"RST", "RTS", "SRT", "STR", "TRS", "TSR"})


def key(version: OcppVersion) -> cmd.SettingKey:
    return KEYS[family(version)]


def _rotation_phases(word: str) -> int | None:
    if word.upper() in _ROTATIONS:
        return 3
    if word.lower() == "notapplicable":
        return 1
    return None  # Unknown, or a word the spec does not have


def _number(word: str) -> int | None:
    """A whole number in ASCII digits, as OCPP's strings write it (None: anything else). Not
    `str.isdigit`, which passes a superscript two that `int` then refuses."""
    said = word.strip()
    return int(said) if said.isascii() and said.isdigit() else None


def parse(version: OcppVersion, declared: str) -> dict[int, int]:
    """The phases in a declared value (empty: nothing known). Garbage is left out, never raised:
    the value is the charger's word."""
    if family(version) == V201:
        n = _number(declared)
        return {WHOLE_CHARGER: n} if n is not None and 1 <= n <= MAX_PHASES else {}
    out: dict[int, int] = {}
    for entry in declared.split(","):
        no, dot, word = entry.strip().partition(".")
        if not dot:  # one word for every connector
            phases = _rotation_phases(no)
            if phases is not None:
                out[WHOLE_CHARGER] = phases
            continue
        phases, connector = _rotation_phases(word.strip()), _number(no)
        # Index 0 is the grid connection's rotation at the main meter, not a connector's wiring.
        if connector is not None and connector > 0 and phases is not None:
            out[connector] = phases
    return out


def from_read(version: OcppVersion, read: Sequence[cmd.SettingValue]) -> dict[int, int]:
    """The phases from a settings read that named the key (empty: the charger did not say)."""
    wanted = key(version)
    for value in read:
        if value.key == wanted and value.status is cmd.Status.ACCEPTED and value.value is not None:
            return parse(version, value.value)
    return {}


def of_connector(known: Mapping[int, int], connector_no: int) -> int:
    """A connector's phases: its own, else the whole charger's, else one (the unknown is held to one
    phase's worth, which no wiring can pass)."""
    return known.get(connector_no, known.get(WHOLE_CHARGER, 1))


@dataclass(frozen=True)
class GetPhases(cmd.Command[dict[int, int]]):
    """GetConfiguration (1.6) or GetVariables (2.0.1) of the one setting; its details: the phases."""

    actions: ClassVar[dict[str, str]] = cmd.GetSettings.actions

    def payload(self, version: OcppVersion, charger_tx: cmd.ChargerTxLookup) -> dict[str, Any]:
        return cmd.GetSettings((key(version),)).payload(version, charger_tx)

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> cmd.Done[dict[int, int]]:
        return cmd.Done(cmd.Status.ACCEPTED, self.details(version, answer))

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> dict[int, int]:
        return from_read(version, cmd.GetSettings().details(version, answer))


def learn() -> Generator[Send, Any, dict[int, int] | None]:
    """Read the charger's declared phases: None when the read failed (asked again another time),
    empty when it answered without saying."""
    read = yield Send(GetPhases())
    if not isinstance(read, cmd.Done):
        return None
    phases: dict[int, int] = read.details
    return phases
