"""Run traces: every OCPP frame and API call of a run, one JSON object per line, in order.

The recorder is a frame tap on the charger registry plus an ASGI middleware around the API, so the
backend's own modules stay untouched. `read_trace` checks a whole file before anything runs and names
the line and field of the first problems. The format is documented in docs/replay.md.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import CancellationPolicy
from chargeshare.domain.grid_limits import FlexEvent
from chargeshare.entrypoints.ocpp_server import ChargerRegistry, Direction
from chargeshare.ocpp import V16, VERSIONS
from chargeshare.services.events import ChargerOffline
from chargeshare.services.rules import MarketplaceRules

FORMAT = "chargeshare-trace"
FORMAT_VERSION = 2
# Version 1 is version 2 without the grid's and the operators' setup records: it is read as it was.
READ_VERSIONS = (1, 2)
PROTOCOLS = VERSIONS
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Backend-side events that no frame or API call shows, but that change what later calls see.
OPS = ("charger_offline", "payments_down", "payments_up", "expire_no_shows", "reconcile", "window")
KINDS = ("host", "charger", "ocpp", "http", "op", "feeder", "site", "flex_event", "operator")
SETUP_KINDS = ("feeder", "site", "flex_event", "operator")  # version 2 on
SCOPES = ("site", "feeder")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TraceError(Exception):
    """A trace file that cannot be replayed; the message names the file, line and field."""


@dataclass(frozen=True)
class Record:
    line: int
    t: datetime
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Trace:
    path: Path
    header: dict[str, Any]
    records: list[Record] = field(default_factory=list)

    @property
    def rules(self) -> MarketplaceRules:
        raw = dict(self.header.get("rules") or {})
        policy = raw.pop("cancellation", None)
        if policy is not None:
            raw["cancellation"] = CancellationPolicy(**policy)
        return MarketplaceRules(**raw)

    @property
    def start(self) -> datetime | None:
        text = self.header.get("start")
        if text is not None:
            return datetime.fromisoformat(text)
        return self.records[0].t if self.records else None

    @property
    def window_start(self) -> datetime | None:
        """Where the recorded run's window began (its `window` op), past the fleet's setup."""
        op = self._window()
        return None if op is None else op.t

    @property
    def window_end(self) -> datetime | None:
        """Where the recorded run's window ended and its wind-down began."""
        op = self._window()
        return None if op is None else op.t + timedelta(seconds=op.data["duration_s"])

    def _window(self) -> Record | None:
        return next((r for r in self.records if r.kind == "op" and r.data["op"] == "window"), None)

    @property
    def version(self) -> int:
        return int(self.header["version"])

    @property
    def records_setup(self) -> bool:
        """Whether its recorder wrote the grid and the operators made outside the API (version 2)."""
        return self.version >= 2

    @property
    def has_grid(self) -> bool:
        """Whether the run had sites or feeders, set up outside the API or through it."""
        return self.grid_from is not None

    @property
    def grid_from(self) -> datetime | None:
        """When the run's grid was first set up or changed."""
        return next((r.t for r in self.records if changes_grid(r)), None)


# What a grid is set up and changed with through the API: it is measured against what they made.
GRID_PATHS = re.compile(r"^/(admin/(feeders|sites|flex-events)|host/sites|host/chargers/\d+/site)(\?|/|$)")


def changes_grid(r: Record) -> bool:
    """A setup record of the grid, or an API call that made or changed some of it."""
    if r.kind in ("feeder", "site", "flex_event"):
        return True
    d = r.data
    return (
        r.kind == "http" and d["method"] != "GET" and d["status"] < 400 and bool(GRID_PATHS.match(d["path"]))
    )


# ---- recording -----------------------------------------------------------------------------------


Slot = list[dict[str, Any] | None]  # one line to be; None while its API call is in flight


class TraceRecorder:
    """Writes a trace as the run goes. Taps and middleware call it from the event loop; domain events
    may arrive from worker threads, so writes are serialised.

    An API call takes its place in the trace when it arrives and is written once it completes (lines
    after it wait): concurrent bookings keep the order they reached the backend in, which is the
    order their conflicts were decided in, near enough, rather than the order they finished in."""

    def __init__(self, out: IO[str], app: App, header: dict[str, Any]) -> None:
        self.out = out
        self.app = app
        self._lock = threading.Lock()
        self._slots: deque[Slot] = deque()
        self._versions: dict[str, str] = {}
        self._payments_down = False
        self._registry: ChargerRegistry | None = None
        rules = asdict(app.config.rules)
        self._write(
            {
                "kind": "header",
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "protocols": list(PROTOCOLS),
                "start": app.clock.now().isoformat(),
                "rules": rules,
                **header,
            }
        )

    @classmethod
    def open(cls, path: Path, app: App, header: dict[str, Any]) -> TraceRecorder:
        return cls(path.open("w", encoding="utf-8"), app, header)

    def close(self) -> None:
        """Write what is complete; an API call still unanswered at the end is left out."""
        with self._lock:
            for slot in self._slots:
                if slot[0]:
                    self.out.write(json.dumps(slot[0], separators=(",", ":")) + "\n")
            self._slots.clear()
            self.out.close()

    def _write(self, obj: dict[str, Any]) -> None:
        self._fill(self._reserve(), obj)

    def _reserve(self) -> Slot:
        slot: Slot = [None]
        with self._lock:
            self._slots.append(slot)
        return slot

    def _fill(self, slot: Slot, obj: dict[str, Any]) -> None:
        """Complete a line (an empty one is dropped) and write every complete line at the front."""
        with self._lock:
            slot[0] = obj
            while self._slots and self._slots[0][0] is not None:
                done = self._slots.popleft()[0]
                if done:
                    self.out.write(json.dumps(done, separators=(",", ":")) + "\n")

    def _record(
        self, kind: str, *, slot: Slot | None = None, at: datetime | None = None, **data: Any
    ) -> None:
        self._watch_gateway()
        obj = {"t": (at or self.app.clock.now()).isoformat(), "kind": kind, **data}
        self._fill(slot or self._reserve(), obj)

    def _watch_gateway(self) -> None:
        """An outage of the simulated gateway shows in no frame or call: note each change of state."""
        gateway = self.app.gateway
        if isinstance(gateway, SimulatedGateway) and gateway.down != self._payments_down:
            self._payments_down = gateway.down
            op = "payments_down" if gateway.down else "payments_up"
            self._write({"t": self.app.clock.now().isoformat(), "kind": "op", "op": op})

    # The fleet is registered straight through the services before the server starts.
    def snapshot_fleet(self, host_logins: dict[int, tuple[str, str]]) -> None:
        """`host_logins`: the run's throw-away host accounts (email, password), so a replay can make
        the same accounts and the hosts' logins work there too."""
        with self.app.store.reading() as tx:
            chargers = list(tx.chargers.all())
            site_hosts = {s.host_id for s in tx.grid.sites()}
        for host_id in sorted({c.host_id for c in chargers} | site_hosts):
            login = host_logins.get(host_id)
            account: dict[str, Any] = {} if login is None else {"email": login[0], "password": login[1]}
            self._record("host", id=host_id, name=f"Host {host_id}", **account)
        for c in sorted(chargers, key=lambda c: c.charger_id):
            self._record(
                "charger",
                id=c.charger_id,
                cp=c.charge_point_id,
                host=c.host_id,
                title=c.title,
                lat=c.location.lat,
                lon=c.location.lon,
                price_per_kwh=c.price_per_kwh,
                connectors=[
                    {"no": x.connector_no, "type": x.type.value, "max_power_w": x.max_power_w}
                    for x in c.connectors
                ],
            )
        self._snapshot_grid()

    def _snapshot_grid(self) -> None:
        """The feeders, sites (with the chargers on them) and flexibility events as they stand: a
        run lays its grid out through the services, before the API is served."""
        with self.app.store.reading() as tx:
            feeders, sites = list(tx.grid.feeders()), list(tx.grid.sites())
            members, events = tx.grid.members(), list(tx.grid.flex_events())
        for f in sorted(feeders, key=lambda f: f.feeder_id):
            self._record("feeder", id=f.feeder_id, name=f.name, limit_w=f.limit_w)
        for s in sorted(sites, key=lambda s: s.site_id):
            self._record(
                "site",
                id=s.site_id,
                host=s.host_id,
                name=s.name,
                limit_w=s.limit_w,
                house_load_w=s.house_load_w,
                feeder=s.feeder_id,
                chargers=sorted(c for c, site in members.items() if site == s.site_id),
            )
        for e in sorted(events, key=lambda e: e.event_id):
            self.flex_event(e)

    def flex_event(self, e: FlexEvent) -> None:
        """A flexibility event the run announced through the services (one made through the API is
        in its `http` record already)."""
        self._record(
            "flex_event",
            id=e.event_id,
            scope=e.scope.value,
            target=e.target_id,
            limit_w=e.limit_w,
            starts_at=e.starts_at.isoformat(),
            ends_at=e.ends_at.isoformat(),
        )

    def operator(self, email: str, password: str) -> None:
        """An operator account the run made as the command line does (never through the API), with
        its throw-away credentials, so its app's login and calls work in a replay too."""
        self._record("operator", email=email, password=password)

    def attach(self, registry: ChargerRegistry) -> None:
        self._registry = registry
        registry.add_tap(self.frame)
        self.app.bus.subscribe(ChargerOffline, lambda e: self.op("charger_offline", cp=e.charge_point_id))

    def frame(self, cp_id: str, direction: Direction, text: str) -> None:
        link = None if self._registry is None else self._registry.links.get(cp_id)
        if link is not None:
            self._versions[cp_id] = link.version
        version = self._versions.get(cp_id, V16)
        self._record("ocpp", cp=cp_id, dir=direction, version=version, frame=text)

    def op(self, name: str, **args: Any) -> None:
        if name not in OPS:
            raise ValueError(f"unknown trace op {name!r}")
        self._record("op", op=name, **args)

    def wrap(self, api: ASGIApp) -> ASGIApp:
        """The API with every HTTP call recorded once its response is complete."""
        recorder = self

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await api(scope, receive, send)
                return
            request = bytearray()
            response = bytearray()
            status = 0
            arrived = recorder.app.clock.now()
            slot = recorder._reserve()

            async def receive_body() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    request.extend(message.get("body", b""))
                return message

            async def send_body(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                elif message["type"] == "http.response.body":
                    response.extend(message.get("body", b""))
                    if not message.get("more_body", False):
                        recorder._http(slot, scope, arrived, bytes(request), status, bytes(response))
                await send(message)

            try:
                await api(scope, receive_body, send_body)
            finally:
                if slot[0] is None:
                    recorder._fill(slot, {})  # never answered: nothing to replay

        return traced

    def _http(
        self, slot: Slot, scope: Scope, arrived: datetime, request: bytes, status: int, response: bytes
    ) -> None:
        """Stamped with the time the request arrived (what the handler saw as "now", near enough)."""
        path = str(scope["path"])
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            path += "?" + query
        extra: dict[str, Any] = {}
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                # The run's own throw-away accounts: replay maps each token to the one it gets anew.
                extra["auth"] = value.decode("latin-1")
        self._record(
            "http",
            slot=slot,
            at=arrived,
            done=self.app.clock.now().isoformat(),
            method=str(scope["method"]),
            path=path,
            body=_json_or_none(request),
            status=status,
            response=_json_or_none(response),
            **extra,
        )


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


# ---- reading -------------------------------------------------------------------------------------


def read_trace(path: Path) -> Trace:
    """Parse and check every line; raise TraceError naming each of the first problems."""
    problems: list[str] = []
    header: dict[str, Any] | None = None
    records: list[Record] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from exc
    for no, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = f"{path}:{no}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON: {exc.msg}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: a line must be a JSON object")
            continue
        if header is None:
            problem = _check_header(obj)
            if problem is not None:
                problems.append(f"{where}: {problem}")
                break
            header = obj
            continue
        try:
            records.append(_record(no, obj))
        except TraceError as exc:
            problems.append(f"{where}: {exc}")
        if len(problems) >= 10:
            break
    if header is None and not problems:
        problems.append(f"{path}: empty trace (the first line must be the header)")
    if problems:
        raise TraceError("\n".join(problems))
    assert header is not None
    if "rules" in header:
        try:
            _ = Trace(path, header).rules  # built now so a bad field stops the replay before it runs
        except (TypeError, ValueError) as exc:
            raise TraceError(f"{path}:1: field 'rules': {exc}") from exc
    return Trace(path, header, records)


def _check_header(obj: dict[str, Any]) -> str | None:
    if obj.get("kind") != "header":
        return 'field \'kind\': the first line must be the header ({"kind": "header", ...})'
    if obj.get("format") != FORMAT:
        return f"field 'format': expected {FORMAT!r}, got {obj.get('format')!r}"
    if obj.get("version") not in READ_VERSIONS or isinstance(obj.get("version"), bool):
        versions = " or ".join(str(v) for v in READ_VERSIONS)
        return f"field 'version': this replay reads version {versions}, got {obj.get('version')!r}"
    if "start" in obj and _time(obj["start"]) is None:
        return "field 'start': not an ISO 8601 time with a UTC offset"
    if "rules" in obj and not isinstance(obj["rules"], dict):
        return "field 'rules': must be an object"
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _need(obj: dict[str, Any], name: str, kinds: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kinds) or isinstance(value, bool):  # no field is a flag; JSON true is 1
        raise TraceError(f"field {name!r}: {what}, got {value!r}"[:300])
    return value


def _record(line: int, obj: dict[str, Any]) -> Record:
    t = _time(obj.get("t"))
    if t is None:
        raise TraceError(f"field 't': an ISO 8601 time with a UTC offset, got {obj.get('t')!r}")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise TraceError(f"field 'kind': one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "ocpp":
        cp = _need(obj, "cp", str, "a charge point id")
        if not cp:
            raise TraceError("field 'cp': must not be empty")
        if obj.get("dir") not in ("in", "out"):
            raise TraceError(f"field 'dir': 'in' (from the charger) or 'out', got {obj.get('dir')!r}")
        if obj.get("version") not in PROTOCOLS:
            raise TraceError(f"field 'version': one of {', '.join(PROTOCOLS)}, got {obj.get('version')!r}")
        _need(obj, "frame", str, "the frame's text")
    elif kind == "http":
        if obj.get("method") not in HTTP_METHODS:
            raise TraceError(f"field 'method': one of {', '.join(HTTP_METHODS)}, got {obj.get('method')!r}")
        path = _need(obj, "path", str, "a path starting with /")
        if not path.startswith("/"):
            raise TraceError(f"field 'path': must start with /, got {path!r}")
        status = _need(obj, "status", int, "the recorded status code")
        if "auth" in obj:
            _need(obj, "auth", str, "the Authorization header sent")
        if "done" in obj and _time(obj["done"]) is None:
            raise TraceError(f"field 'done': an ISO 8601 time with a UTC offset, got {obj['done']!r}")
        if not 100 <= status <= 599:
            raise TraceError(f"field 'status': an HTTP status code, got {status!r}")
    elif kind == "host":
        _need(obj, "id", int, "the recorded host id")
        if "email" in obj or "password" in obj:
            _need(obj, "email", str, "the host account's email")
            _need(obj, "password", str, "the host account's password")
    elif kind == "charger":
        _check_charger(obj)
    elif kind in SETUP_KINDS:
        _check_setup(str(kind), obj)
    else:
        op = obj.get("op")
        if op not in OPS:
            raise TraceError(f"field 'op': one of {', '.join(OPS)}, got {op!r}")
        if op == "charger_offline":
            _need(obj, "cp", str, "a charge point id")
        if op == "expire_no_shows" and "grace_s" in obj:
            _need(obj, "grace_s", int, "seconds")
        if op == "window":
            _need(obj, "duration_s", int, "seconds")
    return Record(line, t, str(kind), obj)


def _check_setup(kind: str, obj: dict[str, Any]) -> None:
    """The shapes only: whether the backend accepts the values (a limit below the minimum, say) is
    the replay's to find out and report."""
    if kind == "operator":
        _need(obj, "email", str, "the operator account's email")
        _need(obj, "password", str, "the operator account's password")
        return
    _need(obj, "id", int, f"the recorded {kind} id")
    if _need(obj, "limit_w", int, "a limit in W") < 0:
        raise TraceError("field 'limit_w': cannot be negative")
    if kind == "feeder":
        _need(obj, "name", str, "the feeder's name")
    elif kind == "site":
        _need(obj, "host", int, "the recorded host id")
        _need(obj, "name", str, "the site's name")
        if _need(obj, "house_load_w", int, "the house load in W") < 0:
            raise TraceError("field 'house_load_w': cannot be negative")
        if obj.get("feeder") is not None:
            _need(obj, "feeder", int, "the recorded feeder id or null")
        chargers = obj.get("chargers", [])
        if not isinstance(chargers, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in chargers
        ):
            raise TraceError(f"field 'chargers': a list of recorded charger ids, got {chargers!r}"[:300])
    else:
        if obj.get("scope") not in SCOPES:
            raise TraceError(f"field 'scope': site or feeder, got {obj.get('scope')!r}")
        _need(obj, "target", int, "the recorded site or feeder id")
        starts, ends = _time(obj.get("starts_at")), _time(obj.get("ends_at"))
        if starts is None or ends is None:
            raise TraceError("field 'starts_at'/'ends_at': ISO 8601 times with a UTC offset")
        if ends <= starts:
            raise TraceError("field 'ends_at': must be after 'starts_at'")


def _check_charger(obj: dict[str, Any]) -> None:
    _need(obj, "id", int, "the recorded charger id")
    _need(obj, "cp", str, "a charge point id")
    _need(obj, "host", int, "the recorded host id")
    lat = _need(obj, "lat", (int, float), "a latitude")
    lon = _need(obj, "lon", (int, float), "a longitude")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise TraceError(f"field 'lat'/'lon': not a place on Earth: {lat}, {lon}")
    price = _need(obj, "price_per_kwh", int, "pence per kWh")
    if price < 0:
        raise TraceError("field 'price_per_kwh': cannot be negative")
    connectors = _need(obj, "connectors", list, "a list of connectors")
    if not connectors:
        raise TraceError("field 'connectors': a charger needs at least one connector")
    for i, c in enumerate(connectors):
        if not isinstance(c, dict):
            raise TraceError(f"field 'connectors[{i}]': must be an object")
        for name in ("no", "max_power_w"):
            if not isinstance(c.get(name), int) or isinstance(c[name], bool) or c[name] < 1:
                raise TraceError(f"field 'connectors[{i}].{name}': a positive integer, got {c.get(name)!r}")
        if c.get("type") not in ("type2", "ccs", "chademo"):
            raise TraceError(f"field 'connectors[{i}].type': type2, ccs or chademo, got {c.get('type')!r}")
