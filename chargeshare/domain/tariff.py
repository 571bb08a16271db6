"""A host's price: pence per kWh, applied to metered watt-hours."""

from __future__ import annotations

from dataclasses import dataclass

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.money import Pence, Wh


@dataclass(frozen=True)
class Tariff:
    price_per_kwh: Pence

    def __post_init__(self) -> None:
        if self.price_per_kwh < 0:
            raise InvalidRequest("price per kWh cannot be negative")

    def cost(self, energy: Wh) -> Pence:
        """Cost of `energy` Wh, rounded half up to the penny (integer arithmetic only)."""
        if energy < 0:
            raise InvalidRequest("energy cannot be negative")
        return (energy * self.price_per_kwh + 500) // 1000

    def max_energy_for(self, budget: Pence) -> Wh:
        """The most energy whose cost stays within `budget`."""
        if self.price_per_kwh == 0:
            raise InvalidRequest("a free tariff has no energy ceiling")
        # cost(e) <= budget  <=>  e*p + 500 < (budget+1)*1000
        return ((budget + 1) * 1000 - 500 - 1) // self.price_per_kwh
