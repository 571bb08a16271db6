"""A simulated house's site meter, live: it reports the house's load through the host's app
(`PUT /host/sites/{id}/house-load`) each time it changes; the backend decides the shares before it
answers, so the next report waits for the last one's decision. Each reading carries when it was
measured, so one arriving after a newer one (through another server process) changes nothing."""

from __future__ import annotations

from simulators.house_load import HouseProfile
from simulators.live_driver import ApiSession
from simulators.pacing import sleep_sim


async def run_house_meter(host: ApiSession, site_id: int, house: HouseProfile, errors: list[str]) -> None:
    told = None
    while True:
        now = host.clock.now()
        watts = house.load_w(now)
        if watts != told:
            reading = {"house_load_w": watts, "measured_at": now.isoformat()}
            r = await host.request("PUT", f"/host/sites/{site_id}/house-load", json=reading)
            if r.status_code == 200:
                told = watts
            else:
                errors.append(f"house meter of site {site_id} answered {r.status_code}: {r.text[:200]}")
        # From the instant read: a late report does not push the next change later still.
        await sleep_sim(host.clock, max(0.0, (house.next_change(now) - host.clock.now()).total_seconds()))
