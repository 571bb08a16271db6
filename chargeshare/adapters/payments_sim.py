"""The embedded payment gateway: deterministic holds, captures and releases, with injectable declines,
latency, outages and lapsing authorisations.

It keeps its own books, so a run can check that what the "card network" saw agrees with our ledger.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

# Re-exported: GatewayError used to live here and callers still import it from this module.
from chargeshare.adapters.gateway_errors import GatewayError as GatewayError
from chargeshare.services.clock import Clock, SystemClock
from chargeshare.services.ports import HoldExpired, HoldResult, ProviderUnavailable

HOLD_LIFETIME = timedelta(days=7)  # as Stripe's uncaptured manual-capture PaymentIntents


@dataclass
class SimHold:
    reference: str
    customer: str
    amount: int
    created_at_s: float  # clock time, seconds since epoch
    captured: int = 0
    state: str = "authorized"  # authorized -> captured | released | expired


@dataclass
class SimulatedGateway:
    clock: Clock = field(default_factory=SystemClock)
    decline_customers: set[str] = field(default_factory=set)
    decline_over: int | None = None  # decline any authorisation above this many pence
    down: bool = False  # an outage: every call fails as unreachable, and nothing happens
    latency_s: float = 0.0  # real seconds each call takes
    holds: dict[str, SimHold] = field(default_factory=dict)
    calls: int = 0
    _replies: dict[str, object] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _call(self) -> None:
        if self.latency_s:
            time.sleep(self.latency_s)
        self.calls += 1
        if self.down:
            raise ProviderUnavailable("simulated payment provider outage")

    def authorize(self, *, amount: int, customer: str, idempotency_key: str) -> HoldResult:
        self._call()
        with self._lock:
            seen = self._replies.get(idempotency_key)
            if isinstance(seen, HoldResult):
                return seen
            ref = f"sim_hold_{len(self.holds) + 1}"
            if customer in self.decline_customers or (
                self.decline_over is not None and amount > self.decline_over
            ):
                result = HoldResult(False, ref, "card_declined")
            else:
                self.holds[ref] = SimHold(ref, customer, amount, self.clock.now().timestamp())
                result = HoldResult(True, ref)
            self._replies[idempotency_key] = result
            return result

    def capture(self, *, reference: str, amount: int, idempotency_key: str) -> None:
        self._call()
        with self._lock:
            if idempotency_key in self._replies:
                return
            hold = self._authorized(reference)
            if not 0 <= amount <= hold.amount:
                raise GatewayError(f"cannot capture {amount} of a {hold.amount} hold")
            hold.captured, hold.state = amount, "captured"
            self._replies[idempotency_key] = None

    def release(self, *, reference: str, idempotency_key: str) -> None:
        self._call()
        with self._lock:
            if idempotency_key in self._replies:
                return
            self._authorized(reference).state = "released"
            self._replies[idempotency_key] = None

    def _authorized(self, reference: str) -> SimHold:
        hold = self.holds.get(reference)
        if hold is None:
            raise GatewayError(f"no such hold {reference}")
        if (
            hold.state == "authorized"
            and self.clock.now().timestamp() - hold.created_at_s >= HOLD_LIFETIME.total_seconds()
        ):
            hold.state = "expired"
        if hold.state == "expired":
            raise HoldExpired(f"hold {reference} lapsed before it was captured")
        if hold.state != "authorized":
            raise GatewayError(f"hold {reference} is already {hold.state}")
        return hold

    @property
    def total_captured(self) -> int:
        return sum(h.captured for h in self.holds.values())
