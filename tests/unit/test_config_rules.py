"""Marketplace rules an operator sets through the environment, each checked before anything is built."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chargeshare.bootstrap import Config, ConfigError, build
from chargeshare.domain.platform_reporting import RelevantActivity, ReportingRules
from chargeshare.services.clock import ManualClock
from chargeshare.services.rules import MarketplaceRules
from tests.conftest import T0, add_charger


def test_rules_default_when_the_environment_sets_none() -> None:
    assert Config.from_env({}).rules == MarketplaceRules()


def test_the_fee_lease_and_placement_timeout_are_read_together() -> None:
    rules = Config.from_env(
        {
            "CHARGESHARE_PLATFORM_FEE_BPS": "1200",
            "CHARGESHARE_PAYMENT_LEASE_S": "2",
            "CHARGESHARE_HOLD_PLACEMENT_TIMEOUT_S": "3",
        }
    ).rules
    assert (rules.platform_fee_bps, rules.payment_lease_s, rules.hold_placement_timeout_s) == (1200, 2, 3)
    assert rules.hold_lifetime_days == MarketplaceRules().hold_lifetime_days  # the rest as defaulted


@pytest.mark.parametrize(
    "name",
    ["CHARGESHARE_PAYMENT_LEASE_S", "CHARGESHARE_HOLD_PLACEMENT_TIMEOUT_S", "CHARGESHARE_QUOTE_HOLD_S"],
)
@pytest.mark.parametrize("value", ["0", "-5", "1.5", "two"])
def test_a_lease_or_timeout_must_be_whole_seconds(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_a_held_quote_lasts_as_configured() -> None:
    config = Config.from_env({"CHARGESHARE_QUOTE_HOLD_S": "90"})
    assert config.rules.quote_hold_s == 90 and MarketplaceRules().quote_hold_s == 600
    app = build(replace(config, database_url="memory://"), clock=ManualClock(T0))
    try:
        charger = add_charger(app)
        driver = app.marketplace.add_driver("D", "TAG").driver_id
        _, held = app.pricing.hold(driver, charger, None, 60)
        assert held.expires_at == T0 + timedelta(seconds=90)
    finally:
        app.close()


def test_platform_reporting_reads_what_hosts_sell_and_the_de_minimis() -> None:
    assert Config.from_env({}).reporting == ReportingRules()
    rules = Config.from_env(
        {
            "CHARGESHARE_DPI_ACTIVITY": "goods",
            "CHARGESHARE_DPI_DE_MINIMIS_ACTIVITIES": "10",
            "CHARGESHARE_DPI_DE_MINIMIS_PENCE": "0",
        }
    ).reporting
    assert rules == ReportingRules(RelevantActivity.GOODS, 10, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHARGESHARE_DPI_ACTIVITY", "services"),
        ("CHARGESHARE_DPI_DE_MINIMIS_ACTIVITIES", "-1"),
        ("CHARGESHARE_DPI_DE_MINIMIS_PENCE", "1700.00"),
    ],
)
def test_a_bad_reporting_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})
