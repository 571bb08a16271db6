"""The virtual charger's connector state machine, as a transition table (OCPP 1.6 status names)."""

from __future__ import annotations

from enum import StrEnum


class ConnectorState(StrEnum):
    AVAILABLE = "Available"
    RESERVED = "Reserved"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"


class Trigger(StrEnum):
    RESERVE = "reserve"
    RESERVATION_ENDED = "reservation_ended"  # cancelled by the CSMS or expired
    PLUG_IN = "plug_in"
    START_ACCEPTED = "start_accepted"
    START_REFUSED = "start_refused"
    EV_FULL = "ev_full"
    STOP = "stop"  # local or remote stop while plugged in
    UNPLUG = "unplug"


S, T = ConnectorState, Trigger

TRANSITIONS: dict[tuple[ConnectorState, Trigger], ConnectorState] = {
    (S.AVAILABLE, T.RESERVE): S.RESERVED,
    (S.RESERVED, T.RESERVATION_ENDED): S.AVAILABLE,
    (S.RESERVED, T.PLUG_IN): S.PREPARING,  # only the reserved driver gets this far
    (S.AVAILABLE, T.PLUG_IN): S.PREPARING,
    (S.PREPARING, T.START_ACCEPTED): S.CHARGING,
    (S.PREPARING, T.START_REFUSED): S.PREPARING,
    (S.PREPARING, T.UNPLUG): S.AVAILABLE,
    (S.CHARGING, T.EV_FULL): S.SUSPENDED_EV,
    (S.CHARGING, T.STOP): S.FINISHING,
    (S.SUSPENDED_EV, T.STOP): S.FINISHING,
    (S.CHARGING, T.UNPLUG): S.AVAILABLE,
    (S.SUSPENDED_EV, T.UNPLUG): S.AVAILABLE,
    (S.FINISHING, T.UNPLUG): S.AVAILABLE,
}


class FirmwareError(Exception):
    """The simulated hardware was asked to do something it physically cannot."""


def step(state: ConnectorState, trigger: Trigger) -> ConnectorState:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise FirmwareError(f"connector cannot {trigger} while {state}") from None
