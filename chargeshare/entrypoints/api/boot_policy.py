"""After a charger's boot policy changes: ask it, wherever it is connected, to boot again, so the
answer it gets reflects the change now rather than at its next boot."""

from __future__ import annotations

from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import commands as cmd

# A charger that does not answer this soon boots on its own later: the change holds meanwhile.
ASK_TIMEOUT_S = 10.0


async def ask_to_boot(registry: ChargerRegistry, cp_id: str) -> bool:
    """True if the charger accepted TriggerMessage(BootNotification)."""
    result = await registry.send(cp_id, cmd.TriggerMessage("BootNotification"), timeout_s=ASK_TIMEOUT_S)
    return isinstance(result, cmd.Done)
