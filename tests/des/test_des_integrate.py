"""The DES's energy integration gives exactly what `Vehicle.power_w` and `EnergyMeter.add` give,
step by step, for any car, meter, limit, cap and stretch (it runs them inline for speed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from simulators.des.charger import STEP_S, integrate
from simulators.power import EnergyMeter, Vehicle


def integrate_with_the_methods(
    vehicle: Vehicle, meter: EnergyMeter, max_power_w: int, cap_wh: int, seconds: float
) -> float | None:
    t = 0.0
    while True:
        power = vehicle.power_w(max_power_w)
        if meter.register_wh >= cap_wh or power == 0:
            return t
        if t >= seconds:
            return None
        dt = min(STEP_S, seconds - t)
        before = meter.register_wh
        meter.add(power, dt)
        meter.register_wh = min(meter.register_wh, cap_wh)
        vehicle.soc_wh += meter.register_wh - before
        t += dt


@st.composite
def cases(draw: st.DrawFn) -> tuple[Vehicle, EnergyMeter, int, int, float]:
    battery = draw(st.integers(1, 120_000))
    vehicle = Vehicle(battery, draw(st.integers(0, battery)), draw(st.integers(0, 350_000)))
    meter = EnergyMeter(draw(st.integers(0, 10**7)), draw(st.integers(0, 3_599)))
    cap = meter.register_wh + draw(st.integers(-100, 120_000))
    seconds = draw(st.one_of(st.integers(0, 48 * 3600).map(float), st.floats(0, 48 * 3600)))
    return vehicle, meter, draw(st.integers(0, 350_000)), cap, seconds


@given(cases())
def test_inline_integration_matches_the_methods(case: tuple[Vehicle, EnergyMeter, int, int, float]) -> None:
    vehicle, meter, max_w, cap, seconds = case
    ref_vehicle, ref_meter = Vehicle(**vars(vehicle)), EnergyMeter(meter.register_wh, meter._joules)
    got = integrate(vehicle, meter, max_w, cap, seconds)
    expected = integrate_with_the_methods(ref_vehicle, ref_meter, max_w, cap, seconds)
    assert got == expected
    assert (vehicle, meter) == (ref_vehicle, ref_meter)
