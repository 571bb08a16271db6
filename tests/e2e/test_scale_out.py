"""Three `chargeshare serve` processes on one PostgreSQL and one Redis, as a deployment behind a load
balancer runs them: a charger connected to A gets the ReserveNow for a booking made through B and the
CancelReservation for its cancellation through C; an operator's commands through C reach it; a login
limit holds across the three; a charger that reconnects through B stays online when A's old link
closes, and goes offline when its last link does.

Also measures the round trip of an operator command (HTTP to the admin API, the charger's answer, and
back) through the process holding the link and through another one (printed; see `-s`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16

from chargeshare.bootstrap import Config, build
from tests.api_helpers import PASSWORD, Caller, admin, driver
from tests.conftest import REDIS_URL, add_charger
from tests.e2e.conftest import OnLoopback
from tests.e2e.ocpp_clients import LibraryCp16, Script, boot16, library_cp16
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "one token secret for every process of the deployment"
STARTUP_S = 60.0  # three interpreters importing the backend at once, on two shared cores
COMMANDS_MEASURED = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serve(OnLoopback):
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def processes(
    database_url: str, tmp_path: Path, names: str, env_of: dict[str, dict[str, str]] | None = None
) -> Iterator[list[Serve]]:
    """One `serve` per name; `env_of` adds settings of its own to a process (a failpoint, say)."""
    env = {
        **os.environ,
        "CHARGESHARE_DATABASE_URL": database_url,
        "CHARGESHARE_REDIS_URL": REDIS_URL,
        "CHARGESHARE_JWT_SECRET": SECRET,
        "CHARGESHARE_PASSWORD_HASH": "fast",
        "PYTHONPATH": str(ROOT),
    }
    started: list[Serve] = []
    try:
        for name in names:
            port, log = free_port(), tmp_path / f"serve-{name}.log"
            command = [sys.executable, "-m", "chargeshare", "serve", "--port", str(port)]
            command += ["--log-level", "warning", "--known-chargers-only"]
            own_env = {**env, **(env_of or {}).get(name, {})}
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=own_env, stdout=out, stderr=subprocess.STDOUT
                )
            started.append(Serve(name, port, process, log))
        yield started
    finally:
        for s in started:
            s.process.terminate()
        for s in started:
            try:
                s.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                s.process.kill()
                s.process.wait(timeout=5)


async def wait_healthy(nodes: list[Serve]) -> None:
    """Poll /health until every process answers (bounded); a process that exits fails at once."""
    deadline = time.monotonic() + STARTUP_S
    async with httpx.AsyncClient(timeout=2) as http:
        for node in nodes:
            while True:
                if node.process.poll() is not None:
                    pytest.fail(f"serve {node.name} exited: {node.output()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{node.http}/health")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"serve {node.name} not healthy within {STARTUP_S} s: {node.output()}")
                await asyncio.sleep(0.1)


@dataclass
class World:
    charger_id: int
    driver: Caller
    ops: Caller


@pytest.fixture
def world(postgres_url: str, redis_client: object) -> World:
    """The schema, a charger with one connector, a driver and an operator, made before any process
    starts; their tokens are good on every process (one secret)."""
    app = build(Config(database_url=postgres_url, jwt_secret=SECRET, password_hash="fast"))
    try:
        return World(add_charger(app, "CP1", online=False), driver(app, "Dana", "TAG-DANA"), admin(app))
    finally:
        app.close()


@pytest.fixture
async def abc(postgres_url: str, world: World, tmp_path: Path) -> AsyncIterator[list[Serve]]:
    with processes(postgres_url, tmp_path, "ABC") as nodes:
        await wait_healthy(nodes)
        yield nodes


async def available(cp: LibraryCp16) -> None:
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))


async def charger_status(http: httpx.AsyncClient, ops: Caller) -> str:
    listed = (await http.get("/admin/chargers", headers=ops.headers)).json()
    return str(next(c["status"] for c in listed if c["charge_point_id"] == "CP1"))


async def command_round_trips(http: httpx.AsyncClient, world: World, n: int) -> list[float]:
    url = f"/admin/chargers/{world.charger_id}/commands"
    body: dict[str, Any] = {"action": "GetSettings", "payload": {"keys": [{"name": "HeartbeatInterval"}]}}
    took = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await http.post(url, json=body, headers=world.ops.headers)
        took.append(time.perf_counter() - t0)
        assert r.status_code == 200 and r.json()["result"] == "done", r.text
    return took


def summary(label: str, took: list[float]) -> str:
    ms = sorted(t * 1000 for t in took)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"{label}: n={len(ms)} p50={statistics.median(ms):.1f} ms p99={p99:.1f} ms max={ms[-1]:.1f} ms"


async def test_three_processes_serve_as_one(abc: list[Serve], world: World) -> None:
    """One start of three processes (the slow part) for both stories."""
    await commands_and_limits_are_shared(abc, world)
    await a_charger_reconnecting_through_another_process_stays_online(abc, world)


async def commands_and_limits_are_shared(abc: list[Serve], world: World) -> None:
    a, b, c = abc
    script = Script()
    async with (
        library_cp16(a.ws, "CP1", script) as cp,
        httpx.AsyncClient(base_url=b.http, timeout=10) as on_b,
        httpx.AsyncClient(base_url=c.http, timeout=10) as on_c,
        httpx.AsyncClient(base_url=a.http, timeout=10) as on_a,
    ):
        await boot16(cp)
        await available(cp)

        # A booking through B, starting soon: the ReserveNow goes out through A, which holds the link.
        starts = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
        body = {"charger_id": world.charger_id, "minutes": 60, "max_energy_wh": 10_000, "starts_at": starts}
        r = await on_b.post("/bookings", json=body, headers=world.driver.headers)
        assert r.status_code == 201, r.text
        booking_id = r.json()["id"]
        await eventually(lambda: bool(script.asked("ReserveNow")), "ReserveNow at the charger on A")
        assert script.asked("ReserveNow")[0]["reservation_id"] == booking_id

        async def reservation() -> str:
            got = await on_c.get(f"/bookings/{booking_id}", headers=world.driver.headers)
            return str(got.json()["reservation"])

        await until(reservation, "accepted", "the charger's answer written (by B, which waited for it)")

        # Cancelled through C: the CancelReservation goes out through A too.
        r = await on_c.post(f"/bookings/{booking_id}/cancel", headers=world.driver.headers)
        assert r.status_code == 200, r.text
        await eventually(lambda: bool(script.asked("CancelReservation")), "CancelReservation on A")
        assert script.asked("CancelReservation") == [{"reservation_id": booking_id}]

        # An operator's command, through the process holding the link and through another one.
        local = await command_round_trips(on_a, world, COMMANDS_MEASURED)
        routed = await command_round_trips(on_c, world, COMMANDS_MEASURED)
        print("\n" + summary("operator command via A (holds the link)", local))
        print(summary("operator command via C (routed through Redis to A)", routed))

        # Five logins per account, wherever they land; the sixth is refused on any process.
        login = {"email": world.driver.email, "password": PASSWORD}
        for http in (on_a, on_b, on_c, on_a, on_b):
            assert (await http.post("/auth/login", json=login)).status_code == 200
        refused = await on_c.post("/auth/login", json=login)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


async def a_charger_reconnecting_through_another_process_stays_online(abc: list[Serve], world: World) -> None:
    a, b, c = abc
    async with (
        httpx.AsyncClient(base_url=c.http, timeout=10) as on_c,
        httpx.AsyncClient(base_url=a.http, timeout=10) as on_a,
    ):

        async def status() -> str:
            return await charger_status(on_c, world.ops)

        async def connected_to_a() -> int:
            return int((await on_a.get("/health")).json()["chargers_connected"])

        async with library_cp16(a.ws, "CP1") as old:
            await boot16(old)
            assert await status() == "online"
            script = Script()
            async with library_cp16(b.ws, "CP1", script) as new:
                await boot16(new)
                # B's claim makes A close its stale link; A's close must not mark it offline.
                await until(lambda: connected_to_a(), 0, "A's old link closed")
                await old._connection.close()
                assert await status() == "online"
                r = await on_c.post(
                    f"/admin/chargers/{world.charger_id}/commands",
                    json={"action": "TriggerMessage", "payload": {"message": "Heartbeat"}},
                    headers=world.ops.headers,
                )
                assert r.json()["result"] == "done", r.text
                assert script.asked("TriggerMessage") == [{"requested_message": "Heartbeat"}]
            await until(status, "offline", "offline once its last link closed")


async def until(read: Callable[[], Awaitable[object]], want: object, what: str) -> None:
    """Poll an HTTP read (bounded) until it gives `want`."""
    for _ in range(200):
        if await read() == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")
