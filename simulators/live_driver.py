"""A scripted driver: signs up, logs in, searches the map over HTTP, books, travels, plugs in, charges,
unplugs, reads the receipt. Every step goes through the public API (with the access token, logging in
again when it lapses) or the charger, as a real driver's app would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import Clock
from simulators.backend_nodes import BackendProcesses
from simulators.charger import PlugRefused, VirtualCharger
from simulators.driver import (
    ALL_TAKEN,
    CANDIDATES,
    NONE_FREE_NEARBY,
    RATE_LIMITED,
    RECEIPT_CHECK_EVERY_S,
    RECEIPT_CHECKS,
    RETRY_AFTER_S,
    SEARCH_RADIUS_M,
    SEARCH_ROUNDS,
    DriverStats,
    NoCharger,
)
from simulators.fleet import DriverPlan
from simulators.http_retry import RequestLost
from simulators.pacing import sleep_sim
from simulators.power import Vehicle

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
    session = ApiSession(http, clock, f"{plan.id_tag.lower()}@drivers.example", secrets.token_urlsafe(12))
    r = await http.post(
        "/auth/register/driver",
        json={"email": session.email, "password": session.password, "name": plan.name, "id_tag": plan.id_tag},
    )
    if r.status_code != 201:
        raise ApiRefused(f"sign-up of {plan.name} answered {r.status_code}: {r.text[:200]}")
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
    receipt_patience_s: float = RECEIPT_CHECKS * RECEIPT_CHECK_EVERY_S
    admin: ApiSession | None = None  # the operator's app, once a fault needs it
    backend: BackendProcesses | None = None  # the backend's processes, when it runs as such


def seconds_left(world: World) -> float:
    return (world.window_end - world.clock.now()).total_seconds()


async def run_driver(plan: DriverPlan, driver_id: int, world: World) -> str:
    try:
        outcome = await _run(plan, driver_id, world)
    except RequestLost:
        # The backend process died with a request of ours: the app cannot tell what became of it,
        # and its user gives up (a booking made meanwhile ends as a no-show).
        outcome = "request_lost"
    world.stats.outcomes[outcome] += 1
    return outcome


async def _run(plan: DriverPlan, driver_id: int, world: World) -> str:
    await sleep_sim(world.clock, plan.arrives_after_s)
    if seconds_left(world) <= 0:
        return "too_late"
    outcome, missed = "no_charger", NONE_FREE_NEARBY
    for _ in range(SEARCH_ROUNDS):
        try:
            booking, charger = await _book_nearby(plan, driver_id, world)
        except NoCharger as exc:
            outcome, missed = "no_charger", exc.reason
        else:
            if charger is not None:
                return await _use_booking(plan, driver_id, world, booking, charger)
            if booking.get("error") != PAYMENTS_DOWN:
                return "error"
            outcome = "payments_down"  # a clean 503: worth trying again later, like a full map
        if seconds_left(world) <= RETRY_AFTER_S:
            break
        await sleep_sim(world.clock, RETRY_AFTER_S)  # try again a bit later
    if outcome == "no_charger":
        world.stats.no_charger_because[missed] += 1
    return outcome


async def _book_nearby(
    plan: DriverPlan, driver_id: int, world: World
) -> tuple[dict[str, Any], VirtualCharger | None]:
    """Search the map around home and book the nearest free charger among the first few.

    Returns (booking, charger); (error-body, None) when the API refused the booking otherwise than
    by a conflict; raises NoCharger when the round found nothing to book.
    """
    # Book a slot from when we will get there, for as long as the car needs at a modest 7 kW.
    starts_at = world.clock.now() + timedelta(seconds=plan.travel_s)
    minutes = max(15, min(240, math.ceil(plan.want_wh / 7_000 * 60 * 1.3) + 20))
    api = world.drivers[driver_id]
    r = await api.request(
        "GET",
        "/chargers",
        params={
            "lat": plan.home.lat,
            "lon": plan.home.lon,
            "radius_m": SEARCH_RADIUS_M,
            "online": "true",
            "available_from": format_ts(starts_at),
            "available_until": format_ts(starts_at + timedelta(minutes=minutes)),
            "limit": CANDIDATES,
        },
    )
    r.raise_for_status()
    found: list[dict[str, Any]] = r.json()
    for c in found:
        await api.fresh()  # before reading the clock for the start: a fast clock moves on meanwhile
        body = {
            "charger_id": c["id"],
            "connector_no": 1,
            "minutes": minutes,
            "max_energy_wh": plan.want_wh,
            # A fast simulated clock races the request (a 0.3 s answer is minutes at 900x): never
            # ask to start sooner than the server could still call "now".
            "starts_at": format_ts(max(starts_at, world.clock.now() + BOOKING_LEAD)),
        }
        if plan.overrides:
            body["override_smart_charging"] = True
        # One key per attempt, so a copy sent after a lost answer finds the booking it made.
        attempt = {"Idempotency-Key": f"{plan.id_tag}-{next(_attempts)}"}
        resp = await api.request("POST", "/bookings", json=body, headers=attempt)
        for _ in range(IN_PROGRESS_CHECKS):
            if resp.status_code != 409 or resp.json().get("error") != "request_in_progress":
                break
            # A copy of an attempt whose first try died while the card hold was placed: ask again
            # until recovery has decided it.
            await sleep_sim(world.clock, float(resp.headers.get("Retry-After", "1")) * IN_PROGRESS_BACKOFF)
            resp = await api.request("POST", "/bookings", json=body, headers=attempt)
        if resp.status_code == 409:
            world.stats.conflicts += 1
            continue
        if resp.status_code == 429:  # booking too often: back off like a full map
            world.stats.rate_limited += 1
            raise NoCharger(RATE_LIMITED)
        if resp.status_code == PAYMENTS_DOWN:
            world.stats.payments_down += 1
            return {"error": PAYMENTS_DOWN}, None
        if resp.status_code != 201:
            world.stats.errors.append(f"{plan.name}: booking answered {resp.status_code} {resp.text[:200]}")
            return {"error": resp.status_code}, None
        if world.stats.bookings_answered is not None:
            world.stats.bookings_answered.add(int(resp.json()["id"]))
        return resp.json(), world.chargers[c["charge_point_id"]]
    raise NoCharger(ALL_TAKEN if found else NONE_FREE_NEARBY)


async def _use_booking(
    plan: DriverPlan, driver_id: int, world: World, booking: dict[str, Any], charger: VirtualCharger
) -> str:
    if plan.intent == "no_show":
        # The slot passes without its driver. The run lasts until it has (or the window ends), so
        # the backend's no-show sweep, not the run's wind-down, expires the booking with its fee.
        ends = datetime.fromisoformat(booking["ends_at"])
        await sleep_sim(
            world.clock, min((ends - world.clock.now()).total_seconds(), max(0.0, seconds_left(world)))
        )
        return "no_show"
    if plan.intent == "cancel":
        await sleep_sim(world.clock, plan.travel_s / 2)
        resp = await world.drivers[driver_id].request("POST", f"/bookings/{booking['id']}/cancel")
        return "cancelled" if resp.status_code == 200 else "error"

    arrival = datetime.fromisoformat(booking["starts_at"])
    await sleep_sim(
        world.clock, min((arrival - world.clock.now()).total_seconds(), max(0.0, seconds_left(world)))
    )
    vehicle = Vehicle(plan.battery_wh, plan.soc_wh, plan.max_power_w)
    try:
        plugged = await charger.plug_in(1, plan.id_tag, vehicle, plan.want_wh)
    except PlugRefused:
        # In use or reserved for someone else: our booking was cancelled or failed meanwhile.
        return "refused_at_charger"
    if plugged.transaction_id is None:
        await charger.unplug(1)
        await world.drivers[driver_id].request("POST", f"/bookings/{booking['id']}/cancel")
        return "refused_at_charger"
    ends_at = datetime.fromisoformat(booking["ends_at"])
    wait_s = min((ends_at - world.clock.now()).total_seconds(), seconds_left(world))
    if wait_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(plugged.done.wait(), timeout=world.clock.real_seconds(wait_s))
    await charger.unplug(1)
    # The receipt follows the charger's StopTransaction, which a charger offline or rebooting sends
    # later: look again for a while (bounded) before calling it missing.
    for _ in range(max(RECEIPT_CHECKS, math.ceil(world.receipt_patience_s / RECEIPT_CHECK_EVERY_S))):
        resp = await world.drivers[driver_id].request("GET", f"/bookings/{booking['id']}")
        receipt = resp.json().get("receipt")
        if receipt is not None:
            world.stats.receipts_pence += receipt["cost"]
            return "charged"
        await sleep_sim(world.clock, RECEIPT_CHECK_EVERY_S)
    world.stats.errors.append(f"{plan.name}: no receipt for booking {booking['id']}")
    return "unpaid"
