"""The embedded payment gateway: deterministic holds, captures and releases, with injectable declines.

It keeps its own books, so a run can check that what the "card network" saw agrees with our ledger.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

# Re-exported: GatewayError used to live here and callers still import it from this module.
from chargeshare.adapters.gateway_errors import GatewayError as GatewayError
from chargeshare.services.ports import HoldResult


@dataclass
class SimHold:
    reference: str
    customer: str
    amount: int
    captured: int = 0
    state: str = "authorized"  # authorized -> captured | released


@dataclass
class SimulatedGateway:
    decline_customers: set[str] = field(default_factory=set)
    decline_over: int | None = None  # decline any authorisation above this many pence
    holds: dict[str, SimHold] = field(default_factory=dict)
    _replies: dict[str, object] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorize(self, *, amount: int, customer: str, idempotency_key: str) -> HoldResult:
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
                self.holds[ref] = SimHold(ref, customer, amount)
                result = HoldResult(True, ref)
            self._replies[idempotency_key] = result
            return result

    def capture(self, *, reference: str, amount: int, idempotency_key: str) -> None:
        with self._lock:
            if idempotency_key in self._replies:
                return
            hold = self._authorized(reference)
            if not 0 <= amount <= hold.amount:
                raise GatewayError(f"cannot capture {amount} of a {hold.amount} hold")
            hold.captured, hold.state = amount, "captured"
            self._replies[idempotency_key] = None

    def release(self, *, reference: str, idempotency_key: str) -> None:
        with self._lock:
            if idempotency_key in self._replies:
                return
            self._authorized(reference).state = "released"
            self._replies[idempotency_key] = None

    def _authorized(self, reference: str) -> SimHold:
        hold = self.holds.get(reference)
        if hold is None:
            raise GatewayError(f"no such hold {reference}")
        if hold.state != "authorized":
            raise GatewayError(f"hold {reference} is already {hold.state}")
        return hold

    @property
    def total_captured(self) -> int:
        return sum(h.captured for h in self.holds.values())
