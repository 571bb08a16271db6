"""A charger's settings under the UK's Smart Charge Points Regulations 2021: its host's choices (the
randomised delay's maximum and override, the default charging hours) and the operator's DSR flag.
Each change is sent to the charger where it is connected, and again whenever it boots. Another
host's charger answers 404, as if it did not exist."""

from __future__ import annotations

from fastapi import APIRouter

from chargeshare.entrypoints.api.deps import Admin, AppDep, Host, IdPath
from chargeshare.entrypoints.api.schemas import DemandSideResponseIn, SmartChargingIn, SmartChargingOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.services.smart_charging import SmartChargingView


def smart_out(v: SmartChargingView) -> SmartChargingOut:
    s = v.settings
    return SmartChargingOut(
        charger_id=v.charger_id,
        randomised_delay_max_s=s.randomised_delay_max_s,
        randomised_delay_override=s.randomised_delay_override,
        default_charging_hours=s.default_charging_hours,
        demand_side_response=s.demand_side_response,
        configured=v.configured,
    )


router = APIRouter(tags=["smart charging"], route_class=StrictJsonRoute)


@router.get("/host/chargers/{charger_id}/smart-charging")
def host_view(app: AppDep, charger_id: IdPath, who: Host) -> SmartChargingOut:
    """Your charger's randomised delay and default charging hours, and whether it provides DSR."""
    assert who.host_id is not None, "a host token always names its host"
    return smart_out(app.smart.view(charger_id, host_id=who.host_id))


@router.put("/host/chargers/{charger_id}/smart-charging")
def host_set(app: AppDep, charger_id: IdPath, body: SmartChargingIn, who: Host) -> SmartChargingOut:
    """Accept, change or remove the defaults: the randomised delay's maximum (0 to 1,800 s),
    your override of it, and the default charging hours (off-peak only)."""
    assert who.host_id is not None, "a host token always names its host"
    return smart_out(
        app.smart.set_owner_choices(
            charger_id,
            host_id=who.host_id,
            randomised_delay_max_s=body.randomised_delay_max_s,
            randomised_delay_override=body.randomised_delay_override,
            default_charging_hours=body.default_charging_hours,
        )
    )


@router.get("/admin/chargers/{charger_id}/smart-charging")
def admin_view(app: AppDep, charger_id: IdPath, _who: Admin) -> SmartChargingOut:
    """Any charger's smart charging settings."""
    return smart_out(app.smart.view(charger_id))


@router.put("/admin/chargers/{charger_id}/demand-side-response")
def admin_dsr(app: AppDep, charger_id: IdPath, body: DemandSideResponseIn, _who: Admin) -> SmartChargingOut:
    """Say whether the charger is providing response DSR services now: while it is, the
    randomised delay does not operate."""
    return smart_out(app.smart.set_demand_side_response(charger_id, body.active))
