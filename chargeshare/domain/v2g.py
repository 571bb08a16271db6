"""Vehicle-to-grid export, as pure rules: a guest's bidirectional EV sells energy back during a
booking at an export price, never below the state-of-charge floor the driver sets.

Export is metered from the charger's own export register (`Energy.Active.Export.Register`), apart
from the import register that bills charging: the two never net off. A booking's export record
keeps the export register's first and latest readings (it only moves up) and the lowest state of
charge reported while the car was exporting. The credit is exported Wh x export price per kWh,
rounded down to the penny (integer arithmetic), so the driver is never paid for energy not sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.money import Pence, Wh

MAX_EXPORT_PRICE = 1_000  # pence per kWh: a ceiling against typos, ten times any UK export tariff
MIN_SOC_FLOOR = 10  # percent: a floor below this would leave a driver stranded


class ExportBuyer(StrEnum):
    """Who buys a guest's export: the grid buyer, or the home of the host whose charger it is
    (the host's own setting). One buyer per session: the ledger charges its whole export to it."""

    GRID = "grid"
    HOME = "home"


def export_credit(exported_wh: Wh, price_per_kwh: Pence) -> Pence:
    """What the driver is credited for `exported_wh`: rounded down to the penny."""
    if exported_wh < 0 or price_per_kwh < 0:
        raise InvalidRequest("exported energy and export price cannot be negative")
    return exported_wh * price_per_kwh // 1000


@dataclass(frozen=True)
class ExportTerms:
    """What a driver agrees to for one booking: the price per kWh exported and the lowest state
    of charge (percent) the car may be discharged to."""

    booking_id: int
    price_per_kwh: Pence
    soc_floor_pct: int
    set_at: datetime

    def __post_init__(self) -> None:
        if not 0 <= self.price_per_kwh <= MAX_EXPORT_PRICE:
            raise InvalidRequest(
                f"an export price is 0 to {MAX_EXPORT_PRICE}p per kWh, got {self.price_per_kwh}"
            )
        if not MIN_SOC_FLOOR <= self.soc_floor_pct <= 100:
            raise InvalidRequest(
                f"a state-of-charge floor is {MIN_SOC_FLOOR} to 100%, got {self.soc_floor_pct}"
            )
        if self.set_at.tzinfo is None:
            raise InvalidRequest("times must be timezone-aware")


@dataclass(frozen=True)
class ExportRecord:
    """A booking's export as metered: registers in Wh, `lowest_soc_pct` while exporting (None if it
    never exported), `exported_wh` and `credit` once the session stopped and was credited, and who
    buys it all (`buyer`)."""

    booking_id: int
    start_wh: Wh | None = None
    last_wh: Wh | None = None
    soc_pct: int | None = None  # the latest state of charge reported
    lowest_soc_pct: int | None = None
    exported_wh: Wh | None = None
    credit: Pence | None = None
    buyer: ExportBuyer = ExportBuyer.GRID  # fixed when the record is first kept: the export's start

    @property
    def metered_wh(self) -> Wh:
        """Exported so far: the register's difference (0 before two readings)."""
        if self.start_wh is None or self.last_wh is None:
            return 0
        return self.last_wh - self.start_wh

    @property
    def settled(self) -> bool:
        return self.credit is not None


def read_export(record: ExportRecord, register_wh: Wh | None, soc_pct: int | None) -> ExportRecord:
    """A reading applied: the first register reading is the start, later ones only move it up (a
    replayed or late reading changes nothing); a state of charge reported while the register moved
    lowers the lowest seen exporting. A settled record changes no more."""
    if record.settled:
        return record
    if register_wh is not None and register_wh < 0:
        raise InvalidRequest(f"an export register cannot be negative, got {register_wh}")
    if soc_pct is not None and not 0 <= soc_pct <= 100:
        raise InvalidRequest(f"a state of charge is 0 to 100%, got {soc_pct}")
    start, last = record.start_wh, record.last_wh
    moved = False
    if register_wh is not None:
        if start is None:
            start = last = register_wh
        elif last is None or register_wh > last:
            moved = True
            last = register_wh
    lowest = record.lowest_soc_pct
    if moved and soc_pct is not None:
        lowest = soc_pct if lowest is None else min(lowest, soc_pct)
    return replace(
        record,
        start_wh=start,
        last_wh=last,
        soc_pct=record.soc_pct if soc_pct is None else soc_pct,
        lowest_soc_pct=lowest,
    )


def settle_export(record: ExportRecord, terms: ExportTerms) -> ExportRecord:
    """The record closed with its credit (at the session's stop); settling twice changes nothing."""
    if record.settled:
        return record
    wh = record.metered_wh
    return replace(record, exported_wh=wh, credit=export_credit(wh, terms.price_per_kwh))


def settle_late_export(record: ExportRecord, register_wh: Wh, terms: ExportTerms) -> ExportRecord:
    """A settled record taken up to a later reading of the export register (a stop that came after
    the session was closed on an earlier one): its export and credit as if settled on it. A reading
    not above the last changes nothing, nor does an unsettled record (its stop settles it)."""
    if not record.settled or record.start_wh is None or record.last_wh is None:
        return record
    if register_wh <= record.last_wh:
        return record
    wh = register_wh - record.start_wh
    return replace(record, last_wh=register_wh, exported_wh=wh, credit=export_credit(wh, terms.price_per_kwh))
