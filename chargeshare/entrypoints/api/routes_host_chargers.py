"""A host's own chargers: list, create, edit (title, price, access notes), remove; connectors; the
weekly availability calendar; accepting a new charger into service. Another host's charger answers
404, as if it did not exist."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal
from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api.boot_policy import ask_to_boot
from chargeshare.entrypoints.api.deps import AppDep, ConnectorNo, Host, IdPath, RegistryDep
from chargeshare.entrypoints.api.schemas import (
    BootPolicyIn,
    BootPolicyOut,
    ChargerCreated,
    ChargerIn,
    ChargerPatch,
    ConnectorIn,
    ConnectorPatch,
    HostChargerOut,
    WindowIO,
)
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.entrypoints.api.views import host_charger_out


def _host_id(p: Principal) -> int:
    assert p.host_id is not None, "a host token always names its host"
    return p.host_id


router = APIRouter(prefix="/host/chargers", tags=["host chargers"], route_class=StrictJsonRoute)


def details(app: App, host_id: int, charger_id: int) -> HostChargerOut:
    view, notes, windows = app.hosting.details(host_id, charger_id)
    return host_charger_out(view, notes, windows)


@router.get("")
def list_mine(app: AppDep, who: Host) -> list[HostChargerOut]:
    return [details(app, _host_id(who), c.charger_id) for c in app.hosting.list_chargers(_host_id(who))]


@router.post("", status_code=201)
def create(app: AppDep, body: ChargerIn, who: Host) -> ChargerCreated:
    """List a new charger. The answer carries the charger's OCPP password, shown this once."""
    if len({c.connector_no for c in body.connectors}) != len(body.connectors):
        raise InvalidRequest("connector numbers must differ")
    spec = ChargerSpec(
        charge_point_id=body.charge_point_id,
        host_id=_host_id(who),
        location=Point(body.lat, body.lon),
        tariff=Tariff(body.price_per_kwh),
        connectors=tuple(ConnectorSpec(c.connector_no, c.type, c.max_power_w) for c in body.connectors),
        title=body.title,
    )
    view, password = app.hosting.add_charger(spec, body.access_notes)
    return ChargerCreated(charger=details(app, _host_id(who), view.charger_id), password=password)


@router.get("/{charger_id}")
def get(app: AppDep, charger_id: IdPath, who: Host) -> HostChargerOut:
    return details(app, _host_id(who), charger_id)


@router.patch("/{charger_id}")
def edit(app: AppDep, charger_id: IdPath, body: ChargerPatch, who: Host) -> HostChargerOut:
    app.hosting.update_charger(
        _host_id(who),
        charger_id,
        title=body.title,
        price_per_kwh=body.price_per_kwh,
        access_notes=body.access_notes,
    )
    return details(app, _host_id(who), charger_id)


@router.put("/{charger_id}/boot-policy")
async def set_boot_policy(
    app: AppDep, registry: RegistryDep, charger_id: IdPath, body: BootPolicyIn, who: Host
) -> BootPolicyOut:
    """Accept a new charger into service once it has booted (its BootNotification is among its
    reports), or take it out. A connected charger is asked to boot again, so it learns at once."""
    view = app.hosting.set_boot_policy(_host_id(who), charger_id, body.boot_policy)
    app.last_seen.forget(view.charge_point_id)  # its next frame here reads the change
    asked = await ask_to_boot(registry, view.charge_point_id)
    return BootPolicyOut(boot_policy=view.boot_policy, status=view.status.value, boot_requested=asked)


@router.delete("/{charger_id}", status_code=204)
def remove(app: AppDep, charger_id: IdPath, who: Host) -> Response:
    app.hosting.remove_charger(_host_id(who), charger_id)
    return Response(status_code=204)


@router.put("/{charger_id}/availability")
def set_availability(app: AppDep, charger_id: IdPath, body: list[WindowIO], who: Host) -> HostChargerOut:
    """Replace the weekly calendar (UK local time). An empty list means always open."""
    windows = [WeeklyWindow(w.weekday, w.start_minute, w.end_minute) for w in body]
    app.hosting.set_availability(_host_id(who), charger_id, windows)
    return details(app, _host_id(who), charger_id)


@router.post("/{charger_id}/connectors", status_code=201)
def add_connector(app: AppDep, charger_id: IdPath, body: ConnectorIn, who: Host) -> HostChargerOut:
    app.hosting.add_connector(_host_id(who), charger_id, body.connector_no, body.type, body.max_power_w)
    return details(app, _host_id(who), charger_id)


@router.patch("/{charger_id}/connectors/{connector_no}")
def edit_connector(
    app: AppDep, charger_id: IdPath, connector_no: ConnectorNo, body: ConnectorPatch, who: Host
) -> HostChargerOut:
    app.hosting.update_connector(
        _host_id(who), charger_id, connector_no, type_=body.type, max_power_w=body.max_power_w
    )
    return details(app, _host_id(who), charger_id)


@router.delete("/{charger_id}/connectors/{connector_no}")
def remove_connector(app: AppDep, charger_id: IdPath, connector_no: ConnectorNo, who: Host) -> HostChargerOut:
    app.hosting.remove_connector(_host_id(who), charger_id, connector_no)
    return details(app, _host_id(who), charger_id)
