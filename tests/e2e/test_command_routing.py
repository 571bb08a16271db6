"""Two backends on one database, each serving its own chargers over loopback WebSockets and routing
commands through Redis (fakeredis, and a real Redis when one is reachable): a reservation booked on one
reaches a charger connected to the other, a charger that reconnects through the other stays online,
and an operator's command reaches it wherever it is. Also, without Redis: a reservation decided while
its charger was away is sent when the charger connects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from ocpp.v16 import call as call16

from chargeshare.adapters.command_routing import CommandRouter
from chargeshare.adapters.redis_namespace import namespace_for
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerStatus
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import NOT_SENT_INVALID, ChargerRegistry
from chargeshare.ocpp import commands as cmd
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import SystemClock
from tests.api_helpers import admin
from tests.conftest import REDIS_URL, add_charger, service_missing
from tests.e2e.ocpp_clients import LibraryCp16, Script, boot16, library_cp16, now
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

SECRET = "a shared token secret, as every serve process has"


@dataclass
class Node:
    app: App
    registry: ChargerRegistry
    port: int

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
def redis_client_factory(request: pytest.FixtureRequest) -> Callable[[], Any]:
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()
        return lambda: fakeredis.FakeAsyncRedis(server=server)
    import redis
    import redis.asyncio as aioredis

    probe = redis.Redis.from_url(REDIS_URL)
    try:
        probe.ping()
    except Exception as exc:
        service_missing("Redis", exc)
    finally:
        probe.close()
    return lambda: aioredis.Redis.from_url(REDIS_URL)


@pytest.fixture
async def two_nodes(tmp_path: Path, redis_client_factory: Callable[[], Any]) -> AsyncIterator[list[Node]]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # its own namespace in Redis, too
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for _ in range(2):
            app = build(
                Config(database_url=url, jwt_secret=SECRET, password_hash="fast"), clock=SystemClock()
            )
            stack.callback(app.close)
            router = CommandRouter(redis_client_factory(), namespace_for(url), transit_s=1.0)
            stack.push_async_callback(router.close)
            registry = ChargerRegistry(app, router=router, call_timeout_s=5)
            server = await stack.enter_async_context(LoopbackServer(create_api(app, registry)))
            nodes.append(Node(app, registry, server.port))
        yield nodes


def a_driver(app: App, tag: str) -> int:
    with app.store.transaction() as tx:
        return tx.accounts.add_driver(f"driver {tag}", tag)


def reservation(app: App, booking_id: int) -> str:
    with app.store.reading() as tx:
        return tx.bookings.get(booking_id).reservation


def status(app: App, cp_id: str) -> ChargerStatus:
    with app.store.reading() as tx:
        return tx.chargers.get(cp_id).status


async def available(cp: LibraryCp16) -> None:
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))


async def test_a_reservation_made_on_one_node_reaches_the_charger_on_the_other(two_nodes: list[Node]) -> None:
    a, b = two_nodes
    charger_id = add_charger(a.app, "CP1", online=False)
    driver = a_driver(a.app, "TAG1")
    script = Script()
    async with library_cp16(a.ws, "CP1", script) as cp:
        await boot16(cp)
        await available(cp)
        starts = b.app.clock.now() + timedelta(minutes=2)
        request = BookRequest(driver, charger_id, 1, 60, 10_000, starts_at=starts)
        booking = await asyncio.to_thread(b.app.bookings.book, request)
        await eventually(lambda: bool(script.asked("ReserveNow")), "ReserveNow at the charger")
        (asked,) = script.asked("ReserveNow")
        assert (asked["reservation_id"], asked["id_tag"]) == (booking.booking_id, "TAG1")
        await eventually(lambda: reservation(b.app, booking.booking_id) == "accepted", "the answer kept")
        await asyncio.to_thread(b.app.bookings.cancel, booking.booking_id, driver_id=driver)
        await eventually(lambda: bool(script.asked("CancelReservation")), "CancelReservation")
        assert script.asked("CancelReservation") == [{"reservation_id": booking.booking_id}]


async def test_a_cancellation_decided_while_the_charger_was_away_is_sent_when_it_connects(
    two_nodes: list[Node],
) -> None:
    """The charger accepted a reservation, then its link dropped (its node crashed, say) and the
    booking was cancelled meanwhile: CancelReservation reached no one. Reconnecting through either
    node, it is told, or it would stay Reserved and refuse the next driver until the grace ends."""
    a, b = two_nodes
    charger_id = add_charger(a.app, "CP1", online=False)
    driver = a_driver(a.app, "TAG1")
    async with library_cp16(a.ws, "CP1") as cp:
        await boot16(cp)
        await available(cp)
        starts = b.app.clock.now() + timedelta(minutes=2)
        request = BookRequest(driver, charger_id, 1, 60, 10_000, starts_at=starts)
        booking = await asyncio.to_thread(b.app.bookings.book, request)
        await eventually(lambda: reservation(b.app, booking.booking_id) == "accepted", "reserved")
    await eventually(lambda: "CP1" not in a.registry.links, "A's link gone")
    await asyncio.to_thread(b.app.bookings.cancel, booking.booking_id, driver_id=driver)
    script = Script()
    async with library_cp16(b.ws, "CP1", script):
        await eventually(lambda: bool(script.asked("CancelReservation")), "CancelReservation on connecting")
        assert script.asked("CancelReservation") == [{"reservation_id": booking.booking_id}]
        await eventually(lambda: reservation(b.app, booking.booking_id) == "none", "the cancel kept")
    assert b.app.bookings.cancellations_unanswered("CP1") == []  # told once is enough


async def test_a_charger_that_reconnects_through_the_other_node_stays_online(two_nodes: list[Node]) -> None:
    a, b = two_nodes
    charger_id = add_charger(a.app, "CP1", online=False)
    ops = admin(a.app)
    async with library_cp16(a.ws, "CP1") as old:
        await boot16(old)
        script = Script()
        async with library_cp16(b.ws, "CP1", script) as new:
            await boot16(new)
            # B's claim tells A to close its stale link; that close must not mark the charger offline.
            await eventually(lambda: "CP1" not in a.registry.links, "A closed its stale link")
            await old._connection.close()
            assert status(a.app, "CP1") is ChargerStatus.ONLINE
            result = await a.registry.reset("CP1")  # from A, through B
            assert isinstance(result, cmd.Done) and script.asked("Reset") == [{"type": "Soft"}]
            async with httpx.AsyncClient(base_url=a.http, headers=ops.headers, timeout=10) as http:
                r = await http.post(
                    f"/admin/chargers/{charger_id}/commands",
                    json={"action": "ChangeAvailability", "payload": {"connector_no": 0, "operative": False}},
                )
            assert r.status_code == 200 and r.json()["result"] == "done", r.text
            assert script.asked("ChangeAvailability") == [{"connector_id": 0, "type": "Inoperative"}]
        await eventually(lambda: status(a.app, "CP1") is ChargerStatus.OFFLINE, "offline with its last link")
        result = await a.registry.reset("CP1")
        assert isinstance(result, cmd.NotConnected)


async def test_a_charger_marked_offline_by_another_node_comes_back_with_its_next_heartbeat(
    two_nodes: list[Node],
) -> None:
    a, b = two_nodes
    add_charger(a.app, "CP1", online=False)
    async with library_cp16(a.ws, "CP1") as cp:
        await boot16(cp)  # A has stamped it: its heartbeats touch no database
        b.app.charging.disconnected("CP1")  # as B's watchdog would, judging a lagging stamp
        assert status(a.app, "CP1") is ChargerStatus.OFFLINE

        async def heartbeat_brings_it_back() -> bool:
            await cp.call(call16.Heartbeat())
            return status(a.app, "CP1") is ChargerStatus.ONLINE

        for _ in range(100):  # until A has heard B's "forget": then one heartbeat is written
            if await heartbeat_brings_it_back():
                break
            await asyncio.sleep(0.02)
        assert status(a.app, "CP1") is ChargerStatus.ONLINE


async def test_an_operator_command_answers_its_typed_result(two_nodes: list[Node]) -> None:
    a, b = two_nodes
    charger_id = add_charger(a.app, "CP1", online=False)
    ops = admin(a.app)
    script = Script(status={"Reset": "Rejected"}, fail={"UnlockConnector"})
    async with (
        library_cp16(b.ws, "CP1", script),
        httpx.AsyncClient(base_url=a.http, headers=ops.headers, timeout=10) as http,
    ):
        url = f"/admin/chargers/{charger_id}/commands"
        r = await http.post(url, json={"action": "Reset", "payload": {"hard": True}})
        assert r.json() == {
            "result": "rejected",
            "status": "Rejected",
            "details": None,
            "reason": None,
            "code": None,
            "after_s": None,
        }
        r = await http.post(url, json={"action": "UnlockConnector", "payload": {"connector_no": 1}})
        assert (r.json()["result"], r.json()["code"]) == ("call_error", "GenericError")
        r = await http.post(url, json={"action": "GetSettings", "payload": {"keys": [{"name": "X"}]}})
        unknown = {"name": "X", "component": "", "instance": "", "evse": None}
        assert r.json()["details"] == [
            {"key": unknown, "status": "UnknownVariable", "value": None, "readonly": None}
        ]
        r = await http.post(url, json={"action": "Explode", "payload": {}})
        assert r.status_code == 400 and "no command 'Explode'" in r.json()["detail"]
        r = await http.post(url, json={"action": "Reset", "payload": {"hard": True, "very": 1}})
        assert r.status_code == 400 and "no field very" in r.json()["detail"]
    r2 = await asyncio.to_thread(
        httpx.post,
        f"{a.http}/admin/chargers/{charger_id}/commands",
        json={"action": "Reset", "payload": {}},
        headers=ops.headers,
    )
    assert r2.json()["result"] == "not_connected"


async def test_a_reservation_decided_while_the_charger_was_away_is_sent_when_it_connects() -> None:
    app = build(Config(database_url="sqlite://"), clock=SystemClock())
    try:
        charger_id = add_charger(app, "CP1")  # booted and Available, but no link: nothing to send on
        driver = a_driver(app, "TAG1")
        starts = app.clock.now() + timedelta(minutes=2)
        booking = app.bookings.book(BookRequest(driver, charger_id, 1, 60, 10_000, starts_at=starts))
        assert booking.reservation == "sent"
        async with LoopbackServer(create_api(app)) as server:
            script = Script()
            async with library_cp16(f"ws://127.0.0.1:{server.port}/ocpp", "CP1", script):
                await eventually(lambda: bool(script.asked("ReserveNow")), "ReserveNow on connecting")
                await eventually(lambda: reservation(app, booking.booking_id) == "accepted", "answer kept")
    finally:
        app.close()


async def test_a_stop_due_is_asked_again_until_the_charger_takes_it() -> None:
    """The energy limit is reached; the charger refuses the stop, and is asked again at its next
    reading over the limit and when it reconnects."""
    app = build(Config(database_url="sqlite://"), clock=SystemClock())
    try:
        charger_id = add_charger(app, "CP1", online=False)
        driver = a_driver(app, "TAG1")
        async with LoopbackServer(create_api(app)) as server:
            url = f"ws://127.0.0.1:{server.port}/ocpp"
            refusing = Script(status={"RemoteStopTransaction": "Rejected"})
            async with library_cp16(url, "CP1", refusing) as cp:
                await boot16(cp)
                await available(cp)
                app.bookings.book(BookRequest(driver, charger_id, 1, 60, 1_000))
                started = await cp.call(
                    call16.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=0, timestamp=now())
                )
                tx_id = started.transaction_id

                async def reading(wh: int) -> None:
                    value = [{"timestamp": now(), "sampled_value": [{"value": str(wh)}]}]
                    await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=value))

                await reading(1_000)  # the limit: a stop, refused
                await eventually(lambda: len(refusing.asked("RemoteStopTransaction")) == 1, "a stop")
                for wh in range(1_001, 1_200):  # later readings over the limit ask again (once answered)
                    await reading(wh)
                    if len(refusing.asked("RemoteStopTransaction")) == 2:
                        break
                assert len(refusing.asked("RemoteStopTransaction")) == 2
            taking = Script()
            async with library_cp16(url, "CP1", taking):
                await eventually(lambda: bool(taking.asked("RemoteStopTransaction")), "a stop on connecting")
            assert taking.asked("RemoteStopTransaction") == [{"transaction_id": tx_id}]
    finally:
        app.close()


async def test_a_stop_taken_but_never_acted_on_is_asked_again_when_the_charger_reconnects() -> None:
    """The charger accepts the stop at its energy limit, then loses its link (a reboot, a network
    drop) with the transaction still running. Connecting again, to this process as to any other,
    it is asked again: the database says the stop is still due, whatever this process sent before."""
    app = build(Config(database_url="sqlite://"), clock=SystemClock())
    registry = ChargerRegistry(app)
    try:
        charger_id = add_charger(app, "CP1", online=False)
        driver = a_driver(app, "TAG1")
        async with LoopbackServer(create_api(app, registry)) as server:
            url = f"ws://127.0.0.1:{server.port}/ocpp"
            accepting = Script()
            async with library_cp16(url, "CP1", accepting) as cp:
                await boot16(cp)
                await available(cp)
                app.bookings.book(BookRequest(driver, charger_id, 1, 60, 1_000))
                started = await cp.call(
                    call16.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=0, timestamp=now())
                )
                tx_id = started.transaction_id
                value = [{"timestamp": now(), "sampled_value": [{"value": "1000"}]}]
                await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=value))
                await eventually(lambda: bool(accepting.asked("RemoteStopTransaction")), "a stop, taken")
                await cp.call(call16.Heartbeat())  # answered after the stop's answer was read
            await eventually(lambda: "CP1" not in registry.links, "the link gone")
            assert [s.transaction_id for s in app.charging.stops_due("CP1")] == [tx_id]
            again = Script()
            async with library_cp16(url, "CP1", again):
                await eventually(lambda: bool(again.asked("RemoteStopTransaction")), "a stop on connecting")
            assert again.asked("RemoteStopTransaction") == [{"transaction_id": tx_id}]
    finally:
        app.close()


async def test_a_stop_taken_is_forgotten_once_the_session_stops() -> None:
    """The command policy remembers a stop it has sent so that every reading over the limit does not send
    another; once the session has stopped there is nothing left to remember (or a long-running server
    would keep one entry per energy-limited session, for good)."""
    app = build(Config(database_url="sqlite://"), clock=SystemClock())
    registry = ChargerRegistry(app)
    try:
        charger_id = add_charger(app, "CP1", online=False)
        driver = a_driver(app, "TAG1")
        async with LoopbackServer(create_api(app, registry)) as server:
            script = Script()
            async with library_cp16(f"ws://127.0.0.1:{server.port}/ocpp", "CP1", script) as cp:
                await boot16(cp)
                await available(cp)
                app.bookings.book(BookRequest(driver, charger_id, 1, 60, 1_000))
                started = await cp.call(
                    call16.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=0, timestamp=now())
                )
                tx_id = started.transaction_id
                value = [{"timestamp": now(), "sampled_value": [{"value": "1000"}]}]
                await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=value))
                await eventually(lambda: bool(script.asked("RemoteStopTransaction")), "a stop")
                await cp.call(call16.StopTransaction(transaction_id=tx_id, meter_stop=1_000, timestamp=now()))
                await eventually(lambda: not registry.policy.stops_sent, "the stop forgotten")
    finally:
        app.close()


# Payloads that make a command yet break OCPP 1.6's schema once said: each is answered at once with
# the schema's complaint and never sent, on the link's own process or through another.
OUT_OF_SCHEMA = [
    ("ChangeSetting", {"key": {"name": "K" * 51}, "value": "1"}, "ChangeConfiguration: key"),
    ("ChangeSetting", {"key": {"name": "HeartbeatInterval"}, "value": "9" * 501}, "value"),
    ("UnlockConnector", {"connector_no": 2**70}, "an integer out of range"),
    ("StartCharging", {"id_tag": "T" * 21}, "idTag"),
]


@pytest.mark.parametrize("where", ["local", "routed"])
async def test_a_command_that_breaks_the_chargers_schema_is_refused_and_never_sent(
    two_nodes: list[Node], where: str
) -> None:
    a, b = two_nodes
    charger_id = add_charger(a.app, "CP1", online=False)
    ops = admin(a.app)
    script = Script()
    async with (
        library_cp16((a if where == "local" else b).ws, "CP1", script) as cp,
        httpx.AsyncClient(base_url=a.http, headers=ops.headers, timeout=10) as http,
    ):
        await boot16(cp)
        url = f"/admin/chargers/{charger_id}/commands"
        for action, payload, named in OUT_OF_SCHEMA:
            r = await http.post(url, json={"action": action, "payload": payload, "timeout_s": 2})
            assert r.status_code == 400, (action, r.status_code, r.text)
            detail = r.json()["detail"]
            assert detail.startswith(f"{action}: not sent: in OCPP 1.6") and named in detail, detail
        got = await a.registry.send("CP1", cmd.ChangeSetting(cmd.SettingKey("K" * 51), "1"))
        assert isinstance(got, cmd.Invalid)
        # A raw call is checked where the link is: answered at once (through Redis when routed).
        raw = await a.registry.call(
            "CP1", "ChangeConfiguration", {"key": "K" * 51, "value": "1"}, timeout_s=2
        )
        assert raw.error == NOT_SENT_INVALID, raw
        sent = [name for name, _ in script.received]
        assert not {"ChangeConfiguration", "UnlockConnector", "RemoteStartTransaction"} & set(sent), sent
        # The link is as it was: a command that fits goes out and is answered.
        r = await http.post(url, json={"action": "Reset", "payload": {"hard": False}})
        assert r.json()["result"] == "done", r.text
        assert script.asked("Reset") == [{"type": "Soft"}]
