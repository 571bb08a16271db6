"""Commands for chargers whose WebSocket another server process holds, through Redis.

Each process (a "node") listens on its own pub/sub channel. To send a command to a charger it does not
hold, a process reads the charger's ownership record (adapters/charger_ownership.py), publishes the
raw call on the owner's channel and waits, bounded, for the reply on its own channel; the owner makes
the call on its link and publishes the charger's answer back. Notices travel the same way: "evict" (a
newer connection holds the charger elsewhere: close ours), "heal" (our link is open, yet a stale link
closing elsewhere marked the charger offline) and "forget" (marked offline elsewhere: write its next
frame at once).

Why pub/sub rather than a stream: a command is worth sending only while its sender waits for the
answer. Pub/sub delivers at most once, now, and PUBLISH says how many listened, so a request to a
process that has gone is answered "not connected" at once instead of waiting in a stream to be run
late (a Reset or a remote start minutes after the operator gave up). What must not be lost is kept in
the database, not in Redis: a reservation still "sent", a stop still due, is asked again whenever the
charger connects (see ChargerRegistry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from redis.exceptions import RedisError

from chargeshare.adapters.charger_ownership import ChargerOwnership, Owner
from chargeshare.adapters.redis_namespace import namespace_for
from chargeshare.ocpp import OcppVersion
from chargeshare.ocpp.connection import Outcome

log = logging.getLogger(__name__)

# Outcome errors besides the charger's own CALLERROR codes and "Timeout".
NOT_CONNECTED = "NotConnected"
MOVED = "Moved"  # the link the request was for has been replaced: look the owner up again
UNREACHABLE = "Unreachable"  # Redis could not be asked

REDIS_FAILURES = (RedisError, OSError)
RESUBSCRIBE_S = 1.0
TRANSIT_S = 2.0  # on top of the charger's own time to answer: two hops through Redis


class Superseded(Exception):
    """A connection made after ours holds the charger already: ours is stale and closes."""

    def __init__(self, newer: Owner) -> None:
        super().__init__(f"held by {newer.node} since a later connection (epoch {newer.epoch})")
        self.newer = newer


class LocalChargers(Protocol):
    """What a node's command router needs from the registry of the links it holds."""

    def held(self) -> Mapping[str, Owner]: ...
    async def answer_call(
        self, cp_id: str, epoch: int, action: str, payload: dict[str, Any], wait_s: float
    ) -> Outcome: ...
    def evict(self, cp_id: str, epoch: int) -> None: ...
    def heal(self, cp_id: str) -> None: ...
    def forget(self, cp_id: str) -> None: ...
    async def reclaim(self) -> None:
        """Claim the links whose claim Redis could not take (it was away as they connected)."""
        ...


def router_for(redis_url: str | None, database_url: str) -> CommandRouter | None:
    """The router of a process serving `database_url` beside others sharing Redis; None without one
    (a single process, whose registry holds every link there is)."""
    if redis_url is None:
        return None
    import redis.asyncio as aioredis

    return CommandRouter(aioredis.Redis.from_url(redis_url), namespace_for(database_url))


class CommandRouter:
    """One per server process. `run` listens (and renews the ownership records of the links held);
    `call` sends a raw call to the process that holds the charger."""

    def __init__(
        self,
        client: Any,
        namespace: str,
        *,
        node: str | None = None,
        ownership_ttl_ms: int = 60_000,
        transit_s: float = TRANSIT_S,
    ) -> None:
        self.client, self.namespace = client, namespace
        self.node = node or uuid.uuid4().hex[:16]
        self.ownership = ChargerOwnership(client, namespace, ttl_ms=ownership_ttl_ms)
        self.transit_s = transit_s
        self._pending: dict[str, asyncio.Future[Outcome]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def close(self) -> None:
        await self.client.aclose()

    def channel(self, node: str) -> str:
        return f"{self.namespace}:node:{node}"

    # ---- ownership, with Redis errors turned into the safe answer ------------------------------
    async def arrived(self, cp_id: str) -> int | None:
        """The epoch of a connection from the charger arriving now (None if Redis could not be
        asked: the claim then draws one)."""
        try:
            return await self.ownership.next_epoch(cp_id)
        except REDIS_FAILURES:
            log.exception("could not draw an epoch for %r", cp_id)
            return None

    async def claimed(self, cp_id: str, version: OcppVersion, epoch: int | None = None) -> Owner | None:
        """Record that this node holds the charger now; tell the node that held it before to close
        its link. None if Redis could not be asked (the link still serves; commands from other
        processes cannot find it). Raises Superseded if a connection made after ours (its `epoch`,
        from `arrived`) holds the charger already: ours is the stale one."""
        try:
            mine: Owner | None
            if epoch is None:
                mine, previous = await self.ownership.claim(cp_id, self.node, version)
            else:
                mine, previous = await self.ownership.claim_at(cp_id, self.node, version, epoch)
        except REDIS_FAILURES:
            log.exception("could not record that this process holds %r", cp_id)
            return None
        if mine is None:
            assert previous is not None
            raise Superseded(previous)
        if previous is not None and previous.node != self.node:
            await self.notify(previous.node, "evict", cp_id, previous.epoch)
        return mine

    async def released(self, cp_id: str, owner: Owner) -> bool:
        """Our link closed: is the charger's going offline ours to record? Yes unless a newer
        connection holds it; yes too if Redis cannot tell (as a single process would)."""
        try:
            return await self.ownership.release(cp_id, owner)
        except REDIS_FAILURES:
            log.exception("could not release %r; recording it offline", cp_id)
            return True

    async def owner_of(self, cp_id: str) -> Owner | None:
        try:
            return await self.ownership.owner_of(cp_id)
        except REDIS_FAILURES:
            log.exception("could not look up who holds %r", cp_id)
            return None

    async def marked_offline(self, cp_id: str, local: LocalChargers) -> None:
        """We recorded the charger offline as our link closed. Had it connected elsewhere in that
        very moment, the newer link is told to undo the mark (it may have written online first)."""
        owner = await self.owner_of(cp_id)
        if owner is None:
            return
        if owner.node == self.node:
            local.heal(cp_id)
        else:
            await self.notify(owner.node, "heal", cp_id, owner.epoch)

    # ---- messages ------------------------------------------------------------------------------
    async def notify(self, node: str, kind: str, cp_id: str, epoch: int = 0) -> bool:
        """A notice to one node; False if it was not listening or Redis could not be asked."""
        message = {"t": kind, "cp": cp_id, "epoch": epoch}
        try:
            return bool(await self.client.publish(self.channel(node), json.dumps(message)))
        except REDIS_FAILURES:
            log.exception("could not send %s about %r to %s", kind, cp_id, node)
            return False

    async def call(
        self, owner: Owner, cp_id: str, action: str, payload: dict[str, Any], wait_s: float
    ) -> Outcome:
        """Have the owner make the call; its outcome, or Timeout after `wait_s` plus the transit
        allowance, NotConnected if the owner is not listening, Unreachable if Redis is not."""
        request_id = uuid.uuid4().hex
        reply: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        message = {
            "t": "call",
            "id": request_id,
            "from": self.node,
            "cp": cp_id,
            "epoch": owner.epoch,
            "action": action,
            "payload": payload,
            "wait_s": wait_s,
        }
        try:
            heard = await self.client.publish(self.channel(owner.node), json.dumps(message))
            if not heard:  # that process has gone; its record lapses with its TTL
                return Outcome("", action, error=NOT_CONNECTED)
            return await asyncio.wait_for(reply, wait_s + self.transit_s)
        except TimeoutError:
            return Outcome("", action, error="Timeout")
        except REDIS_FAILURES:
            log.exception("could not route %s for %r through Redis", action, cp_id)
            return Outcome("", action, error=UNREACHABLE)
        finally:
            self._pending.pop(request_id, None)

    def _dispatch(self, data: bytes | str, local: LocalChargers) -> None:
        try:
            m = json.loads(data)
            kind = m["t"]
            if kind == "reply":
                self._replied(m)
            elif kind == "call":
                call = (
                    str(m["cp"]),
                    int(m["epoch"]),
                    str(m["action"]),
                    dict(m["payload"]),
                    float(m["wait_s"]),
                )
                self._spawn(self._answer(str(m["id"]), str(m["from"]), call, local))
            elif kind == "evict":
                local.evict(str(m["cp"]), int(m["epoch"]))
            elif kind == "heal":
                local.heal(str(m["cp"]))
            elif kind == "forget":
                local.forget(str(m["cp"]))
            else:
                log.warning("ignoring a %r message on %s", kind, self.channel(self.node))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed message on %s", self.channel(self.node))
        except Exception:  # a notice's handler failed: this node keeps listening
            log.exception("handling a message on %s failed", self.channel(self.node))

    def _replied(self, m: dict[str, Any]) -> None:
        reply = self._pending.pop(str(m["id"]), None)
        if reply is not None and not reply.done():  # else the caller gave up waiting
            malformed = bool(m.get("malformed", False))
            reply.set_result(Outcome(m["uid"], m["action"], m.get("payload"), m.get("error"), malformed))

    async def _answer(
        self,
        request_id: str,
        requester: str,
        call: tuple[str, int, str, dict[str, Any], float],
        local: LocalChargers,
    ) -> None:
        outcome = await local.answer_call(*call)
        reply = {
            "t": "reply",
            "id": request_id,
            "uid": outcome.unique_id,
            "action": outcome.action,
            "payload": outcome.payload,
            "error": outcome.error,
            "malformed": outcome.malformed,
        }
        try:
            await self.client.publish(self.channel(requester), json.dumps(reply))
        except REDIS_FAILURES:
            log.exception("could not reply to %s about %r", requester, call[0])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the node's loops ------------------------------------------------------------------------
    async def run(
        self, local: LocalChargers, ready: asyncio.Event, *, renew_every_s: float | None = None
    ) -> None:
        """Listen on this node's channel (re-subscribing after a lost connection; `ready` is set once
        subscribed) and renew the ownership records of the links held, until cancelled."""
        every = self.ownership.ttl_ms / 3000 if renew_every_s is None else renew_every_s
        renewing = asyncio.create_task(self._renew(local, every))
        try:
            await self._listen(local, ready)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            for task in list(self._tasks):
                task.cancel()

    async def _listen(self, local: LocalChargers, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel(self.node))
                    ready.set()
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None:
                            self._dispatch(message["data"], local)
            except REDIS_FAILURES as exc:
                log.warning("lost this node's command channel (%s); subscribing again", exc)
            await asyncio.sleep(RESUBSCRIBE_S)

    async def _renew(self, local: LocalChargers, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.renew_once(local)

    async def renew_once(self, local: LocalChargers) -> None:
        """Renew every record of ours; a link that a newer connection replaced elsewhere is closed."""
        held = dict(local.held())
        try:
            lost = await self.ownership.renew(held)
        except REDIS_FAILURES:
            log.exception("could not renew the ownership of %s chargers", len(held))
            return
        for cp_id in lost:
            local.evict(cp_id, held[cp_id].epoch)
        # Redis answers again: links that connected while it was away get their records, or no
        # other process could ever send them a command for as long as they stay connected.
        await local.reclaim()
