"""Configure a charger's metering after its accepted boot: read its sampling settings, change those
that fall short of the policy (chargeshare/ocpp/metering.py), and say what happened. A command
script (chargeshare/ocpp/scripts.py): it yields the commands and is sent back their results."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from chargeshare.ocpp import OcppVersion, metering
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.scripts import Send


@dataclass(frozen=True)
class MeteringSetup:
    """How it went: the read's failure (None if it was answered) and each change with its result."""

    read_failure: cmd.Failure | None
    changes: tuple[tuple[cmd.ChangeSetting, cmd.CommandResult[None]], ...] = ()

    @property
    def needed_nothing(self) -> bool:
        return self.read_failure is None and not self.changes

    def body(self) -> dict[str, object]:
        """What it read and set, for the charger's reports."""
        return {
            "readFailure": None if self.read_failure is None else _said(self.read_failure),
            "changes": [
                {"setting": _name(c.key), "value": c.value, "result": _said(result)}
                for c, result in self.changes
            ],
        }

    def summary(self) -> str:
        if self.read_failure is not None:
            return f"could not read the sampling settings: {_said(self.read_failure)}"
        return "; ".join(f"set {_name(c.key)}={c.value}: {_said(result)}" for c, result in self.changes)


def _name(key: cmd.SettingKey) -> str:
    return f"{key.component}.{key.name}" if key.component else key.name


def _said(result: cmd.CommandResult[Any]) -> str:
    if isinstance(result, cmd.Done | cmd.Rejected):
        return result.status.value
    return type(result).__name__


def configure(version: OcppVersion, policy: metering.MeteringPolicy) -> Generator[Send, Any, MeteringSetup]:
    read = yield Send(cmd.GetSettings(metering.keys(version, policy)))
    if not isinstance(read, cmd.Done):
        return MeteringSetup(read)
    changes = []
    for change in metering.plan(version, read.details, policy):
        changes.append((change, (yield Send(change))))
    return MeteringSetup(None, tuple(changes))
