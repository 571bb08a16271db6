"""The two central systems `bench ocpp` compares, each run in a process of its own.

- **ours**: what `chargeshare serve` runs: uvicorn (same settings) serving `create_api(build(config))`,
  with persistence on (the SQLite file or PostgreSQL database the bench prepared).
- **baseline**: a central system built the way the `ocpp` library's documentation shows, on its
  defaults: an `ocpp.v16.ChargePoint` subclass with `@on` handlers, served by `websockets.serve`.
  Its work per message is bookkeeping in memory (last seen, connector status, transactions and their
  latest reading): it persists nothing.

Both processes report "ready" with their port over a pipe, then serve until the parent says "stop".
For the slow-provider phase, ours' payment provider answers every capture only after a delay
(`SlowCaptures`), and its report says how many it was asked for and on which threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from chargeshare.benchmarks.ocpp_load import run_on_loop
from chargeshare.services.ports import HoldResult, PaymentGateway

POLL_S = 0.2
SERVER_EXIT_TIMEOUT_S = 30.0


def _rss_bytes() -> int:
    """This process's resident memory now (Linux); its peak so far elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryWatch:
    """Resident memory when the server is ready (no charger yet) and its peak while serving, so
    the growth can be put per connected charger."""

    def __init__(self) -> None:
        self.ready = self.peak = _rss_bytes()

    def sample(self) -> None:
        self.peak = max(self.peak, _rss_bytes())

    def figures(self) -> dict[str, int]:
        return {"rss_ready_bytes": self.ready, "rss_peak_bytes": self.peak}


async def _until_stopped(pipe: Connection, memory: MemoryWatch | None = None) -> None:
    while not pipe.poll():
        if memory is not None:
            memory.sample()
        await asyncio.sleep(POLL_S)
    pipe.recv()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- ours -------------------------------------------------------------------------------------------
class SlowCaptures:
    """The payment provider, except that it answers a capture only `delay_s` after being asked, and
    counts the captures asked on the server's event loop thread (which must be none)."""

    def __init__(self, inner: PaymentGateway, delay_s: float, loop_thread: int) -> None:
        self.inner, self.delay_s, self.loop_thread = inner, delay_s, loop_thread
        self._lock = threading.Lock()
        self.asked = self.answered = self.on_event_loop = 0

    def authorize(self, *, amount: int, customer: str, idempotency_key: str) -> HoldResult:
        return self.inner.authorize(amount=amount, customer=customer, idempotency_key=idempotency_key)

    def release(self, *, reference: str, idempotency_key: str) -> None:
        self.inner.release(reference=reference, idempotency_key=idempotency_key)

    def capture(self, *, reference: str, amount: int, idempotency_key: str) -> None:
        with self._lock:
            self.asked += 1
            self.on_event_loop += threading.get_ident() == self.loop_thread
        time.sleep(self.delay_s)
        self.inner.capture(reference=reference, amount=amount, idempotency_key=idempotency_key)
        with self._lock:
            self.answered += 1

    def figures(self) -> dict[str, Any]:
        with self._lock:
            return {
                "delay_s": self.delay_s,
                "asked": self.asked,
                "answered": self.answered,
                "on_event_loop": self.on_event_loop,
            }


async def _serve_ours(database_url: str, pipe: Connection, capture_delay_s: float) -> dict[str, Any]:
    import uvicorn

    from chargeshare.bootstrap import Config, build
    from chargeshare.entrypoints.api import create_api
    from chargeshare.entrypoints.serving import tune_gc_for_serving
    from chargeshare.entrypoints.spread_pings import SpreadPingsProtocol
    from chargeshare.ocpp.frames import MAX_FRAME_BYTES

    app = build(Config(database_url=database_url), create_schema=False)
    slow: SlowCaptures | None = None
    if capture_delay_s > 0:
        slow = SlowCaptures(app.settlement.gateway, capture_delay_s, threading.get_ident())
        app.settlement.gateway = slow
    # The same settings as `chargeshare serve` (cli/serve.py), on an OS-chosen loopback port.
    api = create_api(app)
    tune_gc_for_serving()
    config = uvicorn.Config(
        api,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ws=SpreadPingsProtocol,
        ws_max_size=MAX_FRAME_BYTES,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        port = int(server.servers[0].sockets[0].getsockname()[1])
        memory = MemoryWatch()
        pipe.send(("ready", port))
        await _until_stopped(pipe, memory)
        cpu = _cpu_s()
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, SERVER_EXIT_TIMEOUT_S)
        app.close()
    held: dict[str, Any] = {"cpu_s": round(cpu, 2), **memory.figures()}
    if slow is not None:
        held["captures"] = slow.figures()
    return held


def ours_process(database_url: str, pipe: Connection, capture_delay_s: float = 0.0) -> None:
    _run(pipe, lambda: _serve_ours(database_url, pipe, capture_delay_s))


# ---- baseline ---------------------------------------------------------------------------------------
@dataclass
class BaselineState:
    """What the baseline keeps per message, in memory."""

    handled: Counter[str] = field(default_factory=Counter)
    last_seen: dict[str, datetime] = field(default_factory=dict)
    connector_status: dict[tuple[str, int], str] = field(default_factory=dict)
    readings: dict[int, int] = field(default_factory=dict)  # transaction id -> latest Wh
    transaction_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def _register_wh(meter_value: list[dict[str, Any]]) -> int | None:
    """The latest energy register reading, as our handler reads it (Wh or kWh, no phases)."""
    reading = None
    for mv in meter_value:
        for sv in mv.get("sampled_value", []):
            if sv.get("measurand", "Energy.Active.Import.Register") != "Energy.Active.Import.Register":
                continue
            if sv.get("phase"):
                continue
            value = float(sv["value"])
            reading = round(value * 1000) if sv.get("unit", "Wh") == "kWh" else round(value)
    return reading


def baseline_charge_point_class() -> type[Any]:
    """Built on first use, so importing this module does not import the `ocpp` library's routing."""
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

    def now_iso() -> str:
        return datetime.now(UTC).isoformat()

    class BaselineChargePoint(ChargePoint):  # type: ignore[misc]
        state: BaselineState

        def seen(self, action: str) -> None:
            self.state.handled[action] += 1
            self.state.last_seen[self.id] = datetime.now(UTC)

        @on(Action.boot_notification)  # type: ignore[untyped-decorator]
        def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
            self.seen("BootNotification")
            return call_result.BootNotification(
                current_time=now_iso(), interval=300, status=RegistrationStatus.accepted
            )

        @on(Action.heartbeat)  # type: ignore[untyped-decorator]
        def on_heartbeat(self) -> Any:
            self.seen("Heartbeat")
            return call_result.Heartbeat(current_time=now_iso())

        @on(Action.status_notification)  # type: ignore[untyped-decorator]
        def on_status(self, connector_id: int, error_code: str, status: str, **_: Any) -> Any:
            self.seen("StatusNotification")
            self.state.connector_status[(self.id, connector_id)] = status
            return call_result.StatusNotification()

        @on(Action.start_transaction)  # type: ignore[untyped-decorator]
        def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any) -> Any:
            self.seen("StartTransaction")
            tx = next(self.state.transaction_ids)
            self.state.readings[tx] = meter_start
            return call_result.StartTransaction(
                transaction_id=tx, id_tag_info={"status": AuthorizationStatus.accepted}
            )

        @on(Action.meter_values)  # type: ignore[untyped-decorator]
        def on_meter(self, connector_id: int, meter_value: list[dict[str, Any]], **kw: Any) -> Any:
            self.seen("MeterValues")
            tx, register = kw.get("transaction_id"), _register_wh(meter_value)
            if tx in self.state.readings and register is not None:
                self.state.readings[tx] = register
            return call_result.MeterValues()

    return BaselineChargePoint


async def _serve_baseline(pipe: Connection) -> dict[str, Any]:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    cls = baseline_charge_point_class()
    state = BaselineState()

    async def on_connect(ws: ServerConnection) -> None:
        assert ws.request is not None
        cp = cls(ws.request.path.rstrip("/").rsplit("/", 1)[-1], ws)
        cp.state = state
        with contextlib.suppress(ConnectionClosed):
            await cp.start()

    # The library's defaults throughout (the tuned variant changes its validation only); only the
    # address and the subprotocol are ours to choose.
    async with serve(on_connect, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        memory = MemoryWatch()
        pipe.send(("ready", port))
        await _until_stopped(pipe, memory)
        cpu = _cpu_s()
    return {
        "cpu_s": round(cpu, 2),
        "handled": dict(state.handled),
        "readings": state.readings,
        **memory.figures(),
    }


def baseline_process(pipe: Connection) -> None:
    _run(pipe, lambda: _serve_baseline(pipe))


def tuned_baseline_process(pipe: Connection) -> None:
    """The same central system at the library's best settings: its schema validation run on the
    event loop rather than handed to a thread pool per message (as its documentation advises for
    throughput), on uvloop like every server here."""
    import ocpp.messages

    ocpp.messages.ASYNC_VALIDATION = False
    _run(pipe, lambda: _serve_baseline(pipe))


def _run(pipe: Connection, serve: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    try:
        pipe.send(("done", run_on_loop(serve())))
    except Exception as exc:
        with contextlib.suppress(OSError):
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()
