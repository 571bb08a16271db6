"""The smart charging service on the in-memory store: the owner's choices and the DSR flag kept and
announced, and a driver's override due to the charger when the session starts and while it runs."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import OverrideDue, SmartSettingsChanged
from tests.conftest import add_charger


def choose(
    app: App,
    charger: int,
    max_s: int = 600,
    override: bool = False,
    hours: bool = True,
    host: int | None = None,
) -> None:
    app.smart.set_owner_choices(
        charger,
        host_id=host,
        randomised_delay_max_s=max_s,
        randomised_delay_override=override,
        default_charging_hours=hours,
    )


def test_nothing_is_due_at_boot_until_someone_chooses(app: App) -> None:
    charger = add_charger(app)
    assert app.smart.settings_due("CP1") is None
    view = app.smart.view(charger)
    assert (view.settings, view.configured) == (SmartSettings(), False)
    choose(app, charger, 900, hours=False)
    assert app.smart.settings_due("CP1") == SmartSettings(
        randomised_delay_max_s=900, default_charging_hours=False
    )
    with pytest.raises(NotFound):
        app.smart.settings_due("NOPE")


def test_each_change_is_announced_for_the_charger_and_dsr_keeps_the_owners_choices(app: App) -> None:
    charger = add_charger(app)
    heard: list[SmartSettingsChanged] = []
    app.bus.subscribe(SmartSettingsChanged, heard.append)
    choose(app, charger, 120, override=True)
    app.smart.set_demand_side_response(charger, True)
    choose(app, charger, 300)
    assert [e.settings for e in heard] == [
        SmartSettings(120, randomised_delay_override=True),
        SmartSettings(120, randomised_delay_override=True, demand_side_response=True),
        SmartSettings(300, demand_side_response=True),
    ]
    assert {e.charge_point_id for e in heard} == {"CP1"}


def test_a_host_reaches_only_their_own_charger_and_bad_values_change_nothing(app: App) -> None:
    mine = add_charger(app)
    theirs = add_charger(app, "CP2")
    me = app.smart.view(mine)
    host = app.marketplace.add_host("someone else")
    with pytest.raises(NotFound):
        app.smart.view(mine, host_id=host)
    with pytest.raises(NotFound):
        choose(app, theirs, host=host)
    with pytest.raises(InvalidRequest):
        choose(app, mine, 1_801)
    assert app.smart.view(mine) == me


def test_an_overridden_booking_makes_its_start_owe_the_charger_the_override(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app, power_w=7_400)
    second = add_charger(app, "CP2")
    due: list[OverrideDue] = []
    app.bus.subscribe(OverrideDue, due.append)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    other = app.marketplace.add_driver("E", "TAG2").driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, override_smart_charging=True))
    session = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    assert due == [OverrideDue(clock.now(), "CP1", 1, session, 7_400)]
    # While it runs, a charger that connects again is owed it again (it may have missed it).
    assert app.smart.overrides_due("CP1") == due
    app.charging.stop("CP1", session, 1_000, clock.now())
    assert app.smart.overrides_due("CP1") == []
    # A booking without the override owes nothing.
    app.bookings.book(BookRequest(other, second, 1, 60, 10_000))
    app.charging.start("CP2", 1, "TAG2", 1_000, clock.now())
    assert len(due) == 1 and app.smart.overrides_due("CP2") == []


def test_the_override_is_part_of_what_an_idempotent_booking_request_asked(app: App) -> None:
    plain = BookRequest(1, 1, 1, 60, 10_000)
    assert plain.fingerprint() != BookRequest(1, 1, 1, 60, 10_000, override_smart_charging=True).fingerprint()
    assert (
        plain.fingerprint() == BookRequest(1, 1, 1, 60, 10_000, override_smart_charging=False).fingerprint()
    )
