"""uvicorn for `chargeshare serve`: told to stop (SIGTERM from a deploy, Ctrl-C), it first tells the
charger registry it is draining, so the links it is about to close count as handed over rather than
as chargers going offline (see `ChargerRegistry.drain`)."""

from __future__ import annotations

from types import FrameType

import uvicorn

from chargeshare.entrypoints.ocpp_server import ChargerRegistry


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, registry: ChargerRegistry) -> None:
        super().__init__(config)
        self.registry = registry

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.registry.drain()
        super().handle_exit(sig, frame)
