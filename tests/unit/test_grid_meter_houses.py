"""A run's grid with simulated houses: each site is laid out with what its house draws then, and
measured at every sample with what its house draws at that sample, whatever the backend was told."""

from __future__ import annotations

from datetime import timedelta

from chargeshare.bootstrap import App
from chargeshare.domain.grid_limits import Scope
from chargeshare.services.clock import ManualClock
from simulators.fleet import GridShape
from simulators.grid_metrics import GridMeter, lay_out_grid
from simulators.house_load import HouseProfile
from tests.conftest import add_charger


def test_a_site_is_measured_with_what_its_house_draws_at_each_sample(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, "CP1", online=False)
    with app.store.reading() as tx:
        view = tx.chargers.by_id(charger)
    grid = GridShape(feeders=1, feeder_limit_w=50_000, site_limit_w=9_200, house_profile=True)
    layout = lay_out_grid(app, grid, [view], seed=19)
    ((site_id, house, host),) = layout.meters()
    assert house == HouseProfile(19, 0) and host == view.host_id
    (site,) = app.grid.sites()
    assert site.house_load_w == house.load_w(clock.now())  # laid out with what it draws now
    meter = GridMeter(app, lambda: [], 60, clock.now(), layout.houses)
    at = clock.now()
    # The house changes, the backend is told nothing: the sample holds what the house draws.
    while house.load_w(at) == site.house_load_w:
        at = house.next_change(at)
    meter.sample(at + timedelta(seconds=1))
    (sample,) = meter.samples[(Scope.SITE, site_id)]
    assert sample.load_w == house.load_w(at) != site.house_load_w
    (feeder,) = meter.samples[(Scope.FEEDER, layout.feeders[0].feeder_id)]
    assert feeder.load_w == sample.load_w
