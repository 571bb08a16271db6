"""V2G guests in a live run: each signs up over the HTTP API, books one of the fleet's first chargers
(OCPP 2.1) and sets export terms on the booking (PUT /bookings/{id}/export-terms), as a driver's app
does; when the booking begins the guest plugs a bidirectional car, whose floor is the one set, into
the live virtual charger over its real WebSocket, and leaves shortly before the booking ends (or
when the run's window does). What the charger's registers measured for the booking (import,
export) is kept for the invariant that holds the backend's bill and credit to them, as in the DES
(`simulators.des.v2g`)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from chargeshare.ocpp.timestamps import format_ts
from simulators.charger import PlugRefused
from simulators.live_driver import BOOKING_LEAD, ApiSession, World, sign_up
from simulators.pacing import sleep_sim
from simulators.power import Vehicle
from simulators.v2g import V2gShape

CONNECTOR_NO = 1
LEAVE_BEFORE_END_S = 600
CAR_MAX_POWER_W = 11_000
# How often (simulated seconds) a guest waiting for its car looks at the clock: its leaving time is
# read from the clock, never from a real-time timeout, so a held clock delays it as it delays all.
LOOK_EVERY_S = 60.0


def guest_tag(i: int) -> str:
    return f"V2G-GUEST-{i + 1}"


@dataclass(frozen=True)
class GuestBooking:
    booking_id: int
    charge_point_id: str
    starts_at: datetime
    ends_at: datetime


async def run_guests(
    world: World, shape: V2gShape, chargers: list[tuple[int, str]], window_start: datetime
) -> None:
    """Each guest books one of the first `guests` chargers (charger id, charge point id) with export
    terms, then comes to charge. Homes buying the export are played in the DES only."""
    if shape.buyer != "grid":
        world.stats.errors.append(f"V2G guests: buyer {shape.buyer} is played in the DES engine only")
        return
    apps = [
        (await sign_up(world.http, world.clock, f"V2G guest {i + 1}", guest_tag(i)))[1]
        for i in range(min(shape.guests, len(chargers)))
    ]
    starts_at = window_start + timedelta(minutes=shape.arrive_after_minutes)
    bookings = [
        await _book(world, shape, i, api, charger, starts_at)
        for i, (api, charger) in enumerate(zip(apps, chargers, strict=False))
    ]
    await asyncio.gather(*(_guest(world, shape, i, b) for i, b in enumerate(bookings) if b is not None))


async def _book(
    world: World, shape: V2gShape, i: int, api: ApiSession, charger: tuple[int, str], starts_at: datetime
) -> GuestBooking | None:
    charger_id, cp_id = charger
    await api.fresh()  # before reading the clock for the start: a fast clock moves on meanwhile
    body = {
        "charger_id": charger_id,
        "connector_no": CONNECTOR_NO,
        "minutes": shape.hours * 60,
        "max_energy_wh": shape.want_wh,
        "starts_at": format_ts(max(starts_at, world.clock.now() + BOOKING_LEAD)),
    }
    r = await api.request("POST", "/bookings", json=body, headers={"Idempotency-Key": f"{guest_tag(i)}-book"})
    if r.status_code != 201:
        world.stats.errors.append(f"V2G guest {i + 1} could not book: {r.status_code} {r.text[:200]}")
        return None
    booked = r.json()
    booking_id = int(booked["id"])
    if world.stats.bookings_answered is not None:
        world.stats.bookings_answered.add(booking_id)
    terms = {"price_per_kwh": shape.export_price_per_kwh, "soc_floor_pct": shape.soc_floor_pct}
    r = await api.request("PUT", f"/bookings/{booking_id}/export-terms", json=terms)
    if r.status_code != 200:
        said = f"{r.status_code} {r.text[:200]}"
        world.stats.errors.append(f"V2G guest {i + 1} could not set export terms: {said}")
    return GuestBooking(
        booking_id,
        cp_id,
        datetime.fromisoformat(booked["starts_at"]),
        datetime.fromisoformat(booked["ends_at"]),
    )


async def _guest(world: World, shape: V2gShape, i: int, booking: GuestBooking) -> None:
    clock = world.clock
    await sleep_sim(clock, max(0.0, (booking.starts_at - clock.now()).total_seconds()))
    charger = world.chargers[booking.charge_point_id]
    c = charger.connectors[CONNECTOR_NO]
    battery = shape.battery_wh
    vehicle = Vehicle(
        battery,
        battery * shape.arrival_soc_pct // 100,
        CAR_MAX_POWER_W,
        floor_soc_wh=battery * shape.soc_floor_pct // 100,
    )
    imported, exported = c.meter.register_wh, c.export_meter.register_wh
    try:
        plugged = await charger.plug_in(CONNECTOR_NO, guest_tag(i), vehicle, shape.want_wh)
    except PlugRefused:
        world.stats.errors.append(f"V2G guest {i + 1} could not plug in at {booking.charge_point_id}")
        return
    if plugged.transaction_id is None:
        world.stats.errors.append(f"V2G guest {i + 1}'s session at {booking.charge_point_id} did not start")
    # By the run's window's end at the latest: the run waits for its guests no longer than that.
    leave_at = min(booking.ends_at - timedelta(seconds=LEAVE_BEFORE_END_S), world.window_end)
    done = charger.finished(CONNECTOR_NO)
    while not done.is_set() and (left := (leave_at - clock.now()).total_seconds()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=clock.real_seconds(min(left, LOOK_EVERY_S)))
    await charger.unplug(CONNECTOR_NO)
    measured = world.stats.v2g_registers
    if measured is not None:
        measured[booking.booking_id] = (
            c.meter.register_wh - imported,
            c.export_meter.register_wh - exported,
        )
