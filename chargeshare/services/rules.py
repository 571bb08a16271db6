"""Marketplace rules that operators tune: fees, hold sizing, booking limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chargeshare.domain.booking import CancellationPolicy
from chargeshare.domain.command_backoff import Backoff


@dataclass(frozen=True)
class MarketplaceRules:
    platform_fee_bps: int = 1500  # 15% of each session's cost
    # Card processing (UK cards, Stripe-like): a share of each capture plus a fixed amount.
    processor_fee_bps: int = 150
    processor_fee_fixed: int = 20
    vat_bps: int = 2000  # UK VAT on the platform's (VAT-inclusive) fee; hosts are private individuals
    # The hold covers the booked energy plus headroom for the last meter interval's overshoot.
    hold_headroom_pct: int = 10
    min_booking_minutes: int = 15
    # A quote issued to a driver is held this long: a booking naming it is made at its price.
    quote_hold_s: int = 600
    # A quote no booking used is deleted by the housekeeping sweep once it expired this long ago.
    quote_retention_s: int = 86_400
    # A start this far in the past is still "now": the app's clock and the request's travel time.
    # Simulations at N x real time multiply request latency by N, so they widen it. A charger's
    # transaction start older than this is one replayed from its offline queue (see walk-ins).
    past_start_tolerance_s: int = 60
    # A charger replays its offline queue as it connects: a report lagging behind its predecessor on
    # a connection up longer than this is no replay, but a clock gone back (ocpp/report_clock.py).
    replay_window_s: int = 300
    max_booking_minutes: int = 24 * 60
    max_energy_wh: int = 150_000
    lock_ttl_ms: int = 5_000
    lock_wait_ms: int = 200
    # A booked period claimed in Redis refuses racing bookings without the database. A claim whose
    # booking is not yet written lapses after `slot_claim_pending_s` (its claimant may have died),
    # one whose hold is being placed after `hold_placement_timeout_s`, and a confirmed one whose
    # release was missed after `slot_claim_held_s`: then the database decides again.
    slot_claim_pending_s: float = 5.0
    slot_claim_held_s: float = 60.0
    heartbeat_interval_s: int = 300
    offline_after_intervals: int = 3  # silent this many heartbeat intervals -> OFFLINE
    # A charger not (yet) accepted is told to boot again after this long.
    boot_retry_interval_s: int = 60
    # Send ReserveNow to the charger this long before a booking starts (at once for "charge now").
    reserve_lead_minutes: int = 15
    cancellation: CancellationPolicy = field(default_factory=CancellationPolicy)
    # A car left plugged in after it stopped charging blocks the host's charger: after a grace
    # period each further whole minute costs the idle fee.
    idle_grace_minutes: int = 30
    idle_fee_per_minute: int = 10
    # Metering asked of every charger on an accepted boot (chargeshare/ocpp/metering.py): readings
    # during a transaction at least this often, and per quarter hour in the Ended event and aligned.
    configure_metering: bool = True
    meter_sample_interval_s: int = 60
    meter_quarter_interval_s: int = 900

    def idle_fee(self, idle_since: datetime | None, stopped: datetime) -> int:
        if idle_since is None:
            return 0
        minutes = int((stopped - idle_since).total_seconds() // 60) - self.idle_grace_minutes
        return max(0, minutes) * self.idle_fee_per_minute

    # Stripe cancels uncaptured manual-capture PaymentIntents after 7 days: bookings may not be made
    # further ahead than a hold can live, with a margin for the session and a settlement retry.
    hold_lifetime_days: int = 7
    max_advance_days: int = 5
    # Payments outbox: retries with exponential backoff (simulated seconds), then the dead-letter queue.
    payment_max_attempts: int = 6
    payment_backoff_s: int = 30
    payment_backoff_cap_s: int = 3_600
    # A worker holds a payment step this long (clock seconds) before another may take it over: longer
    # than the gateway's own timeout, so a slow call is never worked twice at once.
    payment_lease_s: int = 120
    # A connector reported free while its session is open: the session's stop is awaited this long
    # (2.0.1 firmware reports Available before TransactionEvent Ended; a 1.6 charger back from
    # offline reports its status before replaying its queued stop), then it is closed on its last
    # reading (the stop was lost, say with a reboot's queue).
    lost_stop_grace_s: int = 300
    # A command the database shows decided and unacknowledged this long (a reservation still "sent",
    # a cancelled one the charger may hold, a stop due) is sent again by the process holding the
    # charger's link: the process that decided it may have died before it reached the link.
    command_resend_after_s: int = 60
    # A charger refusing a V2G export or a driver's override is asked again after this, doubling
    # with each refusal up to the cap; after the limit's refusals it is no longer asked for the session.
    command_backoff_first_s: int = 60
    command_backoff_cap_s: int = 3_600
    command_refusal_limit: int = 8
    # A booking's hold placement not finished by then is taken as abandoned (its request died):
    # recovery fails the booking and voids whatever the provider authorised.
    hold_placement_timeout_s: int = 120
    # A walk-in (a token charging without a booking where its host allows it) takes the connector for
    # at most this long and this much energy: its card is charged only at the end, with no hold
    # before, so what it may owe is bounded; the energy limit stops it as a booking's does.
    walk_in_minutes: int = 240
    walk_in_max_energy_wh: int = 50_000

    @property
    def command_backoff(self) -> Backoff:
        return Backoff(self.command_backoff_first_s, self.command_backoff_cap_s, self.command_refusal_limit)

    def processor_fee(self, captured: int) -> int:
        """Rounded up to the penny, as processors do; nothing is charged on nothing captured."""
        if captured <= 0:
            return 0
        return -(-captured * self.processor_fee_bps // 10_000) + self.processor_fee_fixed

    def hold_energy(self, max_energy_wh: int) -> int:
        """Energy the hold covers: the booked energy plus headroom, rounded up to the watt-hour, so the
        hold always covers the cost of that much energy (rounding pence down could not)."""
        return max_energy_wh + -(-max_energy_wh * self.hold_headroom_pct // 100)
