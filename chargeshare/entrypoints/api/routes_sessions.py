"""Charging sessions of the caller's bookings (a driver's own, or those on a host's chargers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.entrypoints.api.deps import AppDep, DriverOrHost, IdPath
from chargeshare.entrypoints.api.schemas import SessionOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.entrypoints.api.views import session_out

router = APIRouter(prefix="/sessions", tags=["sessions"], route_class=StrictJsonRoute)


@router.get("")
def mine(
    app: AppDep,
    who: DriverOrHost,
    live: Annotated[bool, Query(description="only sessions still charging")] = False,
) -> list[SessionOut]:
    return [session_out(v) for v in app.queries.sessions.mine(who, live=live)]


@router.get("/{session_id}")
def get(app: AppDep, session_id: IdPath, who: DriverOrHost) -> SessionOut:
    return session_out(app.queries.sessions.get(who, session_id))
