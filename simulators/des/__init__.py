"""The discrete-event engine: the same charger, driver and backend models in SimPy virtual time."""

from simulators.des.engine import DesParams, run_des

__all__ = ["DesParams", "run_des"]
