"""Live pushes to connected apps: this process's WebSocket connections, and, when Redis is configured,
every other server process's through pub/sub (each process delivers to its own connections).

Bus handlers run on whatever thread published the event (a request's worker thread, or the event
loop for OCPP), so delivery into a connection's queue goes through its loop, thread-safely. Pushes
for Redis are handed to a publisher thread, which sends whatever has gathered as one message: a
charger's frame never waits on a Redis round trip, and a busy fleet costs each relaying process one
message per batch rather than one per reading. A process with no app connected skips decoding.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from chargeshare.domain.accounts import Principal, Role
from chargeshare.services.live_push import Push

log = logging.getLogger(__name__)

RESUBSCRIBE_S = 1.0
QUEUE_LIMIT = 1_000  # messages waiting for one slow app before it misses some
CLOSE_WAIT_S = 5.0  # for the publisher thread to send what is left on a clean stop
BATCH_LIMIT = 500  # pushes per Redis message at most
BACKLOG_LIMIT = 100_000  # pushes waiting for Redis (down, say) before the oldest are dropped


def channel_for(database_url: str) -> str:
    """Processes sharing a database share a channel; others (other test runs) do not hear them."""
    return "chargeshare:events:" + hashlib.sha256(database_url.encode()).hexdigest()[:16]


@dataclass
class Listener:
    principal: Principal
    queue: asyncio.Queue[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    dropped: int = 0

    def wants(self, push: Push) -> bool:
        p = self.principal
        if p.role is Role.ADMIN:
            return True
        if p.role is Role.DRIVER:
            return p.driver_id in push.drivers
        return p.host_id in push.hosts

    def offer(self, message: dict[str, Any]) -> None:
        """Runs on the listener's loop."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1


class EventHub:
    def __init__(self, redis_url: str | None, channel: str) -> None:
        self.redis_url, self.channel = redis_url, channel
        self._listeners: dict[int, Listener] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._publisher: Any = None
        self._backlog: collections.deque[Push] = collections.deque(maxlen=BACKLOG_LIMIT)
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        if redis_url is not None:
            import redis

            self._publisher = redis.Redis.from_url(redis_url)
            self._thread = threading.Thread(target=self._publish_batches, name="push-publisher", daemon=True)
            self._thread.start()

    # ---- from the bus ----------------------------------------------------------------------------
    def publish(self, push: Push) -> None:
        if self._publisher is None:
            self.deliver(push)
            return
        with self._wake:
            self._backlog.append(push)
            self._wake.notify()

    def _publish_batches(self) -> None:
        while True:
            with self._wake:
                while not self._backlog and not self._closing:
                    self._wake.wait()
                if not self._backlog:
                    return  # closing, and everything sent
                batch = [self._backlog.popleft() for _ in range(min(BATCH_LIMIT, len(self._backlog)))]
            try:
                self._publisher.publish(self.channel, json.dumps([p.to_wire() for p in batch]))
            except Exception:
                # Redis down: this process's apps still hear them; other processes' miss them (logged).
                log.exception("could not publish %s pushes to Redis; delivering locally only", len(batch))
                for push in batch:
                    self.deliver(push)

    def deliver(self, push: Push) -> None:
        with self._lock:
            targets = [x for x in self._listeners.values() if x.wants(push)]
        message = push.message()
        for x in targets:
            with contextlib.suppress(RuntimeError):  # its loop has closed: the app is gone
                x.loop.call_soon_threadsafe(x.offer, message)

    # ---- to the apps -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def listen(self, principal: Principal) -> Any:
        listener = Listener(principal, asyncio.Queue(QUEUE_LIMIT), asyncio.get_running_loop())
        key = next(self._ids)
        with self._lock:
            self._listeners[key] = listener
        try:
            yield listener
        finally:
            with self._lock:
                self._listeners.pop(key, None)

    def heard(self) -> bool:
        """Could anyone hear a push now: an app connected here, or other processes through Redis?"""
        return self._publisher is not None or self.connections > 0

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._listeners)

    # ---- from Redis ------------------------------------------------------------------------------
    async def relay(self, ready: asyncio.Event | None = None) -> None:
        """Deliver what any process published on the channel to this process's connections."""
        if self.redis_url is None:
            return
        import redis.asyncio as aioredis

        while True:  # a lost Redis connection is re-made; pushes published meanwhile are missed
            client = aioredis.Redis.from_url(self.redis_url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    if ready is not None:
                        ready.set()
                    async for push in _pushes(pubsub, lambda: self.connections > 0):
                        self.deliver(push)
            except (OSError, aioredis.RedisError):
                log.exception("lost the events channel; subscribing again in %s s", RESUBSCRIBE_S)
                await asyncio.sleep(RESUBSCRIBE_S)
            finally:
                await client.aclose()

    def close(self) -> None:
        """Send what is still waiting (bounded), then let go of Redis."""
        if self._thread is not None:
            with self._wake:
                self._closing = True
                self._wake.notify()
            self._thread.join(timeout=CLOSE_WAIT_S)
        if self._publisher is not None:
            self._publisher.close()


async def _pushes(pubsub: Any, wanted: Callable[[], bool]) -> AsyncIterator[Push]:
    """The pushes of each message on the channel, decoded only while `wanted()` (an app listens)."""
    while True:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if msg is None or not wanted():
            continue
        try:
            pushes = [Push.from_wire(d) for d in json.loads(msg["data"])]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed message on the events channel")
            continue
        for push in pushes:
            yield push
