"""An in-process central system for testing the virtual charger: a loopback websocket server whose
every frame, both ways, goes through the project's sans-I/O `Connection`, so the `ocpp` library's
JSON schemas check everything the charger sends and everything it answers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from chargeshare.domain.errors import Busy
from chargeshare.ocpp import V16, OcppVersion
from chargeshare.ocpp.connection import Connection, Handler, Outcome
from chargeshare.ocpp.timestamps import format_ts


@dataclass
class FakeCsms:
    """Answers like an accepting CSMS; records (direction, frame) and each call the charger makes."""

    version: OcppVersion
    id_status: str = "Accepted"
    frames: list[tuple[str, list[Any]]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    connections: int = 0
    # Calls of these actions fail on our side (InternalError), the next `n` of each, then succeed.
    fail_next: dict[str, int] = field(default_factory=dict)
    # Calls of these actions are answered only once their event is set; other frames go on meanwhile.
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)  # the actions of calls held so far
    _ws: ServerConnection | None = None
    _conn: Connection | None = None
    _waiting: dict[str, asyncio.Future[Outcome]] = field(default_factory=dict)
    _tx_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ocpp"

    def sent_by_charger(self, action: str) -> list[dict[str, Any]]:
        return [p for a, p in self.calls if a == action]

    def errors_we_sent(self) -> list[list[Any]]:
        """CALLERRORs this CSMS answered with: each one a frame the charger got wrong (those
        `fail_next` made, InternalError, apart)."""
        return [f for d, f in self.frames if d == "out" and f[0] == 4 and f[2] != "InternalError"]

    def answers_from_charger(self) -> list[list[Any]]:
        return [f for d, f in self.frames if d == "in" and f[0] in (3, 4)]

    def _handlers(self) -> dict[str, Handler]:
        def record(action: str, reply: Callable[[dict[str, Any]], dict[str, Any]]) -> Handler:
            def handle(p: dict[str, Any]) -> dict[str, Any]:
                self.calls.append((action, p))
                if self.fail_next.get(action, 0) > 0:
                    self.fail_next[action] -= 1
                    raise Busy("the database is busy", 1.0)
                return reply(p)

            return handle

        def now() -> str:
            return format_ts(datetime.now(UTC))

        common: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "BootNotification": lambda p: {"status": "Accepted", "currentTime": now(), "interval": 300},
            "Heartbeat": lambda p: {"currentTime": now()},
            "StatusNotification": lambda p: {},
            "MeterValues": lambda p: {},
            "FirmwareStatusNotification": lambda p: {},
            "SignCertificate": lambda p: {"status": "Accepted"},
        }
        if self.version == V16:
            common |= {
                "Authorize": lambda p: {"idTagInfo": {"status": self.id_status}},
                "StartTransaction": lambda p: {
                    "transactionId": next(self._tx_ids),
                    "idTagInfo": {"status": self.id_status},
                },
                "StopTransaction": lambda p: {"idTagInfo": {"status": "Accepted"}},
                "DiagnosticsStatusNotification": lambda p: {},
            }
        else:
            common |= {
                "Authorize": lambda p: {"idTokenInfo": {"status": self.id_status}},
                "TransactionEvent": lambda p: (
                    {"idTokenInfo": {"status": self.id_status}} if p["eventType"] == "Started" else {}
                ),
                "LogStatusNotification": lambda p: {},
            }
        return {a: record(a, r) for a, r in common.items()}

    async def _serve(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._ws = ws
        self._conn = conn = Connection(self.version, self._handlers(), id_prefix="cs-")
        holding: set[asyncio.Task[None]] = set()
        async for text in ws:
            assert isinstance(text, str)
            frame = _frame(text)
            self.frames.append(("in", frame))
            gate = self.hold.get(frame[2]) if frame[0] == 2 else None
            if gate is not None and not gate.is_set():
                self.held.append(frame[2])
                task = asyncio.create_task(self._answer_once(ws, conn, text, gate))
                holding.add(task)
                task.add_done_callback(holding.discard)
                continue
            await self._answer(ws, conn, text)

    async def _answer_once(
        self, ws: ServerConnection, conn: Connection, text: str, gate: asyncio.Event
    ) -> None:
        await gate.wait()
        with contextlib.suppress(Exception):  # the charger may have gone meanwhile
            await self._answer(ws, conn, text)

    async def _answer(self, ws: ServerConnection, conn: Connection, text: str) -> None:
        received = conn.receive(text)
        if received.reply is not None:
            self.frames.append(("out", _frame(received.reply)))
            await ws.send(received.reply)
        for outcome in received.outcomes:
            fut = self._waiting.pop(outcome.unique_id, None)
            if fut is not None and not fut.done():
                fut.set_result(outcome)

    async def command(self, action: str, payload: dict[str, Any], timeout_s: float = 5.0) -> Outcome:
        """Send a command to the charger (schema-checked) and wait for its answer."""
        assert self._ws is not None and self._conn is not None
        loop = asyncio.get_running_loop()
        uid, text = self._conn.call(action, payload, loop.time())
        fut: asyncio.Future[Outcome] = loop.create_future()
        self._waiting[uid] = fut
        self.frames.append(("out", _frame(text)))
        await self._ws.send(text)
        return await asyncio.wait_for(fut, timeout_s)


def _frame(text: str) -> list[Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        return [0, "", text]  # not JSON: kept as text
    return parsed if isinstance(parsed, list) else [0, "", text]


@contextlib.asynccontextmanager
async def fake_csms(version: OcppVersion) -> AsyncIterator[FakeCsms]:
    csms = FakeCsms(version)
    async with serve(csms._serve, "127.0.0.1", 0, subprotocols=["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]) as server:  # type: ignore[list-item]
        csms.server = server
        yield csms
