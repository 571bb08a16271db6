"""Charger ownership records and command routing between server processes, on fakeredis (its Lua and
pub/sub): epochs decide which link is newest, a call reaches the process holding the link, and every
ending is a bounded, typed outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import fakeredis
import pytest
from starlette.websockets import WebSocket

from chargeshare.adapters.charger_ownership import ChargerOwnership, Owner
from chargeshare.adapters.command_routing import MOVED, NOT_CONNECTED, CommandRouter, Superseded
from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerStatus
from chargeshare.entrypoints.ocpp_server import ChargerLink, ChargerRegistry
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp.connection import Connection, Outcome
from tests.conftest import add_charger
from tests.waiting import eventually

NS = "chargeshare:test"


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def ownership(server: fakeredis.FakeServer, ttl_ms: int = 60_000) -> ChargerOwnership:
    return ChargerOwnership(fakeredis.FakeAsyncRedis(server=server), NS, ttl_ms=ttl_ms)


# ---- ownership records ----------------------------------------------------------------------------


async def test_each_claim_takes_a_newer_epoch_and_names_the_record_it_replaced(
    server: fakeredis.FakeServer,
) -> None:
    records = ownership(server)
    a, before_a = await records.claim("CP1", "node-a", V16)
    b, before_b = await records.claim("CP1", "node-b", V201)
    assert before_a is None and before_b == a
    assert b.epoch > a.epoch
    assert await records.owner_of("CP1") == b
    other, _ = await records.claim("CP2", "node-a", V16)
    assert other.epoch > b.epoch  # one counter for all chargers


async def test_a_stale_link_closing_leaves_the_newer_connection_alone(server: fakeredis.FakeServer) -> None:
    records = ownership(server)
    old, _ = await records.claim("CP1", "node-a", V16)
    new, _ = await records.claim("CP1", "node-b", V16)
    assert not await records.release("CP1", old)  # not A's to mark offline
    assert await records.owner_of("CP1") == new
    assert await records.release("CP1", new)  # the newest link closing: offline, record gone
    assert await records.owner_of("CP1") is None
    assert await records.release("CP1", old)  # no one holds it: a close may record it offline


async def test_renewing_keeps_our_records_and_names_those_a_newer_link_took(
    server: fakeredis.FakeServer,
) -> None:
    records = ownership(server)
    a1, _ = await records.claim("CP1", "node-a", V16)
    a2, _ = await records.claim("CP2", "node-a", V16)
    await records.client.delete(records.key("CP2"))  # lapsed (a stall past its TTL, a Redis restart)
    b1, _ = await records.claim("CP1", "node-b", V16)
    assert await records.renew({"CP1": a1, "CP2": a2}) == ["CP1"]
    assert await records.owner_of("CP1") == b1  # the newer connection's record stands
    assert await records.owner_of("CP2") == a2  # ours again
    assert 0 < await records.client.pttl(records.key("CP2")) <= records.ttl_ms


def test_an_owner_record_reads_back_and_refuses_garbage() -> None:
    owner = Owner("abc", 7, V201)
    assert Owner.parse(owner.record.encode()) == owner
    assert Owner.parse("abc|x|1.6") is None and Owner.parse("nothing") is None


# ---- routing between nodes ------------------------------------------------------------------------


@dataclass
class FakeLinks:
    """A node's registry as the router sees it: the links it holds and how its chargers answer."""

    owners: dict[str, Owner] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # action -> payload
    evicted: list[tuple[str, int]] = field(default_factory=list)
    healed: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    asked: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def held(self) -> dict[str, Owner]:
        return dict(self.owners)

    async def answer_call(
        self, cp_id: str, epoch: int, action: str, payload: dict[str, Any], wait_s: float
    ) -> Outcome:
        owner = self.owners.get(cp_id)
        if owner is None:
            return Outcome("", action, error=NOT_CONNECTED)
        if owner.epoch != epoch:
            return Outcome("", action, error=MOVED)
        self.asked.append((cp_id, action, payload))
        if action not in self.answers:
            await asyncio.Event().wait()  # a charger that never answers
        return Outcome("uid-1", action, self.answers[action])

    def evict(self, cp_id: str, epoch: int) -> None:
        self.evicted.append((cp_id, epoch))

    def heal(self, cp_id: str) -> None:
        self.healed.append(cp_id)

    def forget(self, cp_id: str) -> None:
        self.forgotten.append(cp_id)

    async def reclaim(self) -> None:
        pass  # every link here is claimed as it is held


@dataclass
class Node:
    router: CommandRouter
    links: FakeLinks

    async def hold(self, cp_id: str, version: OcppVersion = V16) -> Owner:
        owner = await self.router.claimed(cp_id, version)
        assert owner is not None
        self.links.owners[cp_id] = owner
        return owner


@contextlib.asynccontextmanager
async def nodes(server: fakeredis.FakeServer, *names: str) -> AsyncIterator[list[Node]]:
    made = [
        Node(CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS, node=n, transit_s=0.2), FakeLinks())
        for n in names
    ]
    tasks = []
    for n in made:
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(n.router.run(n.links, ready, renew_every_s=3600)))
        await asyncio.wait_for(ready.wait(), 5)
    try:
        yield made
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def test_a_call_is_made_and_answered_by_the_node_holding_the_link(server: fakeredis.FakeServer) -> None:
    async with nodes(server, "a", "b") as (a, b):
        owner = await a.hold("CP1")
        a.links.answers["Reset"] = {"status": "Accepted"}
        found = await b.router.owner_of("CP1")
        assert found == owner
        outcome = await b.router.call(owner, "CP1", "Reset", {"type": "Soft"}, wait_s=5)
        assert (outcome.unique_id, outcome.payload, outcome.error) == ("uid-1", {"status": "Accepted"}, None)
        assert a.links.asked == [("CP1", "Reset", {"type": "Soft"})]


async def test_a_call_for_a_replaced_link_says_moved(server: fakeredis.FakeServer) -> None:
    async with nodes(server, "a", "b") as (a, b):
        old = await a.hold("CP1")
        await a.hold("CP1")  # the charger reconnected to A: a new epoch
        outcome = await b.router.call(old, "CP1", "Reset", {}, wait_s=5)
        assert outcome.error == MOVED and a.links.asked == []


async def test_a_node_that_is_not_listening_answers_not_connected_at_once(
    server: fakeredis.FakeServer,
) -> None:
    async with nodes(server, "b") as (b,):
        gone = Owner("crashed-node", 1, V16)
        outcome = await asyncio.wait_for(b.router.call(gone, "CP1", "Reset", {}, wait_s=60), 5)
        assert outcome.error == NOT_CONNECTED


async def test_a_charger_that_never_answers_is_a_timeout_within_its_bound(
    server: fakeredis.FakeServer,
) -> None:
    async with nodes(server, "a", "b") as (a, b):
        owner = await a.hold("CP1")
        outcome = await asyncio.wait_for(b.router.call(owner, "CP1", "Reset", {}, wait_s=0.1), 5)
        assert outcome.error == "Timeout"


async def test_connecting_through_another_node_evicts_the_old_link(server: fakeredis.FakeServer) -> None:
    async with nodes(server, "a", "b") as (a, b):
        old = await a.hold("CP1")
        await b.hold("CP1")
        await eventually(lambda: a.links.evicted == [("CP1", old.epoch)], "A told to close its link")


async def test_renewal_evicts_a_link_a_newer_connection_replaced(server: fakeredis.FakeServer) -> None:
    async with nodes(server, "a") as (a,):
        old = await a.hold("CP1")
        await a.router.ownership.claim("CP1", "elsewhere", V16)  # no notice reached A
        await a.router.renew_once(a.links)
        assert a.links.evicted == [("CP1", old.epoch)]


async def test_an_offline_mark_racing_a_reconnect_is_undone_by_the_newer_link(
    server: fakeredis.FakeServer,
) -> None:
    async with nodes(server, "a", "b") as (a, b):
        old = await a.hold("CP1")
        assert await a.router.released("CP1", old)  # A's link closed first: its offline mark stands...
        await b.hold("CP1")  # ...but the charger had already reconnected through B
        await a.router.marked_offline("CP1", a.links)
        await eventually(lambda: b.links.healed == ["CP1"], "B told to undo the offline mark")
        assert a.links.healed == []


async def test_notices_reach_the_named_node_only(server: fakeredis.FakeServer) -> None:
    async with nodes(server, "a", "b") as (a, b):
        assert await a.router.notify("b", "forget", "CP1")
        await eventually(lambda: b.links.forgotten == ["CP1"], "B told to forget its stamp")
        assert a.links.forgotten == []
        assert not await a.router.notify("nobody", "forget", "CP1")


# ---- the registry's side ----------------------------------------------------------------------------


class FakeSocket:
    def __init__(self) -> None:
        self.closed: list[int] = []

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed.append(code)


async def test_an_eviction_heard_before_the_claim_returns_closes_the_link_once_claimed(
    server: fakeredis.FakeServer, app: App
) -> None:
    registry = ChargerRegistry(app, router=CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS))
    socket = FakeSocket()
    link = ChargerLink("CP1", V16, cast(WebSocket, socket), Connection(V16, {}, id_prefix="cs-"))
    registry.links["CP1"] = link
    # A newer connection elsewhere replaced the record our claim (on its way) is writing: any epoch
    # ours can get is below this one.
    registry.evict("CP1", 2**62)
    assert socket.closed == []
    await registry._claim(link)
    await eventually(lambda: socket.closed == [1000], "the stale link closed")
    registry.evict("CP1", 0)  # an older record's eviction closes nothing newer
    assert socket.closed == [1000]


# ---- epochs across a lost counter -----------------------------------------------------------------


async def _a_link_held_since_before_a_flush(records: ChargerOwnership) -> Owner:
    for n in range(5):  # other chargers' claims move the counter on
        await records.claim(f"CP-{n}", "node-a", V16)
    a, _ = await records.claim("CP1", "node-a", V16)
    await records.client.flushall()  # Redis restarted without persistence, or flushed by an operator
    return a


async def test_a_claim_after_redis_lost_its_counter_is_newer_than_a_link_held_before(
    server: fakeredis.FakeServer,
) -> None:
    """The charger reconnects through B after a flush: A's surviving (stale) link must not win it
    back on renewal, which would close B's live link and leave commands routed to a dead one."""
    records = ownership(server)
    a = await _a_link_held_since_before_a_flush(records)
    b, _ = await records.claim("CP1", "node-b", V16)
    assert b.epoch > a.epoch
    assert await records.renew({"CP1": a}) == ["CP1"]  # A's link is the one to close
    assert await records.owner_of("CP1") == b
    assert not await records.release("CP1", a)  # and its close marks nothing offline


async def test_a_record_put_back_after_a_flush_still_yields_to_a_newer_connection(
    server: fakeredis.FakeServer,
) -> None:
    records = ownership(server)
    a = await _a_link_held_since_before_a_flush(records)
    assert await records.renew({"CP1": a}) == []  # A's live link puts its record back
    b, replaced = await records.claim("CP1", "node-b", V16)  # then the charger moves to B
    assert replaced == a and b.epoch > a.epoch
    assert not await records.release("CP1", a)  # A's link closing must not mark it offline
    assert await records.owner_of("CP1") == b


# ---- claims that reach Redis out of order ------------------------------------------------------------


async def test_a_claim_reaching_redis_after_a_later_connections_is_refused(
    server: fakeredis.FakeServer,
) -> None:
    """The charger's old link (arrived first on A) is slow to claim; its new link (arrived later on
    B) claims first. The old claim must not take the charger back from the live link."""
    async with nodes(server, "a", "b") as (a, b):
        old_arrival = await a.router.arrived("CP1")
        new_arrival = await b.router.arrived("CP1")
        assert old_arrival is not None and new_arrival is not None and new_arrival > old_arrival
        live = await b.router.claimed("CP1", V16, new_arrival)
        with pytest.raises(Superseded) as stale:
            await a.router.claimed("CP1", V16, old_arrival)
        assert stale.value.newer == live
        assert await b.router.owner_of("CP1") == live
        assert b.links.evicted == []  # the refused claim told no one to close anything


async def test_a_link_whose_claim_was_superseded_closes_and_marks_nothing_offline(
    server: fakeredis.FakeServer, app: App
) -> None:
    add_charger(app)
    app.charging.boot("CP1", V16)
    registry = ChargerRegistry(app, router=CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS))
    other = CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS, node="elsewhere")
    assert registry.router is not None
    mine = await registry.router.arrived("CP1")
    later = await other.arrived("CP1")
    await other.claimed("CP1", V16, later)
    socket = FakeSocket()
    link = ChargerLink(
        "CP1", V16, cast(WebSocket, socket), Connection(V16, {}, id_prefix="cs-"), arrived_epoch=mine
    )
    registry.links["CP1"] = link
    await registry._claim(link)
    await eventually(lambda: socket.closed == [1000], "the stale link closed")
    assert link.superseded and link.owner is None
    del registry.links["CP1"]
    await registry._closed("CP1", link)
    with app.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE
    assert (await other.owner_of("CP1")) is not None


# ---- Redis away as a charger connects --------------------------------------------------------------


async def test_a_link_made_while_redis_was_away_is_claimed_once_it_answers(
    server: fakeredis.FakeServer, app: App
) -> None:
    """Claimed nowhere, the link would be out of every other process's reach for as long as it
    stays connected (days, for a charger): no reservation, cancellation or operator command from
    elsewhere would reach it. The next renewal after Redis is back claims it."""
    registry = ChargerRegistry(app, router=CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS))
    other = CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS, node="elsewhere")
    assert registry.router is not None
    socket = FakeSocket()
    server.connected = False
    arrived = await registry.router.arrived("CP1")
    link = ChargerLink(
        "CP1", V16, cast(WebSocket, socket), Connection(V16, {}, id_prefix="cs-"), arrived_epoch=arrived
    )
    registry.links["CP1"] = link
    await registry._claim(link)
    assert arrived is None and link.owner is None  # it still serves, unclaimed
    server.connected = True
    await registry.router.renew_once(registry)
    assert link.owner is not None and await other.owner_of("CP1") == link.owner
    assert link.owner.node == registry.router.node and socket.closed == []


async def test_a_link_made_while_redis_was_away_yields_to_a_connection_claimed_since(
    server: fakeredis.FakeServer, app: App
) -> None:
    """Without an epoch of its own, the link cannot tell whether the charger connected elsewhere
    after it: a record there wins, and ours closes (the charger reconnects, newer than both),
    rather than evicting what may be the live link."""
    registry = ChargerRegistry(app, router=CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS))
    other = CommandRouter(fakeredis.FakeAsyncRedis(server=server), NS, node="elsewhere")
    assert registry.router is not None
    socket = FakeSocket()
    link = ChargerLink("CP1", V16, cast(WebSocket, socket), Connection(V16, {}, id_prefix="cs-"))
    registry.links["CP1"] = link
    server.connected = False
    await registry._claim(link)
    server.connected = True
    theirs = await other.claimed("CP1", V16, await other.arrived("CP1"))
    await registry.router.renew_once(registry)
    await eventually(lambda: socket.closed == [1000], "our unclaimed link closed")
    assert link.superseded and await other.owner_of("CP1") == theirs
