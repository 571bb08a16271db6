"""A host's seller details for HMRC's digital platform reporting: what they gave, and giving them.
Only ever the calling host's own: there is no host id in the path to change."""

from __future__ import annotations

from fastapi import APIRouter

from chargeshare.domain.availability import UK
from chargeshare.domain.seller_details import SellerDetails, seller_details
from chargeshare.entrypoints.api.deps import AppDep, Host
from chargeshare.entrypoints.api.schemas import SellerDetailsIn, SellerDetailsOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute


def details_out(host_id: int, kyc_status: str, d: SellerDetails) -> SellerDetailsOut:
    bank = d.bank
    return SellerDetailsOut(
        host_id=host_id,
        kyc_status=kyc_status,
        kind=d.kind.value,
        name=d.name,
        first_names=d.first_names,
        last_name=d.last_name,
        legal_name=d.legal_name,
        birth_date=d.birth_date,
        address_line1=d.address.line1,
        address_line2=d.address.line2,
        city=d.address.city,
        postcode=d.address.postcode,
        country=d.address.country,
        tax_id_kind=d.tax_id.kind.value,
        tax_id=d.tax_id.value,
        tax_id_country=d.tax_id.country,
        company_number=d.company_number,
        sort_code="" if bank is None else bank.sort_code,
        account_number="" if bank is None else bank.account_number,
        iban="" if bank is None else bank.iban,
    )


router = APIRouter(prefix="/host", tags=["host seller details"], route_class=StrictJsonRoute)


@router.get("/seller-details")
def get_details(app: AppDep, who: Host) -> SellerDetailsOut | None:
    """The details on file (null before the host has given any)."""
    assert who.host_id is not None
    details = app.hosting.seller_details(who.host_id)
    if details is None:
        return None
    return details_out(who.host_id, app.hosting.host(who.host_id).kyc_status, details)


@router.put("/seller-details")
def put_details(app: AppDep, body: SellerDetailsIn, who: Host) -> SellerDetailsOut:
    """Give or replace the details; answered as kept (normalised: NINO in capitals, the postcode
    spaced, the sort code with dashes). A field that is wrong is a 400 naming it."""
    assert who.host_id is not None
    today = app.clock.now().astimezone(UK).date()
    details = seller_details(**body.model_dump(), today=today)
    host = app.hosting.set_seller_details(who.host_id, details)
    return details_out(who.host_id, host.kyc_status, details)
