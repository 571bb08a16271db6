"""The crash-point harness: the real `chargeshare serve` in a process of its own, started on a database
with a failpoint armed, watched until it dies there (exit 86), and restarted on the same database and
port without it. Beside it: a charger speaking OCPP 1.6J over a real WebSocket that knows which of its
calls went unanswered, and the test process's own view of the database for preparing the world and
for the checks once the restarted server has recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import websockets
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.ledger import JournalEntry
from chargeshare.domain.tariff import Tariff
from chargeshare.failpoints import EXIT_CODE
from chargeshare.services.invariants import check_store, provider_agrees_with_ledger
from chargeshare.services.records import BookingRecord, OutboxItem
from tests import api_helpers
from tests.api_helpers import Caller
from tests.e2e.ocpp_clients import LibraryCp16, Script

T = TypeVar("T")

# The checkout these tests belong to: its code is what the server process runs.
ROOT = Path(__file__).resolve().parents[2]

# What every server is started with, and the test process builds its own view with. Tokens the test
# issues must verify in the server (one secret), and a step or hold placement held by a process that
# died is taken over a second after its lease, not the two minutes a production lease lasts. The
# booking lock would be an in-process fakeredis, gone with the process anyway (the database guards
# bookings either way), and building it is a good part of a start's cost.
SERVER_ENV = {
    "CHARGESHARE_JWT_SECRET": "crash-tests-sign-tokens-with-this-secret",
    "CHARGESHARE_PASSWORD_HASH": "fast",
    "CHARGESHARE_HASH_WORKERS": "1",
    "CHARGESHARE_LOCKS": "off",
    "CHARGESHARE_PAYMENT_LEASE_S": "1",
    "CHARGESHARE_HOLD_PLACEMENT_TIMEOUT_S": "1",
}
CONFIG = Config.from_env(SERVER_ENV)

# Bounds, not expectations: a loaded two-core machine may take seconds over what is quick when idle.
START_WITHIN_S = 60.0  # imports and the schema check
EXIT_WITHIN_S = 30.0
RECOVER_WITHIN_S = 30.0
ANSWER_WITHIN_S = 30.0  # one HTTP request or OCPP call
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def poll(check: Callable[[], Awaitable[T | None]], what: str, within_s: float) -> T:
    """Wait (bounded) until `check` gives something other than None, and return it."""
    deadline = time.monotonic() + within_s
    while True:
        found = await check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def until(check: Callable[[], bool], what: str, within_s: float = RECOVER_WITHIN_S) -> None:
    async def holds() -> bool | None:
        return True if check() else None

    await poll(holds, what, within_s)


class Server:
    """`python -m chargeshare serve` on one database and one loopback port, across its restarts."""

    def __init__(self, database_url: str, logs: Path) -> None:
        self.database_url, self.logs = database_url, logs
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._log: IO[bytes] | None = None
        self.log_path = logs / "serve-0.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ocpp(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def start(self, failpoint: str | None = None) -> None:
        """Start the server (without waiting for it); `failpoint` armed, if given."""
        assert self.proc is None or self.proc.poll() is not None, "the previous run is still going"
        self._close_log()
        # Only what the harness sets: a CHARGESHARE_* in the test runner's environment (a database
        # URL, a failpoint) must not reach the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGESHARE_")}
        env.update(SERVER_ENV, PYTHONPATH=str(ROOT))
        if failpoint is not None:
            env["CHARGESHARE_FAILPOINT"] = failpoint
        self.runs += 1
        self.log_path = self.logs / f"serve-{self.runs}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "chargeshare", "serve"),
                *("--port", str(self.port), "--database-url", self.database_url),
                *("--known-chargers-only", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        """What the current (or last) run printed: its log lines and any traceback."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _died(self, what: str) -> AssertionError:
        code = None if self.proc is None else self.proc.returncode
        return AssertionError(f"{what} (exit code {code}); the server said:\n{self.output()[-4000:]}")

    async def healthy(self) -> None:
        """Wait (bounded) until the server answers /health; fail at once if it exits meanwhile."""
        assert self.proc is not None

        async def answered() -> bool | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise self._died("the server exited before it answered /health")
            try:
                r = await http.get("/health")
            except httpx.TransportError:
                return None
            return True if r.status_code == 200 else None

        async with httpx.AsyncClient(base_url=self.http, timeout=ANSWER_WITHIN_S) as http:
            await poll(answered, "the server to answer /health", START_WITHIN_S)

    async def died_at(self, failpoint: str) -> None:
        """Wait (bounded) for the process to exit, and check it was the failpoint that ended it."""
        assert self.proc is not None
        proc = self.proc

        async def exited() -> int | None:
            return proc.poll()

        try:
            await poll(exited, f"the server to die at failpoint {failpoint}", EXIT_WITHIN_S)
        except AssertionError:
            raise self._died(f"the server did not die at {failpoint}") from None
        if proc.returncode != EXIT_CODE or f"failpoint {failpoint}: exiting" not in self.output():
            raise self._died(f"the server should have died at failpoint {failpoint} with {EXIT_CODE}")

    async def restart(self) -> None:
        """The same database and port, no failpoint: the process that recovers."""
        self.start()
        await self.healthy()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


# ---- the charger ---------------------------------------------------------------------------------


@dataclass
class Charger:
    """A charge point on the `ocpp` library (answers the server's ReserveNow and the like by itself)."""

    cp: LibraryCp16
    reader: asyncio.Task[None]

    async def send(self, request: Any) -> Any | None:
        """The server's answer, or None if the link dropped first (the charger sends it again later)."""
        answer = asyncio.ensure_future(self.cp.call(request, suppress=False))
        await asyncio.wait({answer, self.reader}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        answer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answer
        return None

    async def must(self, request: Any) -> Any:
        answer = await self.send(request)
        assert answer is not None, f"the server dropped the link instead of answering {request}"
        return answer

    async def boot(self) -> None:
        boot = await self.must(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        assert boot.status == "Accepted"
        await self.must(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))


@contextlib.asynccontextmanager
async def charger(server: Server, cp_id: str) -> AsyncIterator[Charger]:
    """Connect and boot; a charger whose server died is left to close with it."""
    url = f"{server.ocpp}/{cp_id}"
    async with connect(url, subprotocols=["ocpp1.6"], open_timeout=ANSWER_WITHIN_S) as ws:  # type: ignore[list-item]
        cp = LibraryCp16(cp_id, ws, response_timeout=ANSWER_WITHIN_S)
        cp.script = Script()
        reader = asyncio.create_task(cp.start())
        try:
            link = Charger(cp, reader)
            await link.boot()
            yield link
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await reader


# ---- the test process's view of the database --------------------------------------------------------


def view(database_url: str) -> App:
    """The database as the test process sees it: the same schema and rules as the server, the
    simulated provider's books read from the same tables."""
    return build(dataclasses.replace(CONFIG, database_url=database_url))


def provider(app: App) -> SimulatedGateway:
    assert isinstance(app.gateway, SimulatedGateway)
    return app.gateway


def bookings(app: App) -> list[BookingRecord]:
    with app.store.reading() as tx:
        return sorted(tx.bookings.all(), key=lambda b: b.booking_id)


def payment_steps(app: App) -> list[OutboxItem]:
    with app.store.reading() as tx:
        return sorted(tx.outbox.all(), key=lambda i: i.item_id)


def entries(app: App) -> list[JournalEntry]:
    with app.store.reading() as tx:
        return list(tx.ledger.entries())


def failing(app: App, *, final: bool = True) -> list[str]:
    """Every invariant over the store, and the provider's books against the ledger: those that fail."""
    results = check_store(app.store, app.config.rules, now=app.clock.now(), final=final)
    gateway = provider(app)
    results += provider_agrees_with_ledger(
        entries(app), gateway.total_captured, gateway.open_authorisations()
    )
    return [f"{r.name}: {'; '.join(r.failures)}" for r in results if not r.ok]


async def claims_lapsed(app: App) -> None:
    """Until nothing in the payments outbox is held any more: the dead process's claims (a step in
    flight, a hold being placed) have run out, so a process started now takes them over at once."""

    def lapsed() -> bool:
        at = app.clock.now()
        return all(
            (i.lease_until is None or i.lease_until <= at) and i.next_attempt_at <= at
            for i in payment_steps(app)
            if i.status == "pending"
        )

    await until(lapsed, "the dead process's payment claims to lapse")


async def worked_off(app: App) -> None:
    """Until every payment step is done (none pending); none may be dead-lettered."""
    await until(
        lambda: all(i.status != "pending" for i in payment_steps(app)), "the payments outbox to be worked off"
    )
    dead = [i for i in payment_steps(app) if i.status == "dead"]
    assert not dead, f"dead-lettered payment steps: {dead}"


@dataclass
class World:
    """One host's charger and one driver (and an operator), made in the database by the test
    process; the callers' tokens verify in every server (they share the secret)."""

    app: App
    host: Caller
    driver: Caller
    admin: Caller
    charger_id: int

    CP_ID = "CRASH-CP-1"
    ID_TAG = "CRASH-TAG-1"
    PRICE = 40  # pence per kWh

    @classmethod
    def prepare(cls, database_url: str) -> World:
        app = view(database_url)
        host = api_helpers.host(app, "Hilda")
        connector = ConnectorSpec(1, ConnectorType.TYPE2, 7400)
        spec = ChargerSpec(cls.CP_ID, host.hid, Point(51.45, -2.59), Tariff(cls.PRICE), (connector,))
        charger_id = app.marketplace.add_charger(spec).charger_id  # no password: a development fleet
        return cls(app, host, api_helpers.driver(app, "Dora", cls.ID_TAG), api_helpers.admin(app), charger_id)


class Crash:
    """One crash test's database, server and world."""

    def __init__(self, database_url: str, logs: Path) -> None:
        self.database_url = database_url
        self.server = Server(database_url, logs)
        self._world: World | None = None

    @property
    def world(self) -> World:
        """Prepared on first use (schema, accounts, the charger)."""
        if self._world is None:
            self._world = World.prepare(self.database_url)
        return self._world

    async def start(self, failpoint: str) -> World:
        """The server with `failpoint` armed, the world prepared while it starts (its imports take
        seconds); returns once it answers /health."""
        self.server.start(failpoint)
        world = self.world
        await self.server.healthy()
        return world

    def close(self) -> None:
        self.server.kill()
        if self._world is not None:
            self._world.app.close()
