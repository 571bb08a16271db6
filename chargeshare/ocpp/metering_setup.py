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
    """How it went: the read's failure (None if it was answered), each change with its result, and
    what needs the operator's eye (`notes`: retries left outside the lost-stop bound)."""

    read_failure: cmd.Failure | None
    changes: tuple[tuple[cmd.ChangeSetting, cmd.CommandResult[None]], ...] = ()
    notes: tuple[str, ...] = ()
    read: tuple[cmd.SettingValue, ...] = ()  # what the charger answered, the `also` keys included

    @property
    def needed_nothing(self) -> bool:
        return self.read_failure is None and not self.changes and not self.notes

    def body(self) -> dict[str, object]:
        """What it read and set, for the charger's reports."""
        body: dict[str, object] = {
            "readFailure": None if self.read_failure is None else _said(self.read_failure),
            "changes": [
                {"setting": str(c.key), "value": c.value, "result": _said(result)}
                for c, result in self.changes
            ],
        }
        if self.notes:
            body["notes"] = list(self.notes)
        return body

    def summary(self) -> str:
        if self.read_failure is not None:
            return f"could not read the sampling settings: {_said(self.read_failure)}"
        said = [f"set {c.key}={c.value}: {_said(result)}" for c, result in self.changes]
        return "; ".join(said + list(self.notes))


def _said(result: cmd.CommandResult[Any]) -> str:
    if isinstance(result, cmd.Done | cmd.Rejected):
        return result.status.value
    return type(result).__name__


def configure(
    version: OcppVersion, policy: metering.MeteringPolicy, also: tuple[cmd.SettingKey, ...] = ()
) -> Generator[Send, Any, MeteringSetup]:
    """`also`: other settings read in the same request, for the caller (`MeteringSetup.read`)."""
    read = yield Send(cmd.GetSettings(metering.keys(version, policy) + also))
    if not isinstance(read, cmd.Done):
        return MeteringSetup(read)
    retries = metering.retry_plan(version, read.details, policy)
    notes = [] if retries.note is None else [retries.note]
    changes = []
    for change in metering.plan(version, read.details, policy):
        result = yield Send(change)
        changes.append((change, result))
        if change == retries.change and not isinstance(result, cmd.Done):
            # A read-only interval (Rejected, NotSupported...): tried once per boot, and said.
            notes.append(f"retries not fitted, {change.key}={change.value} {_said(result)}, {retries.as_is}")
    return MeteringSetup(None, tuple(changes), tuple(notes), tuple(read.details))
