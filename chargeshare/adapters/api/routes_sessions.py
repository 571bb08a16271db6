"""Charging sessions of the caller's bookings (a driver's own, or those on a host's chargers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.adapters.api.deps import DriverOrHost, IdPath
from chargeshare.adapters.api.routes_bookings import visible_to
from chargeshare.adapters.api.schemas import SessionOut
from chargeshare.adapters.api.strict_json import StrictJsonRoute
from chargeshare.adapters.api.views import session_out
from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Role
from chargeshare.domain.errors import NotFound
from chargeshare.domain.session import SessionStatus


def router(app: App) -> APIRouter:
    r = APIRouter(prefix="/sessions", tags=["sessions"], route_class=StrictJsonRoute)

    @r.get("")
    def mine(
        who: DriverOrHost, live: Annotated[bool, Query(description="only sessions still charging")] = False
    ) -> list[SessionOut]:
        out = []
        with app.store.reading() as tx:
            bookings = (
                tx.bookings.of(driver_id=who.driver_id)
                if who.role is Role.DRIVER
                else tx.bookings.of(host_id=who.host_id)
            )
            for b in bookings:
                s = tx.sessions.for_booking(b.booking_id)
                if s is not None and (not live or s.status is SessionStatus.CHARGING):
                    out.append(session_out(s, b))
        return out

    @r.get("/{session_id}")
    def get(session_id: IdPath, who: DriverOrHost) -> SessionOut:
        with app.store.reading() as tx:
            s = tx.sessions.get(session_id)
            b = None if s is None else tx.bookings.get(s.booking_id)
        if s is None or b is None or not visible_to(who, b):
            raise NotFound(f"no session {session_id}")
        return session_out(s, b)

    return r
