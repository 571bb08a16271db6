"""The load generator for `bench ocpp`: light OCPP 1.6J chargers made of a raw websocket and pre-built
frames (not the virtual charger, whose firmware model would cost more CPU than the server under test).

It runs in its own process (`load_process`), so the server and the chargers never share an event loop.
Every loop is bounded by a message count and a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import resource
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from chargeshare.benchmarks.stats import Latency
from chargeshare.entrypoints.serving import tune_gc_for_serving

SUBPROTOCOL = "ocpp1.6"
CONNECT_CONCURRENCY = 50  # handshakes in flight at once: well inside both servers' listen backlogs
CONNECT_ATTEMPTS = 3
OPEN_TIMEOUT_S = 30.0
SETUP_CONCURRENCY = 100  # chargers booting at once: setup is not measured and must not time out
# Generous: in the throughput phase every charger has a call queued, so a slow server answers late.
REPLY_TIMEOUT_S = 120.0
SETUP_TIMEOUT_S = 600.0
CLOSE_TIMEOUT_S = 30.0
METER_STEP_WH = 10  # per MeterValues; far below any booking's energy limit over a bounded run
# The throughput mix, repeated: MeterValues mostly, with a Heartbeat and a StatusNotification.
MIX = ("MeterValues",) * 8 + ("Heartbeat", "StatusNotification")
# The slow-provider phase's steady load: each charger alternates a reading and a heartbeat.
STEADY_MIX = ("MeterValues", "Heartbeat")


@dataclass(frozen=True)
class ChargerPlan:
    """One charger of the load: the id it connects with and the tag it starts its transaction with."""

    cp_id: str
    id_tag: str
    charger_id: int = 0  # the database's id, for the operator API (`bench ocpp --processes`)


@dataclass(frozen=True)
class LoadParams:
    messages: int  # throughput phase, in total over all chargers
    throughput_limit_s: float
    paced_seconds: float
    pace_interval_s: float
    # The slow-provider phase (0: none): `stoppers` chargers stop their transactions, and the others'
    # acknowledgements are measured for `slow_seconds` before and `slow_seconds` after the stops.
    slow_seconds: float = 0.0
    stoppers: int = 0


@dataclass
class PhaseResult:
    """One timed phase, as the chargers saw it."""

    sent: int = 0
    answered: int = 0  # a CALLRESULT for our call
    call_errors: int = 0  # a CALLERROR for our call
    failures: int = 0  # no answer in time, or the link dropped
    wall_s: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    by_action: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        lat = Latency.of_ns(self.latencies_ns) if self.latencies_ns else Latency(0, 0.0, 0.0)
        return {
            "sent": self.sent,
            "answered": self.answered,
            "call_errors": self.call_errors,
            "failures": self.failures,
            "wall_s": round(self.wall_s, 3),
            "round_trips_per_s": round(self.answered / self.wall_s, 1) if self.wall_s > 0 else 0.0,
            "p50_ms": round(lat.p50_ms, 3),
            "p99_ms": round(lat.p99_ms, 3),
            "by_action": dict(sorted(self.by_action.items())),
        }


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Frame:
    action: str
    unique_id: str
    text: str
    register_wh: int | None = None  # the reading a MeterValues carries


class LightCharger:
    """One charger: a websocket, a message counter and a meter register. One call in flight at a time."""

    def __init__(self, plan: ChargerPlan, ws: ClientConnection) -> None:
        self.plan, self.ws = plan, ws
        self.seq = 0
        self.register_wh = 0
        self.acked_register_wh = 0
        self.transaction_id: int | None = None
        self.server_calls = 0
        self.commands_answered = 0  # server calls answered with a CALLRESULT (TriggerMessage)
        self.broken = False

    def custom(self, action: str, payload: str) -> Frame:
        self.seq += 1
        uid = f"{self.plan.cp_id}-{self.seq}"
        return Frame(action, uid, f'[2,"{uid}","{action}",{payload}]')

    def stop(self, stamp: str) -> Frame:
        """StopTransaction at the register's present reading (the last one acknowledged)."""
        payload = (
            f'{{"transactionId":{self.transaction_id},"meterStop":{self.register_wh},"timestamp":"{stamp}"}}'
        )
        custom = self.custom("StopTransaction", payload)
        return Frame(custom.action, custom.unique_id, custom.text, self.register_wh)

    def frame(self, action: str, stamp: str) -> Frame:
        """The next call; MeterValues advance the register."""
        self.seq += 1
        uid = f"{self.plan.cp_id}-{self.seq}"
        register: int | None = None
        if action == "MeterValues":
            self.register_wh += METER_STEP_WH
            payload = (
                f'{{"connectorId":1,"transactionId":{self.transaction_id},"meterValue":[{{"timestamp":'
                f'"{stamp}","sampledValue":[{{"value":"{self.register_wh}",'
                f'"measurand":"Energy.Active.Import.Register","unit":"Wh"}}]}}]}}'
            )
            register = self.register_wh
        elif action == "Heartbeat":
            payload = "{}"
        elif action == "StatusNotification":
            payload = f'{{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"{stamp}"}}'
        else:
            raise ValueError(f"no pre-built frame for {action}")
        return Frame(action, uid, f'[2,"{uid}","{action}",{payload}]', register)

    async def call(self, f: Frame, phase: PhaseResult, due_ns: int | None = None) -> dict[str, Any] | None:
        """Send one call and wait (bounded) for its answer; records the latency in `phase`: from
        `due_ns` (`perf_counter_ns`), when the call was due to be sent, if it was sent later, so a
        late send counts against the figure rather than hiding it; otherwise from the send."""
        phase.sent += 1
        phase.by_action[f.action] += 1
        started = time.perf_counter_ns()
        if due_ns is not None:
            started = min(started, due_ns)
        try:
            await self.ws.send(f.text)
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                while True:
                    raw = await self.ws.recv()
                    ended = time.perf_counter_ns()
                    msg = json.loads(raw)
                    if msg[0] == 2:  # a command from the central system: answer it and keep waiting
                        await self.answer(msg)
                        continue
                    if msg[1] != f.unique_id:
                        continue
                    break
        except (TimeoutError, WebSocketException, OSError):
            phase.failures += 1
            self.broken = True
            return None
        phase.latencies_ns.append(ended - started)
        if msg[0] == 3:
            phase.answered += 1
            if f.register_wh is not None:
                self.acked_register_wh = f.register_wh
            result: dict[str, Any] = msg[2]
            return result
        phase.call_errors += 1
        return None

    async def answer(self, msg: list[Any]) -> None:
        """Answer a call from the central system: a TriggerMessage is accepted (the cheapest real
        answer), anything else refused with a CALLERROR."""
        self.server_calls += 1
        if msg[2] == "TriggerMessage":
            self.commands_answered += 1
            await self.ws.send(json.dumps([3, msg[1], {"status": "Accepted"}]))
        else:
            await self.ws.send(json.dumps([4, msg[1], "NotImplemented", "bench charger", {}]))

    async def listen(self, until: float) -> None:
        """While no call of ours is in flight: answer the central system's calls until the monotonic
        deadline `until` (or the link drops, or the task is cancelled)."""
        with contextlib.suppress(TimeoutError, WebSocketException, OSError):
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                while True:
                    msg = json.loads(await self.ws.recv())
                    if msg[0] == 2:
                        await self.answer(msg)


async def _connect(url: str, plan: ChargerPlan) -> ClientConnection:
    last: Exception | None = None
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return await connect(
                f"{url}/{plan.cp_id}",
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                compression=None,  # the same uncompressed frames for both servers
                open_timeout=OPEN_TIMEOUT_S,
                ping_interval=None,  # each server pings on its own defaults
                proxy=None,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            last = exc
            await asyncio.sleep(0.5 * (attempt + 1))
    raise ConnectionError(f"{plan.cp_id} could not connect: {last!r}")


async def connect_all(url: str, plans: Sequence[ChargerPlan]) -> tuple[list[LightCharger], list[str]]:
    """Open every link, at most CONNECT_CONCURRENCY handshakes at a time. Returns chargers and failures."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failed: list[str] = []

    async def one(plan: ChargerPlan) -> LightCharger | None:
        async with gate:
            try:
                return LightCharger(plan, await _connect(url, plan))
            except ConnectionError as exc:
                failed.append(str(exc))
                return None

    got = await asyncio.gather(*(one(p) for p in plans))
    return [c for c in got if c is not None], failed


async def setup(chargers: Sequence[LightCharger]) -> PhaseResult:
    """Boot, report the car plugged in, start a transaction, report Charging: what a charger says
    before it sends readings. The status before the start places the link's clock, as a real
    charger's does; without it the server asks for the connector's status after the start."""
    phase = PhaseResult()
    stamp = _now_iso()

    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(c: LightCharger) -> None:
        boot = '{"chargePointVendor":"ChargeShare","chargePointModel":"bench"}'
        start = f'{{"connectorId":1,"idTag":"{c.plan.id_tag}","meterStart":0,"timestamp":"{stamp}"}}'
        plugged = f'{{"connectorId":1,"errorCode":"NoError","status":"Preparing","timestamp":"{stamp}"}}'
        async with gate:
            await c.call(c.custom("BootNotification", boot), phase)
            await c.call(c.custom("StatusNotification", plugged), phase)
            result = await c.call(c.custom("StartTransaction", start), phase)
            if result is not None and result.get("idTagInfo", {}).get("status") == "Accepted":
                c.transaction_id = int(result["transactionId"])
            await c.call(c.frame("StatusNotification", stamp), phase)

    started = time.perf_counter()
    async with asyncio.timeout(SETUP_TIMEOUT_S):
        await asyncio.gather(*(one(c) for c in chargers))
    phase.wall_s = time.perf_counter() - started
    return phase


async def throughput(chargers: Sequence[LightCharger], messages: int, limit_s: float) -> PhaseResult:
    """Every charger sends its next frame as soon as the previous one is answered."""
    phase = PhaseResult()
    stamp = _now_iso()
    share, extra = divmod(messages, len(chargers))
    # Pre-built before the clock starts: the load generator should cost as little as possible.
    frames = [
        [c.frame(MIX[(i + k) % len(MIX)], stamp) for k in range(share + (i < extra))]
        for i, c in enumerate(chargers)
    ]
    deadline = time.monotonic() + limit_s

    async def one(c: LightCharger, own: list[Frame]) -> None:
        for f in own:
            if c.broken or time.monotonic() > deadline:
                return
            await c.call(f, phase)

    started = time.perf_counter()
    await asyncio.gather(*(one(c, own) for c, own in zip(chargers, frames, strict=True)))
    phase.wall_s = time.perf_counter() - started
    return phase


async def paced(chargers: Sequence[LightCharger], seconds: float, interval_s: float) -> PhaseResult:
    """Each charger sends one MeterValues every `interval_s`, staggered evenly, for `seconds`."""
    return await _scheduled(chargers, seconds, interval_s, ("MeterValues",), lead_s=0.5)


async def steady(chargers: Sequence[LightCharger], seconds: float, interval_s: float) -> PhaseResult:
    """Each charger sends one frame every `interval_s` (STEADY_MIX in turn), staggered evenly, for
    `seconds`."""
    return await _scheduled(chargers, seconds, interval_s, STEADY_MIX, lead_s=0.1)


async def _scheduled(
    chargers: Sequence[LightCharger], seconds: float, interval_s: float, mix: Sequence[str], lead_s: float
) -> PhaseResult:
    """Charger i's k-th frame is due at a fixed instant (t0 + (i/n + k) * interval), whatever happened
    before it, and its latency runs from that instant: a reading sent late because this process
    lagged (or its previous call was slow) is measured from when it was due, not from its send."""
    phase = PhaseResult()
    t0_ns = time.perf_counter_ns() + round(lead_s * 1e9)
    end_ns = t0_ns + round(seconds * 1e9)
    interval_ns = round(interval_s * 1e9)
    n = len(chargers)

    async def one(i: int, c: LightCharger) -> None:
        due_ns = t0_ns + interval_ns * i // n
        k = i
        while due_ns < end_ns and not c.broken:
            await asyncio.sleep(max(0, due_ns - time.perf_counter_ns()) / 1e9)
            await c.call(c.frame(mix[k % len(mix)], _now_iso()), phase, due_ns)
            due_ns += interval_ns
            k += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i, c) for i, c in enumerate(chargers)))
    phase.wall_s = time.perf_counter() - started
    return phase


async def slow_provider(
    chargers: Sequence[LightCharger], stoppers: int, seconds: float, interval_s: float
) -> dict[str, Any]:
    """The other chargers' acknowledgements before and while captures are stuck at a slow provider.

    The last `stoppers` chargers stop their transactions at once between the two halves; each stop
    queues a capture, which the server's provider answers only after `seconds`. The rest keep up the
    same steady load throughout, so the two halves differ only in the captures in flight."""
    others, stopping = chargers[: len(chargers) - stoppers], chargers[len(chargers) - stoppers :]
    before = await steady(others, seconds, interval_s)
    stops = PhaseResult()
    stamp = _now_iso()
    started = time.perf_counter()
    await asyncio.gather(*(c.call(c.stop(stamp), stops) for c in stopping if c.transaction_id is not None))
    stops.wall_s = time.perf_counter() - started
    during = await steady(others, seconds, interval_s)
    return {
        "stoppers": len(stopping),
        "measured_chargers": len(others),
        "stops": stops.summary(),
        "before": before.summary(),
        "during": during.summary(),
    }


async def close_all(chargers: Sequence[LightCharger]) -> None:
    async def one(c: LightCharger) -> None:
        with contextlib.suppress(Exception):
            await c.ws.close()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await asyncio.gather(*(one(c) for c in chargers))


class SelfWatch:
    """How long this process itself stood still while it timed the server: its garbage collections
    (from `gc.callbacks`) and its event loop's lateness in waking a task every LAG_STEP_S. A reading
    due while this process stood still is sent late, and counted from when it was due: these say how
    much of a tail is the load generator's."""

    LAG_STEP_S = 0.01

    def __init__(self) -> None:
        self.gc_pauses_ns: list[int] = []
        self.max_lag_s = 0.0
        self._gc_started = 0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter_ns()
        else:
            self.gc_pauses_ns.append(time.perf_counter_ns() - self._gc_started)

    async def _watch_loop(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.LAG_STEP_S)
            self.max_lag_s = max(self.max_lag_s, time.perf_counter() - asked - self.LAG_STEP_S)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        gc.callbacks.append(self._on_gc)
        task = asyncio.create_task(self._watch_loop())
        try:
            yield
        finally:
            task.cancel()
            gc.callbacks.remove(self._on_gc)

    def figures(self) -> dict[str, Any]:
        return {
            "gc_collections": len(self.gc_pauses_ns),
            "gc_pause_max_ms": round(max(self.gc_pauses_ns, default=0) / 1e6, 3),
            "gc_pause_total_ms": round(sum(self.gc_pauses_ns) / 1e6, 3),
            "loop_lag_max_ms": round(self.max_lag_s * 1e3, 3),
        }


async def run_load(
    url: str, plans: Sequence[ChargerPlan], params: LoadParams, say: Callable[[str], None]
) -> dict[str, Any]:
    """Connect, set up, then the throughput and paced phases; the figures as a plain dict."""
    started = time.perf_counter()
    chargers, failed = await connect_all(url, plans)
    connect_s = time.perf_counter() - started
    say(f"{len(chargers):,} connected in {connect_s:.1f} s" + (f", {len(failed)} failed" if failed else ""))
    report: dict[str, Any] = {
        "connected": len(chargers),
        "connect_failures": failed[:5],
        "connect_s": round(connect_s, 2),
    }
    try:
        if failed:
            return report
        setup_phase = await setup(chargers)
        report["setup"] = setup_phase.summary()
        say(f"set up ({setup_phase.answered:,} calls answered) in {setup_phase.wall_s:.1f} s")
        # The links now live to the end: as in the server, keep the collector from rescanning them,
        # so its pauses here do not land in the figures as the server's latency.
        tune_gc_for_serving()
        report["gc_frozen_objects"] = gc.get_freeze_count()
        await _phase(
            report, "throughput", say, throughput(chargers, params.messages, params.throughput_limit_s)
        )
        if params.paced_seconds > 0:
            await _phase(report, "paced", say, paced(chargers, params.paced_seconds, params.pace_interval_s))
        if params.slow_seconds > 0 and 0 < params.stoppers < len(chargers):
            interval = min(params.pace_interval_s, params.slow_seconds)  # every charger sends in each half
            slow = await slow_provider(chargers, params.stoppers, params.slow_seconds, interval)
            report["slow_provider"] = slow
            b, d = slow["before"], slow["during"]
            say(
                f"slow provider: {slow['stops']['answered']} stops answered; the other chargers' p50/p99 "
                f"{b['p50_ms']:.1f}/{b['p99_ms']:.1f} ms before, {d['p50_ms']:.1f}/{d['p99_ms']:.1f} ms "
                "with captures stuck"
            )
        report["transactions"] = sum(c.transaction_id is not None for c in chargers)
        report["acked_registers"] = {
            c.plan.cp_id: [c.transaction_id, c.acked_register_wh] for c in chargers if c.transaction_id
        }
        report["server_calls"] = sum(c.server_calls for c in chargers)
    finally:
        await close_all(chargers)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    return report


async def _phase(
    report: dict[str, Any], name: str, say: Callable[[str], None], run: Awaitable[PhaseResult]
) -> None:
    watch = SelfWatch()
    async with watch.watching():
        result = await run
    report[name] = s = {**result.summary(), "load_generator": watch.figures()}
    own = s["load_generator"]
    say(
        f"{name}: {s['answered']:,} answered, {s['round_trips_per_s']:,.0f}/s, "
        f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms; load generator: loop late by at most "
        f"{own['loop_lag_max_ms']:.1f} ms, longest collection {own['gc_pause_max_ms']:.1f} ms"
    )


T = TypeVar("T")


def run_on_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop when installed (what uvicorn's "auto" picks for `chargeshare serve`), else asyncio.

    Both servers and the load generator run on it, so the event loop is not what differs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def load_process(url: str, plans: list[ChargerPlan], params: LoadParams, pipe: Connection) -> None:
    """Entry point of the load generator's process: figures (or an error) go back over `pipe`."""
    try:
        report = run_on_loop(run_load(url, plans, params, lambda text: pipe.send(("progress", text))))
        pipe.send(("done", report))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()
