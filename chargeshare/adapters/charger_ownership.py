"""Which server process holds each charger's WebSocket: one ownership record per charger in Redis.

`{namespace}:owner:{charge point id}` holds "node|epoch|version" with a time to live that the holder
renews while its link is open. Every claim draws a new epoch from one counter, floored at Redis's
clock so that a flush cannot make it count again from 1, so of two links to a charger the later
connection's record has the higher epoch. The scripts compare epochs inside Redis
(a script runs atomically), so a link that closes, or renews, after a newer connection was made
elsewhere never removes or overwrites that connection's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chargeshare.ocpp import VERSIONS, OcppVersion

# Lua's pattern for the epoch inside "node|epoch|version" (node ids hold no "|").
_EPOCH_OF = "local function epoch_of(v) return tonumber(string.match(v, '^[^|]*|(%d+)|')) end\n"

# Draws the next epoch into `epoch` (KEYS[1]: the record, KEYS[2]: the counter). The counter alone
# does not survive a flush or a restart without persistence, while links held before it do (and put
# their records back as they renew): counting again from 1 would make every new connection older
# than those stale links. So an epoch is never below Redis's clock in microseconds (one counter still
# orders claims within a microsecond), nor below the record it would replace. Numbers are written
# with %d: Lua's own tostring would round them to 14 digits.
_DRAW_EPOCH = """
local previous = redis.call('get', KEYS[1])
local epoch = redis.call('incr', KEYS[2])
local now = redis.call('time')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
if previous then floor = math.max(floor, (epoch_of(previous) or 0) + 1) end
if epoch < floor then
  epoch = floor
  redis.call('set', KEYS[2], string.format('%d', epoch))
end
"""

# KEYS: record, epoch counter. Returns a new epoch, above every record's so far: drawn when a
# connection arrives, so that epochs follow the order connections were made in, whatever order
# their claims then reach Redis in.
EPOCH_SCRIPT = _EPOCH_OF + _DRAW_EPOCH + "return epoch\n"

# KEYS: record. ARGV: node, version, ttl ms, epoch (drawn with EPOCH_SCRIPT). Returns {epoch,
# previous record or ""}, or {0, the record} when a connection made later holds the charger already.
CLAIM_AT_SCRIPT = (
    _EPOCH_OF
    + """
local previous = redis.call('get', KEYS[1])
local epoch = tonumber(ARGV[4])
if previous and (epoch_of(previous) or 0) > epoch then return {0, previous} end
redis.call('set', KEYS[1], ARGV[1] .. '|' .. ARGV[4] .. '|' .. ARGV[2], 'PX', ARGV[3])
return {epoch, previous or ''}
"""
)

# KEYS: record, epoch counter. ARGV: node, version, ttl ms. Returns {epoch, previous record or ""}:
# the epoch drawn at the claim itself (when no epoch was drawn as the connection arrived).
CLAIM_SCRIPT = (
    _EPOCH_OF
    + _DRAW_EPOCH
    + """
redis.call('set', KEYS[1], ARGV[1] .. '|' .. string.format('%d', epoch) .. '|' .. ARGV[2], 'PX', ARGV[3])
return {epoch, previous or ''}
"""
)

# KEYS: records. ARGV: our record for each key, then the ttl ms. Per key 1: still ours (renewed, or
# put back after it lapsed, unless a newer connection holds it); 0: a newer connection holds it.
RENEW_SCRIPT = (
    _EPOCH_OF
    + """
local ttl = ARGV[#ARGV]
local out = {}
for i, key in ipairs(KEYS) do
  local mine = ARGV[i]
  local held = redis.call('get', key)
  if held == mine then
    redis.call('pexpire', key, ttl)
    out[i] = 1
  elseif (not held) or epoch_of(held) < epoch_of(mine) then
    redis.call('set', key, mine, 'PX', ttl)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
)

# KEYS: record. ARGV: our record. 1: no newer connection holds the charger (our record, if still
# there, is deleted), so its going offline is ours to record; 0: a newer connection holds it.
RELEASE_SCRIPT = (
    _EPOCH_OF
    + """
local held = redis.call('get', KEYS[1])
if not held then return 1 end
if held == ARGV[1] or epoch_of(held) < epoch_of(ARGV[1]) then
  redis.call('del', KEYS[1])
  return 1
end
return 0
"""
)

RENEW_BATCH = 500  # records renewed per script call: one round trip, and Redis is not held long


@dataclass(frozen=True)
class Owner:
    """One connection to a charger: the process (`node`) holding it, its epoch and OCPP version."""

    node: str
    epoch: int
    version: OcppVersion

    @property
    def record(self) -> str:
        return f"{self.node}|{self.epoch}|{self.version}"

    @classmethod
    def parse(cls, record: str | bytes) -> Owner | None:
        text = record.decode() if isinstance(record, bytes) else record
        node, _, rest = text.partition("|")
        epoch, _, version = rest.partition("|")
        if not node or not epoch.isdigit() or version not in VERSIONS:
            return None
        return cls(node, int(epoch), OcppVersion(version))


class ChargerOwnership:
    """The ownership records, on an asyncio Redis client (redis.asyncio, or fakeredis's)."""

    def __init__(self, client: Any, namespace: str, *, ttl_ms: int = 60_000) -> None:
        self.client, self.namespace, self.ttl_ms = client, namespace, ttl_ms
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._epoch = client.register_script(EPOCH_SCRIPT)
        self._claim_at = client.register_script(CLAIM_AT_SCRIPT)
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def key(self, cp_id: str) -> str:
        return f"{self.namespace}:owner:{cp_id}"

    def _counter(self) -> str:
        return f"{self.namespace}:owner-epochs"

    async def next_epoch(self, cp_id: str) -> int:
        """The epoch of a connection arriving now: above every connection to the charger so far."""
        return int(await self._epoch(keys=[self.key(cp_id), self._counter()]))

    async def claim(self, cp_id: str, node: str, version: OcppVersion) -> tuple[Owner, Owner | None]:
        """Record `node` as holding the charger from now on, with an epoch drawn now; returns our
        record and the one it replaced (None if there was none)."""
        epoch, previous = await self._claim(
            keys=[self.key(cp_id), self._counter()], args=[node, version, self.ttl_ms]
        )
        return Owner(node, int(epoch), version), (Owner.parse(previous) if previous else None)

    async def claim_at(
        self, cp_id: str, node: str, version: OcppVersion, epoch: int
    ) -> tuple[Owner | None, Owner | None]:
        """`claim` with the epoch drawn when the connection arrived (`next_epoch`): our record is None
        if a connection made after ours holds the charger already (that record is returned)."""
        got, previous = await self._claim_at(
            keys=[self.key(cp_id)], args=[node, version, self.ttl_ms, str(epoch)]
        )
        if not int(got):
            return None, Owner.parse(previous)
        return Owner(node, epoch, version), (Owner.parse(previous) if previous else None)

    async def renew(self, held: Mapping[str, Owner]) -> list[str]:
        """Renew the records of the links we hold; returns the chargers a newer connection holds."""
        lost: list[str] = []
        items = list(held.items())
        for start in range(0, len(items), RENEW_BATCH):
            batch = items[start : start + RENEW_BATCH]
            kept = await self._renew(
                keys=[self.key(cp_id) for cp_id, _ in batch],
                args=[owner.record for _, owner in batch] + [self.ttl_ms],
            )
            lost.extend(cp_id for (cp_id, _), ok in zip(batch, kept, strict=True) if not int(ok))
        return lost

    async def release(self, cp_id: str, owner: Owner) -> bool:
        """Our link closed: True if it was the charger's newest connection (so the charger is now
        offline, as far as we know); False if a newer one holds it elsewhere."""
        return bool(await self._release(keys=[self.key(cp_id)], args=[owner.record]))

    async def owner_of(self, cp_id: str) -> Owner | None:
        record = await self.client.get(self.key(cp_id))
        return None if record is None else Owner.parse(record)
