"""Request and response bodies of the fleet API. Money in integer pence, energy in integer Wh."""

from __future__ import annotations

from datetime import date, datetime, time

from pydantic import BaseModel, Field

from chargeshare.domain.fleet import MAX_CONTRACT_DAYS
from chargeshare.domain.tokens import MAX_TAG_LENGTH
from chargeshare.entrypoints.api.schemas import Text
from chargeshare.services.fleet import BlockConflict


class FleetIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    id_tag: Text = Field(
        min_length=1, max_length=MAX_TAG_LENGTH, description="the tag its vehicles charge with"
    )
    email: Text = Field(min_length=3, max_length=254, description="the business account's sign-in")
    password: Text = Field(min_length=10, max_length=128)


class FleetOut(BaseModel):
    id: int
    name: str
    driver_id: int = Field(description="the identity its vehicles charge under")


class ConnectorRefIO(BaseModel):
    charger_id: int = Field(ge=1, le=2**31 - 1)
    connector_no: int = Field(default=1, ge=1, le=99)


class BlockIn(BaseModel):
    weekdays: list[int] = Field(min_length=1, max_length=7, description="0 (Monday) to 6 (Sunday)")
    start: time = Field(description="UK wall-clock time, e.g. 20:00")
    end: time = Field(description="UK wall-clock time; at or before start: the next day")
    first_day: date = Field(description="the first day a block may start on (UK)")
    last_day: date = Field(
        description=f"the last day a block may start on; at most {MAX_CONTRACT_DAYS} days on"
    )
    connectors: list[ConnectorRefIO] = Field(min_length=1, max_length=50)
    notice_hours: int = Field(default=72, ge=0, le=24 * 90, description="a host cancelling with less pays")
    late_penalty: int = Field(default=2_000, ge=0, le=1_000_000, description="pence per occurrence")
    max_energy_wh: int | None = Field(default=None, ge=1, le=1_000_000)


class ContractOut(BaseModel):
    id: int
    fleet_id: int
    weekdays: list[int]
    start: time
    end: time
    first_day: date
    last_day: date
    connector_ids: list[int]
    notice_hours: float
    late_penalty: int


class OccurrenceOut(BaseModel):
    booking_id: int
    charger_id: int
    connector_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    cancelled_by: str | None = None


class BlockOut(BaseModel):
    contract: ContractOut
    occurrences: list[OccurrenceOut]


class ClashOut(BaseModel):
    charger_id: int
    connector_no: int
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(description="booked | unavailable (outside the host's calendar)")


class BlockConflictOut(BaseModel):
    """409: nothing was booked; `clashes` names the occurrences that could not be (up to 50)."""

    error: str
    detail: str
    total: int
    clashes: list[ClashOut]


class InvoiceLineOut(BaseModel):
    entry_id: str
    booking_id: int
    kind: str = Field(description="session | fee | penalty (a host's late cancellation: a credit)")
    at: datetime
    amount: int
    energy_wh: int


class InvoiceOut(BaseModel):
    id: int
    fleet_id: int
    month: str
    total: int
    paid: int
    outstanding: int
    issued_at: datetime
    paid_at: datetime | None = None
    lines: list[InvoiceLineOut] | None = None


class PaymentIn(BaseModel):
    amount: int = Field(ge=1, le=10**9, description="pence received")


class FleetStatementOut(BaseModel):
    fleet_id: int
    unbilled: int = Field(description="charged on account (less penalties credited), not invoiced yet")
    receivable: int = Field(description="invoiced and not yet paid")
    balance: int
    invoices: list[InvoiceOut]


def block_conflict_out(exc: BlockConflict) -> BlockConflictOut:
    return BlockConflictOut(
        error=exc.code,
        detail=str(exc),
        total=exc.total,
        clashes=[
            ClashOut(
                charger_id=c.charger_id,
                connector_no=c.connector_no,
                starts_at=c.starts_at,
                ends_at=c.ends_at,
                reason=c.reason,
            )
            for c in exc.clashes
        ],
    )
