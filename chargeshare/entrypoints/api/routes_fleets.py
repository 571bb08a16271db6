"""Fleet-share hubs: an operator opens a business account; the fleet (or an operator) books recurring
blocks on hosts' chargers, lists their occurrences, and reads its invoices and statement. Another
fleet's resources answer 404, as if they did not exist."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.errors import NotFound
from chargeshare.domain.fleet import BlockRule, ContractPolicy, FleetAccount, FleetContract, IssuedInvoice
from chargeshare.entrypoints.api.deps import MAX_ID, Admin, AppDep, FleetOrAdmin, IdPath
from chargeshare.entrypoints.api.fleet_schemas import (
    BlockConflictOut,
    BlockIn,
    BlockOut,
    ContractOut,
    FleetIn,
    FleetOut,
    FleetStatementOut,
    InvoiceLineOut,
    InvoiceOut,
    OccurrenceOut,
    PaymentIn,
)
from chargeshare.entrypoints.api.routes_bookings import RequestKey
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.services.fleet import ConnectorRef, IssuedWithLines
from chargeshare.services.records import BookingRecord

# Years 1900-8999 only: a month's end is the next month's start, past the calendar for 9999-12.
MonthPath = Path(
    pattern=r"^(19\d\d|[2-8]\d{3})-(0[1-9]|1[0-2])$",
    description="a UK calendar month, YYYY-MM, of a year from 1900 to 8999",
)


def fleet_out(f: FleetAccount) -> FleetOut:
    return FleetOut(id=f.fleet_id, name=f.name, driver_id=f.driver_id)


def contract_out(c: FleetContract) -> ContractOut:
    return ContractOut(
        id=c.contract_id,
        fleet_id=c.fleet_id,
        weekdays=sorted(c.rule.weekdays),
        start=c.rule.start,
        end=c.rule.end,
        first_day=c.rule.first_day,
        last_day=c.rule.last_day,
        connector_ids=list(c.connector_ids),
        notice_hours=c.policy.notice / timedelta(hours=1),
        late_penalty=c.policy.late_penalty,
    )


def occurrence_out(b: BookingRecord) -> OccurrenceOut:
    return OccurrenceOut(
        booking_id=b.booking_id,
        charger_id=b.charger_id,
        connector_id=b.connector_id,
        starts_at=b.starts_at,
        ends_at=b.ends_at,
        status=b.status.value,
        cancelled_by=b.cancelled_by,
    )


def invoice_out(i: IssuedInvoice, issued: IssuedWithLines | None = None) -> InvoiceOut:
    lines = None
    if issued is not None:
        lines = [
            InvoiceLineOut(
                entry_id=x.entry_id,
                booking_id=x.booking_id,
                kind=x.kind.value,
                at=x.at,
                amount=x.amount,
                energy_wh=x.energy_wh,
            )
            for x in issued.lines
        ]
    return InvoiceOut(
        id=i.invoice_id,
        fleet_id=i.fleet_id,
        month=i.month,
        total=i.total,
        paid=i.paid,
        outstanding=i.outstanding,
        issued_at=i.issued_at,
        paid_at=i.paid_at,
        lines=lines,
    )


router = APIRouter(prefix="/fleets", tags=["fleets"], route_class=StrictJsonRoute)


def own(app: App, who: Principal, fleet_id: int) -> FleetAccount:
    """The fleet, if the caller may see it: an operator any, a business account its own."""
    fleet = app.fleet.account(fleet_id)
    if who.role is not Role.ADMIN and fleet.driver_id != who.driver_id:
        raise NotFound(f"no fleet {fleet_id}")
    return fleet


@router.post("", status_code=201)
def create(app: AppDep, body: FleetIn, _who: Admin) -> FleetOut:
    """Open a business account (it signs in with the email and password given) for a fleet whose
    vehicles charge with `id_tag`."""
    _account, fleet_id = app.auth.register_fleet(body.email, body.password, body.name, body.id_tag)
    return fleet_out(app.fleet.account(fleet_id))


@router.get("")
def all_fleets(app: AppDep, _who: Admin) -> list[FleetOut]:
    return [fleet_out(f) for f in app.fleet.accounts()]


@router.get("/{fleet_id}")
def get(app: AppDep, fleet_id: IdPath, who: FleetOrAdmin) -> FleetOut:
    return fleet_out(own(app, who, fleet_id))


@router.post(
    "/{fleet_id}/blocks",
    status_code=201,
    responses={
        409: {"model": BlockConflictOut},
        422: {"description": "the Idempotency-Key was used for a different request"},
    },
)
def book_block(
    app: AppDep, fleet_id: IdPath, body: BlockIn, who: FleetOrAdmin, idempotency_key: RequestKey = None
) -> BlockOut:
    """Book the block on every connector named, every occurrence or none: 409 `block_conflict`
    names each occurrence that clashes with a booking or lies outside the host's calendar.
    Under an `Idempotency-Key`, the same block sent again answers with the contract the first
    made and books nothing more; 422 if the key was used for a different request."""
    own(app, who, fleet_id)
    rule = BlockRule(frozenset(body.weekdays), body.start, body.end, body.first_day, body.last_day)
    policy = ContractPolicy(timedelta(hours=body.notice_hours), body.late_penalty)
    refs = [ConnectorRef(c.charger_id, c.connector_no) for c in body.connectors]
    booked = app.fleet.book_block(
        fleet_id, rule, refs, policy, max_energy_wh=body.max_energy_wh, request_key=idempotency_key
    )
    return BlockOut(
        contract=contract_out(booked.contract), occurrences=[occurrence_out(b) for b in booked.bookings]
    )


@router.get("/{fleet_id}/blocks")
def blocks(app: AppDep, fleet_id: IdPath, who: FleetOrAdmin) -> list[ContractOut]:
    own(app, who, fleet_id)
    return [contract_out(c) for c in app.fleet.contracts(fleet_id)]


@router.get("/{fleet_id}/occurrences")
def occurrences(
    app: AppDep,
    fleet_id: IdPath,
    who: FleetOrAdmin,
    contract_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[OccurrenceOut]:
    """The fleet's block bookings, by start (of one contract with `contract_id`)."""
    own(app, who, fleet_id)
    return [occurrence_out(b) for b in app.fleet.occurrences(fleet_id, contract_id=contract_id)]


@router.post("/{fleet_id}/invoices/{month}")
def issue(app: AppDep, fleet_id: IdPath, _who: Admin, month: str = MonthPath) -> InvoiceOut:
    """Issue the month's invoice once the month is over; asked again, the same invoice."""
    issued = app.fleet.invoice(fleet_id, month)
    return invoice_out(issued.invoice, issued)


@router.get("/{fleet_id}/invoices")
def invoices(app: AppDep, fleet_id: IdPath, who: FleetOrAdmin) -> list[InvoiceOut]:
    own(app, who, fleet_id)
    return [invoice_out(i) for i in app.fleet.invoices(fleet_id)]


@router.get("/{fleet_id}/invoices/{month}")
def invoice(app: AppDep, fleet_id: IdPath, who: FleetOrAdmin, month: str = MonthPath) -> InvoiceOut:
    own(app, who, fleet_id)
    issued = app.fleet.invoice_lines(fleet_id, month)
    return invoice_out(issued.invoice, issued)


@router.post(
    "/{fleet_id}/invoices/{month}/payments",
    responses={422: {"description": "the Idempotency-Key was used for a different request"}},
)
def pay(
    app: AppDep,
    fleet_id: IdPath,
    body: PaymentIn,
    _who: Admin,
    month: str = MonthPath,
    idempotency_key: RequestKey = None,
) -> InvoiceOut:
    """Record a payment received against the invoice (at most what is outstanding). Under an
    `Idempotency-Key`, the same payment sent again answers as the first did and records
    nothing more; 422 if the key was used for a different request."""
    return invoice_out(app.fleet.pay(fleet_id, month, body.amount, request_key=idempotency_key))


@router.get("/{fleet_id}/statement")
def statement(app: AppDep, fleet_id: IdPath, who: FleetOrAdmin) -> FleetStatementOut:
    own(app, who, fleet_id)
    s = app.fleet.statement(fleet_id)
    return FleetStatementOut(
        fleet_id=fleet_id,
        unbilled=s.unbilled,
        receivable=s.receivable,
        balance=s.balance,
        invoices=[invoice_out(i) for i in s.invoices],
    )
