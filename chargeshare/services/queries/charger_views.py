"""Chargers looked up by their id: the public listing, and the charge point id the OCPP side knows
them by."""

from __future__ import annotations

from chargeshare.services.ports import Store
from chargeshare.services.records import ChargerView


class ChargerViews:
    def __init__(self, store: Store) -> None:
        self.store = store

    def public(self, charger_id: int) -> ChargerView:
        """The listing anyone may see (the map's view of one charger); NotFound if there is none."""
        with self.store.reading() as tx:
            return tx.chargers.by_id(charger_id)

    def charge_point_id(self, charger_id: int) -> str:
        with self.store.reading() as tx:
            return tx.chargers.by_id(charger_id).charge_point_id
