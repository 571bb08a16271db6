"""A simulated UK home's own load (everything but its charger) over the day, seeded and pure.

The load is a base (fridge, standby), a daily shape by the hour of the UK clock (low at night, a
morning peak, and the evening peak around 17:00-20:00), and appliance spikes: a kettle (3 kW for a
few minutes) at any hour, likelier at the peaks, and an oven (2-2.5 kW for half an hour to an hour)
started in the early evening. Power in W, time aware UTC.

Every quarter of an hour is drawn from its own generator, seeded by (seed, house, quarter), so the
load at any instant is computed without state and is the same in every run and engine. Each house's
quarters begin at its own second past the quarter hour (a street's houses do not all change at
once); a quarter's shape is that of the UK clock's hour where it begins, so it follows the clock
changes. The load only changes at `next_change`: a site meter reports at those instants.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")
QUARTER = timedelta(minutes=15)
_QUARTER_S = 900
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

BASE_MIN_W, BASE_MAX_W = 150, 400
# The mean load above the base by hour of the UK clock: a domestic profile's night low, morning
# peak and evening peak (17:00-20:00).
# fmt: off
SHAPE_W = (
    60, 50, 50, 50, 50, 80, 200, 600, 500, 300, 250, 250,  # 00:00-11:59
    300, 250, 250, 300, 500, 1_100, 1_400, 1_300, 900, 700, 400, 150,  # 12:00-23:59
)
# fmt: on
SHAPE_SPREAD = 0.3  # each quarter's shape drawn within +-30% of its hour's mean
KETTLE_W = 3_000
KETTLE_S = (150, 240)
# The chance a kettle is boiled in a quarter hour, by hour of the UK clock.
# fmt: off
KETTLE_CHANCE = (
    0.02, 0.01, 0.01, 0.01, 0.01, 0.03, 0.15, 0.35, 0.3, 0.15, 0.1, 0.1,
    0.15, 0.1, 0.1, 0.12, 0.2, 0.3, 0.3, 0.25, 0.2, 0.15, 0.08, 0.04,
)
# fmt: on
OVEN_W = (2_000, 2_500)
OVEN_S = (1_800, 3_600)
OVEN_HOURS = range(17, 19)  # an oven is put on between 17:00 and 19:00
OVEN_CHANCE = 0.12  # per quarter hour in those hours: most evenings, about one
_LOOK_BACK = OVEN_S[1] // _QUARTER_S + 1  # quarters whose spikes may still be on

# The most any house draws: base, the highest shape, a kettle and an oven at once.
MAX_W = BASE_MAX_W + round(max(SHAPE_W) * (1 + SHAPE_SPREAD)) + KETTLE_W + OVEN_W[1]


@dataclass(frozen=True)
class Spike:
    """An appliance on over [starts_s, ends_s), seconds from its quarter's start."""

    starts_s: int
    ends_s: int
    watts: int


@dataclass(frozen=True)
class Quarter:
    shape_w: int
    kettle: Spike | None
    oven: Spike | None


@dataclass(frozen=True)
class HouseProfile:
    """House number `house` of a run seeded `seed`."""

    seed: int
    house: int

    @property
    def base_w(self) -> int:
        return _base_w(self.seed, self.house)

    def load_w(self, at: datetime) -> int:
        """What the house draws at `at`."""
        q, into = _quarter_of(at, _phase_s(self.seed, self.house))
        kettle = oven = 0
        for back in range(_LOOK_BACK + 1):
            quarter = _quarter(self.seed, self.house, q - back)
            at_s = into + back * _QUARTER_S
            if quarter.kettle is not None and _on(quarter.kettle, at_s):
                kettle = max(kettle, quarter.kettle.watts)  # one kettle in the house
            if quarter.oven is not None and _on(quarter.oven, at_s):
                oven = max(oven, quarter.oven.watts)  # and one oven
        return self.base_w + _quarter(self.seed, self.house, q).shape_w + kettle + oven

    def next_change(self, after: datetime) -> datetime:
        """The first instant after `after` at which the load may change: a whole second, the next
        quarter hour at the latest."""
        phase = _phase_s(self.seed, self.house)
        q, into = _quarter_of(after, phase)
        ahead = _QUARTER_S - into
        for back in range(_LOOK_BACK + 1):
            quarter = _quarter(self.seed, self.house, q - back)
            for spike in (quarter.kettle, quarter.oven):
                for edge in () if spike is None else (spike.starts_s, spike.ends_s):
                    if edge - back * _QUARTER_S - into > 0:
                        ahead = min(ahead, edge - back * _QUARTER_S - into)
        return _EPOCH + timedelta(seconds=phase + q * _QUARTER_S + into + ahead)


def _on(spike: Spike, at_s: int) -> bool:
    return spike.starts_s <= at_s < spike.ends_s


def _quarter_of(at: datetime, phase_s: int) -> tuple[int, int]:
    """The house's quarter `at` falls in (counted from an epoch, each begun `phase_s` past the
    quarter hour) and whole seconds into it."""
    seconds = (at - _EPOCH) // timedelta(seconds=1) - phase_s
    return seconds // _QUARTER_S, seconds % _QUARTER_S


@lru_cache(maxsize=4_096)
def _base_w(seed: int, house: int) -> int:
    return random.Random(f"house-base:{seed}:{house}").randint(BASE_MIN_W, BASE_MAX_W)


@lru_cache(maxsize=4_096)
def _phase_s(seed: int, house: int) -> int:
    return random.Random(f"house-phase:{seed}:{house}").randrange(_QUARTER_S)


@lru_cache(maxsize=65_536)
def _quarter(seed: int, house: int, q: int) -> Quarter:
    rng = random.Random(f"house:{seed}:{house}:{q}")
    begins = _EPOCH + timedelta(seconds=_phase_s(seed, house)) + q * QUARTER
    hour = begins.astimezone(UK).hour
    shape = round(SHAPE_W[hour] * (1 + SHAPE_SPREAD * (2 * rng.random() - 1)))
    kettle = None
    if rng.random() < KETTLE_CHANCE[hour]:
        starts = rng.randrange(_QUARTER_S)
        kettle = Spike(starts, starts + rng.randint(*KETTLE_S), KETTLE_W)
    oven = None
    if hour in OVEN_HOURS and rng.random() < OVEN_CHANCE:
        starts = rng.randrange(_QUARTER_S)
        oven = Spike(starts, starts + rng.randint(*OVEN_S), rng.randint(*OVEN_W))
    return Quarter(shape, kettle, oven)
