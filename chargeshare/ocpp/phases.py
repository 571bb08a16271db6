"""How many phases a charger's connectors are wired to, as it declares them, so a limit in A goes
on all of them (chargeshare/ocpp/grid_limits.py) rather than held to one phase's worth.

1.6: `ConnectorPhaseRotation`, a list such as "0.RST, 1.RST, 2.NotApplicable": a rotation (any
order of R, S, T) is three phases, `NotApplicable` one phase (or DC), `Unknown` says nothing; index
0 is the grid connection to the main meter, not a connector. 2.0.1: `ChargingStation.SupplyPhases`,
the number of AC phases the whole station has (0 for DC: nothing said), and the `EVSE` component's
`SupplyPhases` for one EVSE, which overrides the station's for it (an EVSE is our connector: its
`evseId` is the connector number, chargeshare/ocpp/csms_v201.py). Only the EVSEs named are asked.

Whether a charger switches a three-phase connector to one phase during a transaction (1.6
`ConnectorSwitch3to1PhaseSupported`, 2.0.1 `SmartChargingCtrlr.Phases3to1`, both "if defined and
true") is read with them: one that does not cannot take a limit below 6 A on each of its phases,
so it is never sent one (chargeshare/ocpp/grid_limits.py), and its allocation's minimum is 6 A on
each (chargeshare/services/grid.py).

Kept as a `Wiring`: {connector number: phases}, 0 for the whole charger, and the switch. Pure but
for `learn`, a command script reading the settings in whichever version the charger speaks.

A charger that never declares them may still show them: `drawing` counts the phases a connector's
per-phase `Current.Import` readings show drawing, and `with_seen` lets the most ever seen stand for
a connector where nothing was declared (a declared value always wins).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from chargeshare.ocpp import V16, V201, OcppVersion, family
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.scripts import Send

log = logging.getLogger(__name__)

WHOLE_CHARGER = 0
MAX_PHASES = 3
MAX_ITEMS = 1_000  # more EVSEs than any charger has
KEYS: dict[OcppVersion, cmd.SettingKey] = {
    V16: cmd.SettingKey("ConnectorPhaseRotation"),
    V201: cmd.SettingKey("SupplyPhases", "ChargingStation"),
}
SWITCH_KEYS: dict[OcppVersion, cmd.SettingKey] = {
    V16: cmd.SettingKey("ConnectorSwitch3to1PhaseSupported"),
    V201: cmd.SettingKey("Phases3to1", "SmartChargingCtrlr"),
}
_ROTATIONS = frozenset({"RST", "RTS", "SRT", "STR", "TRS", "TSR"})
CURRENT_IMPORT = "Current.Import"
# A line current, spelt as the phase enum of 1.6 and 2.0.1 has it (L1-N: measured against neutral);
# N and the line-to-line pairs name no line a car draws on.
_LINES = {"L1": 1, "L1-N": 1, "L2": 2, "L2-N": 2, "L3": 3, "L3-N": 3}
# Above the milliamps an idle phase shows (an on-board charger's filters, the meter's floor), well
# below the 6 A a phase charges at: a phase above it is drawing.
DRAWING_A = 1.0


class Wiring(dict[int, int]):
    """{connector number: phases} (0: the whole charger; empty: not said), and whether the charger
    switches a three-phase connector to one phase during a transaction (not said: it does not).
    Equal to a plain dict of the same phases; to another `Wiring` only with the same switch."""

    def __init__(self, phases: Mapping[int, int] | None = None, *, switches_3to1: bool = False) -> None:
        super().__init__(phases or {})
        self.switches_3to1 = switches_3to1

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Wiring) and other.switches_3to1 != self.switches_3to1:
            return False
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"Wiring({dict.__repr__(self)}, switches_3to1={self.switches_3to1})"

    def said(self) -> bool:
        """Anything said: phases, or that it switches."""
        return bool(self) or self.switches_3to1


EVSE_COMPONENT = "EVSE"


def key(version: OcppVersion) -> cmd.SettingKey:
    return KEYS[family(version)]


def keys(version: OcppVersion, evses: Iterable[int] = ()) -> tuple[cmd.SettingKey, ...]:
    """The settings to read: the charger's, and on 2.0.1 each of `evses`' own."""
    if family(version) != V201:
        return (key(version), SWITCH_KEYS[V16])
    station = key(version)
    own = (cmd.SettingKey(station.name, EVSE_COMPONENT, evse=n) for n in sorted(set(evses)) if n > 0)
    return (station, SWITCH_KEYS[V201], *own)


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


def from_read(version: OcppVersion, read: Sequence[cmd.SettingValue]) -> Wiring:
    """The wiring from a settings read that named the keys (empty: the charger did not say); on
    2.0.1 an EVSE's own value stands for it beside the station's."""
    wanted, switch = key(version), SWITCH_KEYS[family(version)]
    out = Wiring()
    for value in read:
        if value.status is not cmd.Status.ACCEPTED or value.value is None:
            continue
        if value.key == wanted:
            out.update(parse(version, value.value))
        elif value.key == switch:
            out.switches_3to1 = value.value.strip().lower() == "true"
        elif family(version) == V201 and _evse_key(value.key):
            said = parse(version, value.value).get(WHOLE_CHARGER)
            if said is not None and value.key.evse is not None:
                out[value.key.evse] = said
    return out


def _evse_key(k: cmd.SettingKey) -> bool:
    return k.component == EVSE_COMPONENT and k.name == KEYS[V201].name and k.evse is not None and k.evse > 0


def _amps(sv: Mapping[str, Any]) -> float | None:
    """A current reading in A: 1.6 a string with `unit` A, 2.0.1 a number with `unitOfMeasure` (A and
    a power-of-ten multiplier). None for anything else: a unit left out is Wh in both specs."""
    unit = sv.get("unitOfMeasure")
    multiplier: Any = 0
    if isinstance(unit, Mapping):
        multiplier = unit.get("multiplier", 0)
        unit = unit.get("unit")
    else:
        unit = sv.get("unit")
    value = sv.get("value")
    if (
        unit != "A"
        or isinstance(value, bool)
        or not isinstance(multiplier, int)
        or isinstance(multiplier, bool)
    ):
        return None
    if not -3 <= multiplier <= 3:
        return None  # no current a connector carries is written so
    try:
        amps = float(value) * 10.0**multiplier if isinstance(value, int | float | str) else None
    except (ValueError, OverflowError):
        return None
    return amps if amps is not None and math.isfinite(amps) else None


def drawing(meter_value: Any) -> int:
    """How many phases a MeterValues or TransactionEvent `meterValue` list shows drawing: the lines
    (L1, L2, L3) any of its per-phase `Current.Import` readings puts above `DRAWING_A` (0: none, or
    no per-phase current). Garbage is left out, never raised: the readings are the charger's word."""
    if not isinstance(meter_value, list):
        return 0
    lines: set[int] = set()
    for mv in meter_value:
        sampled = mv.get("sampledValue") if isinstance(mv, Mapping) else None
        for sv in sampled if isinstance(sampled, list) else ():
            if not isinstance(sv, Mapping) or sv.get("measurand") != CURRENT_IMPORT:
                continue
            phase = sv.get("phase")
            line = _LINES.get(phase) if isinstance(phase, str) else None
            if line is None or line in lines:
                continue
            amps = _amps(sv)
            if amps is not None and amps > DRAWING_A:
                lines.add(line)
    return len(lines)


class Seen:
    """One link's view of what its charger was seen drawing on: `frame` hands `keep` (connector,
    phases) only when a frame's per-phase current shows more phases on a connector than this link
    has kept, so the frames of a charger sending none, or the same again, touch no store."""

    def __init__(self, keep: Callable[[int, int], object]) -> None:
        self.keep = keep
        self.kept: dict[int, int] = {}

    def frame(self, meter_value: Any, connector_no: Callable[[], int | None]) -> None:
        phases = drawing(meter_value)
        if phases <= 1:
            return  # one phase is what the unknown is held to anyway
        try:
            no = connector_no()
            if no is None or no <= 0 or phases <= self.kept.get(no, 1):
                return
            self.keep(no, phases)
        except Exception:  # learning, not billing: the frame is answered, and the next one tries again
            log.warning("keeping the phases a connector was seen drawing on failed", exc_info=True)
            return
        self.kept[no] = phases


def with_seen(declared: Wiring, seen: Mapping[int, int]) -> Wiring:
    """The declared wiring, and for each connector it says nothing of (neither its own phases nor the
    whole charger's) the most phases it was seen drawing on, when more than one."""
    if WHOLE_CHARGER in declared:
        return declared
    out = Wiring(
        {no: n for no, n in seen.items() if no != WHOLE_CHARGER and no not in declared and n > 1},
        switches_3to1=declared.switches_3to1,
    )
    out.update(declared)
    return out


def of_connector(known: Mapping[int, int], connector_no: int) -> int:
    """A connector's phases: its own, else the whole charger's, else one (the unknown is held to one
    phase's worth, which no wiring can pass)."""
    return known.get(connector_no, known.get(WHOLE_CHARGER, 1))


@dataclass(frozen=True)
class GetPhases(cmd.Command[Wiring]):
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
        return min(2 + len(self.evses), self.per_message or MAX_ITEMS)

    def at_most(self, per_message: int) -> GetPhases:
        return replace(self, per_message=per_message)

    def joined(self, done: list[cmd.Done[Wiring]]) -> cmd.Done[Wiring]:
        # Each part's phases are its own keys': an EVSE's and the station's never share a number.
        phases = {no: n for d in done for no, n in d.details.items()}
        switches = any(d.details.switches_3to1 for d in done)
        return cmd.Done(cmd.Status.ACCEPTED, Wiring(phases, switches_3to1=switches))

    def payload(self, version: OcppVersion, charger_tx: cmd.ChargerTxLookup) -> dict[str, Any]:
        return cmd.GetSettings(self._keys(version)).payload(version, charger_tx)

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> cmd.Done[Wiring]:
        return cmd.Done(cmd.Status.ACCEPTED, self.details(version, answer))

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> Wiring:
        return from_read(version, cmd.GetSettings().details(version, answer))


def learn(evses: Iterable[int] = ()) -> Generator[Send, Any, Wiring | None]:
    """Read the charger's declared wiring (on 2.0.1 `evses`' own too): None when the read failed
    (asked again another time), empty when it answered without saying."""
    read = yield Send(GetPhases(tuple(sorted(set(evses)))))
    if not isinstance(read, cmd.Done):
        return None
    said: Wiring = read.details
    return said


def switches(known: Mapping[int, int]) -> bool:
    """Whether the charger said it switches three phases to one (a plain mapping says nothing)."""
    return isinstance(known, Wiring) and known.switches_3to1
