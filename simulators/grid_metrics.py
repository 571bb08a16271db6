"""A run's grid and its site and feeder loads, measured from the virtual chargers (live and DES):
the sites, feeders and flexibility events a scenario's `grid` section lays out, then every site's house load
and its connectors' power, every feeder's sum of its sites, sampled against the limit in force
(flexibility events included). The `grid_within_limits` invariant and the run summary's `grid`
measures are judged from these samples; the feeder plot draws them."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chargeshare.bootstrap import App
from chargeshare.domain.grid_limits import (
    Feeder,
    FlexEvent,
    LoadSample,
    Scope,
    effective_limit_w,
    overloads,
    site_loads_w,
)
from chargeshare.services.invariants import InvariantResult, grid_within_limits
from chargeshare.services.records import ChargerView
from simulators.fleet import GridShape
from simulators.house_load import HouseProfile

SAMPLE_EVERY_S = 60
NAMES = (
    "sites",
    "feeders",
    "samples",  # per site and feeder
    "flex_events",
    "overloads",  # stretches above a limit for longer than one meter interval: must be 0
    "over_limit_samples",  # samples above a limit, however briefly
    "feeder_peak_w",  # the highest feeder load sampled
    "feeder_headroom_min_w",  # the least any feeder was below its limit (negative: above it)
    "paused_samples",  # connector samples with a car plugged in and held at 0 W
)


@dataclass(frozen=True)
class GridLayout:
    feeders: list[Feeder]
    # Each site's simulated house, by site id (none: every house draws the constant `house_load_w`).
    houses: dict[int, HouseProfile]
    host_of: dict[int, int]  # each site's host, by site id: its meter reports as the host's app

    def meters(self) -> list[tuple[int, HouseProfile, int]]:
        """Each simulated house's site, the house, and the host whose app its meter reports through."""
        return [(site, house, self.host_of[site]) for site, house in self.houses.items()]


def lay_out_grid(app: App, grid: GridShape, views: Sequence[ChargerView], seed: int = 0) -> GridLayout:
    """Charger i on its host's own site, on feeder i % feeders + 1, with house i of the run's
    `seed` when its houses follow the profile (starting from what it draws now)."""
    feeders = [app.grid.add_feeder(f"F{n + 1}", grid.feeder_limit_w) for n in range(grid.feeders)]
    houses, host_of = {}, {}
    for i, view in enumerate(views):
        house = HouseProfile(seed, i) if grid.house_profile else None
        site = app.grid.add_site(
            view.host_id,
            f"site of {view.charge_point_id}",
            grid.site_limit_w,
            house_load_w=grid.house_load_w if house is None else house.load_w(app.clock.now()),
            feeder_id=feeders[i % len(feeders)].feeder_id,
        )
        app.grid.place(view.charger_id, site.site_id)
        host_of[site.site_id] = view.host_id
        if house is not None:
            houses[site.site_id] = house
    return GridLayout(feeders, houses, host_of)


def announce_flex_events(
    app: App, grid: GridShape, feeders: Sequence[Feeder], start: datetime
) -> list[FlexEvent]:
    """The DNO's flexibility events, timed from the window's `start`, announced before they begin."""
    announced = []
    for e in grid.flex_events:
        begins = start + timedelta(seconds=e.at_s)
        announced.append(
            app.grid.add_flex_event(
                Scope.FEEDER,
                feeders[e.feeder - 1].feeder_id,
                e.limit_w,
                begins,
                begins + timedelta(seconds=e.duration_s),
            )
        )
    return announced


PowerOf = Callable[[], Iterable[tuple[int, int, bool]]]  # (connector id, W drawn, held at 0 W)


class GridMeter:
    """Samples taken as the run goes (`sample`), judged at its end. A site with a simulated house
    (`houses`) is measured with what its house draws at the sample, not what the backend was told."""

    def __init__(
        self,
        app: App,
        power_of: PowerOf,
        meter_interval_s: int,
        start: datetime,
        houses: Mapping[int, HouseProfile] | None = None,
    ) -> None:
        self.refresh(app)
        self.power_of, self.start = power_of, start
        self.houses = dict(houses or {})
        self.meter_interval = timedelta(seconds=meter_interval_s)
        self.samples: dict[tuple[Scope, int], list[LoadSample]] = defaultdict(list)
        self.paused = 0

    def refresh(self, app: App) -> None:
        """Read the grid again: a replay re-creates it record by record as the run went."""
        with app.store.reading() as tx:
            self.sites, self.feeders = list(tx.grid.sites()), list(tx.grid.feeders())
            self.events = list(tx.grid.flex_events())
            members = tx.grid.members()
            self.site_of = {
                c.connector_id: members[charger.charger_id]
                for charger in tx.chargers.all()
                if charger.charger_id in members
                for c in charger.connectors
            }

    def sample(self, at: datetime) -> None:
        power: dict[int, int] = {}
        for connector_id, watts, held in self.power_of():
            if connector_id in self.site_of:
                power[connector_id] = watts
                self.paused += held
        sites = [
            dataclasses.replace(s, house_load_w=self.houses[s.site_id].load_w(at))
            if s.site_id in self.houses
            else s
            for s in self.sites
        ]
        loads = site_loads_w(sites, power, self.site_of)
        for s in sites:
            key = (Scope.SITE, s.site_id)
            limit = effective_limit_w(s.limit_w, Scope.SITE, s.site_id, self.events, at)
            self.samples[key].append(LoadSample(at, loads.get(key, s.house_load_w), limit))
        for f in self.feeders:
            key = (Scope.FEEDER, f.feeder_id)
            limit = effective_limit_w(f.limit_w, Scope.FEEDER, f.feeder_id, self.events, at)
            self.samples[key].append(LoadSample(at, loads.get(key, 0), limit))

    def invariant(self) -> InvariantResult:
        return grid_within_limits(self.samples, self.meter_interval)

    def summary(self) -> dict[str, int]:
        feeder = [x for (scope, _), xs in self.samples.items() if scope is Scope.FEEDER for x in xs]
        every = [x for xs in self.samples.values() for x in xs]
        return {
            "sites": len(self.sites),
            "feeders": len(self.feeders),
            "samples": len(every),
            "flex_events": len(self.events),
            "overloads": len(overloads(self.samples, self.meter_interval)),
            "over_limit_samples": sum(1 for x in every if x.load_w > x.limit_w),
            "feeder_peak_w": max((x.load_w for x in feeder), default=0),
            "feeder_headroom_min_w": min((x.limit_w - x.load_w for x in feeder), default=0),
            "paused_samples": self.paused,
        }

    def feeder_series(self) -> dict[str, dict[str, list[Any]]]:
        """Each feeder's samples for the plot: minutes from the window's start, load and limit."""
        start = self.start
        out: dict[str, dict[str, list[Any]]] = {}
        for f in self.feeders:
            xs = self.samples[(Scope.FEEDER, f.feeder_id)]
            out[f.name] = {
                "minute": [round((x.at - start).total_seconds() / 60, 2) for x in xs],
                "load_w": [x.load_w for x in xs],
                "limit_w": [x.limit_w for x in xs],
            }
        return out


def empty_summary() -> dict[str, int]:
    return dict.fromkeys(NAMES, 0)
