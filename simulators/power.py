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
    # A bidirectional car's own floor (V2G): the lowest state of charge, in Wh, its driver lets it
    # be discharged to. None: the car cannot discharge.
    floor_soc_wh: int | None = None

    @property
    def soc_pct(self) -> int:
        """State of charge as the car reports it: whole percent, rounded down."""
        return self.soc_wh * 100 // self.battery_wh

    def discharge_room_wh(self) -> int:
        """What the car may still give back before its floor (0 for a car that cannot discharge)."""
        return 0 if self.floor_soc_wh is None else max(0, self.soc_wh - self.floor_soc_wh)

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
