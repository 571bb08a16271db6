"""The embedded payment gateway: deterministic holds, captures and releases, with injectable declines,
latency, timeouts, outages and lapsing authorisations.

It keeps its own books, as a provider does, so a run can check that what the "card network" saw
agrees with our ledger. On a SQL database the books live in that database (`sim_gateway_*` tables):
they survive a restart, references never repeat, and every server process shares them, as well as
its knobs (outage, latency, declines over an amount), so a scenario can switch an outage on for a
backend running in another process. Declines per customer (`decline_customers`) are a test's knob
and stay in the process that set them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

from sqlalchemy import Engine, insert, select, text, update

# Re-exported: callers import GatewayError from here.
from chargeshare.adapters.gateway_errors import GatewayError as GatewayError
from chargeshare.adapters.sql import schema as t
from chargeshare.services.clock import Clock, SystemClock
from chargeshare.services.ports import HoldExpired, HoldResult, ProviderUnavailable

HOLD_LIFETIME = timedelta(days=7)  # as Stripe's uncaptured manual-capture PaymentIntents
DEFAULT_TIMEOUT_S = 10.0  # we give up on a call after this long (Stripe's own SDK waits 80 s)
SIM_LOCK_KEY = 0x43535047  # pg_advisory_xact_lock for the provider's books ("CSPG")
CLOCK_POLL_S = 0.005  # real seconds between looks at a clock that may stand still (a manual one)


@dataclass
class SimHold:
    reference: str
    customer: str
    amount: int
    created_at: datetime
    captured: int = 0
    state: str = "authorized"  # authorized -> captured | released | expired


@dataclass(frozen=True)
class Knobs:
    down: bool = False  # an outage: every call fails as unreachable, and nothing happens
    latency_s: float = 0.0  # real seconds each call takes
    # Seconds of the gateway's clock each call takes: simulated ones in a scaled simulation, which
    # pass only while the simulation runs, so a caller that holds it up never hears back in time.
    clock_latency_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S  # beyond this the call fails as a timeout, though it happened
    decline_over: int | None = None  # decline any authorisation above this many pence


@dataclass(frozen=True)
class Reply:
    approved: bool | None  # None: a capture or release, done
    reference: str | None = None
    reason: str = ""


class Books(Protocol):
    """One atomic look at the provider's books (everything in it commits together)."""

    def knobs(self) -> Knobs: ...
    def set_knobs(self, knobs: Knobs) -> None: ...
    def reply(self, key: str) -> Reply | None: ...
    def remember(self, key: str, reply: Reply) -> None: ...
    def new_hold(self, customer: str, amount: int, at: datetime) -> str: ...
    def hold(self, reference: str) -> SimHold | None: ...
    def save(self, hold: SimHold) -> None: ...
    def holds(self) -> dict[str, SimHold]: ...


class MemoryBooks:
    """The books in this process: for the in-memory store (tests, the DES)."""

    def __init__(self) -> None:
        self._knobs = Knobs()
        self._replies: dict[str, Reply] = {}
        self._holds: dict[str, SimHold] = {}
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[MemoryBooks]:
        with self._lock:
            yield self

    def knobs(self) -> Knobs:
        return self._knobs

    def set_knobs(self, knobs: Knobs) -> None:
        self._knobs = knobs

    def reply(self, key: str) -> Reply | None:
        return self._replies.get(key)

    def remember(self, key: str, reply: Reply) -> None:
        self._replies[key] = reply

    def new_hold(self, customer: str, amount: int, at: datetime) -> str:
        reference = f"sim_hold_{len(self._holds) + 1}"
        self._holds[reference] = SimHold(reference, customer, amount, at)
        return reference

    def hold(self, reference: str) -> SimHold | None:
        found = self._holds.get(reference)
        return None if found is None else replace(found)

    def save(self, hold: SimHold) -> None:
        self._holds[hold.reference] = replace(hold)

    def holds(self) -> dict[str, SimHold]:
        return {r: replace(h) for r, h in self._holds.items()}


class SqlBooks:
    """The books in the store's database, one transaction per call (PostgreSQL: under an advisory
    lock, so calls from several processes take turns, as a provider's own consistency would give)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def open(self) -> Iterator[_SqlBookView]:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SIM_LOCK_KEY})
            yield _SqlBookView(conn)


class _SqlBookView:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def knobs(self) -> Knobs:
        row = self.conn.execute(select(t.sim_gateway_settings.c.settings)).first()
        return Knobs() if row is None else Knobs(**json.loads(row[0]))

    def set_knobs(self, knobs: Knobs) -> None:
        body = json.dumps(asdict(knobs))
        if not self.conn.execute(update(t.sim_gateway_settings).values(settings=body)).rowcount:
            self.conn.execute(insert(t.sim_gateway_settings).values(id=1, settings=body))

    def reply(self, key: str) -> Reply | None:
        r = t.sim_gateway_replies.c
        row = self.conn.execute(
            select(r.approved, r.reference, r.reason).where(r.idempotency_key == key)
        ).first()
        return None if row is None else Reply(row[0], row[1], row[2] or "")

    def remember(self, key: str, reply: Reply) -> None:
        self.conn.execute(
            insert(t.sim_gateway_replies).values(
                idempotency_key=key, approved=reply.approved, reference=reply.reference, reason=reply.reason
            )
        )

    def new_hold(self, customer: str, amount: int, at: datetime) -> str:
        h = t.sim_gateway_holds
        stmt = insert(h).values(
            customer=customer, amount=amount, created_at=at, captured=0, state="authorized"
        )
        hold_id = self.conn.execute(stmt.returning(h.c.id)).scalar_one()
        return f"sim_hold_{hold_id}"

    def hold(self, reference: str) -> SimHold | None:
        if not reference.startswith("sim_hold_") or not reference[9:].isdigit():
            return None
        h = t.sim_gateway_holds.c
        row = self.conn.execute(
            select(h.customer, h.amount, h.created_at, h.captured, h.state).where(h.id == int(reference[9:]))
        ).first()
        return None if row is None else SimHold(reference, row[0], row[1], row[2], row[3], row[4])

    def save(self, hold: SimHold) -> None:
        h = t.sim_gateway_holds.c
        self.conn.execute(
            update(t.sim_gateway_holds)
            .where(h.id == int(hold.reference[9:]))
            .values(captured=hold.captured, state=hold.state)
        )

    def holds(self) -> dict[str, SimHold]:
        h = t.sim_gateway_holds.c
        rows = self.conn.execute(
            select(h.id, h.customer, h.amount, h.created_at, h.captured, h.state).order_by(h.id)
        )
        return {f"sim_hold_{r[0]}": SimHold(f"sim_hold_{r[0]}", *r[1:]) for r in rows}


@dataclass
class SimulatedGateway:
    clock: Clock = field(default_factory=SystemClock)
    books: MemoryBooks | SqlBooks = field(default_factory=MemoryBooks)
    decline_customers: set[str] = field(default_factory=set)  # this process's test knob
    calls: int = 0
    slowed: int = 0  # calls in this process that took a latency
    timed_out: int = 0  # calls in this process the caller gave up on (its timeout passed)
    _counting: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # ---- the knobs, shared through the books ------------------------------------------------
    def _knobs(self) -> Knobs:
        with self.books.open() as b:
            return b.knobs()

    def _set(self, **changes: Any) -> None:
        with self.books.open() as b:
            b.set_knobs(replace(b.knobs(), **changes))

    @property
    def down(self) -> bool:
        return self._knobs().down

    @down.setter
    def down(self, value: bool) -> None:
        self._set(down=value)

    @property
    def latency_s(self) -> float:
        return self._knobs().latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self._set(latency_s=value)

    @property
    def clock_latency_s(self) -> float:
        return self._knobs().clock_latency_s

    @clock_latency_s.setter
    def clock_latency_s(self, value: float) -> None:
        self._set(clock_latency_s=value)

    @property
    def timeout_s(self) -> float:
        return self._knobs().timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self._set(timeout_s=value)

    @property
    def decline_over(self) -> int | None:
        return self._knobs().decline_over

    @decline_over.setter
    def decline_over(self, value: int | None) -> None:
        self._set(decline_over=value)

    @property
    def holds(self) -> dict[str, SimHold]:
        with self.books.open() as b:
            return b.holds()

    @property
    def total_captured(self) -> int:
        return sum(h.captured for h in self.holds.values())

    def open_authorisations(self) -> dict[str, tuple[int, int]]:
        """Per customer: authorisations neither captured, released nor lapsed (count, pence)."""
        out: dict[str, tuple[int, int]] = {}
        now = self.clock.now()
        for h in self.holds.values():
            if h.state == "authorized" and now - h.created_at < HOLD_LIFETIME:
                count, amount = out.get(h.customer, (0, 0))
                out[h.customer] = (count + 1, amount + h.amount)
        return out

    # ---- the provider's calls --------------------------------------------------------------
    def _slow(self, knobs: Knobs) -> None:
        """The call takes its latency (real, then on the clock); past the timeout (real seconds) the
        caller gives up, though it was done."""
        if knobs.latency_s <= 0 and knobs.clock_latency_s <= 0:
            return
        with self._counting:
            self.slowed += 1
        deadline = time.monotonic() + knobs.timeout_s
        if knobs.latency_s > 0:
            time.sleep(min(knobs.latency_s, knobs.timeout_s))
            if knobs.latency_s > knobs.timeout_s:
                self._gave_up(knobs)
        if knobs.clock_latency_s > 0:
            until = self.clock.now() + timedelta(seconds=knobs.clock_latency_s)
            while (left := (until - self.clock.now()).total_seconds()) > 0:
                patience = deadline - time.monotonic()
                if patience <= 0:
                    self._gave_up(knobs)
                time.sleep(min(patience, max(self.clock.real_seconds(left), CLOCK_POLL_S)))

    def _gave_up(self, knobs: Knobs) -> NoReturn:
        with self._counting:
            self.timed_out += 1
        raise ProviderUnavailable(f"the payment provider did not answer within {knobs.timeout_s:g} s")

    def _enter(self) -> Knobs:
        self.calls += 1
        knobs = self._knobs()
        if knobs.down:
            raise ProviderUnavailable("simulated payment provider outage")
        return knobs

    def authorize(self, *, amount: int, customer: str, idempotency_key: str) -> HoldResult:
        knobs = self._enter()
        with self.books.open() as b:
            seen = b.reply(idempotency_key)
            if seen is None:
                declined = customer in self.decline_customers or (
                    knobs.decline_over is not None and amount > knobs.decline_over
                )
                if declined:
                    seen = Reply(False, None, "card_declined")
                else:
                    seen = Reply(True, b.new_hold(customer, amount, self.clock.now()))
                b.remember(idempotency_key, seen)
        self._slow(knobs)
        return HoldResult(bool(seen.approved), seen.reference or "", seen.reason)

    def capture(self, *, reference: str, amount: int, idempotency_key: str) -> None:
        self._settle(reference, idempotency_key, amount)

    def release(self, *, reference: str, idempotency_key: str) -> None:
        self._settle(reference, idempotency_key, None)

    def _settle(self, reference: str, idempotency_key: str, capture: int | None) -> None:
        """Capture `capture` pence of the hold, or release it (None). A refusal is raised once the
        books are written: a hold found lapsed stays marked so."""
        knobs = self._enter()
        refused: Exception | None = None
        with self.books.open() as b:
            if b.reply(idempotency_key) is None:
                hold = b.hold(reference)
                if (
                    hold is not None
                    and hold.state == "authorized"
                    and self.clock.now() - hold.created_at >= HOLD_LIFETIME
                ):
                    hold.state = "expired"
                    b.save(hold)
                if hold is None:
                    refused = GatewayError(f"no such hold {reference}")
                elif hold.state == "expired":
                    refused = HoldExpired(f"hold {reference} lapsed before it was captured")
                elif hold.state != "authorized":
                    refused = GatewayError(f"hold {reference} is already {hold.state}")
                elif capture is not None and not 0 <= capture <= hold.amount:
                    refused = GatewayError(f"cannot capture {capture} of a {hold.amount} hold")
                else:
                    hold.state = "released" if capture is None else "captured"
                    hold.captured = capture or 0
                    b.save(hold)
                    b.remember(idempotency_key, Reply(None, reference))
        if refused is not None:
            raise refused
        self._slow(knobs)
