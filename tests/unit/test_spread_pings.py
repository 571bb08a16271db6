"""Keepalive pings of many links spread apart instead of going out together for ever (driven on a
simulated event loop: each link pings, its charger answers at once, the next ping is scheduled)."""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

from chargeshare.entrypoints.spread_pings import GAP_FACTORS, SpreadPingsProtocol

INTERVAL_S = 20.0
LINKS = 2_000


class _Loop:
    """call_later on simulated time; `run_until` fires the callbacks in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._n = 0

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        self._n += 1
        heapq.heappush(self._due, (self.now + delay, self._n, callback))
        return None

    def run_until(self, end: float) -> None:
        while self._due and self._due[0][0] <= end:
            self.now, _, callback = heapq.heappop(self._due)
            callback()


def _links(cls: type[WebSocketsSansIOProtocol], loop: _Loop, pings: list[float]) -> None:
    """LINKS links of `cls`, connected in the same instant, whose pings are answered at once."""
    for n in range(LINKS):
        link = object.__new__(cls)
        link.ping_interval, link.last_ping_rtt, link.loop = INTERVAL_S, 0.0, loop  # type: ignore[assignment]
        if isinstance(link, SpreadPingsProtocol):
            link.rng = random.Random(n)

        def ping(link: WebSocketsSansIOProtocol = link) -> None:
            pings.append(loop.now)
            link.schedule_ping()  # the pong came back at once: uvicorn schedules the next ping

        link.send_keepalive_ping = ping  # type: ignore[method-assign]
        link.start_keepalive()


def _busiest_second(pings: list[float], after: float) -> int:
    return max(Counter(int(t) for t in pings if t >= after).values())


def test_links_connected_together_do_not_keep_pinging_together() -> None:
    loop, pings = _Loop(), list[float]()
    _links(SpreadPingsProtocol, loop, pings)
    loop.run_until(10 * INTERVAL_S)
    # Evenly spread, a second holds LINKS / INTERVAL_S = 100 pings on average.
    assert _busiest_second(pings, after=3 * INTERVAL_S) < 3 * LINKS / INTERVAL_S


def test_unspread_pings_stay_bunched() -> None:
    # What the spread is against: uvicorn's own schedule keeps a burst of links pinging in one second.
    loop, pings = _Loop(), list[float]()
    _links(WebSocketsSansIOProtocol, loop, pings)
    loop.run_until(10 * INTERVAL_S)
    assert _busiest_second(pings, after=3 * INTERVAL_S) == LINKS


def test_gaps_stay_within_the_factors_of_the_interval() -> None:
    loop, pings = _Loop(), list[float]()
    link = object.__new__(SpreadPingsProtocol)
    link.ping_interval, link.last_ping_rtt, link.loop = INTERVAL_S, 0.0, loop  # type: ignore[assignment]
    link.rng = random.Random(1)

    def ping() -> None:
        pings.append(loop.now)
        link.schedule_ping()

    link.send_keepalive_ping = ping  # type: ignore[method-assign]
    link.start_keepalive()
    loop.run_until(200 * INTERVAL_S)
    assert 0 <= pings[0] <= INTERVAL_S
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert min(gaps) >= GAP_FACTORS[0] * INTERVAL_S
    assert max(gaps) <= GAP_FACTORS[1] * INTERVAL_S
    assert abs(sum(gaps) / len(gaps) - INTERVAL_S) < 0.05 * INTERVAL_S


class _Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _TimedLoop(_Loop):
    """`_Loop` whose timers can be cancelled, as uvicorn's keepalive cancels them."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        handle = _Handle()
        super().call_later(delay, lambda: None if handle.cancelled else callback())
        return handle

    def run_until_true(self, done: Callable[[], bool], end: float) -> None:
        """Fire the callbacks in order until `done` (or `end`)."""
        while not done() and self._due and self._due[0][0] <= end:
            self.now, _, callback = heapq.heappop(self._due)
            callback()


class _Conn:
    def __init__(self) -> None:
        self.pings: list[bytes] = []
        self.failed: tuple[int, str] | None = None

    def send_ping(self, data: bytes) -> None:
        self.pings.append(data)

    def fail(self, code: int, reason: str) -> None:
        self.failed = (code, reason)

    def data_to_send(self) -> list[bytes]:
        return []


class _Transport:
    closed = False

    def write(self, _data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _real_link(loop: _TimedLoop, timeout_s: float) -> tuple[SpreadPingsProtocol, _Conn, _Transport]:
    """A link running uvicorn's own ping, pong and timeout code, only its schedule spread."""
    link = object.__new__(SpreadPingsProtocol)
    conn, transport = _Conn(), _Transport()
    link.loop, link.conn, link.transport = loop, conn, transport  # type: ignore[assignment]
    link.ping_interval, link.ping_timeout, link.last_ping_rtt = INTERVAL_S, timeout_s, 0.0
    link.ping_timer = link.pong_timer = link.pending_ping_payload = None
    link.close_sent, link.client, link.rng = False, None, random.Random(3)
    link.logger = logging.getLogger("uvicorn.error")
    return link, conn, transport


def test_an_unanswered_ping_still_closes_the_link_after_the_pong_timeout() -> None:
    loop = _TimedLoop()
    link, conn, transport = _real_link(loop, timeout_s=5.0)
    link.start_keepalive()
    loop.run_until_true(lambda: bool(conn.pings), INTERVAL_S)  # the first ping, within the interval
    assert len(conn.pings) == 1 and conn.failed is None
    loop.run_until(link.ping_sent_at + 4.9)
    assert conn.failed is None
    loop.run_until(link.ping_sent_at + 5.0)
    assert conn.failed == (1011, "keepalive ping timeout") and transport.closed
    loop.run_until(100 * INTERVAL_S)
    assert len(conn.pings) == 1  # no ping chained after the timeout


def test_answered_pings_chain_and_stop_when_the_link_closes() -> None:
    loop = _TimedLoop()
    link, conn, _ = _real_link(loop, timeout_s=5.0)
    link.start_keepalive()
    for n in range(1, 6):
        before = loop.now
        loop.run_until_true(lambda n=n: len(conn.pings) == n, loop.now + GAP_FACTORS[1] * INTERVAL_S)  # type: ignore[misc]
        assert len(conn.pings) == n and (n == 1 or loop.now - before >= GAP_FACTORS[0] * INTERVAL_S)
        assert link.pending_ping_payload is not None
        link.handle_pong(Frame(Opcode.PONG, link.pending_ping_payload))  # answered at once
    assert len(conn.pings) == 5 and conn.failed is None
    link.stop_keepalive()  # what connection_lost and shutdown call
    loop.run_until(loop.now + 100 * INTERVAL_S)
    assert len(conn.pings) == 5 and conn.failed is None
