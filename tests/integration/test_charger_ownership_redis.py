"""The ownership Lua on a real Redis (Lua 5.1, whose numbers are doubles and whose tostring rounds
them to 14 digits, unlike fakeredis's Lua): epochs read back exactly, and a claim after a flush is
newer than a link held from before it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from chargeshare.adapters.charger_ownership import ChargerOwnership
from chargeshare.ocpp import V16
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

NS = "chargeshare:test"


@pytest.fixture
async def records(redis_client: Any) -> AsyncIterator[ChargerOwnership]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield ChargerOwnership(client, NS)
    finally:
        await client.aclose()


async def test_an_epoch_is_written_and_read_back_exactly(records: ChargerOwnership) -> None:
    a, _ = await records.claim("CP1", "node-a", V16)
    assert await records.client.get(records.key("CP1")) == a.record.encode()
    b, replaced = await records.claim("CP1", "node-b", V16)
    assert replaced == a and b.epoch > a.epoch
    assert await records.renew({"CP1": a}) == ["CP1"] and await records.renew({"CP1": b}) == []


async def test_a_claim_after_a_flush_is_newer_than_a_link_held_before_it(records: ChargerOwnership) -> None:
    a, _ = await records.claim("CP1", "node-a", V16)
    await records.client.flushdb()
    b, _ = await records.claim("CP1", "node-b", V16)
    assert b.epoch > a.epoch
    assert await records.renew({"CP1": a}) == ["CP1"]
    assert not await records.release("CP1", a)
    assert await records.owner_of("CP1") == b


async def test_a_claim_with_an_epoch_older_than_the_record_is_refused(records: ChargerOwnership) -> None:
    early = await records.next_epoch("CP1")
    late = await records.next_epoch("CP1")
    assert late > early
    b, _ = await records.claim_at("CP1", "node-b", V16, late)
    assert b is not None and b.epoch == late
    refused, holder = await records.claim_at("CP1", "node-a", V16, early)
    assert refused is None and holder == b
    assert await records.owner_of("CP1") == b
    # A connection arriving after both is newer than the record, even after a flush of the counter.
    await records.client.delete(f"{NS}:owner-epochs")
    assert await records.next_epoch("CP1") > late
