"""Bodies of the grid buyer's settlement API: money in integer pence, energy in integer Wh."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StatementLineOut(BaseModel):
    entry_id: str = Field(description="the EXPORT_CREDIT ledger entry")
    booking_id: int
    at: datetime
    exported_wh: int
    price_per_kwh: int = Field(description="pence per kWh exported, the driver's terms")
    amount: int = Field(description="pence credited")


class GridSettlementOut(BaseModel):
    month: str
    amount: int = Field(description="pence paid")
    exports: int = Field(description="export credits the paid statement listed")
    entry_id: str = Field(description="the GRID_SETTLEMENT ledger entry")
    recorded_at: datetime
    recorded_by: int | None = Field(description="the operator's account; null from the command line")


class GridStatementOut(BaseModel):
    month: str
    starts_at: datetime
    ends_at: datetime
    over: bool = Field(description="the month has ended: its statement is final and may be paid")
    total: int = Field(description="pence the grid buyer owes for the month's export")
    opening: int = Field(description="pence the grid buyer owed at the month's start, by the ledger")
    received: int = Field(description="pence it paid in the month (settlements of earlier months)")
    closing: int = Field(description="pence it owed at the month's end (so far, while not over)")
    reconciles: bool = Field(description="closing = opening + total - received")
    lines: list[StatementLineOut]
    settlement: GridSettlementOut | None


class GridPaymentIn(BaseModel):
    amount: int = Field(ge=1, le=10**12, description="pence received: the statement's total")


class GridPaymentOut(BaseModel):
    recorded_now: bool = Field(description="false: the month was settled already and nothing was written")
    settlement: GridSettlementOut
