from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.firmware import TRANSITIONS, ConnectorState, FirmwareError, Trigger, step
from simulators.power import EnergyMeter, Vehicle


@given(st.lists(st.tuples(st.integers(0, 50_000), st.floats(0, 600)), max_size=50))
def test_meter_never_loses_or_invents_energy(samples: list[tuple[int, float]]) -> None:
    m = EnergyMeter()
    joules = 0
    for power, seconds in samples:
        m.add(power, seconds)
        joules += int(power * seconds)
    assert m.register_wh == joules // 3600


def test_power_tapers_above_80_percent() -> None:
    assert Vehicle(10_000, 5_000, 11_000).power_w(7_400) == 7_400
    assert Vehicle(10_000, 9_000, 11_000).power_w(7_400) == 3_700
    assert Vehicle(10_000, 10_000, 11_000).power_w(7_400) == 0


@given(st.sampled_from(ConnectorState), st.sampled_from(Trigger))
def test_connector_table(state: ConnectorState, trigger: Trigger) -> None:
    if (state, trigger) in TRANSITIONS:
        assert step(state, trigger) is TRANSITIONS[(state, trigger)]
    else:
        with pytest.raises(FirmwareError):
            step(state, trigger)


def test_overriding_drivers_are_an_exact_share_and_change_nothing_else() -> None:
    import dataclasses
    import random

    from simulators.fleet import CITIES, DriverBehaviour, make_drivers

    def plans(rate: float) -> list[object]:
        return list(
            make_drivers(random.Random(5), 40, CITIES["bristol"], 3_600, DriverBehaviour(override_rate=rate))
        )

    plain, some = plans(0.0), plans(0.25)
    assert sum(p.overrides for p in some) == 10 and not any(p.overrides for p in plain)  # type: ignore[attr-defined]
    assert [dataclasses.replace(p, overrides=False) for p in some] == plain  # type: ignore[type-var]
    assert some == plans(0.25)  # the same seed picks the same drivers


def test_a_charger_held_back_by_the_charger_shows_suspended_evse_and_resumes() -> None:
    state = step(ConnectorState.CHARGING, Trigger.EVSE_SUSPEND)
    assert state is ConnectorState.SUSPENDED_EVSE
    assert step(state, Trigger.EVSE_RESUME) is ConnectorState.CHARGING
    assert step(state, Trigger.STOP) is ConnectorState.FINISHING
    with pytest.raises(FirmwareError):
        step(ConnectorState.PREPARING, Trigger.EVSE_SUSPEND)
