"""POST /admin/chargers/{id}/commands: an operator's command to a charger, answered with its typed
result, from whichever server process holds the charger's link (adapters/command_routing.py)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from chargeshare.domain.errors import InvalidRequest
from chargeshare.entrypoints.api.boot_policy import ask_to_boot
from chargeshare.entrypoints.api.deps import Admin, AppDep, IdPath, RegistryDep
from chargeshare.entrypoints.api.schemas import BootPolicyIn, BootPolicyOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.command_names import COMMANDS, BadCommand, parse_command, result_json

MAX_WAIT_S = 120.0


class CommandIn(BaseModel):
    action: str = Field(
        min_length=1, max_length=64, description="a command's name: " + ", ".join(sorted(COMMANDS))
    )
    payload: dict[str, Any] = Field(default_factory=dict, description="the command's own fields")
    timeout_s: float = Field(default=30.0, gt=0, le=MAX_WAIT_S, description="how long the charger has")


class CommandResultOut(BaseModel):
    result: Literal["done", "rejected", "not_connected", "timeout", "call_error", "not_applicable"]
    status: str | None = Field(default=None, description="the charger's word (done, rejected)")
    details: Any = Field(default=None, description="what the command reads from the answer (done)")
    reason: str | None = None
    code: str | None = Field(default=None, description="the CALLERROR code (call_error)")
    after_s: float | None = Field(default=None, description="how long it waited (timeout)")


router = APIRouter(prefix="/admin", tags=["admin"], route_class=StrictJsonRoute)


@router.post("/chargers/{charger_id}/commands")
async def command(
    app: AppDep, registry: RegistryDep, charger_id: IdPath, body: CommandIn, _who: Admin
) -> CommandResultOut:
    """Send one of the typed commands by name. Every ending is a 200 with a typed result; a name
    or payload that does not make a command, or makes one that breaks the schema of the
    charger's OCPP version (never sent), is a 400 saying why."""
    try:
        parsed = parse_command(body.action, body.payload)
    except BadCommand as exc:
        raise InvalidRequest(str(exc)) from None
    cp_id = app.queries.chargers.charge_point_id(charger_id)
    result = await registry.send(cp_id, parsed, timeout_s=body.timeout_s)
    if isinstance(result, cmd.Invalid):
        raise InvalidRequest(f"{body.action}: {result.reason}")
    return CommandResultOut(**result_json(result))


@router.put("/chargers/{charger_id}/boot-policy")
async def boot_policy(
    app: AppDep, registry: RegistryDep, charger_id: IdPath, body: BootPolicyIn, _who: Admin
) -> BootPolicyOut:
    """Accept a charger into service or take it out; a connected one is asked to boot again."""
    cp_id = app.queries.chargers.charge_point_id(charger_id)
    view = app.marketplace.set_boot_policy(cp_id, body.boot_policy)
    app.last_seen.forget(cp_id)  # its next frame here reads the change
    asked = await ask_to_boot(registry, cp_id)
    return BootPolicyOut(boot_policy=view.boot_policy, status=view.status.value, boot_requested=asked)
