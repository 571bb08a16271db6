"""Seeded generation of a fleet of hosts' chargers and a population of drivers around a UK city."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.dynamic_pricing import HostPricing, PricingMode, SmartTariff
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, OcppVersion

CITIES: dict[str, Point] = {
    "bristol": Point(51.4545, -2.5879),
    "london": Point(51.5072, -0.1276),
    "manchester": Point(53.4808, -2.2426),
    "leeds": Point(53.8008, -1.5491),
    "glasgow": Point(55.8642, -4.2518),
}

HOME_CHARGER_POWERS_W = (3_700, 7_400, 7_400, 7_400, 11_000, 22_000)


@dataclass(frozen=True)
class FleetShape:
    """Where chargers are and what they offer (a scenario's `fleet` section)."""

    radius_m: float = 6_000
    powers_w: tuple[int, ...] = HOME_CHARGER_POWERS_W
    price_min: int = 25  # pence per kWh, inclusive
    price_max: int = 45
    # OCPP versions, dealt out in turn: charger i speaks protocols[i % len(protocols)], so
    # ("1.6", "2.0.1") alternates and ("1.6", "1.6", "2.0.1") makes a third of the fleet 2.0.1.
    protocols: tuple[OcppVersion, ...] = (V16,)
    # Relevant charge points under the UK's Smart Charge Points Regulations 2021: a randomised delay
    # and default charging hours, as pre-configured (simulators/smart_gate.py).
    smart_charge_points: bool = False
    dsr_chargers: int = 0  # the first this many chargers provide DSR throughout (the operator's flag)
    amps_only_chargers: int = 0  # the first this many take charging schedules in A only
    # Every charger wired to this many phases (1 or 3) whatever its rating; None: by rating
    # (simulators/evse.py). `phases_said`: whether they declare it, as real ones may not.
    phases: int | None = None
    phases_said: bool = True
    # Whether they switch a three-phase connector to one phase during a transaction, and say so
    # (`ChargerCore.switch_phases`).
    phase_switching: bool = True
    # How hosts price: "flat" (each charger's listed price) or "dynamic" (`dynamic_settings`).
    pricing: str = PricingMode.FLAT.value
    grid: GridShape | None = None  # None: no site or feeder limits

    def protocol_of(self, index: int) -> OcppVersion:
        return self.protocols[index % len(self.protocols)]


@dataclass(frozen=True)
class FlexShape:
    """A DNO's flexibility event on a feeder (1-based), announced when the run begins."""

    feeder: int
    at_s: int  # from the start of the window
    duration_s: int
    limit_w: int


@dataclass(frozen=True)
class GridShape:
    """Site and feeder limits (a scenario's `grid` section): charger i sits on its own host's site,
    on feeder i % feeders + 1."""

    feeders: int = 1
    feeder_limit_w: int = 100_000
    site_limit_w: int = 13_800  # a 60 A main fuse at 230 V
    house_load_w: int = 0
    # Each house following a seeded UK domestic day (simulators/house_load.py) instead of a constant.
    house_profile: bool = False
    flex_events: tuple[FlexShape, ...] = ()


@dataclass(frozen=True)
class DriverBehaviour:
    """How drivers behave (a scenario's `drivers` section). Rates are probabilities per driver."""

    arrival_window: float = 0.6  # drivers first look for a charger within this fraction of the run
    cancel_rate: float = 0.1
    no_show_rate: float = 0.0
    travel_min_s: int = 300
    travel_max_s: int = 1_200
    radius_m: float = 6_000
    override_rate: float = 0.0  # share of drivers who book with the smart charging override
    # The most each driver pays per kWh, drawn from this range (pence, inclusive); None: any price.
    max_price: tuple[int, int] | None = None


@dataclass(frozen=True)
class DriverPlan:
    name: str
    id_tag: str
    home: Point
    arrives_after_s: int  # from the start of the window
    travel_s: int
    want_wh: int
    battery_wh: int
    soc_wh: int
    max_power_w: int
    intent: str  # "charge", "cancel" (cancels before arriving) or "no_show" (never turns up)
    overrides: bool = False  # books overriding the charger's randomised delay and default hours
    max_price_per_kwh: int | None = None  # the driver books nothing dearer (pence); None: any price


def scatter(rng: random.Random, centre: Point, radius_m: float) -> Point:
    """A point uniformly distributed in a disc around `centre` (small-area approximation)."""
    r = radius_m * math.sqrt(rng.random())
    theta = rng.random() * 2 * math.pi
    dlat = (r * math.cos(theta)) / 111_320
    dlon = (r * math.sin(theta)) / (111_320 * math.cos(math.radians(centre.lat)))
    return Point(round(centre.lat + dlat, 6), round(centre.lon + dlon, 6))


def make_chargers(
    rng: random.Random, count: int, centre: Point, host_ids: list[int], shape: FleetShape | None = None
) -> list[ChargerSpec]:
    shape = shape or FleetShape()
    return [
        ChargerSpec(
            charge_point_id=f"CS{i + 1:05d}",
            host_id=host_ids[i % len(host_ids)],
            location=scatter(rng, centre, shape.radius_m),
            tariff=Tariff(rng.randint(shape.price_min, shape.price_max)),
            connectors=(ConnectorSpec(1, ConnectorType.TYPE2, rng.choice(shape.powers_w)),),
            title=f"Home charger {i + 1}",
        )
        for i in range(count)
    ]


def make_drivers(
    rng: random.Random, count: int, centre: Point, window_s: int, behaviour: DriverBehaviour | None = None
) -> list[DriverPlan]:
    b = behaviour or DriverBehaviour()
    plans = []
    for i in range(count):
        battery = rng.choice((40_000, 60_000, 77_000, 100_000))
        soc = int(battery * rng.uniform(0.1, 0.6))
        roll = rng.random()
        intent = (
            "cancel"
            if roll < b.cancel_rate
            else "no_show"
            if roll < b.cancel_rate + b.no_show_rate
            else "charge"
        )
        plans.append(
            DriverPlan(
                name=f"Driver {i + 1}",
                id_tag=f"TAG{i + 1:06d}",
                home=scatter(rng, centre, b.radius_m),
                arrives_after_s=int(rng.uniform(0, b.arrival_window) * window_s),
                travel_s=rng.randint(b.travel_min_s, b.travel_max_s),
                want_wh=rng.randrange(4_000, 25_000, 100),
                battery_wh=battery,
                soc_wh=soc,
                max_power_w=rng.choice((7_400, 11_000, 22_000)),
                intent=intent,
            )
        )
    if b.override_rate > 0:
        # Drawn after every plan, so the plans are those a run without overrides makes.
        picker = random.Random(rng.getrandbits(64))
        chosen = set(picker.sample(range(count), round(b.override_rate * count)))
        plans = [dataclasses.replace(p, overrides=i in chosen) for i, p in enumerate(plans)]
    if b.max_price is not None:
        # Drawn after every plan too: a run with price limits has the same drivers, only choosier.
        lo, hi = b.max_price
        picker = random.Random(rng.getrandbits(64))
        plans = [dataclasses.replace(p, max_price_per_kwh=picker.randint(lo, hi)) for p in plans]
    return plans


# A UK EV tariff's shape: what a host with a car of their own pays by day and overnight (pence/kWh).
HOST_OWN_TARIFF = SmartTariff(day_per_kwh=24, night_per_kwh=7)


def dynamic_settings(listed_per_kwh: int) -> HostPricing:
    """A simulated host's dynamic pricing: from 60% to 160% of their listed price."""
    floor = max(1, listed_per_kwh * 6 // 10)
    return HostPricing(PricingMode.DYNAMIC, floor, max(floor, listed_per_kwh * 16 // 10), HOST_OWN_TARIFF)


def price_hosts(
    set_settings: Callable[[int, HostPricing], None], specs: list[ChargerSpec], shape: FleetShape
) -> None:
    """Give each charger's host its pricing, as the fleet's shape says (nothing to do for flat)."""
    if shape.pricing == PricingMode.DYNAMIC.value:
        for spec in specs:
            set_settings(spec.host_id, dynamic_settings(spec.tariff.price_per_kwh))
