"""The query layer: read models that own their reads and decide who may see what. Routes call these
and map the result to a response; none opens a unit of work itself."""

from __future__ import annotations

from dataclasses import dataclass

from chargeshare.services.ports import Store
from chargeshare.services.queries.account_views import AccountViews
from chargeshare.services.queries.admin_views import AdminViews
from chargeshare.services.queries.booking_views import BookingViews
from chargeshare.services.queries.charger_views import ChargerViews
from chargeshare.services.queries.session_views import SessionViews
from chargeshare.services.rules import MarketplaceRules


@dataclass(frozen=True)
class Queries:
    bookings: BookingViews
    sessions: SessionViews
    chargers: ChargerViews
    accounts: AccountViews
    admin: AdminViews

    @classmethod
    def over(cls, store: Store, rules: MarketplaceRules) -> Queries:
        return cls(
            bookings=BookingViews(store, rules),
            sessions=SessionViews(store),
            chargers=ChargerViews(store),
            accounts=AccountViews(store),
            admin=AdminViews(store),
        )
