"""Connector time claimed in Redis before a booking touches the database, so that in a race for one
slot the losers are refused by one Lua call and never reach the database.

Per charger, a sorted set of claims (member `{connector_no}:{token}`, or `{connector_no}:{owner}/{token}`
for a request sent under an Idempotency-Key, whose copies it does not refuse; score the claim's end
in ms of the injected clock) and a hash of each claim's start, expiry and booking. A claim lives in
three stages: pending while its booking is written (it lapses after `pending_ms`, so a claimant that
died right after claiming blocks the slot briefly), placing once the booking is committed and its
card hold is being asked for (`placing_ms`, the placement's own timeout), then confirmed with the
booking's id (`held_ms`) until the booking ends. Each stage is moved on by the claim's own member,
whose random token fences it: a claim that lapsed and was taken by another is never revived. The
database stays the guard: a claim can only refuse a booking, never let one through that the
database would not, and every claim lapses by itself, so one never released (a process died, a
path that ends bookings without saying so) refuses the slot for its stage's window and no longer.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from chargeshare.services.ports import SlotClaim

log = logging.getLogger(__name__)

# KEYS: claims (zset), meta (hash: member -> "start:expires:booking"), bookings (hash: id -> member)
# ARGV: connector_no, start, end, token, now, pending_ms, keys_ms (the keys' TTL), owner ('' if none)
# Returns nil when claimed, else the member of a live claim overlapping the period; '' (nothing
# claimed) when the only ones overlapping are the owner's own: a copy of one request.
CLAIM_SCRIPT = """
local now = tonumber(ARGV[5])
local function forget(m)
  local meta = redis.call('hget', KEYS[2], m)
  if meta then
    local booking = string.match(meta, '^[^:]*:[^:]*:(.*)$')
    if booking and booking ~= '' then redis.call('hdel', KEYS[3], booking) end
  end
  redis.call('zrem', KEYS[1], m)
  redis.call('hdel', KEYS[2], m)
end
for _, m in ipairs(redis.call('zrangebyscore', KEYS[1], '-inf', now)) do forget(m) end
local start, finish = tonumber(ARGV[2]), tonumber(ARGV[3])
local prefix = ARGV[1] .. ':'
local mine = ARGV[8] ~= '' and ARGV[8] .. '/'
local copy = false
for _, m in ipairs(redis.call('zrangebyscore', KEYS[1], '(' .. ARGV[2], '+inf')) do
  if string.sub(m, 1, #prefix) == prefix then
    local meta = redis.call('hget', KEYS[2], m)
    local s, expires = string.match(meta or '', '^([^:]*):([^:]*):')
    if not s or tonumber(expires) <= now then
      forget(m)
    elseif tonumber(s) < finish then
      if not mine or string.sub(m, #prefix + 1, #prefix + #mine) ~= mine then return m end
      copy = true
    end
  end
end
if copy then return '' end
local member = prefix .. (mine or '') .. ARGV[4]
redis.call('zadd', KEYS[1], finish, member)
redis.call('hset', KEYS[2], member, ARGV[2] .. ':' .. (now + tonumber(ARGV[6])) .. ':')
for i = 1, 3 do redis.call('pexpire', KEYS[i], tonumber(ARGV[7])) end
return nil
"""

# Keeps the keys at least `ms` longer, so that no key's TTL ends a claim before its own expiry.
_OUTLIVE = """
local function outlive(ms)
  for i = 1, 3 do
    local left = redis.call('pttl', KEYS[i])
    if left >= 0 and left < ms then redis.call('pexpire', KEYS[i], ms) end
  end
end
"""

# KEYS: claims, meta, bookings. ARGV: member, now, placing_ms. 1 if extended; 0 if the claim had
# lapsed (or was confirmed already): a lapsed claim is not revived, another may have claimed since.
PLACING_SCRIPT = (
    _OUTLIVE
    + """
local meta = redis.call('hget', KEYS[2], ARGV[1])
if not meta then return 0 end
local s, expires, booking = string.match(meta, '^([^:]*):([^:]*):(.*)$')
local now = tonumber(ARGV[2])
if tonumber(expires) <= now or booking ~= '' then return 0 end
redis.call('hset', KEYS[2], ARGV[1], s .. ':' .. (now + tonumber(ARGV[3])) .. ':')
outlive(tonumber(ARGV[3]))
return 1
"""
)

# KEYS: claims, meta, bookings. ARGV: member, booking id, now, held_ms. 0 if the claim had gone.
# A claim that lapsed but is still there is confirmed: its booking is in the database by now.
CONFIRM_SCRIPT = (
    _OUTLIVE
    + """
local meta = redis.call('hget', KEYS[2], ARGV[1])
if not meta then return 0 end
local s = string.match(meta, '^([^:]*):')
redis.call('hset', KEYS[2], ARGV[1], s .. ':' .. (tonumber(ARGV[3]) + tonumber(ARGV[4])) .. ':' .. ARGV[2])
redis.call('hset', KEYS[3], ARGV[2], ARGV[1])
outlive(tonumber(ARGV[4]))
return 1
"""
)

# KEYS: claims, meta, bookings. ARGV: member ('' to find it by booking), booking id ('' if none).
RELEASE_SCRIPT = """
local m = ARGV[1]
if m == '' then m = redis.call('hget', KEYS[3], ARGV[2]) end
if not m then return 0 end
redis.call('zrem', KEYS[1], m)
redis.call('hdel', KEYS[2], m)
if ARGV[2] ~= '' then redis.call('hdel', KEYS[3], ARGV[2]) end
return 1
"""


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _owner(owner: str) -> str:
    # Hashed: a member's parts are split on ':' and '/', and an owner may hold either.
    return hashlib.sha256(owner.encode()).hexdigest()[:24] if owner else ""


class RedisSlotClaims:
    def __init__(
        self, client: Any, namespace: str, *, pending_ms: int, placing_ms: int, held_ms: int
    ) -> None:
        self.client, self.namespace = client, namespace
        self.pending_ms, self.placing_ms, self.held_ms = pending_ms, placing_ms, held_ms
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._placing = client.register_script(PLACING_SCRIPT)
        self._confirm = client.register_script(CONFIRM_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def _keys(self, charger_id: int) -> list[str]:
        base = f"{self.namespace}:slots:{charger_id}"
        return [base, base + ":meta", base + ":bookings"]

    def claim(
        self,
        charger_id: int,
        connector_no: int,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        owner: str = "",
    ) -> SlotClaim | None:
        """Claim the period; None if a live claim on the connector overlaps it (the slot is taken,
        or being booked right now), unless only `owner`'s own do (see `SlotClaims.claim`)."""
        token = uuid.uuid4().hex
        keys_ms = max(self.pending_ms, self.placing_ms, self.held_ms)
        args = [connector_no, _ms(starts_at), _ms(ends_at), token, _ms(now), self.pending_ms, keys_ms]
        args.append(_owner(owner))
        try:
            taken = self._claim(keys=self._keys(charger_id), args=args)
        except RedisError as exc:  # only an optimisation: the database decides alone meanwhile
            log.warning("slot claims unavailable, booking on the database alone: %s", exc)
            return SlotClaim(charger_id, "")
        if taken in (b"", ""):  # a copy of the request holding it: the database decides
            return SlotClaim(charger_id, "")
        if taken is not None:
            return None
        return SlotClaim(charger_id, f"{connector_no}:{_owner(owner)}{'/' if owner else ''}{token}")

    def placing(self, claim: SlotClaim, now: datetime) -> None:
        if claim.member:
            self._quietly(self._placing, claim.charger_id, [claim.member, _ms(now), self.placing_ms])

    def confirm(self, claim: SlotClaim, booking_id: int, now: datetime) -> None:
        if claim.member:
            args = [claim.member, booking_id, _ms(now), self.held_ms]
            self._quietly(self._confirm, claim.charger_id, args)

    def release(self, claim: SlotClaim) -> None:
        if claim.member:
            self._quietly(self._release, claim.charger_id, [claim.member, ""])

    def release_booking(self, charger_id: int, booking_id: int) -> None:
        self._quietly(self._release, charger_id, ["", booking_id])

    def _quietly(self, script: Any, charger_id: int, args: list[Any]) -> None:
        # A claim not confirmed or not released lapses by itself; the booking is not failed for it.
        try:
            script(keys=self._keys(charger_id), args=args)
        except RedisError as exc:
            log.warning("slot claim not updated (it lapses by itself): %s", exc)


@dataclass
class _Claim:
    connector_no: int
    start_ms: int
    end_ms: int
    expires_ms: int
    owner: str = ""
    booking_id: int | None = None


class MemorySlotClaims:
    """The same claims for one process on its own (the embedded default, whose Redis is an
    in-process fake): kept in this process's memory, with the rules of the Lua scripts above."""

    def __init__(self, *, pending_ms: int, placing_ms: int, held_ms: int) -> None:
        self.pending_ms, self.placing_ms, self.held_ms = pending_ms, placing_ms, held_ms
        self._claims: dict[int, dict[str, _Claim]] = {}  # charger id -> member -> claim
        self._lock = threading.Lock()

    def claim(
        self,
        charger_id: int,
        connector_no: int,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        owner: str = "",
    ) -> SlotClaim | None:
        start, end, at = _ms(starts_at), _ms(ends_at), _ms(now)
        copy = False
        with self._lock:
            claims = self._claims.setdefault(charger_id, {})
            for member, c in list(claims.items()):
                if c.end_ms <= at or c.expires_ms <= at:
                    del claims[member]
                elif c.connector_no == connector_no and c.start_ms < end and c.end_ms > start:
                    if not owner or c.owner != owner:
                        return None
                    copy = True
            if copy:  # a copy of the request holding it: the database decides
                return SlotClaim(charger_id, "")
            member = f"{connector_no}:{uuid.uuid4().hex}"
            claims[member] = _Claim(connector_no, start, end, at + self.pending_ms, owner)
        return SlotClaim(charger_id, member)

    def placing(self, claim: SlotClaim, now: datetime) -> None:
        at = _ms(now)
        with self._lock:
            c = self._claims.get(claim.charger_id, {}).get(claim.member)
            if c is not None and c.expires_ms > at and c.booking_id is None:
                c.expires_ms = at + self.placing_ms

    def confirm(self, claim: SlotClaim, booking_id: int, now: datetime) -> None:
        with self._lock:
            c = self._claims.get(claim.charger_id, {}).get(claim.member)
            if c is not None:
                c.expires_ms, c.booking_id = _ms(now) + self.held_ms, booking_id

    def release(self, claim: SlotClaim) -> None:
        with self._lock:
            self._claims.get(claim.charger_id, {}).pop(claim.member, None)

    def release_booking(self, charger_id: int, booking_id: int) -> None:
        with self._lock:
            claims = self._claims.get(charger_id, {})
            for member in [m for m, c in claims.items() if c.booking_id == booking_id]:
                del claims[member]
