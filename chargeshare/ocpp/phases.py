"""How many phases a charger's connectors are wired to, as it declares them, so a limit in A goes
on all of them (chargeshare/ocpp/grid_limits.py) rather than held to one phase's worth.

1.6: `ConnectorPhaseRotation`, a list such as "0.RST, 1.RST, 2.NotApplicable": a rotation (any
order of R, S, T) is three phases, `NotApplicable` one phase (or DC), `Unknown` says nothing; index
0 is the grid connection to the main meter, not a connector. 2.0.1: `ChargingStation.SupplyPhases`,
the number of AC phases the whole station has (0 for DC: nothing said), and the `EVSE` component's
`SupplyPhases` for one EVSE, which overrides the station's for it (an EVSE is our connector: its
`evseId` is the connector number, chargeshare/ocpp/csms_v201.py). Only the EVSEs named are asked.

Kept as {connector number: phases}, 0 for the whole charger. Pure but for `learn`, a command script
reading the one setting in whichever version the charger speaks.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from chargeshare.ocpp import V16, V201, OcppVersion, family
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.scripts import Send

WHOLE_CHARGER = 0
MAX_PHASES = 3
MAX_ITEMS = 1_000  # more EVSEs than any charger has
KEYS: dict[OcppVersion, cmd.SettingKey] = {
    V16: cmd.SettingKey("ConnectorPhaseRotation"),
    V201: cmd.SettingKey("SupplyPhases", "ChargingStation"),
}
_ROTATIONS = frozenset({"RST", "RTS", "SRT", "STR", "TRS", "TSR"})


EVSE_COMPONENT = "EVSE"


def key(version: OcppVersion) -> cmd.SettingKey:
    return KEYS[family(version)]


def keys(version: OcppVersion, evses: Iterable[int] = ()) -> tuple[cmd.SettingKey, ...]:
    """The settings to read: the charger's, and on 2.0.1 each of `evses`' own."""
    if family(version) != V201:
        return (key(version),)
    station = key(version)
    own = (cmd.SettingKey(station.name, EVSE_COMPONENT, evse=n) for n in sorted(set(evses)) if n > 0)
    return (station, *own)


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
    """The phases from a settings read that named the keys (empty: the charger did not say); on
    2.0.1 an EVSE's own value stands for it beside the station's."""
    wanted = key(version)
    out: dict[int, int] = {}
    for value in read:
        if value.status is not cmd.Status.ACCEPTED or value.value is None:
            continue
        if value.key == wanted:
            out.update(parse(version, value.value))
        elif family(version) == V201 and _evse_key(value.key):
            said = parse(version, value.value).get(WHOLE_CHARGER)
            if said is not None and value.key.evse is not None:
                out[value.key.evse] = said
    return out


def _evse_key(k: cmd.SettingKey) -> bool:
    return k.component == EVSE_COMPONENT and k.name == KEYS[V201].name and k.evse is not None and k.evse > 0


def of_connector(known: Mapping[int, int], connector_no: int) -> int:
    """A connector's phases: its own, else the whole charger's, else one (the unknown is held to one
    phase's worth, which no wiring can pass)."""
    return known.get(connector_no, known.get(WHOLE_CHARGER, 1))


@dataclass(frozen=True)
class GetPhases(cmd.Command[dict[int, int]]):
    """GetConfiguration (1.6) or GetVariables (2.0.1) of the settings (on 2.0.1 `evses`' own too);
    its details: the phases."""

    evses: tuple[int, ...] = ()
    # Sent in parts when the charger takes fewer items a request (cmd.InParts): `per_message` the
    # most a part names, `only` one part's keys.
    per_message: int | None = None
    only: tuple[cmd.SettingKey, ...] | None = None
    actions: ClassVar[dict[str, str]] = cmd.GetSettings.actions

    def _keys(self, version: OcppVersion) -> tuple[cmd.SettingKey, ...]:
        return keys(version, self.evses) if self.only is None else self.only

    def parts(self, version: OcppVersion) -> list[GetPhases]:
        whole = cmd.GetSettings(self._keys(version), self.per_message)
        return [GetPhases(self.evses, only=part.keys) for part in whole.parts(version)]

    def items(self) -> int:
        if self.only is not None:
            return len(self.only)
        return min(1 + len(self.evses), self.per_message or MAX_ITEMS)

    def at_most(self, per_message: int) -> GetPhases:
        return replace(self, per_message=per_message)

    def joined(self, done: list[cmd.Done[dict[int, int]]]) -> cmd.Done[dict[int, int]]:
        # Each part's phases are its own keys': an EVSE's and the station's never share a number.
        return cmd.Done(cmd.Status.ACCEPTED, {no: n for d in done for no, n in d.details.items()})

    def payload(self, version: OcppVersion, charger_tx: cmd.ChargerTxLookup) -> dict[str, Any]:
        return cmd.GetSettings(self._keys(version)).payload(version, charger_tx)

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> cmd.Done[dict[int, int]]:
        return cmd.Done(cmd.Status.ACCEPTED, self.details(version, answer))

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> dict[int, int]:
        return from_read(version, cmd.GetSettings().details(version, answer))


def learn(evses: Iterable[int] = ()) -> Generator[Send, Any, dict[int, int] | None]:
    """Read the charger's declared phases (on 2.0.1 `evses`' own too): None when the read failed
    (asked again another time), empty when it answered without saying."""
    read = yield Send(GetPhases(tuple(sorted(set(evses)))))
    if not isinstance(read, cmd.Done):
        return None
    phases: dict[int, int] = read.details
    return phases
