"""V2G guests in a simulated run: drivers with bidirectional cars who book a host's OCPP 2.1 charger
over the evening peak and sell energy back at an export price, never below the floor they set.

The shape (`V2gShape`) is read from a scenario's `v2g` section; the discrete-event engine plays it
(`simulators.des.v2g`); `v2g_summary` is the run report's `v2g` breakdown, read from the backend's
books at the end of any run (zeros where no guest ran).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chargeshare.bootstrap import App
from chargeshare.domain.ledger import EXPORT_CREDIT_KINDS, EntryKind

SUMMARY_NAMES = (
    "guests",
    "sessions",
    "imported_wh",
    "exported_wh",
    "credits_pence",
    "home_credits_pence",
    "lowest_soc_pct",
    "soc_floor_pct",
)


@dataclass(frozen=True)
class V2gShape:
    guests: int = 4  # each on one of the fleet's first chargers (which speak OCPP 2.1)
    arrive_after_minutes: int = 0  # from the run's start, when the bookings begin
    hours: int = 7  # each booking's length
    export_price_per_kwh: int = 25
    soc_floor_pct: int = 40
    battery_wh: int = 60_000
    arrival_soc_pct: int = 80
    want_wh: int = 12_000  # what each car wants imported over the booking
    buyer: str = "grid"  # who buys the export: the grid buyer, or (home) each charger's host's home

    def as_dict(self) -> dict[str, Any]:
        return {
            "guests": self.guests,
            "arrive_after_minutes": self.arrive_after_minutes,
            "hours": self.hours,
            "export_price_per_kwh": self.export_price_per_kwh,
            "soc_floor_pct": self.soc_floor_pct,
            "battery_wh": self.battery_wh,
            "arrival_soc_pct": self.arrival_soc_pct,
            "want_wh": self.want_wh,
            "buyer": self.buyer,
        }


def v2g_summary(app: App) -> dict[str, int]:
    """Bookings with export terms: their sessions, import billed, export credited, and the lowest
    state of charge any car reported while exporting (with the highest floor set, to compare); the
    credits to either buyer, and of them those the hosts' homes bought."""
    out = dict.fromkeys(SUMMARY_NAMES, 0)
    with app.store.reading() as tx:
        terms = tx.v2g.all_terms()
        records = tx.v2g.records()
        ids = [t.booking_id for t in terms]
        sessions = tx.sessions.for_bookings(ids)
        entries = [e for es in tx.ledger.entries_of(ids).values() for e in es]
    out["guests"] = len(terms)
    out["sessions"] = len(sessions)
    out["imported_wh"] = sum(s.billed_wh or 0 for s in sessions.values())
    out["exported_wh"] = sum(r.exported_wh or 0 for r in records)
    out["credits_pence"] = sum(e.amount for e in entries if e.kind in EXPORT_CREDIT_KINDS)
    out["home_credits_pence"] = sum(e.amount for e in entries if e.kind is EntryKind.HOME_EXPORT_CREDIT)
    lowest = [r.lowest_soc_pct for r in records if r.lowest_soc_pct is not None]
    out["lowest_soc_pct"] = min(lowest, default=0)
    out["soc_floor_pct"] = max((t.soc_floor_pct for t in terms), default=0)
    return out
