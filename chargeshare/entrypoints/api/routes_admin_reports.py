"""Operator endpoints (admin role) on what chargers report about themselves, on sessions billed
without a meter measurement, and on sessions that took a stop after they were closed as lost."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from chargeshare.entrypoints.api.deps import MAX_ID, Admin, AppDep, IdPath
from chargeshare.entrypoints.api.schemas import (
    ChargerReportOut,
    ChargingLimitOut,
    DeviceVariableOut,
    EvChargingNeedsOut,
    LateStopOut,
    LatestStatusOut,
    OwedCommandOut,
    ReportedStateOut,
    UnmeteredSessionOut,
)
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.services.owed_commands import owed_rows
from chargeshare.services.queries.admin_views import LATE_STOPS_MAX

router = APIRouter(prefix="/admin", tags=["admin"], route_class=StrictJsonRoute)


@router.get("/chargers/{charger_id}/reports")
def reports(
    app: AppDep,
    charger_id: IdPath,
    _who: Admin,
    action: Annotated[list[str] | None, Query(max_length=20)] = None,
) -> list[ChargerReportOut]:
    """The charger's own messages (firmware and log status, reports, limits, EV needs, ...) as
    received, oldest first; `action` (repeatable) keeps only those."""
    kept = app.reports.reports(app.queries.chargers.charge_point_id(charger_id), action or ())
    return [
        ChargerReportOut(
            id=k.report_id,
            action=k.action,
            summary=k.summary,
            body=k.body,
            reported_at=k.reported_at,
            received_at=k.received_at,
        )
        for k in kept
    ]


@router.get("/chargers/{charger_id}/reported-state")
def reported_state(app: AppDep, charger_id: IdPath, _who: Admin) -> ReportedStateOut:
    """What the charger's reports add up to now: the last firmware, log and diagnostics status,
    its device model, the charging limits in force and what the cars on it asked for."""
    cp_id = app.queries.chargers.charge_point_id(charger_id)
    state = app.reports.reported_state(cp_id)
    return ReportedStateOut(
        charge_point_id=cp_id,
        statuses=[LatestStatusOut(**asdict(s)) for s in state.statuses],
        device_model=[DeviceVariableOut(**asdict(v)) for v in state.device_model],
        charging_limits=[
            ChargingLimitOut(
                source=x.source,
                evse_id=x.evse_id,
                grid_critical=x.grid_critical,
                schedules=[dict(s) for s in x.schedules],
                since=x.since,
            )
            for x in state.charging_limits
        ],
        ev_charging_needs=[
            EvChargingNeedsOut(
                evse_id=n.evse_id,
                transfer_mode=n.transfer_mode,
                energy_wh=n.energy_wh,
                departure_at=n.departure_at,
                needs=dict(n.needs),
                reported_at=n.reported_at,
                schedule=None if n.schedule is None else dict(n.schedule),
            )
            for n in state.ev_charging_needs
        ],
    )


@router.get("/commands-owed")
def commands_owed(app: AppDep, _who: Admin) -> list[OwedCommandOut]:
    """V2G exports and drivers' overrides owed to running sessions' chargers until they take
    them: each with its charger's refusals and when it is asked again (refused: given up)."""
    return [OwedCommandOut(**asdict(o)) for o in owed_rows(app.store, app.clock.now())]


@router.get("/unmetered-sessions")
def unmetered_sessions(app: AppDep, _who: Admin) -> list[UnmeteredSessionOut]:
    """Sessions billed without a meter measurement: their charger's metering needs a look."""
    return [
        UnmeteredSessionOut(
            session_id=u.session.session_id,
            booking_id=u.session.booking_id,
            charge_point_id=u.charge_point_id,
            started_at=u.session.started_at,
            stopped_at=u.session.stopped_at,
            billed_wh=u.session.billed_wh,
        )
        for u in app.queries.admin.unmetered_sessions()
    ]


@router.get("/late-stops")
def late_stops(
    app: AppDep,
    _who: Admin,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="the last session id of the page before")] = 0,
    limit: Annotated[int, Query(ge=1, le=LATE_STOPS_MAX)] = 100,
) -> list[LateStopOut]:
    """Sessions whose stop came after the lost-stop sweep closed them, by session id, one row
    per session with where all its late stops left it: billed in full on one, or its energy
    (and a V2G session's export) after the last reading left unbilled, with the pence. A page
    of `limit`; the next starts `after` the last session id."""
    return [
        LateStopOut(
            session_id=v.session_id,
            booking_id=v.booking_id,
            charge_point_id=v.charge_point_id,
            outcome="rebilled" if v.rebilled else "unbilled",
            late_stop_wh=v.late_stop_wh,
            billed_wh=v.billed_wh,
            cost=v.cost,
            unbilled_wh=v.unbilled_wh,
            unbilled_p=v.unbilled_p,
            late_export_wh=v.late_export_wh,
            uncredited_export_wh=v.uncredited_export_wh,
            uncredited_export_p=v.uncredited_export_p,
            rebilled_at=v.rebilled_at,
            at=v.at,
        )
        for v in app.queries.admin.late_stops(after, limit)
    ]
