"""Replay a trace into a fresh backend, in order, on a manual clock, and judge the result.

Charger-originated OCPP calls go through a real `Connection` with the real CSMS handler tables; the
CSMS's own calls are not re-sent (no charger is connected), but the charger's recorded answers to them
are signs of life, as on the server, and applied where the backend acts on them (ReserveNow). API
calls are re-issued against the same ASGI app in-process. Identifiers the backend hands out
(transaction, driver, booking, charger ids) are mapped from the recorded answers to the new ones. A
trace with no API calls is a vendor's: its chargers, drivers and bookings are created as its frames
need them.

What a run set up outside the API (its hosts and chargers; from version 2 its feeders, sites,
flexibility events and operator accounts) is re-created from the trace's setup records. With a
grid, the loads its chargers' own readings show are measured against it (`grid_within_limits`,
simulators/replay_grid.py), and the limits the recorded backend sent are compared with the ones
decided here. A setup record the fresh backend refuses fails the replay: what the recorded run was
held to cannot be re-created, so it cannot be checked.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import MEMORY_DATABASE_URL, App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import DomainError, NotFound
from chargeshare.domain.geo import Point
from chargeshare.domain.grid_limits import Scope
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.ocpp import V16, OcppVersion, csms, csms_v16, csms_v201
from chargeshare.ocpp.connection import CallRejected, Connection
from chargeshare.ocpp.grid_limits import tx_default_profile_id
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import GridLimitsDue
from chargeshare.services.invariants import InvariantResult
from chargeshare.services.rate_limits import ApiLimits
from simulators.driver import DriverStats
from simulators.fleet import CITIES
from simulators.live import DEFAULT_START, GRID_SAMPLE_EVERY_S
from simulators.replay_grid import (
    MATCH_WITHIN,
    DecidedLimits,
    LoadCurves,
    ReplayGridMeter,
    as_sent,
    decode_frame,
    recorded_limits,
    tx_default_periods,
)
from simulators.report import RunReport, summarise
from simulators.trace import SETUP_KINDS, Record, Trace, changes_grid

HOUSEKEEPING_EVERY_S = 30  # as the served API's housekeeping loop
MAX_ROUNDS_PER_GAP = 240  # a long silence in a vendor trace: the rounds in between change nothing
VENDOR_PRICE_PER_KWH = 45
VENDOR_POWER_W = 7_400
MAX_DETAILS = 5
MAX_IN_FLIGHT = 500  # how far ahead to look for the calls that overlapped a refused one
ID_PATH = re.compile(r"^(/(?:host/)?)(bookings|chargers|drivers|hosts|fleets|sites)/(\d+)")
CREATED_ID = ("drivers", "bookings", "fleets")  # resources whose POST answers their new `id`
ID_FIELDS = {
    "driver_id": "drivers",
    "charger_id": "chargers",
    "host_id": "hosts",
    "booking_id": "bookings",
    "feeder_id": "feeders",
    "site_id": "sites",
}

Sampler = Callable[[App], None]
# Accounts a replay signs up are throw-away: the cheap password hash, where the backend has accounts.
_FAST_ACCOUNTS: dict[str, Any] = (
    {"password_hash": "fast"} if "password_hash" in {f.name for f in fields(Config)} else {}
)


@dataclass
class ReplayReport:
    trace: str
    run: RunReport
    charger_checks: list[InvariantResult]
    fed: dict[str, int]
    divergences: list[str] = field(default_factory=list)
    divergence_count: int = 0
    notes: list[str] = field(default_factory=list)  # what this trace cannot have checked, and why

    @property
    def ok(self) -> bool:
        return self.run.ok and all(c.ok for c in self.charger_checks)

    def to_json(self) -> str:
        body = {
            "ok": self.ok,
            "trace": self.trace,
            "fed": self.fed,
            "summary": self.run.summary,
            "invariants": [asdict(r) for r in self.run.invariants],
            "charger_checks": [asdict(r) for r in self.charger_checks],
            "divergences": self.divergences,
            "divergence_count": self.divergence_count,
            "notes": self.notes,
            "errors": self.run.errors,
        }
        return json.dumps(body, indent=2, sort_keys=True)


@dataclass(frozen=True)
class _Take:
    """A recorded charger's take of a connector's grid share: when, and the limit it took now."""

    at: datetime
    connector_no: int
    limit: int
    phases: int  # 0: in W


@dataclass
class _Pairs:
    """Which recorded frame answered which call, per charger and message id (FIFO for repeats)."""

    answer_to: dict[int, Record] = field(default_factory=dict)  # line of a call -> its answer
    call_of: dict[int, Record] = field(default_factory=dict)  # line of an answer -> its call

    @classmethod
    def scan(cls, trace: Trace) -> _Pairs:
        pairs = cls()
        open_calls: dict[tuple[str, str, str], deque[Record]] = defaultdict(deque)
        for r in trace.records:
            if r.kind != "ocpp":
                continue
            frame = decode_frame(r.data["frame"])
            if frame is None or len(frame) < 2:
                continue
            uid = str(frame[1])
            if frame[0] == 2:
                open_calls[(r.data["cp"], r.data["dir"], uid)].append(r)
            elif frame[0] in (3, 4):
                caller_dir = "out" if r.data["dir"] == "in" else "in"
                waiting = open_calls.get((r.data["cp"], caller_dir, uid))
                if waiting:
                    call = waiting.popleft()
                    pairs.answer_to[call.line] = r
                    pairs.call_of[r.line] = call
        return pairs


class _ChargerChecks:
    """What the trace says about the charger itself, whatever the backend made of it."""

    def __init__(self) -> None:
        self.stops: dict[tuple[str, Any], tuple[Any, Any, int]] = {}  # -> (meterStop, timestamp, line)
        self.registers: dict[tuple[str, Any], tuple[int, int]] = {}  # -> (highest Wh, line)
        self.stop_conflicts: list[str] = []
        self.backwards: list[str] = []
        self.transactions = 0

    def see(self, r: Record, action: str, payload: dict[str, Any]) -> None:
        cp = r.data["cp"]
        if action == "StopTransaction":
            key = (cp, payload.get("transactionId"))
            self._stop(r, key, payload.get("meterStop"), payload.get("timestamp"))
            self._reading(r, key, payload.get("meterStop"))
        elif action == "MeterValues" and payload.get("transactionId") is not None:
            try:
                register = csms_v16.energy_register_wh(payload.get("meterValue", []))
            except CallRejected:
                return
            self._reading(r, (cp, payload["transactionId"]), register)
        elif action == "TransactionEvent" and isinstance(payload.get("transactionInfo"), dict):
            key = (cp, payload["transactionInfo"].get("transactionId"))
            try:
                readings = csms_v201.energy_readings_wh(payload.get("meterValue", []))
            except (CallRejected, AttributeError, KeyError, TypeError, ValueError):
                readings = []  # the backend's own CALLERROR covers a malformed reading
            for wh in readings:
                self._reading(r, key, wh)
            if payload.get("eventType") == "Ended":
                self._stop(r, key, readings[-1] if readings else None, payload.get("timestamp"))

    def _stop(self, r: Record, key: tuple[str, Any], meter: Any, at: Any) -> None:
        first = self.stops.get(key)
        if first is None:
            self.stops[key] = (meter, at, r.line)
        elif (first[0], first[1]) != (meter, at):
            self.stop_conflicts.append(
                f"line {r.line}: transaction {key[1]} on {key[0]} stopped again at {meter} Wh, {at} "
                f"(line {first[2]} said {first[0]} Wh, {first[1]})"
            )

    def _reading(self, r: Record, key: tuple[str, Any], wh: Any) -> None:
        if not isinstance(wh, int):
            return
        highest = self.registers.get(key)
        if highest is not None and wh < highest[0]:
            self.backwards.append(
                f"line {r.line}: transaction {key[1]} on {key[0]} read {wh} Wh after "
                f"{highest[0]} Wh (line {highest[1]})"
            )
        if highest is None or wh >= highest[0]:
            self.registers[key] = (wh, r.line)

    def results(self) -> list[InvariantResult]:
        checked = len(self.registers)
        return [
            InvariantResult(
                "charger_stops_agree",
                "a repeated stop (StopTransaction, TransactionEvent Ended) repeats the first reading, time",
                not self.stop_conflicts,
                len(self.stops),
                tuple(self.stop_conflicts[:MAX_DETAILS]),
            ),
            InvariantResult(
                "charger_register_never_decreases",
                "a transaction's energy register never goes backwards",
                not self.backwards,
                checked,
                tuple(self.backwards[:MAX_DETAILS]),
            ),
        ]


class Replayer:
    def __init__(
        self,
        trace: Trace,
        *,
        database_url: str = MEMORY_DATABASE_URL,
        sampler: Sampler | None = None,
        sample_every_s: int = 60,
    ) -> None:
        self.trace = trace
        self.start = trace.start or DEFAULT_START
        self.clock = ManualClock(self.start)
        # The recorded run signed its drivers up from one address without a sign-up limit: so here.
        self.app = build(
            Config(
                database_url=database_url,
                rules=trace.rules,
                limits=replace(ApiLimits(), signup_per_address=None),
                **_FAST_ACCOUNTS,
            ),
            clock=self.clock,
        )
        self.vendor = not any(r.kind == "http" for r in trace.records)
        self.pairs = _Pairs.scan(trace)
        self.ids: dict[str, dict[int, int]] = defaultdict(dict)
        self.tokens: dict[str, str] = {}
        self.deferred: list[tuple[datetime, Record]] = []  # API calls to try again when they finished
        self.unmapped: dict[str, deque[int]] = defaultdict(deque)  # our transaction ids, awaiting theirs
        self.transactions: dict[tuple[str, Any], Any] = {}
        self.connections: dict[tuple[str, str], Connection] = {}
        self.checks = _ChargerChecks()
        self.fed: Counter[str] = Counter()
        self.divergences: list[str] = []
        self.divergence_count = 0
        self.errors: list[str] = []
        self.sampler = sampler
        self.sample_every_s = sample_every_s
        self._next_round = self.start + timedelta(seconds=HOUSEKEEPING_EVERY_S)
        self._next_sample = self.start
        self._connectors_needed = self._vendor_connectors()
        # The grid: loads from the chargers' readings, sampled as a live run samples them, from
        # where the recorded window began (else where the grid was laid out) to where it ended.
        self.curves: LoadCurves | None = None
        self.grid: ReplayGridMeter | None = None
        self.decided = DecidedLimits()
        self._grid_at = self.start
        self._connector_at: dict[int, tuple[str, int]] = {}
        self._next_grid_sample: datetime | None = None
        if trace.has_grid:
            self.curves = LoadCurves.scan(trace, lambda r: self.pairs.answer_to.get(r.line))
            self._next_grid_sample = trace.window_start or trace.grid_from
            self.app.bus.subscribe(GridLimitsDue, self.decided)
        # A recorded charger's takes of its limits that found nothing owed here (cp -> connector ->
        # take): the recorded backend decided before this replay did (its sweep ran at another
        # phase), so this replay's decision, when it follows, is the one the takes acknowledged.
        self._early_takes: dict[str, dict[int, _Take]] = {}

    # ---- driving ---------------------------------------------------------------------------------
    async def run(self) -> ReplayReport:
        wall = time.monotonic()
        try:
            api = create_api(self.app)
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://replay") as http:
                done: set[int] = set()
                for i, r in enumerate(self.trace.records):
                    if r.line in done:
                        continue
                    await self._retry_deferred(r.t, http)
                    self._advance(r.t if r.kind != "http" else max(r.t, self.clock.now()))
                    for first in [*self._winners_first(i, done), r]:
                        done.add(first.line)
                        try:
                            await self._apply(first, http)
                        except Exception as exc:  # the replay goes on; the report says what broke
                            self.errors.append(
                                f"line {first.line}: {first.kind} could not be replayed: {exc!r}"
                            )
                await self._retry_deferred(None, http)
            if not any(r.kind == "op" and r.data["op"] == "reconcile" for r in self.trace.records):
                # No wind-down recorded (a vendor's trace): end as a run does.
                self.app.housekeeping.wind_down()
                self.app.settlement.reconcile()
            if self.sampler is not None:
                self.sampler(self.app)
            if self.curves is not None:
                for text in self.decided.unlike(recorded_limits(self.trace)):
                    self._diverge(text)
            run = summarise(
                self.app,
                {"engine": "replay"},
                DriverStats(errors=self.errors, wind_down_from=self.trace.window_end, grid=self.grid),
                wall_s=time.monotonic() - wall,
            )
            return ReplayReport(
                str(self.trace.path),
                run,
                self.checks.results(),
                dict(sorted(self.fed.items())),
                self.divergences[:50],
                self.divergence_count,
                self._notes(),
            )
        finally:
            self.app.close()

    async def _retry_deferred(self, before: datetime | None, http: httpx.AsyncClient) -> None:
        """Try again the deferred calls that had finished by `before` (all of them for None)."""
        self.deferred.sort(key=lambda x: x[0])
        while self.deferred and (before is None or self.deferred[0][0] <= before):
            finished, r = self.deferred.pop(0)
            self._advance(max(finished, self.clock.now()))
            try:
                await self._http(r, http, retry=True)
            except Exception as exc:
                self.errors.append(f"line {r.line}: http could not be replayed: {exc!r}")

    def _winners_first(self, i: int, done: set[int]) -> list[Record]:
        """A write the recording refused while others like it were in flight lost to one of them: the
        ones that arrived before it finished and succeeded go first, as they did on the backend."""
        r = self.trace.records[i]
        d = r.data
        if r.kind != "http" or d["method"] == "GET" or d["status"] < 400 or "done" not in d:
            return []
        finished = datetime.fromisoformat(d["done"])
        winners = []
        for later in self.trace.records[i + 1 : i + 1 + MAX_IN_FLIGHT]:
            if later.t > finished:
                break
            x = later.data
            if (
                later.kind == "http"
                and later.line not in done
                and (x["method"], x["path"]) == (d["method"], d["path"])
                and x["status"] < 400
                and self._signed_in(x)
            ):
                winners.append(later)
        return winners

    def _signed_in(self, d: dict[str, Any]) -> bool:
        """The call's token is one replay has met (or it needs none): it can go early."""
        auth = d.get("auth")
        return not isinstance(auth, str) or auth.partition(" ")[2] in self.tokens

    def _advance(self, t: datetime) -> None:
        """Move the clock to `t`, running housekeeping (and sampling) at each boundary on the way."""
        rounds = 0
        while self._next_round <= t:
            if rounds < MAX_ROUNDS_PER_GAP or self._next_round + timedelta(seconds=HOUSEKEEPING_EVERY_S) > t:
                self._set_clock(self._next_round)
                self._housekeeping()
            rounds += 1
            self._next_round += timedelta(seconds=HOUSEKEEPING_EVERY_S)
        self._set_clock(t)

    def _set_clock(self, t: datetime) -> None:
        self._sample_grid(t)
        if self.sampler is not None:
            while self._next_sample <= t:
                delta = (self._next_sample - self.clock.now()).total_seconds()
                if delta > 0:
                    self.clock.advance(delta)
                self.sampler(self.app)
                self._next_sample += timedelta(seconds=self.sample_every_s)
        delta = (t - self.clock.now()).total_seconds()
        if delta > 0:
            self.clock.advance(delta)

    def _sample_grid(self, until: datetime) -> None:
        """Every grid sample due by `until`: the loads are the frames', the limits the store's."""
        end = self.trace.window_end
        while self._next_grid_sample is not None and self._next_grid_sample <= until:
            at = self._next_grid_sample
            if end is not None and at > end:
                self._next_grid_sample = None
                return
            if self.grid is None:
                assert self.curves is not None
                self._grid_at = at
                self.grid = ReplayGridMeter(self.app, self._grid_power, self.curves.tolerance_s, at)
                self._learn_connectors()
            self._grid_at = at
            self.grid.sample(at)
            self._next_grid_sample = at + timedelta(seconds=GRID_SAMPLE_EVERY_S)

    def _grid_power(self) -> list[tuple[int, int, bool]]:
        assert self.curves is not None
        at = self._grid_at
        return [
            (connector_id, self.curves.power_w(where, at), self.curves.held_at(where, at))
            for connector_id, where in self._connector_at.items()
        ]

    def _learn_connectors(self) -> None:
        with self.app.store.reading() as tx:
            chargers = tx.chargers.all()
        self._connector_at = {
            k.connector_id: (c.charge_point_id, k.connector_no) for c in chargers for k in c.connectors
        }

    def _notes(self) -> list[str]:
        """What an older trace cannot have checked."""
        if self.trace.records_setup:
            return []
        notes = []
        if recorded_limits(self.trace) and not self.trace.has_grid:
            notes.append(
                f"a version {self.trace.version} trace records no sites, feeders or flexibility events: "
                "its backend sent grid limits, but grid_within_limits is not checked"
            )
        if any(
            r.kind == "http" and (r.data["path"].startswith("/admin") or r.data["path"].startswith("/fleets"))
            for r in self.trace.records
        ):
            notes.append(
                f"a version {self.trace.version} trace records no operator accounts: the operator's calls "
                "are refused here, and what followed from them is checked without it"
            )
        return notes

    def _housekeeping(self) -> None:
        for step, why in self.app.housekeeping.sweep().failed.items():
            self.errors.append(f"housekeeping {step} at {self.clock.now().isoformat()} failed: {why}")
        self._deliver_early_takes()

    async def _apply(self, r: Record, http: httpx.AsyncClient) -> None:
        try:
            await self._feed(r, http)
        finally:
            self._deliver_early_takes()

    async def _feed(self, r: Record, http: httpx.AsyncClient) -> None:
        self.fed[r.kind] += 1
        if r.kind == "host":
            self._add_host(r.data)
        elif r.kind == "charger":
            self._add_charger(r.data)
        elif r.kind in SETUP_KINDS:
            self._setup(r)
        elif r.kind == "op":
            self._op(r)
        elif r.kind == "http":
            await self._http(r, http)
        elif r.data["dir"] == "in":
            self._ocpp_in(r)
        else:
            self.fed[r.kind] -= 1  # our own frames are only read to pair calls with answers
            self.fed["ocpp_out_read"] += 1

    # ---- setup ------------------------------------------------------------------------------------
    def _add_host(self, d: dict[str, Any]) -> None:
        name = str(d.get("name") or f"Host {d['id']}")
        if "email" in d:  # the host had an account: make it, so the host's app can log in
            self.ids["hosts"][d["id"]] = self.app.auth.register_host(d["email"], d["password"], name).host
        else:
            self.ids["hosts"][d["id"]] = self.app.marketplace.add_host(name)

    def _add_charger(self, d: dict[str, Any]) -> None:
        host = self.ids["hosts"].get(d["host"])
        if host is None:
            host = self.ids["hosts"][d["host"]] = self.app.marketplace.add_host(f"Host {d['host']}")
        spec = ChargerSpec(
            charge_point_id=d["cp"],
            host_id=host,
            location=Point(float(d["lat"]), float(d["lon"])),
            tariff=Tariff(d["price_per_kwh"]),
            connectors=tuple(
                ConnectorSpec(c["no"], ConnectorType(c["type"]), c["max_power_w"]) for c in d["connectors"]
            ),
            title=str(d.get("title") or ""),
        )
        view = self.app.marketplace.add_charger(spec)
        self.ids["chargers"][d["id"]] = view.charger_id

    def _setup(self, r: Record) -> None:
        """A feeder, site, flexibility event or operator account the run made outside the API. One
        the fresh backend refuses, or that names what the trace never made, is an error."""
        d = r.data
        try:
            if r.kind == "operator":
                self._add_operator(r, d)
            elif r.kind == "feeder":
                feeder = self.app.grid.add_feeder(d["name"], d["limit_w"])
                self.ids["feeders"][d["id"]] = feeder.feeder_id
            elif r.kind == "site":
                self._add_site(r, d)
            else:
                self._add_flex_event(r, d)
        except DomainError as exc:
            self.errors.append(f"line {r.line}: the recorded {r.kind} is refused here: {exc}")
        if self.grid is not None:
            self.grid.refresh(self.app)
            self._learn_connectors()

    def _add_operator(self, r: Record, d: dict[str, Any]) -> None:
        with self.app.store.reading() as tx:
            taken = tx.accounts.by_email(d["email"]) is not None
        if taken:
            self.errors.append(f"line {r.line}: operator {d['email']} has an account here already")
            return
        self.app.auth.add_admin(d["email"], d["password"])

    def _add_site(self, r: Record, d: dict[str, Any]) -> None:
        host = self.ids["hosts"].get(d["host"])
        feeder = None if d.get("feeder") is None else self.ids["feeders"].get(d["feeder"])
        if host is None or (d.get("feeder") is not None and feeder is None):
            missing = f"host {d['host']}" if host is None else f"feeder {d['feeder']}"
            self.errors.append(f"line {r.line}: site {d['id']} is on {missing}, which the trace never made")
            return
        site = self.app.grid.add_site(
            host, d["name"], d["limit_w"], house_load_w=d["house_load_w"], feeder_id=feeder
        )
        self.ids["sites"][d["id"]] = site.site_id
        for recorded in d.get("chargers", []):
            charger = self.ids["chargers"].get(recorded)
            if charger is None:
                self.errors.append(
                    f"line {r.line}: site {d['id']} holds charger {recorded}, never registered in the trace"
                )
                continue
            self.app.grid.place(charger, site.site_id)

    def _add_flex_event(self, r: Record, d: dict[str, Any]) -> None:
        scope = Scope(d["scope"])
        target = self.ids["sites" if scope is Scope.SITE else "feeders"].get(d["target"])
        if target is None:
            self.errors.append(
                f"line {r.line}: flexibility event {d['id']} is on {scope.value} {d['target']}, "
                "which the trace never made"
            )
            return
        starts, ends = datetime.fromisoformat(d["starts_at"]), datetime.fromisoformat(d["ends_at"])
        self.app.grid.add_flex_event(scope, target, d["limit_w"], starts, ends)

    def _vendor_connectors(self) -> dict[str, int]:
        """Chargers the trace talks for but never registers, with the highest connector each uses."""
        registered = {r.data["cp"] for r in self.trace.records if r.kind == "charger"}
        needed: dict[str, int] = {}
        for r in self.trace.records:
            if r.kind != "ocpp" or r.data["cp"] in registered:
                continue
            frame = decode_frame(r.data["frame"])
            highest = 1
            if frame is not None and len(frame) == 4 and isinstance(frame[3], dict):
                payload = frame[3]
                evse = payload.get("evse")
                for n in (payload.get("connectorId"), payload.get("evseId"), evse and evse.get("id")):
                    if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 16:
                        highest = max(highest, n)
            needed[r.data["cp"]] = max(needed.get(r.data["cp"], 1), highest)
        return needed

    def _ensure_charger(self, cp: str) -> None:
        count = self._connectors_needed.pop(cp, None)
        if count is None:
            return
        host = self.app.marketplace.add_host(f"Host of {cp}")
        centre = CITIES["bristol"]
        self.app.marketplace.add_charger(
            ChargerSpec(
                charge_point_id=cp,
                host_id=host,
                location=Point(centre.lat, centre.lon),
                tariff=Tariff(VENDOR_PRICE_PER_KWH),
                connectors=tuple(
                    ConnectorSpec(n, ConnectorType.TYPE2, VENDOR_POWER_W) for n in range(1, count + 1)
                ),
                title=f"{cp} (from its trace)",
            )
        )

    def _ensure_booking(self, cp: str, connector_no: int, id_tag: str) -> None:
        """A vendor's trace has no driver app: book the connector for the tag just before it starts."""
        app = self.app
        with app.store.transaction() as tx:
            driver = tx.accounts.driver_by_tag(id_tag)
            charger = tx.chargers.get(cp)
        if driver is None:
            driver = app.marketplace.add_driver(f"Driver {id_tag}", id_tag)
        connector = next((c for c in charger.connectors if c.connector_no == connector_no), None)
        if connector is None:
            return
        with app.store.transaction() as tx:
            if tx.bookings.for_start(connector.connector_id, driver.driver_id, self.clock.now()) is not None:
                return
        try:
            app.bookings.book(
                BookRequest(
                    driver_id=driver.driver_id,
                    charger_id=charger.charger_id,
                    connector_no=connector_no,
                    minutes=app.config.rules.max_booking_minutes,
                    max_energy_wh=app.config.rules.max_energy_wh,
                )
            )
        except DomainError as exc:
            self._diverge(f"{cp}: could not book connector {connector_no} for {id_tag}: {exc}")

    # ---- records ----------------------------------------------------------------------------------
    def _op(self, r: Record) -> None:
        op = r.data["op"]
        gateway = self.app.gateway
        if op == "charger_offline":
            with contextlib.suppress(NotFound):
                self.app.charging.disconnected(r.data["cp"])
        elif op in ("payments_down", "payments_up") and isinstance(gateway, SimulatedGateway):
            gateway.down = op == "payments_down"
        elif op == "expire_no_shows":
            grace = r.data.get("grace_s")
            if grace == 0:  # a run's wind-down
                self.app.housekeeping.wind_down()
            else:
                self.app.bookings.expire_no_shows(grace=None if grace is None else timedelta(seconds=grace))
        elif op == "reconcile":
            self.app.settlement.reconcile()
        # "window" marks where the recorded run's window began: it changes nothing in the backend.

    def _connection(self, cp: str, version: OcppVersion) -> Connection:
        conn = self.connections.get((cp, version))
        if conn is None:
            handlers = csms.handlers(version, self.app.charging, cp, self.app.reports)
            # Its answers to the backend's calls are signs of life through its gate, as on the server.
            conn = Connection(version, handlers, id_prefix="cs-", answered=handlers.sign_of_life)
            self.connections[(cp, version)] = conn
        return conn

    def _ocpp_in(self, r: Record) -> None:
        cp, version, text = r.data["cp"], r.data["version"], r.data["frame"]
        self._ensure_charger(cp)
        frame = decode_frame(text)
        if frame is not None and len(frame) >= 3 and frame[0] in (3, 4):
            # Our calls are not re-sent, so the answer skips the connection: its hook is told here.
            answered = self._connection(cp, version).answered
            if answered is not None:
                answered()
            self._answer_to_us(r, frame)
            return
        action = frame[2] if frame is not None and len(frame) == 4 and frame[0] == 2 else None
        if isinstance(action, str) and isinstance(frame, list) and isinstance(frame[3], dict):
            payload = frame[3]
            self.checks.see(r, action, payload)
            tx = payload.get("transactionId")
            if version == V16 and tx is not None and (cp, tx) not in self.transactions and self.unmapped[cp]:
                # The charger's own CSMS's answer is not in the trace: the first unknown id it uses
                # after a start is that start's.
                self.transactions[(cp, tx)] = self.unmapped[cp].popleft()
            if version == V16 and (cp, tx) in self.transactions:
                payload = {**payload, "transactionId": self.transactions[(cp, tx)]}
                text = json.dumps([2, frame[1], action, payload], separators=(",", ":"))
            start = _start_of(action, payload)
            if self.vendor and start is not None:
                self._ensure_booking(cp, *start)
        reply = self._connection(cp, version).receive(text).reply
        recorded = self.pairs.answer_to.get(r.line)
        if recorded is None and action == "StartTransaction" and reply is not None:
            new = decode_frame(reply)
            if new is not None and new[0] == 3 and new[2].get("transactionId"):
                self.unmapped[cp].append(new[2]["transactionId"])
        if reply is None or recorded is None:
            return
        self._compare(r, action, decode_frame(reply), decode_frame(recorded.data["frame"]))

    def _compare(self, r: Record, action: Any, ours: list[Any] | None, theirs: list[Any] | None) -> None:
        if ours is None or theirs is None:
            return
        if ours[0] != theirs[0]:
            self._diverge(f"line {r.line}: {action} answered {_kind(ours)}, recorded {_kind(theirs)}")
            return
        if ours[0] != 3 or not isinstance(ours[2], dict) or not isinstance(theirs[2], dict):
            return
        mine, recorded = ours[2], theirs[2]
        if action == "StartTransaction" and r.data["version"] == V16:
            old, new = recorded.get("transactionId"), mine.get("transactionId")
            if old not in (None, 0) and new not in (None, 0):
                self.transactions[(r.data["cp"], old)] = new
        verdict = _verdict(mine), _verdict(recorded)
        if verdict[0] != verdict[1]:
            self._diverge(f"line {r.line}: {action} answered {verdict[0]}, recorded {verdict[1]}")

    def _answer_to_us(self, r: Record, frame: list[Any]) -> None:
        """The charger answering a CSMS call: the backend acts on ReserveNow's answer and on a
        SetChargingProfile accepted (a grid share taken)."""
        call = self.pairs.call_of.get(r.line)
        if call is None or frame[0] != 3:
            return
        sent = decode_frame(call.data["frame"])
        if sent is not None and len(sent) == 4 and sent[2] == "SetChargingProfile":
            if (
                isinstance(frame[2], dict)
                and frame[2].get("status") == "Accepted"
                and isinstance(sent[3], dict)
            ):
                self._limits_taken(call.data["cp"], sent[3])
            return
        if sent is None or len(sent) != 4 or sent[2] != "ReserveNow" or not isinstance(frame[2], dict):
            return
        booking = sent[3].get("reservationId", sent[3].get("id"))
        if isinstance(booking, int):
            new = self.ids["bookings"].get(booking, booking)
            with contextlib.suppress(NotFound):
                self.app.bookings.reservation_answered(new, str(frame[2].get("status")))

    def _limits_taken(self, cp: str, payload: dict[str, Any]) -> None:
        """The recorded charger took a connector's grid share. Its backend counted a decision
        delivered once the last connector's share was taken, and a raise held behind another
        charger's lowering went out then: this backend's latest decision is delivered here too."""
        share = tx_default_periods(payload)
        profile = payload.get("csChargingProfiles") or payload.get("chargingProfile") or {}
        if (
            share is None
            or not share[2]
            or profile.get("chargingProfileId", profile.get("id")) != (tx_default_profile_id(share[0]))
        ):
            return
        no, _, ((_, limit, phases), *_) = share
        try:
            due = self.app.grid.limits_due(cp)
            last = (
                due is not None
                and bool(due.decision)
                and no == max((n for n, _ in due.limits_w), default=None)
            )
            if due is None or not due.decision or not self._owed_here(cp):
                # Each connector's take kept: a decision is the one taken only if all agree.
                self._early_takes.setdefault(cp, {})[no] = _Take(self.clock.now(), no, limit, phases)
            if due is not None and last:
                self.app.grid.limits_delivered(cp, due.decision)
        except NotFound:
            return
        except DomainError as exc:  # busy: the decision stays owed here, unlike in the recorded run
            self._diverge(f"{cp}: the limits it took could not be counted delivered: {exc}")

    def _owed_here(self, cp: str) -> bool:
        """Whether this replay's latest decision for the charger is still unacknowledged."""
        with self.app.store.reading() as tx:
            delivery = tx.grid.delivery(tx.chargers.get(cp).charger_id)
        decision, delivered = delivery or (0, 0)
        return decision > delivered

    def _deliver_early_takes(self) -> None:
        """A decision this replay made within `MATCH_WITHIN` after its charger's recorded takes of
        the same limits on every connector it decides, which found nothing owed here, is counted
        delivered by those takes, once."""
        now = self.clock.now()
        for cp, takes in list(self._early_takes.items()):
            for no in [no for no, take in takes.items() if now - take.at > MATCH_WITHIN]:
                del takes[no]
            if not takes:
                del self._early_takes[cp]
                continue
            try:
                if not self._owed_here(cp):
                    continue
                due = self.app.grid.limits_due(cp)
                del self._early_takes[cp]
                if due is None or not due.decision or not due.limits_w:
                    continue
                if all(
                    no in takes and as_sent(watts, takes[no].phases) == takes[no].limit
                    for no, watts in due.limits_w
                ):
                    self.app.grid.limits_delivered(cp, due.decision)
            except NotFound:
                self._early_takes.pop(cp, None)
            except DomainError as exc:
                self._early_takes.pop(cp, None)
                self._diverge(f"{cp}: the limits it took could not be counted delivered: {exc}")

    async def _http(self, r: Record, http: httpx.AsyncClient, *, retry: bool = False) -> None:
        d = r.data
        path = ID_PATH.sub(lambda m: f"{m[1]}{m[2]}/{self._map(m[2], int(m[3]))}", d["path"])
        body = d.get("body")
        if isinstance(body, dict):
            body = {
                k: self._map(ID_FIELDS[k], v) if k in ID_FIELDS and isinstance(v, int) else v
                for k, v in body.items()
            }
            if isinstance(body.get("target_id"), int) and body.get("scope") in ("site", "feeder"):
                body["target_id"] = self._map(f"{body['scope']}s", body["target_id"])
        headers = {}
        auth = d.get("auth")
        if isinstance(auth, str):
            scheme, _, token = auth.partition(" ")
            headers["Authorization"] = f"{scheme} {self.tokens.get(token, token)}"
        # An API call is stamped with its arrival but written when it completed, so it may be a
        # little behind the clock: handle it at its own time, as the backend did.
        resume = self.clock.now()
        if not retry:
            self.clock.advance(min(0.0, (r.t - resume).total_seconds()))
        try:
            response = await http.request(d["method"], path, json=body, headers=headers)
        finally:
            self.clock.advance((resume - self.clock.now()).total_seconds())
        if (
            not retry
            and response.status_code >= 400 > d["status"]
            and d["method"] != "GET"
            and "done" in d
            and datetime.fromisoformat(d["done"]) > self.clock.now()
        ):
            # Refused here, done on the backend: its effect may have come late in its time in
            # flight (after a cancellation that arrived later, say). A refusal changed nothing, so
            # try again where the recording says it finished.
            self.deferred.append((datetime.fromisoformat(d["done"]), r))
            return
        if response.status_code != d["status"]:
            self._diverge(
                f"line {r.line}: {d['method']} {d['path']} answered {response.status_code}, "
                f"recorded {d['status']}"
            )
            return
        recorded = d.get("response")
        if d["method"] == "POST" and isinstance(recorded, dict):
            with contextlib.suppress(ValueError):
                self._learn(d["path"], recorded, response.json())
        if self.grid is not None and changes_grid(r):
            self.grid.refresh(self.app)
            self._learn_connectors()

    def _learn(self, path: str, recorded: dict[str, Any], new: Any) -> None:
        """Pair the ids and tokens the recorded answer handed out with the ones handed out now."""
        if not isinstance(new, dict):
            return
        parts = path.split("?")[0].strip("/").split("/")
        resource = parts[0]
        created = len(parts) == 1 and resource in CREATED_ID  # POST /fleets, not POST /fleets/1/blocks
        keys = {**ID_FIELDS, **({"id": resource} if created or resource in ("drivers", "bookings") else {})}
        self._pair_ids(recorded, new, keys)
        old_token, new_token = recorded.get("access_token"), new.get("access_token")
        if isinstance(old_token, str) and isinstance(new_token, str):
            self.tokens[old_token] = new_token

    def _pair_ids(self, recorded: dict[str, Any], new: dict[str, Any], keys: dict[str, str]) -> None:
        """Ids side by side, and in lists of objects answered in the same order (a fleet's block
        answers each occurrence's booking)."""
        for key, kind in keys.items():
            old_id, new_id = recorded.get(key), new.get(key)
            if isinstance(old_id, int) and isinstance(new_id, int):
                self.ids[kind].setdefault(old_id, new_id)
        for key, old in recorded.items():
            mine = new.get(key)
            if isinstance(old, list) and isinstance(mine, list) and len(old) == len(mine):
                for a, b in zip(old, mine, strict=True):
                    if isinstance(a, dict) and isinstance(b, dict):
                        self._pair_ids(a, b, ID_FIELDS)

    def _map(self, resource: str, recorded: int) -> int:
        return self.ids[resource].get(recorded, recorded)

    def _diverge(self, text: str) -> None:
        self.divergence_count += 1
        if len(self.divergences) < 50:
            self.divergences.append(text)


def _start_of(action: str, payload: dict[str, Any]) -> tuple[int, str] | None:
    """(connector, id tag) of a transaction start in either version."""
    if action == "StartTransaction":
        return int(payload.get("connectorId", 1)), str(payload.get("idTag"))
    if action == "TransactionEvent" and payload.get("eventType") == "Started":
        token = payload.get("idToken") or {}
        evse = payload.get("evse") or {}
        if token.get("idToken"):
            return int(evse.get("id", 1)), str(token["idToken"])
    return None


def _kind(frame: list[Any]) -> str:
    return {2: "CALL", 3: "CALLRESULT", 4: f"CALLERROR {frame[2] if len(frame) > 2 else ''}"}.get(
        frame[0], str(frame[0])
    )


def _verdict(payload: dict[str, Any]) -> str:
    """The part of an answer that says yes or no."""
    info = payload.get("idTagInfo") or payload.get("idTokenInfo") or {}
    status = payload.get("status", info.get("status") if isinstance(info, dict) else None)
    refused = payload.get("transactionId") == 0
    return f"{status}{' (refused)' if refused else ''}"


async def replay(
    trace: Trace, *, database_url: str = MEMORY_DATABASE_URL, sampler: Sampler | None = None
) -> ReplayReport:
    return await Replayer(trace, database_url=database_url, sampler=sampler).run()
