"""The typed commands by name, for operators: a command made from its name and a JSON payload (the
dataclass's own fields), and any command's result said as JSON.

Names are the classes' (`Reset`, `StopCharging`, `ChangeSetting`, ...), so the operator API, the CLI
and chargeshare.ocpp.commands cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import file_commands as files
from chargeshare.ocpp import station_commands as station

COMMANDS: dict[str, type[cmd.Command[Any]]] = {
    c.__name__: c
    for c in (
        cmd.StartCharging,
        cmd.StopCharging,
        cmd.GetTransactionStatus,
        cmd.Reserve,
        cmd.CancelReservation,
        cmd.ChangeAvailability,
        cmd.Reset,
        cmd.TriggerMessage,
        cmd.UnlockConnector,
        cmd.SetChargingProfile,
        cmd.ClearChargingProfile,
        cmd.GetCompositeSchedule,
        cmd.GetSettings,
        cmd.ChangeSetting,
        cmd.ChangeSettings,
        cmd.GetBaseReport,
        cmd.GetReport,
        cmd.SendLocalList,
        cmd.GetLocalListVersion,
        cmd.ClearCache,
        cmd.InstallCertificate,
        cmd.GetInstalledCertificateIds,
        cmd.DeleteCertificate,
        files.UpdateFirmware,
        files.GetLog,
        station.GetChargingProfiles,
        station.SetDisplayMessage,
        station.GetDisplayMessages,
        station.ClearDisplayMessage,
        station.CustomerInformation,
        station.SetNetworkProfile,
        station.SetVariableMonitoring,
        station.ClearVariableMonitoring,
        station.SetMonitoringBase,
        station.SetMonitoringLevel,
        station.GetMonitoringReport,
    )
}


class BadCommand(ValueError):
    """An unknown name, or a payload that does not make that command; the message says which."""


def parse_command(name: str, payload: Mapping[str, Any]) -> cmd.Command[Any]:
    cls = COMMANDS.get(name)
    if cls is None:
        raise BadCommand(f"no command {name!r}; one of {', '.join(sorted(COMMANDS))}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(payload) - fields)
    if unknown:
        raise BadCommand(f"{name} has no field {', '.join(unknown)}; its fields: {', '.join(sorted(fields))}")
    try:
        command: cmd.Command[Any] = TypeAdapter(cls).validate_python(dict(payload))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or name}: {e['msg']}" for e in exc.errors()
        )
        raise BadCommand(f"{name}: {problems}") from None
    naive = _naive_times(command)
    if naive:
        raise BadCommand(f"{name}: {', '.join(naive)} must say its time zone")
    return command


def _naive_times(value: object, path: str = "") -> list[str]:
    """Fields holding a time without a time zone (OCPP times are instants)."""
    if isinstance(value, datetime):
        return [path] if value.tzinfo is None else []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found: list[str] = []
        for f in dataclasses.fields(value):
            found += _naive_times(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
        return found
    if isinstance(value, tuple | list):
        return [p for i, item in enumerate(value) for p in _naive_times(item, f"{path}[{i}]")]
    return []


def result_json(result: cmd.CommandResult[Any]) -> dict[str, Any]:
    """`result` is one of done, rejected, not_connected, timeout, call_error, not_applicable; the
    other keys are that result's own."""
    if isinstance(result, cmd.Done):
        details = to_jsonable_python(result.details)
        return {"result": "done", "status": result.status.value, "details": details}
    if isinstance(result, cmd.Rejected):
        return {"result": "rejected", "status": result.status.value, "reason": result.reason}
    if isinstance(result, cmd.NotConnected):
        return {"result": "not_connected", "reason": result.reason}
    if isinstance(result, cmd.Timeout):
        return {"result": "timeout", "after_s": result.after_s}
    if isinstance(result, cmd.CallError):
        return {"result": "call_error", "code": result.code}
    return {"result": "not_applicable", "reason": result.reason}
