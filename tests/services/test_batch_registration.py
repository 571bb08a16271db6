"""Registering many hosts, chargers and drivers at once: the same records and the same checks as one
at a time, in one transaction, all or none."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff


def _spec(cp_id: str, host_id: int, connectors: int = 1) -> ChargerSpec:
    plugs = tuple(ConnectorSpec(n, ConnectorType.TYPE2, 7_400) for n in range(1, connectors + 1))
    return ChargerSpec(cp_id, host_id, Point(51.45, -2.59), Tariff(30), plugs)


def test_batches_give_what_single_calls_give(app: App) -> None:
    hosts = app.marketplace.add_hosts(["A", "B"])
    assert hosts == [1, 2] and app.marketplace.add_host("C") == 3
    views = app.marketplace.add_chargers([_spec("CP1", 1, 2), _spec("CP2", 2)])
    single = app.marketplace.add_charger(_spec("CP3", 3))
    with app.store.transaction() as tx:
        assert views == [tx.chargers.get("CP1"), tx.chargers.get("CP2")] and single == tx.chargers.get("CP3")
    drivers = app.marketplace.add_drivers([("D1", "T1"), ("D2", "T2")])
    assert [(d.driver_id, d.id_tag) for d in drivers] == [(1, "T1"), (2, "T2")]
    assert app.marketplace.add_driver("D3", "T3").driver_id == 3


def test_one_bad_item_adds_nothing(app: App) -> None:
    app.marketplace.add_hosts(["A"])
    with pytest.raises(InvalidRequest, match="taken"):
        app.marketplace.add_drivers([("D1", "T1"), ("D2", "T1")])
    with pytest.raises(InvalidRequest, match="already registered"):
        app.marketplace.add_chargers([_spec("CP1", 1), _spec("CP1", 1)])
    with pytest.raises(InvalidRequest, match="connector"):
        app.marketplace.add_chargers([_spec("CP2", 1), _spec("CP3", 1, connectors=0)])
    with pytest.raises(InvalidRequest, match="charge point id"):
        app.marketplace.add_chargers([_spec("CP4", 1), _spec("CP\x005", 1)])
    with pytest.raises(InvalidRequest, match="longer than 48"):
        app.marketplace.add_charger(_spec("X" * 49, 1))
    with pytest.raises(InvalidRequest, match="name"):
        app.marketplace.add_hosts(["B", " "])
    with app.store.transaction() as tx:
        assert tx.accounts.driver_by_tag("T1") is None and tx.chargers.all() == []
    assert app.marketplace.add_host("B") == 2
