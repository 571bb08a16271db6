"""The smart charging repository's contract (chargers' settings under the regulations, drivers'
overrides), on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.domain.smart_charge_points import SmartSettings
from tests.conftest import T0
from tests.contract.test_repositories import a_booking, a_charger


def test_a_charger_nobody_configured_has_no_settings(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP-SMART")
    with app.store.reading() as tx:
        assert tx.smart.settings(charger) is None
        assert tx.smart.configured() == {}


def test_settings_are_kept_as_given_and_replaced_whole(app: App) -> None:
    chosen = SmartSettings(randomised_delay_max_s=1_800, randomised_delay_override=True)
    with app.store.transaction() as tx:
        first, _ = a_charger(tx, "CP-A")
        second, _ = a_charger(tx, "CP-B")
        tx.smart.save(first, chosen, T0)
        tx.smart.save(second, SmartSettings(demand_side_response=True), T0)
    with app.store.transaction() as tx:
        assert tx.smart.settings(first) == chosen
        tx.smart.save(first, SmartSettings(default_charging_hours=False), T0 + timedelta(minutes=1))
    with app.store.reading() as tx:
        assert tx.smart.configured() == {
            first: SmartSettings(default_charging_hours=False),
            second: SmartSettings(demand_side_response=True),
        }


def test_settings_for_an_unknown_charger_are_refused(app: App) -> None:
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.smart.save(9_999, SmartSettings(), T0)


def test_a_removed_charger_takes_its_settings_with_it(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP-GONE")
        tx.smart.save(charger, SmartSettings(demand_side_response=True), T0)
    with app.store.transaction() as tx:
        tx.chargers.remove("CP-GONE")
    with app.store.reading() as tx:
        assert tx.smart.configured() == {}


def test_overrides_are_kept_per_booking_and_a_second_changes_nothing(app: App) -> None:
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-O")
        driver = tx.accounts.add_driver("Dee", "DEE-TAG")
        overridden = a_booking(tx, connector, driver)
        plain = a_booking(tx, connector, driver, start_h=2)
        tx.smart.add_override(overridden, T0)
        tx.smart.add_override(overridden, T0 + timedelta(minutes=5))
    with app.store.reading() as tx:
        assert tx.smart.overridden([overridden, plain, 9_999]) == {overridden}
        assert tx.smart.overridden([]) == set()


def test_an_override_for_an_unknown_booking_is_refused(app: App) -> None:
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.smart.add_override(9_999, T0)


def test_a_failed_unit_of_work_keeps_no_settings(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP-RB")
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        tx.smart.save(charger, SmartSettings(demand_side_response=True), T0)
        raise RuntimeError("boom")
    with app.store.reading() as tx:
        assert tx.smart.settings(charger) is None
