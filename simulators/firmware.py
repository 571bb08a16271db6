"""The virtual charger's connector state machine, as a transition table.

The states are OCPP 1.6 status names (the finer of the two versions); the 2.0.1 dialect folds them
onto its coarser connector statuses. Both protocol versions drive this one table.
"""

from __future__ import annotations

from enum import StrEnum


class ConnectorState(StrEnum):
    AVAILABLE = "Available"
    RESERVED = "Reserved"
    PREPARING = "Preparing"  # a car is plugged in, no transaction yet
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"  # the charger holds power back (a randomised delay, peak hours)
    FINISHING = "Finishing"  # the transaction has ended, the car is still plugged in
    UNAVAILABLE = "Unavailable"  # taken out of service (ChangeAvailability Inoperative)


class Trigger(StrEnum):
    RESERVE = "reserve"
    RESERVATION_ENDED = "reservation_ended"  # cancelled by the CSMS or expired
    PLUG_IN = "plug_in"
    START_ACCEPTED = "start_accepted"
    START_REFUSED = "start_refused"
    EV_FULL = "ev_full"
    EVSE_SUSPEND = "evse_suspend"  # the charger's own limit fell to 0 W
    EVSE_RESUME = "evse_resume"
    STOP = "stop"  # local or remote stop while plugged in
    UNPLUG = "unplug"
    INOPERATIVE = "inoperative"  # ChangeAvailability Inoperative, applied now (never mid-transaction)
    OPERATIVE = "operative"


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
    (S.CHARGING, T.EVSE_SUSPEND): S.SUSPENDED_EVSE,
    (S.SUSPENDED_EVSE, T.EVSE_RESUME): S.CHARGING,
    (S.SUSPENDED_EVSE, T.STOP): S.FINISHING,
    (S.SUSPENDED_EVSE, T.UNPLUG): S.AVAILABLE,
    (S.CHARGING, T.UNPLUG): S.AVAILABLE,
    (S.SUSPENDED_EV, T.UNPLUG): S.AVAILABLE,
    (S.FINISHING, T.UNPLUG): S.AVAILABLE,
    # Out of service: only an idle connector goes at once (a reservation on it is dropped); one in
    # use is Scheduled and goes when its car leaves. Operative brings it back.
    (S.AVAILABLE, T.INOPERATIVE): S.UNAVAILABLE,
    (S.RESERVED, T.INOPERATIVE): S.UNAVAILABLE,
    (S.UNAVAILABLE, T.OPERATIVE): S.AVAILABLE,
}

IN_TRANSACTION = frozenset({S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE})


class FirmwareError(Exception):
    """The simulated hardware was asked to do something it physically cannot."""


def step(state: ConnectorState, trigger: Trigger) -> ConnectorState:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise FirmwareError(f"connector cannot {trigger} while {state}") from None
