"""The driver script's live engine: each step over the public HTTP API (with the access token, logging
in again when it lapses) or at the virtual charger, as a real driver's app would, on the scaled clock.

What only HTTP has stays here: retries while a backend process is away, idempotency keys, 409/429/503
answers and a request lost with its process; the script (`simulators.driver`) sees outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from chargeshare.bootstrap import App
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import Clock
from simulators import driver as script
from simulators.backend_nodes import BackendProcesses
from simulators.charger import PlugRefused, VirtualCharger
from simulators.driver import DriverStats
from simulators.fleet import DriverPlan
from simulators.http_retry import RequestLost
from simulators.pacing import sleep_sim

PAYMENTS_DOWN = 503

LOGIN_TRIES = 5
IN_PROGRESS_CHECKS = 20
IN_PROGRESS_BACKOFF = 15  # simulated seconds per second of Retry-After: recovery runs on the sweep
_attempts = itertools.count(1)
BOOKING_LEAD = timedelta(minutes=10)
TOKEN_RENEW_BEFORE = timedelta(minutes=5)


class ApiRefused(Exception):
    """The API would not sign this user up or in."""


@dataclass
class ApiSession:
    """One app user against the API: sends the access token on every call and logs in again once
    when it is refused (the token lapsed), waiting out a 429's Retry-After (in simulated seconds)."""

    http: httpx.AsyncClient
    clock: Clock
    email: str
    password: str
    token: str | None = None
    expires_at: datetime | None = None
    logins: int = 0

    async def login(self) -> None:
        for _ in range(LOGIN_TRIES):
            r = await self.http.post("/auth/login", json={"email": self.email, "password": self.password})
            if r.status_code == 429:
                await sleep_sim(self.clock, float(r.headers.get("Retry-After", "1")))
                continue
            if r.status_code != 200:
                raise ApiRefused(f"login as {self.email} answered {r.status_code}: {r.text[:200]}")
            self.token = str(r.json()["access_token"])
            self.expires_at = datetime.fromisoformat(r.json()["expires_at"])
            self.logins += 1
            return
        raise ApiRefused(f"login as {self.email} was rate limited {LOGIN_TRIES} times")

    async def fresh(self) -> None:
        """As apps do, renew the token before it lapses rather than after a refusal."""
        if self.expires_at is None or self.clock.now() >= self.expires_at - TOKEN_RENEW_BEFORE:
            await self.login()

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        await self.fresh()
        r = await self.http.request(method, path, headers={**self._auth(), **(headers or {})}, **kw)
        if r.status_code == 401:
            await self.login()
            r = await self.http.request(method, path, headers={**self._auth(), **(headers or {})}, **kw)
        return r

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def sign_up_driver(http: httpx.AsyncClient, clock: Clock, plan: DriverPlan) -> tuple[int, ApiSession]:
    """Register the plan's driver (with its tag, which the charger is given) and log in."""
    return await sign_up(http, clock, plan.name, plan.id_tag)


async def sign_up(http: httpx.AsyncClient, clock: Clock, name: str, id_tag: str) -> tuple[int, ApiSession]:
    """Register a driver with its tag and log in: the driver's id and its app's session."""
    session = ApiSession(http, clock, f"{id_tag.lower()}@drivers.example", secrets.token_urlsafe(12))
    r = await http.post(
        "/auth/register/driver",
        json={"email": session.email, "password": session.password, "name": name, "id_tag": id_tag},
    )
    if r.status_code != 201:
        raise ApiRefused(f"sign-up of {name} answered {r.status_code}: {r.text[:200]}")
    await session.login()
    return int(r.json()["driver_id"]), session


@dataclass
class World:
    http: httpx.AsyncClient
    chargers: dict[str, VirtualCharger]
    clock: Clock
    window_end: datetime
    stats: DriverStats
    drivers: dict[int, ApiSession] = field(default_factory=dict)  # driver id -> the app's session
    hosts: dict[int, ApiSession] = field(default_factory=dict)  # host id -> the host app's session
    # How long (simulated) a driver keeps looking for a receipt after unplugging: at least as long as
    # the backend waits for a stop before taking it as lost, so a lost stop still ends in a receipt.
    receipt_patience_s: float = script.RECEIPT_CHECKS * script.RECEIPT_CHECK_EVERY_S
    admin: ApiSession | None = None  # the operator's app, once a fault needs it
    backend: BackendProcesses | None = None  # the backend's processes, when it runs as such
    # Told of each operator account made (email, password): a trace records it for its replay.
    on_operator: Callable[[str, str], None] | None = None

    def now(self) -> datetime:
        return self.clock.now()

    def seconds_left(self) -> float:
        return (self.window_end - self.clock.now()).total_seconds()


async def admin_session(app: App, world: World) -> ApiSession:
    """The operator's app, signed in (admins are made on the command line, never through the API)."""
    if world.admin is None:
        email, password = "ops@operators.example", secrets.token_urlsafe(12)
        await asyncio.to_thread(app.auth.add_admin, email, password)
        if world.on_operator is not None:
            world.on_operator(email, password)
        world.admin = ApiSession(world.http, world.clock, email, password)
    await world.admin.fresh()
    return world.admin


def seconds_left(world: World) -> float:
    return world.seconds_left()


async def run_driver(plan: DriverPlan, driver_id: int, world: World) -> str:
    app = DriverApp(plan, world, world.drivers[driver_id])
    try:
        outcome = await app.run(script.drive(plan, world, world.stats, world.receipt_patience_s))
    except RequestLost:
        # The backend process died with a request of ours: the app cannot tell what became of it,
        # and its user gives up (a booking made meanwhile ends as a no-show).
        outcome = script.REQUEST_LOST
    world.stats.outcomes[outcome] += 1
    return outcome


@dataclass
class DriverApp:
    """One driver's app: takes the script's steps over HTTP and at the charger."""

    plan: DriverPlan
    world: World
    api: ApiSession

    async def run(self, steps: script.Script[str]) -> str:
        outcome: object = None
        try:
            while True:
                try:
                    effect = steps.send(outcome)
                except StopIteration as end:
                    return str(end.value)
                outcome = await self.take(effect)
        finally:
            steps.close()

    async def take(self, effect: script.Effect[object]) -> object:
        clock = self.world.clock
        match effect:
            case script.Sleep(seconds):
                await sleep_sim(clock, seconds)
                return None
            case script.Search():
                return await self.search(effect)
            case script.Quote(candidate, starts_at, minutes):
                resp = await self.api.request(
                    "GET",
                    f"/chargers/{candidate.charger_id}/quote",
                    params={"starts_at": format_ts(starts_at), "minutes": minutes},
                )
                resp.raise_for_status()
                # Not held: the app may move its start later as it books (BOOKING_LEAD), and a quote
                # is held for one window. It sends its limit with the booking instead.
                return script.Quoted(int(resp.json()["price_per_kwh"]))
            case script.Book():
                return await self.book(effect)
            case script.Cancel(booking_id):
                resp = await self.api.request("POST", f"/bookings/{booking_id}/cancel")
                return resp.status_code == 200
            case script.PlugIn(cp_id, id_tag, vehicle, target_wh):
                try:
                    plug = await self.world.chargers[cp_id].plug_in(
                        script.CONNECTOR_NO, id_tag, vehicle, target_wh
                    )
                except PlugRefused:
                    return None
                finished = self.world.chargers[cp_id].finished(script.CONNECTOR_NO)
                return script.Plugged(finished, plug.transaction_id is not None)
            case script.WaitDone(plugged, timeout_s):
                assert isinstance(plugged.handle, asyncio.Event)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(plugged.handle.wait(), timeout=clock.real_seconds(timeout_s))
                return None
            case script.Unplug(cp_id):
                await self.world.chargers[cp_id].unplug(script.CONNECTOR_NO)
                return None
            case script.FetchReceipt(booking_id):
                resp = await self.api.request("GET", f"/bookings/{booking_id}")
                receipt = resp.json().get("receipt")
                return None if receipt is None else int(receipt["cost"])
        raise TypeError(f"the live driver cannot take {effect!r}")

    async def search(self, s: script.Search) -> list[script.Candidate]:
        r = await self.api.request(
            "GET",
            "/chargers",
            params={
                "lat": s.centre.lat,
                "lon": s.centre.lon,
                "radius_m": s.radius_m,
                "online": "true",
                "available_from": format_ts(s.available_from),
                "available_until": format_ts(s.available_until),
                "limit": s.limit,
            },
        )
        r.raise_for_status()
        return [script.Candidate(c["id"], c["charge_point_id"]) for c in r.json()]

    async def book(self, b: script.Book) -> script.BookAnswer:
        api = self.api
        await api.fresh()  # before reading the clock for the start: a fast clock moves on meanwhile
        body = {
            "charger_id": b.candidate.charger_id,
            "connector_no": script.CONNECTOR_NO,
            "minutes": b.minutes,
            "max_energy_wh": b.max_energy_wh,
            # A fast simulated clock races the request (a 0.3 s answer is minutes at 900x): never
            # ask to start sooner than the server could still call "now".
            "starts_at": format_ts(max(b.starts_at, self.world.clock.now() + BOOKING_LEAD)),
        }
        if b.override_smart_charging:
            body["override_smart_charging"] = True
        if b.max_price_per_kwh is not None:
            body["max_price_per_kwh"] = b.max_price_per_kwh
        # One key per attempt, so a copy sent after a lost answer finds the booking it made.
        attempt = {"Idempotency-Key": f"{self.plan.id_tag}-{next(_attempts)}"}
        resp = await api.request("POST", "/bookings", json=body, headers=attempt)
        for _ in range(IN_PROGRESS_CHECKS):
            if resp.status_code != 409 or resp.json().get("error") != "request_in_progress":
                break
            # A copy of an attempt whose first try died while the card hold was placed: ask again
            # until recovery has decided it.
            retry_after = float(resp.headers.get("Retry-After", "1"))
            await sleep_sim(self.world.clock, retry_after * IN_PROGRESS_BACKOFF)
            resp = await api.request("POST", "/bookings", json=body, headers=attempt)
        if resp.status_code == 409 and resp.json().get("error") == "price_above_limit":
            return script.TOO_DEAR
        if resp.status_code == 409:
            return script.TAKEN
        if resp.status_code == 429:
            return script.TOO_FREQUENT
        if resp.status_code == PAYMENTS_DOWN:
            return script.PAYMENTS_UNAVAILABLE
        if resp.status_code != 201:
            return script.Refused(f"booking answered {resp.status_code} {resp.text[:200]}")
        booking = resp.json()
        return script.Booked(
            int(booking["id"]),
            datetime.fromisoformat(booking["starts_at"]),
            datetime.fromisoformat(booking["ends_at"]),
            b.candidate.charge_point_id,
        )
