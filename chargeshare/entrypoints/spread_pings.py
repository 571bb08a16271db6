"""Keepalive pings spread in time. uvicorn pings each link `ws_ping_interval` after its last ping
went out, so links whose pings went out together (connected in one burst, or answered in one
saturated moment) keep pinging together for ever: with thousands of chargers connected, a second
with thousands of pings stalls the event loop, and every charger's acknowledgement waits. Each link
here waits a random part of the interval before its first ping and a random length around the
interval between pings, so bunched pings drift apart within a few intervals and stay apart."""

from __future__ import annotations

import random

from chargeshare.entrypoints.tls_scope import TlsScopeProtocol

# Each gap between pings is the interval times a factor drawn from this range: 20 s on average,
# as uvicorn's default, never more than 1.2 times it (a dead link is still found about as soon).
GAP_FACTORS = (0.8, 1.2)


class SpreadPingsProtocol(TlsScopeProtocol):
    """uvicorn's sans-I/O WebSocket protocol (with the ASGI TLS extension) whose pings are spread."""

    pings_started = False
    rng = random.Random()

    def schedule_ping(self) -> None:
        assert self.ping_interval is not None
        if not self.pings_started:
            # The first ping at a random point of the interval: a burst of connections spreads out.
            self.pings_started = True
            gap = self.rng.uniform(0.0, self.ping_interval)
        else:
            gap = self.ping_interval * self.rng.uniform(*GAP_FACTORS)
        delay = max(0.0, gap - self.last_ping_rtt)
        self.ping_timer = self.loop.call_later(delay, self.send_keepalive_ping)
