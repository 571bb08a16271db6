"""Chargers and their connectors, as hosts list them and as OCPP reports them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff


class ConnectorType(StrEnum):
    TYPE2 = "type2"
    CCS = "ccs"
    CHADEMO = "chademo"


class ConnectorStatus(StrEnum):
    """OCPP 1.6 ChargePointStatus values (2.0.1 maps onto the same set)."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ChargerStatus(StrEnum):
    REGISTERED = "registered"  # known, never booted
    ONLINE = "online"
    OFFLINE = "offline"


class BootPolicy(StrEnum):
    """How a charger's BootNotification is answered (OCPP RegistrationStatus). Only an Accepted
    charger is in service: on the map, bookable, and heard beyond its boot."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"  # known, waiting for its host or an admin to accept it
    REJECTED = "Rejected"


# OCPP 2.0.1's limit on a charging station's identity, and the REST API's; the column holds 64.
MAX_CHARGE_POINT_ID = 48


def charge_point_id_problem(charge_point_id: str) -> str | None:
    """Why `charge_point_id` cannot name a charger, or None if it can. Control and other unprintable
    characters are refused: PostgreSQL cannot store NUL at all, and the others (newlines, zero-width
    spaces) only confuse logs and operators."""
    if not charge_point_id:
        return "charge point id is empty"
    if len(charge_point_id) > MAX_CHARGE_POINT_ID:
        return f"charge point id is longer than {MAX_CHARGE_POINT_ID} characters"
    if not charge_point_id.isprintable():
        return "charge point id holds a control or other unprintable character"
    return None


@dataclass(frozen=True)
class ConnectorSpec:
    connector_no: int  # OCPP connectorId, 1-based
    type: ConnectorType
    max_power_w: int


@dataclass(frozen=True)
class ChargerSpec:
    """What a host lists: where the charger is, what it offers and at what price."""

    charge_point_id: str
    host_id: int
    location: Point
    tariff: Tariff
    connectors: tuple[ConnectorSpec, ...]
    title: str = ""
    boot_policy: BootPolicy = BootPolicy.ACCEPTED
