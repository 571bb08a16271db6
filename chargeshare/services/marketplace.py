"""Registering hosts, drivers and chargers, and the driver's map search."""

from __future__ import annotations

from collections.abc import Sequence

from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.charger import ChargerSpec
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.search import SearchQuery
from chargeshare.services.ports import Store
from chargeshare.services.records import ChargerView, DriverRecord


class MarketplaceService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add_host(self, name: str) -> int:
        if not name.strip():
            raise InvalidRequest("a host needs a name")
        with self.store.transaction() as tx:
            return tx.add_host(name)

    def add_driver(self, name: str, id_tag: str) -> DriverRecord:
        if not name.strip():
            raise InvalidRequest("a driver needs a name")
        if not 0 < len(id_tag) <= 20:
            raise InvalidRequest("id_tag must be 1 to 20 characters (OCPP IdToken)")
        with self.store.transaction() as tx:
            if tx.driver_by_tag(id_tag) is not None:
                raise InvalidRequest(f"id_tag {id_tag!r} is taken")
            driver_id = tx.add_driver(name, id_tag)
            return tx.driver(driver_id)

    def add_charger(self, spec: ChargerSpec) -> ChargerView:
        if not spec.connectors:
            raise InvalidRequest("a charger needs at least one connector")
        with self.store.transaction() as tx:
            tx.add_charger(spec)
            return tx.charger(spec.charge_point_id)

    def search(self, query: SearchQuery) -> Sequence[ChargerView]:
        with self.store.transaction() as tx:
            return tx.search(query)

    def set_availability(self, charger_id: int, windows: Sequence[WeeklyWindow]) -> None:
        with self.store.transaction() as tx:
            tx.charger_by_id(charger_id)
            tx.set_availability(charger_id, windows)
