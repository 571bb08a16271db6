"""A charging session: the metered part of a booking, from StartTransaction to StopTransaction."""

from __future__ import annotations

from enum import StrEnum

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.money import Wh


class SessionStatus(StrEnum):
    CHARGING = "charging"
    STOPPED = "stopped"


def billed_energy(meter_start: Wh, meter_stop: Wh) -> Wh:
    """Energy billed for a session is exactly the register difference; a register never runs back."""
    if meter_start < 0 or meter_stop < 0:
        raise InvalidRequest("meter readings cannot be negative")
    if meter_stop < meter_start:
        raise InvalidRequest(f"meter stop {meter_stop} Wh is below meter start {meter_start} Wh")
    return meter_stop - meter_start


def unmetered(*, start_read: bool, stop_read: bool, register_moved: bool) -> bool:
    """Whether a session's bill rests on no measurement: its start register was never read before
    it ended, or nothing was read after the start (no reading with the stop, none that moved the
    register). Such a session is billed what the readings allow (often 0 Wh) and flagged."""
    return not start_read or not (stop_read or register_moved)
