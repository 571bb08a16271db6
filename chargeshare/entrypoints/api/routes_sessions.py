"""Charging sessions of the caller's bookings (a driver's own, or those on a host's chargers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.bootstrap import App
from chargeshare.entrypoints.api.deps import DriverOrHost, IdPath
from chargeshare.entrypoints.api.schemas import SessionOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.entrypoints.api.views import session_out


def router(app: App) -> APIRouter:
    r = APIRouter(prefix="/sessions", tags=["sessions"], route_class=StrictJsonRoute)

    @r.get("")
    def mine(
        who: DriverOrHost, live: Annotated[bool, Query(description="only sessions still charging")] = False
    ) -> list[SessionOut]:
        return [session_out(v) for v in app.queries.sessions.mine(who, live=live)]

    @r.get("/{session_id}")
    def get(session_id: IdPath, who: DriverOrHost) -> SessionOut:
        return session_out(app.queries.sessions.get(who, session_id))

    return r
