"""A simulated house's site meter in virtual time: it reports the house's load to the backend each
time it changes, and the backend decides the shares at once."""

from __future__ import annotations

from simulators.des.charger import Process
from simulators.des.driver import DesWorld
from simulators.house_load import HouseProfile


def run_house_meter(world: DesWorld, site_id: int, house: HouseProfile) -> Process:
    told = None
    while True:
        now = world.app.clock.now()
        watts = house.load_w(now)
        if watts != told:
            try:
                world.app.grid.set_house_load(site_id, watts, measured_at=now)
                told = watts
            except Exception as e:  # a backend bug is the run's finding, not the meter's end
                world.stats.errors.append(f"house meter of site {site_id}: {e!r}")
        yield world.env.timeout((house.next_change(now) - now).total_seconds())
