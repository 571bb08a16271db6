"""A host's money: earnings to date, payouts, and the yearly statement for digital platform reporting.
Only ever the calling host's own: there is no host id in these paths to change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from chargeshare.domain.statement import FIRST_YEAR, LAST_YEAR
from chargeshare.entrypoints.api.deps import AppDep, Host
from chargeshare.entrypoints.api.schemas import EarningsOut, PayoutOut, QuarterOut, StatementOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute

router = APIRouter(prefix="/host", tags=["host money"], route_class=StrictJsonRoute)


@router.get("/earnings")
def earnings(app: AppDep, who: Host) -> EarningsOut:
    assert who.host_id is not None
    e = app.hosting.earnings(who.host_id)
    return EarningsOut(
        host_id=who.host_id,
        kyc_status=e.host.kyc_status,
        gross_consideration=e.gross_consideration,
        fees_withheld=e.fees_withheld,
        earned=e.earned,
        home_export_bought=e.home_export_bought,
        paid_out=e.paid_out,
        balance=e.balance,
        activities=e.activities,
    )


@router.get("/payouts")
def payouts(app: AppDep, who: Host) -> list[PayoutOut]:
    assert who.host_id is not None
    return [
        PayoutOut(id=p.entry_id, amount=p.amount, paid_at=p.paid_at) for p in app.hosting.payouts(who.host_id)
    ]


@router.get("/statements/{year}")
def statement(
    app: AppDep, year: Annotated[int, Path(ge=FIRST_YEAR, le=LAST_YEAR)], who: Host
) -> StatementOut:
    """Income for a calendar year by UK calendar quarter, in pence: consideration paid by drivers, fees
    the platform withheld, net paid to the host, and the number of activities (paid bookings)."""
    assert who.host_id is not None
    s = app.hosting.statement(who.host_id, year)
    return StatementOut(
        host_id=s.host_id,
        year=s.year,
        gross_consideration=s.gross_consideration,
        fees_withheld=s.fees_withheld,
        net_paid=s.net_paid,
        activities=s.activities,
        quarters=[
            QuarterOut(
                quarter=q.quarter,
                gross_consideration=q.gross_consideration,
                fees_withheld=q.fees_withheld,
                net_paid=q.net_paid,
                activities=q.activities,
            )
            for q in s.quarters
        ],
    )
