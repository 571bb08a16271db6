"""Serve the ASGI app on 127.0.0.1 with an OS-chosen port inside the running event loop
(simulations and end-to-end tests), optionally over TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from chargeshare.entrypoints.tls_scope import TlsScopeProtocol
from chargeshare.ocpp.frames import MAX_FRAME_BYTES

# Seconds a stopping server gives requests under way before it cancels them.
GRACEFUL_SHUTDOWN_S = 5


class _SignalFreeServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process it runs in owns Ctrl-C. uvicorn's own would
    take the signal for a graceful shutdown and hand it on only once every connection had closed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LoopbackServer:
    """uvicorn on 127.0.0.1 with an OS-chosen port, in the current event loop."""

    def __init__(self, api: Any, *, ssl_context: ssl.SSLContext | None = None) -> None:
        config = uvicorn.Config(
            api,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            ws=TlsScopeProtocol,  # the sans-I/O protocol, with the ASGI TLS extension
            ws_max_size=MAX_FRAME_BYTES,
            ws_ping_interval=None,
            # Load tests keep pooled connections busy for long stretches on a loaded machine; a short
            # keep-alive lets the server close one just as the client reuses it (a spurious ReadError).
            timeout_keep_alive=60,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        if ssl_context is not None:
            # TLS (OCPP security profile 2: wss + Basic auth). uvicorn builds its context from files;
            # loading the config first and swapping the context in lets tests use one made in memory.
            config.load()
            config.ssl = ssl_context
        self.server = _SignalFreeServer(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopbackServer:
        self.task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 10
        while not self.server.started:
            if self.task.done() or time.monotonic() > deadline:
                raise RuntimeError("the backend server did not start")
            await asyncio.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
