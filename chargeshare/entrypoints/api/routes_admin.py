"""Operator endpoints (admin role): chargers online/offline, chargers' security events, the payments
outbox and its dead letters, reconcile, host payouts and hosts' KYC status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.domain.accounts import KycStatus
from chargeshare.entrypoints.api.deps import Admin, AppDep, IdPath
from chargeshare.entrypoints.api.schemas import (
    AdminChargerOut,
    DriverKycOut,
    HostOut,
    KycIn,
    OutboxRunOut,
    PaymentStepOut,
    PayoutRunOut,
    SecurityEventOut,
    SkippedPayout,
    WithheldExportPayout,
)
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute

router = APIRouter(prefix="/admin", tags=["admin"], route_class=StrictJsonRoute)


@router.get("/chargers")
def chargers(
    app: AppDep,
    _who: Admin,
    status: Annotated[str | None, Query(pattern="^(registered|online|offline)$")] = None,
) -> list[AdminChargerOut]:
    return [
        AdminChargerOut(
            id=c.charger_id,
            charge_point_id=c.charge_point_id,
            host_id=c.host_id,
            status=c.status.value,
            boot_policy=c.boot_policy,
            ocpp_version=c.ocpp_version,
            last_seen_at=c.last_seen_at,
        )
        for c in app.queries.admin.chargers(status)
    ]


@router.get("/security-events")
def security_events(
    app: AppDep,
    _who: Admin,
    charge_point_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[SecurityEventOut]:
    """What chargers did that they must not (a frame naming another charger's transaction), and
    the security events they reported themselves (source "charger")."""
    return [
        SecurityEventOut(
            id=e.event_id,
            charge_point_id=e.charge_point_id,
            kind=e.kind,
            detail=e.detail,
            at=e.at,
            source=e.source,
        )
        for e in app.queries.admin.security_events(charge_point_id)
    ]


@router.get("/payments")
def payments(
    app: AppDep,
    _who: Admin,
    status: Annotated[str | None, Query(pattern="^(pending|done|dead)$")] = None,
) -> list[PaymentStepOut]:
    """Payment steps; `status=dead` is the dead-letter queue."""
    return [
        PaymentStepOut(
            id=i.item_id,
            booking_id=i.booking_id,
            step=i.step,
            amount=i.amount,
            status=i.status,
            attempts=i.attempts,
            next_attempt_at=i.next_attempt_at,
            last_error=i.last_error,
        )
        for i in app.queries.admin.payment_steps(status)
    ]


@router.post("/payments/reconcile")
def reconcile(app: AppDep, _who: Admin) -> OutboxRunOut:
    run = app.settlement.reconcile()
    left = app.queries.admin.dead_letters_left()
    return OutboxRunOut(done=run.done, retried=run.retried, dead=run.dead, dead_letters_left=left)


@router.post("/payouts")
def payouts(app: AppDep, _who: Admin) -> PayoutRunOut:
    """Pay verified hosts their balances (hosts whose KYC is not verified are listed as skipped),
    and verified drivers their V2G export credits (others listed as withheld, still owed)."""
    run = app.settlement.pay_out_hosts()
    exports = app.settlement.pay_out_export_credits()
    return PayoutRunOut(
        paid={str(h): pence for h, pence in run.paid.items()},
        skipped=[SkippedPayout(host_id=h, amount=p, reason=why) for h, (p, why) in run.skipped.items()],
        export_credits_paid={str(d): pence for d, pence in exports.paid.items()},
        export_credits_withheld=[
            WithheldExportPayout(driver_id=d, amount=p, reason=why) for d, (p, why) in exports.skipped.items()
        ],
    )


@router.put("/hosts/{host_id}/kyc")
def set_kyc(app: AppDep, host_id: IdPath, body: KycIn, _who: Admin) -> HostOut:
    """Record the outcome of a host's identity checks; only verified hosts are paid out."""
    host = app.hosting.set_kyc(host_id, KycStatus(body.status))
    return HostOut(host_id=host.host_id, name=host.name, kyc_status=host.kyc_status)


@router.put("/drivers/{driver_id}/kyc")
def set_driver_kyc(app: AppDep, driver_id: IdPath, body: KycIn, _who: Admin) -> DriverKycOut:
    """Record the outcome of the checks on a driver's payout details; only verified drivers are
    paid their V2G export credits."""
    status = app.settlement.set_driver_kyc(driver_id, KycStatus(body.status))
    return DriverKycOut(driver_id=driver_id, kyc_status=status.value)
