"""The units a charger takes charging schedules in: W, A or both, as it declares them (1.6
`ChargingScheduleAllowedChargingRateUnit`, "Current,Power"; 2.0.1 `SmartChargingCtrlr.RateUnit`,
"A,W"). Many real chargers take A only and refuse a profile in W, so the backend learns this and
sends its limits in a unit the charger takes (chargeshare/ocpp/grid_limits.py).

Pure but for `learn`, a command script (chargeshare/ocpp/scripts.py) reading the one setting in
whichever version the charger speaks (`GetRateUnits`: the engine sending it knows the version).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeshare.ocpp import V16, V201, OcppVersion, family
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.scripts import Send

KEYS: dict[OcppVersion, cmd.SettingKey] = {
    V16: cmd.SettingKey("ChargingScheduleAllowedChargingRateUnit"),
    V201: cmd.SettingKey("RateUnit", "SmartChargingCtrlr"),
}

_WORDS = {
    "current": cmd.RateUnit.AMPS,
    "a": cmd.RateUnit.AMPS,
    "power": cmd.RateUnit.WATTS,
    "w": cmd.RateUnit.WATTS,
}


def key(version: OcppVersion) -> cmd.SettingKey:
    return KEYS[family(version)]


def parse(declared: str) -> frozenset[cmd.RateUnit]:
    """The units in a declared list, in either version's words ("Current,Power", "A,W"; a 2.0.1
    MemberList may use ';' too). Words it does not know are left out; nothing known: empty."""
    words = (w.strip().lower() for w in declared.replace(";", ",").split(","))
    return frozenset(_WORDS[w] for w in words if w in _WORDS)


def from_read(version: OcppVersion, read: Sequence[cmd.SettingValue]) -> frozenset[cmd.RateUnit]:
    """The units from a settings read that named the key (empty: the charger did not say)."""
    wanted = key(version)
    for value in read:
        if value.key == wanted and value.status is cmd.Status.ACCEPTED and value.value is not None:
            return parse(value.value)
    return frozenset()


def amps_only(units: Iterable[str]) -> bool:
    """Whether limits must go in A: the charger takes A and not W. Unknown (empty) keeps W."""
    said = set(units)
    return cmd.RateUnit.AMPS in said and cmd.RateUnit.WATTS not in said


def unit_for(units: Iterable[str]) -> cmd.RateUnit:
    """The unit a profile goes in to a charger that said `units`: A only if it takes A only."""
    return cmd.RateUnit.AMPS if amps_only(units) else cmd.RateUnit.WATTS


@dataclass(frozen=True)
class GetRateUnits(cmd.Command[frozenset[cmd.RateUnit]]):
    """GetConfiguration (1.6) or GetVariables (2.0.1) of the one setting; its details: the units."""

    actions: ClassVar[dict[str, str]] = cmd.GetSettings.actions

    def payload(self, version: OcppVersion, charger_tx: cmd.ChargerTxLookup) -> dict[str, Any]:
        return cmd.GetSettings((key(version),)).payload(version, charger_tx)

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> cmd.Done[frozenset[cmd.RateUnit]]:
        return cmd.Done(cmd.Status.ACCEPTED, self.details(version, answer))

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> frozenset[cmd.RateUnit]:
        return from_read(version, cmd.GetSettings().details(version, answer))


def learn() -> Generator[Send, Any, frozenset[cmd.RateUnit] | None]:
    """Read the charger's declared units: None when the read failed (asked again another time),
    empty when it answered without saying."""
    read = yield Send(GetRateUnits())
    if not isinstance(read, cmd.Done):
        return None
    units: frozenset[cmd.RateUnit] = read.details
    return units
