"""How much power a car draws: flat up to 80% state of charge, then tapering, in integer Wh."""

from __future__ import annotations

from dataclasses import dataclass

TAPER_FROM = 0.8
TAPER_FLOOR = 0.1


@dataclass
class Vehicle:
    battery_wh: int
    soc_wh: int
    max_power_w: int

    def power_w(self, evse_max_w: int) -> int:
        """Power drawn now: the lower of car and charger limits, tapering linearly above 80% SoC."""
        base = min(self.max_power_w, evse_max_w)
        soc = self.soc_wh / self.battery_wh
        if soc >= 1:
            return 0
        if soc <= TAPER_FROM:
            return base
        fraction = 1 - (soc - TAPER_FROM) / (1 - TAPER_FROM)
        return max(int(base * TAPER_FLOOR), int(base * fraction))


@dataclass
class EnergyMeter:
    """A cumulative register in Wh, fed in joules so that rounding never loses or invents energy."""

    register_wh: int = 0
    _joules: int = 0

    def add(self, power_w: int, seconds: float) -> int:
        """Add `power_w` for `seconds`; return the whole Wh added to the register."""
        self._joules += int(power_w * seconds)
        wh, self._joules = divmod(self._joules, 3600)
        self.register_wh += wh
        return wh
