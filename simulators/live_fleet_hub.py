"""A fleet-share hub in a live run, over the HTTP API as the operator's, the fleet's and the hosts'
apps would: the operator opens the business account (POST /fleets); the fleet books its night blocks
on the hub's chargers, all or nothing (POST /fleets/{id}/blocks); each occurrence's van arrives soon
after its block opens, charges with the fleet's tag at the live virtual charger over its WebSocket
and leaves before the block closes; hosts cancel occurrences inside the contract's notice (POST
/bookings/{id}/cancel). At the end every month that is over is invoiced, twice, and paid (POST
/fleets/{id}/invoices/{month}[/payments]). As in the DES (`simulators.des.fleet_hub`)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chargeshare.bootstrap import App
from simulators.charger import PlugRefused
from simulators.fleet_hub import HUB_TAG, HubShape, months_over
from simulators.live_driver import ApiSession, World, admin_session
from simulators.pacing import sleep_sim
from simulators.power import Vehicle

CONNECTOR_NO = 1
LEAVE_BEFORE_END_S = 600  # a van leaves this long before its block closes, charged or not
LATE_CANCEL_AT_S = 3600  # hosts cancel their late occurrences this far into the run
# How often (simulated seconds) a charging van looks at the clock for its leaving time.
LOOK_EVERY_S = 60.0


@dataclass(frozen=True)
class HubCharger:
    charger_id: int
    charge_point_id: str
    host_id: int


@dataclass(frozen=True)
class LiveHub:
    """The fleet's account, its app, and the hub's chargers (by charger id)."""

    fleet_id: int
    api: ApiSession
    chargers: dict[int, HubCharger]


async def book_hub(
    app: App, world: World, hub: HubShape, chargers: list[HubCharger], start: datetime, duration_s: int
) -> LiveHub | None:
    """The operator opens the fleet's account; the fleet books its blocks on the first of
    `chargers`. A refused block is counted, clash by clash; None if the account could not open."""
    admin = await admin_session(app, world)
    email, password = "fleet@fleets.example", secrets.token_urlsafe(12)
    r = await admin.request(
        "POST", "/fleets", json={"name": "Hub Fleet", "id_tag": HUB_TAG, "email": email, "password": password}
    )
    if r.status_code != 201:
        world.stats.errors.append(f"the hub's fleet account was refused: {r.status_code} {r.text[:200]}")
        return None
    fleet_id = int(r.json()["id"])
    api = ApiSession(world.http, world.clock, email, password)
    on = chargers[: hub.chargers]
    rule = hub.rule(start, duration_s)
    block = {
        "weekdays": sorted(rule.weekdays),
        "start": rule.start.isoformat("minutes"),
        "end": rule.end.isoformat("minutes"),
        "first_day": rule.first_day.isoformat(),
        "last_day": rule.last_day.isoformat(),
        "connectors": [{"charger_id": c.charger_id, "connector_no": CONNECTOR_NO} for c in on],
        "notice_hours": hub.notice_hours,
        "late_penalty": hub.late_penalty,
    }
    r = await api.request(
        "POST", f"/fleets/{fleet_id}/blocks", json=block, headers={"Idempotency-Key": "hub"}
    )
    if r.status_code == 409 and r.json().get("error") == "block_conflict":
        world.stats.fleet_hub["block_clashes"] += int(r.json()["total"])
    elif r.status_code != 201:
        world.stats.errors.append(f"the hub's blocks answered {r.status_code}: {r.text[:200]}")
    elif world.stats.bookings_answered is not None:  # the fleet heard of every one of them
        world.stats.bookings_answered.update(int(o["booking_id"]) for o in r.json()["occurrences"])
    return LiveHub(fleet_id, api, {c.charger_id: c for c in on})


async def run_hub(world: World, hub: HubShape, live: LiveHub, seed: int) -> None:
    """Every occurrence's van, and the hosts' late cancellations."""
    rng = random.Random(f"{seed}:fleet-hub")
    occurrences = await _occurrences(live)
    vans = [
        asyncio.create_task(_van(world, hub, live, o, rng.randrange(hub.van_arrival_max_s + 1)))
        for o in occurrences
    ]
    try:
        await sleep_sim(world.clock, max(0.0, min(LATE_CANCEL_AT_S, world.seconds_left())))
        await _cancel_late(world, hub, live, occurrences)
        await asyncio.gather(*vans)
    finally:
        for van in vans:
            van.cancel()


async def _occurrences(live: LiveHub) -> list[dict[str, Any]]:
    r = await live.api.request("GET", f"/fleets/{live.fleet_id}/occurrences")
    r.raise_for_status()
    found: list[dict[str, Any]] = r.json()
    return found


async def _cancel_late(world: World, hub: HubShape, live: LiveHub, occurrences: list[dict[str, Any]]) -> None:
    """Hosts cancel the first `late_cancels` occurrences still to start inside the notice."""
    now = world.clock.now()
    notice = timedelta(hours=hub.notice_hours)
    due = [o for o in occurrences if now < datetime.fromisoformat(o["starts_at"]) < now + notice]
    for o in due[: hub.late_cancels]:
        host = world.hosts[live.chargers[int(o["charger_id"])].host_id]
        r = await host.request("POST", f"/bookings/{o['booking_id']}/cancel")
        if r.status_code == 200:
            world.stats.fleet_hub["occurrences_cancelled_late"] += 1


async def _van(world: World, hub: HubShape, live: LiveHub, o: dict[str, Any], arrives_after_s: int) -> None:
    clock = world.clock
    starts_at, ends_at = datetime.fromisoformat(o["starts_at"]), datetime.fromisoformat(o["ends_at"])
    await sleep_sim(clock, max(0.0, (starts_at - clock.now()).total_seconds()) + arrives_after_s)
    current = {int(x["booking_id"]): x for x in await _occurrences(live)}.get(int(o["booking_id"]))
    if current is None or current["status"] != "confirmed":
        return  # cancelled by its host, or expired
    world.stats.fleet_hub["van_arrivals"] += 1
    charger = world.chargers[live.chargers[int(o["charger_id"])].charge_point_id]
    vehicle = Vehicle(battery_wh=75_000, soc_wh=15_000, max_power_w=11_000)
    try:
        await charger.plug_in(CONNECTOR_NO, HUB_TAG, vehicle, hub.van_wh)
    except PlugRefused:
        world.stats.fleet_hub["vans_refused"] += 1
        return
    # By the run's window's end at the latest: the run waits for its vans no longer than that.
    leave_at = min(ends_at - timedelta(seconds=LEAVE_BEFORE_END_S), world.window_end)
    done = charger.finished(CONNECTOR_NO)
    while not done.is_set() and (left := (leave_at - clock.now()).total_seconds()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=clock.real_seconds(min(left, LOOK_EVERY_S)))
    await charger.unplug(CONNECTOR_NO)


async def settle_hub(app: App, world: World, hub: HubShape, live: LiveHub, start: datetime) -> None:
    """The end of the run: each month that is over invoiced (asked twice, as an operator might: the
    second changes nothing) and paid as much as the shape says, by the operator's app."""
    admin = await admin_session(app, world)
    for month in months_over(start, world.clock.now()):
        await admin.request("POST", f"/fleets/{live.fleet_id}/invoices/{month}")
        r = await admin.request("POST", f"/fleets/{live.fleet_id}/invoices/{month}")
        if r.status_code != 200:
            world.stats.errors.append(
                f"the hub's invoice for {month} answered {r.status_code}: {r.text[:200]}"
            )
            continue
        amount = int(r.json()["outstanding"]) * hub.pay_percent // 100
        if amount > 0:
            r = await admin.request(
                "POST",
                f"/fleets/{live.fleet_id}/invoices/{month}/payments",
                json={"amount": amount},
                headers={"Idempotency-Key": f"hub-{month}"},
            )
            if r.status_code != 200:
                said = f"{r.status_code}: {r.text[:200]}"
                world.stats.errors.append(f"the hub's payment for {month} answered {said}")
