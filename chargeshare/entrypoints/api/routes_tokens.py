"""Id tokens (admin: add, block, list) and a charger's walk-in setting (its host, or an admin).
Another host's charger answers 404, as if it did not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.entrypoints.api.deps import MAX_ID, Admin, AppDep, Host, IdPath
from chargeshare.entrypoints.api.schemas import IdTokenIn, IdTokenOut, IdTokenValueIn, WalkInIO
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.services.tokens import TokenView


def token_out(v: TokenView) -> IdTokenOut:
    k = v.token
    return IdTokenOut(
        id=k.token_id,
        driver_id=k.driver_id,
        value=k.value,
        type=k.type,
        status=k.status,
        status_now=v.status_now,
        expires_at=k.expires_at,
        group_id=k.group_id,
        master_pass=k.master_pass,
        created_at=k.created_at,
    )


router = APIRouter(tags=["id tokens"], route_class=StrictJsonRoute)


@router.get("/admin/tokens")
def list_tokens(
    app: AppDep, _who: Admin, driver_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
) -> list[IdTokenOut]:
    """Every token (one driver's, if given), by id. A driver's booking id tag is a token too,
    Accepted, unless it is listed here otherwise."""
    return [token_out(v) for v in app.tokens.list(driver_id)]


@router.post("/admin/tokens", status_code=201)
def add_token(app: AppDep, body: IdTokenIn, _who: Admin) -> IdTokenOut:
    """Give a driver a token (an RFID card, a key code, a contract id)."""
    return token_out(
        app.tokens.add(
            body.driver_id,
            body.value,
            type_=body.type,
            status=body.status,
            expires_at=body.expires_at,
            group_id=body.group_id,
            master_pass=body.master_pass,
        )
    )


@router.post("/admin/tokens/block")
def block_token(app: AppDep, body: IdTokenValueIn, _who: Admin) -> IdTokenOut:
    """Block a token, or a driver's booking id tag: chargers are answered Blocked from now on."""
    return token_out(app.tokens.block(body.value))


@router.put("/admin/chargers/{charger_id}/walk-in")
def admin_walk_in(app: AppDep, charger_id: IdPath, body: WalkInIO, _who: Admin) -> WalkInIO:
    """Set any charger's walk-in price (null: bookings only)."""
    app.tokens.set_walk_in(charger_id, body.price_per_kwh)
    return WalkInIO(price_per_kwh=app.tokens.walk_in_price(charger_id))


@router.put("/host/chargers/{charger_id}/walk-in")
def host_walk_in(app: AppDep, charger_id: IdPath, body: WalkInIO, who: Host) -> WalkInIO:
    """Let any valid token charge on your charger without a booking, at this price per kWh, charged
    to the driver's card when the session ends (null: bookings only)."""
    assert who.host_id is not None, "a host token always names its host"
    app.hosting.details(who.host_id, charger_id)  # another host's charger: 404
    app.tokens.set_walk_in(charger_id, body.price_per_kwh)
    return WalkInIO(price_per_kwh=app.tokens.walk_in_price(charger_id))
