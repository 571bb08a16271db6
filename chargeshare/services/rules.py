"""Marketplace rules that operators tune: fees, hold sizing, booking limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from chargeshare.domain.booking import CancellationPolicy


@dataclass(frozen=True)
class MarketplaceRules:
    platform_fee_bps: int = 1500  # 15% of each session's cost
    # The hold covers the booked energy plus headroom for the last meter interval's overshoot.
    hold_headroom_pct: int = 10
    min_booking_minutes: int = 15
    max_booking_minutes: int = 24 * 60
    max_energy_wh: int = 150_000
    lock_ttl_ms: int = 5_000
    lock_wait_ms: int = 200
    heartbeat_interval_s: int = 300
    # Send ReserveNow to the charger this long before a booking starts (at once for "charge now").
    reserve_lead_minutes: int = 15
    cancellation: CancellationPolicy = field(default_factory=CancellationPolicy)

    def hold_amount(self, energy_cost: int) -> int:
        return energy_cost + energy_cost * self.hold_headroom_pct // 100
