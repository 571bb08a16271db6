"""Live pushes across processes through Redis: what one hub publishes reaches the apps of another in
order, batched or not; a clean close sends what is still waiting; a hub whose process has no app
connected does not decode what others publish."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from chargeshare.adapters.event_fanout import EventHub, _pushes
from chargeshare.domain.accounts import Principal, Role
from chargeshare.services.live_push import Push
from tests.conftest import REDIS_URL, T0

pytestmark = pytest.mark.redis

CHANNEL = "chargeshare:events:test-fanout"
DRIVER = Principal(1, Role.DRIVER, driver_id=7)


def tick(n: int, driver: int = 7) -> Push:
    return Push("charging.tick", T0, {"n": n}, frozenset({driver}), frozenset({3}))


async def test_what_one_process_publishes_reaches_another_processes_app_in_order(redis_client: Any) -> None:
    sender, receiver = EventHub(REDIS_URL, CHANNEL), EventHub(REDIS_URL, CHANNEL)
    ready = asyncio.Event()
    relay = asyncio.create_task(receiver.relay(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        with receiver.listen(DRIVER) as app:
            for n in range(900):  # two batches, within the app's queue
                sender.publish(tick(n))
            sender.publish(tick(-1, driver=8))  # another driver's: not for this app
            got = [await asyncio.wait_for(app.queue.get(), 10) for _ in range(900)]
            assert [m["n"] for m in got] == list(range(900))
            assert app.queue.empty()
    finally:
        relay.cancel()
        sender.close()
        receiver.close()


async def test_a_clean_close_sends_what_is_still_waiting(redis_client: Any) -> None:
    pubsub = redis_client.pubsub()
    pubsub.subscribe(CHANNEL)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    hub = EventHub(REDIS_URL, CHANNEL)
    for n in range(50):
        hub.publish(tick(n))
    hub.close()
    heard: list[int] = []
    while len(heard) < 50:
        msg = pubsub.get_message(timeout=5)
        assert msg is not None, f"only {len(heard)} of 50 pushes arrived"
        heard += [d["body"]["n"] for d in json.loads(msg["data"])]
    assert heard == list(range(50))
    pubsub.close()


class Messages:
    """A pubsub holding the given messages; `listening` is read as each is taken."""

    def __init__(self, *data: str) -> None:
        self.left = [{"type": "message", "data": d} for d in data]
        self.taken = 0

    async def get_message(self, **_kw: Any) -> dict[str, Any] | None:
        self.taken += 1
        return self.left.pop(0)


async def test_a_process_with_no_app_listening_skips_decoding() -> None:
    pubsub = Messages(json.dumps([tick(1).to_wire()]), json.dumps([tick(2).to_wire(), tick(3).to_wire()]))
    # No app for the first message (it is dropped unread), one for the second.
    pushes = _pushes(pubsub, lambda: pubsub.taken > 1)
    assert [(await anext(pushes)).body["n"] for _ in range(2)] == [2, 3]
