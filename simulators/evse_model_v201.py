"""The 2.x device model at an EVSE: each EVSE's own `EVSE` component, the only component this
charger has at an EVSE (an EVSE is a connector here, with connector 1; the controllers are the
station's, at no EVSE). GetVariables, SetVariables, the reports and the monitors all find what is
at an EVSE here, so that they answer alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulators.firmware import ConnectorState
from simulators.settings import EVSE_SUPPLY_PHASES

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort
    from simulators.evse import VirtualConnector

CONNECTOR_ID = 1  # every EVSE has one connector
# 2.0.1 folds the connector's states onto fewer words: a car plugged in is Occupied.
CONNECTOR_STATUS = {
    ConnectorState.AVAILABLE: "Available",
    ConnectorState.RESERVED: "Reserved",
    ConnectorState.PREPARING: "Occupied",
    ConnectorState.CHARGING: "Occupied",
    ConnectorState.SUSPENDED_EV: "Occupied",
    ConnectorState.SUSPENDED_EVSE: "Occupied",
    ConnectorState.FINISHING: "Occupied",
    ConnectorState.UNAVAILABLE: "Unavailable",
}
AVAILABILITY_STATES = "Available,Occupied,Reserved,Unavailable,Faulted"  # ConnectorStatusEnumType


@dataclass(frozen=True)
class EvseVariable:
    """A variable of an EVSE's own component: read-only, it says how the EVSE is built or is now."""

    value: str
    characteristics: dict[str, Any]  # VariableCharacteristicsType


def evse_variables(cp: ChargerPort, c: VirtualConnector) -> dict[str, EvseVariable]:
    """The EVSE component's variables at connector `c`'s EVSE, by name."""
    found = {
        "AvailabilityState": EvseVariable(
            CONNECTOR_STATUS[c.state],
            {"dataType": "OptionList", "valuesList": AVAILABILITY_STATES, "supportsMonitoring": True},
        ),
        "Available": EvseVariable("true", {"dataType": "boolean", "supportsMonitoring": True}),
        # The power drawn now; maxLimit, the most the EVSE gives, is the variable's required part.
        "Power": EvseVariable(
            str(cp.power_w(c)),
            {"unit": "W", "dataType": "decimal", "maxLimit": c.max_power_w, "supportsMonitoring": True},
        ),
    }
    phases = cp.settings.evse_values.get((c.no, EVSE_SUPPLY_PHASES))
    if phases is not None:  # only if it says its phases
        found[EVSE_SUPPLY_PHASES] = EvseVariable(phases, {"dataType": "integer", "supportsMonitoring": True})
    return found


def evse_component(cp: ChargerPort, component: dict[str, Any]) -> VirtualConnector | None:
    """The connector whose EVSE `component` (a ComponentType naming an EVSE) is, or None: the
    charger has no such component there."""
    evse = component["evse"]
    if component["name"] != "EVSE" or evse.get("connectorId", CONNECTOR_ID) != CONNECTOR_ID:
        return None
    return cp.connectors.get(evse["id"])


def at_evse(
    cp: ChargerPort, component: dict[str, Any], variable: str
) -> tuple[str | None, EvseVariable | None]:
    """(UnknownComponent or UnknownVariable, or None and the variable) of a component named with
    an EVSE, in the words Get/SetVariables and SetVariableMonitoring share."""
    c = evse_component(cp, component)
    if c is None:
        return "UnknownComponent", None
    found = evse_variables(cp, c).get(variable)
    return (None, found) if found is not None else ("UnknownVariable", None)


def names(asked: dict[str, Any], component: dict[str, Any], variable: str) -> bool:
    """Whether a ComponentVariableType asked for (GetReport, GetMonitoringReport) names this
    component's variable. Asked without an EVSE, it names the component wherever it is: the
    station's and each EVSE's; with one, only the component at that EVSE."""
    if asked["component"]["name"] != component["name"]:
        return False
    if asked.get("variable", {}).get("name", variable) != variable:
        return False
    where = asked["component"].get("evse")
    here = component.get("evse")
    if where is None:
        return True
    return (
        here is not None
        and here["id"] == where["id"]
        and where.get("connectorId", CONNECTOR_ID) == here.get("connectorId", CONNECTOR_ID)
    )
