"""A simulated GB grid: carbon intensity and weather for any moment, the same for the same seed.

Each half hour's reading is drawn from a generator seeded by the seed and that half hour alone, so
a reading never depends on which others were asked for before it (a DES run and an API quote agree).
The shapes are the familiar ones: a dirtier grid in the evening peak and a cleaner one overnight and
on windy days, colder winters, and sunshine only between sunrise and sunset.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from chargeshare.domain.availability import UK
from chargeshare.domain.dynamic_pricing import GridReading

HALF_HOUR_S = 1_800
BASE_CARBON_G = 190
EVENING_EXTRA_G = 70  # 16:00-20:00 local: gas plant meets the peak
NIGHT_SAVING_G = 40  # 00:00-06:00 local: demand is low
SUN_SAVING_G_PER_100_W = 8  # solar displaces gas around midday
WINDY_DAY_SAVING_G = 80  # at most, on the windiest day


class SimulatedGridSignals:
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def reading(self, at: datetime) -> GridReading:
        slot = int(at.astimezone(UTC).timestamp()) // HALF_HOUR_S
        local = at.astimezone(UK)
        noise = random.Random(f"grid:{self.seed}:{slot}")
        day = random.Random(f"grid-day:{self.seed}:{local.date().isoformat()}")
        windy, cloudy = day.random(), day.random()
        hour = local.hour + local.minute / 60
        solar = _solar(local.timetuple().tm_yday, hour, cloudy * 0.6 + noise.random() * 0.4)
        carbon = BASE_CARBON_G + noise.randint(-25, 25) - round(WINDY_DAY_SAVING_G * windy)
        if 16 <= hour < 20:
            carbon += EVENING_EXTRA_G
        elif hour < 6:
            carbon -= NIGHT_SAVING_G
        carbon -= solar * SUN_SAVING_G_PER_100_W // 100
        return GridReading(
            carbon_g_per_kwh=max(20, carbon),
            temperature_deci_c=_temperature(local.timetuple().tm_yday, hour) + noise.randint(-15, 15),
            solar_w_m2=solar,
        )


def _temperature(day_of_year: int, hour: float) -> int:
    """Tenths of a degree: about 5 C in mid-January to 17 C in mid-July, warmest mid-afternoon."""
    season = 110 - 60 * math.cos(2 * math.pi * (day_of_year - 15) / 365)
    daily = 35 * math.cos(2 * math.pi * (hour - 15) / 24)
    return round(season + daily)


def _solar(day_of_year: int, hour: float, cloud: float) -> int:
    """Irradiance (W/m2) on a day of the year at a local hour, dimmed by cloud (0 clear, 1 overcast)."""
    summer = (1 - math.cos(2 * math.pi * (day_of_year - 10) / 365)) / 2  # 0 midwinter, 1 midsummer
    half_day = 4 + 4 * summer  # hours either side of 12:30
    peak = 250 + 600 * summer
    offset = abs(hour - 12.5)
    if offset >= half_day:
        return 0
    return round(peak * math.cos(math.pi / 2 * offset / half_day) * (1 - 0.8 * cloud))
