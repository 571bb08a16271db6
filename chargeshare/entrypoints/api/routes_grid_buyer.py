"""The grid buyer's settlement for guests' V2G export, for operators: a month's statement, the
payments recorded, and recording one (once per month, whoever records it again)."""

from __future__ import annotations

from fastapi import APIRouter

from chargeshare.domain.grid_settlement import GridSettlement, GridStatement
from chargeshare.entrypoints.api.deps import Admin, AppDep
from chargeshare.entrypoints.api.grid_buyer_schemas import (
    GridPaymentIn,
    GridPaymentOut,
    GridSettlementOut,
    GridStatementOut,
    StatementLineOut,
)
from chargeshare.entrypoints.api.routes_fleets import MonthPath
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute


def settlement_out(g: GridSettlement) -> GridSettlementOut:
    return GridSettlementOut(
        month=g.month,
        amount=g.amount,
        exports=g.exports,
        entry_id=g.entry_id,
        recorded_at=g.recorded_at,
        recorded_by=g.recorded_by,
    )


def statement_out(s: GridStatement) -> GridStatementOut:
    return GridStatementOut(
        month=s.month,
        starts_at=s.starts_at,
        ends_at=s.ends_at,
        over=s.over,
        total=s.total,
        opening=s.balance.opening,
        received=s.balance.received,
        closing=s.balance.closing,
        reconciles=s.reconciles,
        lines=[
            StatementLineOut(
                entry_id=x.entry_id,
                booking_id=x.booking_id,
                at=x.at,
                exported_wh=x.exported_wh,
                price_per_kwh=x.price_per_kwh,
                amount=x.amount,
            )
            for x in s.lines
        ],
        settlement=None if s.settlement is None else settlement_out(s.settlement),
    )


router = APIRouter(prefix="/admin/grid-buyer", tags=["v2g"], route_class=StrictJsonRoute)


@router.get("/statements/{month}")
def statement(app: AppDep, _who: Admin, month: str = MonthPath) -> GridStatementOut:
    """What the grid buyer owes for a UK calendar month's V2G export: each export credit written
    in it, the total, and its settlement once paid."""
    return statement_out(app.grid_settlement.statement(month))


@router.post("/statements/{month}/payment", responses={400: {"description": "not over, or not its total"}})
def pay(app: AppDep, body: GridPaymentIn, who: Admin, month: str = MonthPath) -> GridPaymentOut:
    """Record the grid buyer's payment of a month that is over: exactly the statement's total.
    Recorded again (at once or later), it answers with the first and writes nothing."""
    done = app.grid_settlement.record_payment(month, body.amount, recorded_by=who.account_id)
    return GridPaymentOut(recorded_now=done.recorded_now, settlement=settlement_out(done.settlement))


@router.get("/settlements")
def settlements(app: AppDep, _who: Admin) -> list[GridSettlementOut]:
    """Every month the grid buyer has paid, oldest first."""
    return [settlement_out(g) for g in app.grid_settlement.settlements()]
