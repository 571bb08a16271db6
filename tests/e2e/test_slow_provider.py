"""A payment provider that hangs never holds up another charger: over real WebSockets and HTTP on
loopback, charger A stops its session and its capture is stuck at the provider (a gate only the test
opens), and meanwhile charger B's Heartbeat and StatusNotification and GET /health are answered. Only
then is the gate opened, and the capture lands in the ledger, once.

Nothing is timed: the gate stays shut until every answer is in, so on a server that called the
provider on its event loop those answers could only come after the capture, which the test sees. The
waits are bounded only so that such a server fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import Config, build
from chargeshare.domain.ledger import EntryKind
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import SystemClock
from chargeshare.services.events import SessionSettled
from chargeshare.services.ports import HoldResult, PaymentGateway
from tests.conftest import add_charger

pytestmark = pytest.mark.e2e

# Bounds only a server that blocks, so that it fails the test rather than hang it: its event loop is
# held until the gate gives up, then it answers, late, and the assertions see the capture done.
GATE_GUARD_S = 10.0
GUARD_S = 3 * GATE_GUARD_S  # every other wait


class GatedCaptures:
    """The provider, except that a capture waits at `gate` until the test opens it."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.at_provider = threading.Event()  # a capture has reached the provider
        self.done = threading.Event()  # ... and the provider has answered it
        self.threads: list[int] = []

    def authorize(self, *, amount: int, customer: str, idempotency_key: str) -> HoldResult:
        return self.inner.authorize(amount=amount, customer=customer, idempotency_key=idempotency_key)

    def release(self, *, reference: str, idempotency_key: str) -> None:
        self.inner.release(reference=reference, idempotency_key=idempotency_key)

    def capture(self, *, reference: str, amount: int, idempotency_key: str) -> None:
        self.threads.append(threading.get_ident())
        self.at_provider.set()
        self.gate.wait(GATE_GUARD_S)
        self.inner.capture(reference=reference, amount=amount, idempotency_key=idempotency_key)
        self.done.set()


class Charger:
    """A bare OCPP 1.6J charger: one call at a time, each answered or the test fails."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        uid = f"m{next(self.ids)}"
        await self.ws.send(json.dumps([2, uid, action, payload]))
        async with asyncio.timeout(GUARD_S):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame[0] == 3 and frame[1] == uid:
                    answer: dict[str, Any] = frame[2]
                    return answer
                assert frame[0] != 4, f"{action} was answered with a CALLERROR: {frame}"


@contextlib.asynccontextmanager
async def charger(port: int, cp_id: str) -> AsyncIterator[Charger]:
    async with connect(f"ws://127.0.0.1:{port}/ocpp/{cp_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        c = Charger(ws)
        boot = await c.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        assert boot["status"] == "Accepted"
        yield c


def still_stuck(provider: GatedCaptures, what: str) -> None:
    assert not provider.gate.is_set(), "the test opened the gate early"
    assert not provider.done.is_set(), f"{what} was answered only once the capture was done"


def now() -> str:
    return datetime.now(UTC).isoformat()


async def test_a_capture_stuck_at_the_provider_holds_up_no_other_charger(tmp_path: Path) -> None:
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'slow.db'}"), clock=SystemClock())
    charger_id = add_charger(app, "SLOW-A", price=40)
    add_charger(app, "SLOW-B")
    driver = app.marketplace.add_driver("D", "CARD-A")
    booking = app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 10_000))
    provider = GatedCaptures(app.settlement.gateway)
    app.settlement.gateway = provider
    settled = threading.Event()
    app.bus.subscribe(SessionSettled, lambda _event: settled.set())
    loop_thread = threading.get_ident()
    try:
        async with (
            LoopbackServer(create_api(app)) as server,
            charger(server.port, "SLOW-A") as a,
            charger(server.port, "SLOW-B") as b,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http,
        ):
            start = {"connectorId": 1, "idTag": "CARD-A", "meterStart": 0, "timestamp": now()}
            tx_id = (await a.call("StartTransaction", start))["transactionId"]
            stop = {"transactionId": tx_id, "meterStop": 5_000, "timestamp": now()}
            assert (await a.call("StopTransaction", stop))["idTagInfo"]["status"] == "Accepted"
            assert await asyncio.to_thread(provider.at_provider.wait, GUARD_S), "no capture was asked for"

            # The capture is at the provider, and stays there until the gate opens.
            assert "currentTime" in await b.call("Heartbeat", {})
            still_stuck(provider, "B's Heartbeat")
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
            assert await b.call("StatusNotification", status) == {}
            still_stuck(provider, "B's StatusNotification")
            health = await http.get("/health")
            assert health.status_code == 200 and health.json()["chargers_connected"] == 2
            still_stuck(provider, "GET /health")

            provider.gate.set()
            assert await asyncio.to_thread(settled.wait, GUARD_S), "the capture never reached the ledger"
        assert loop_thread not in provider.threads, "the provider was called on the event loop"
        with app.store.reading() as tx:
            entries = tx.ledger.entries(booking.booking_id)
            step = tx.outbox.get(f"booking:{booking.booking_id}:capture")
        captures = [e for e in entries if e.kind is EntryKind.CAPTURE]
        assert len(captures) == 1 and step is not None and step.status == "done"
        assert len(provider.threads) == 1  # asked once
        sim = app.gateway
        assert isinstance(sim, SimulatedGateway) and sim.total_captured == 200  # 5 kWh x 40p
    finally:
        provider.gate.set()
        app.close()
