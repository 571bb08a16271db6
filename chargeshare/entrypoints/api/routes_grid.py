"""Site and feeder supply limits: a host's sites (a main fuse shared with the house) and which of
their chargers are on each; the operator's feeders, everyone's sites, and the DNO's flexibility
events. Every change decides the connectors' limits again, and chargers whose limits changed are
told. Another host's site or charger answers 404, as if it did not exist."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from chargeshare.bootstrap import App
from chargeshare.domain.grid_limits import Feeder, FlexEvent, Scope, Site
from chargeshare.entrypoints.api.deps import Admin, AppDep, Host, IdPath
from chargeshare.entrypoints.api.schemas import (
    ChargerSiteIn,
    FeederIn,
    FeederOut,
    FlexEventIn,
    FlexEventOut,
    HostSiteIn,
    HouseLoadIn,
    HouseLoadOut,
    SiteIn,
    SiteOut,
)
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)  # the schema refuses a time without its zone


def feeder_out(f: Feeder) -> FeederOut:
    return FeederOut(feeder_id=f.feeder_id, name=f.name, limit_w=f.limit_w)


def event_out(e: FlexEvent) -> FlexEventOut:
    return FlexEventOut(
        event_id=e.event_id,
        scope=e.scope.value,
        target_id=e.target_id,
        limit_w=e.limit_w,
        starts_at=e.starts_at,
        ends_at=e.ends_at,
    )


router = APIRouter(tags=["grid limits"], route_class=StrictJsonRoute)


def sites_out(app: App, sites: list[Site]) -> list[SiteOut]:
    members = app.grid.members()
    return [
        SiteOut(
            site_id=s.site_id,
            host_id=s.host_id,
            name=s.name,
            limit_w=s.limit_w,
            house_load_w=s.house_load_w,
            house_load_at=s.house_load_at,
            feeder_id=s.feeder_id,
            charger_ids=sorted(c for c, site in members.items() if site == s.site_id),
        )
        for s in sites
    ]


# ---- a host's own -----------------------------------------------------------------------------
@router.get("/host/sites")
def host_sites(app: AppDep, who: Host) -> list[SiteOut]:
    """Your sites, each with its limit, its house load and the chargers on it."""
    assert who.host_id is not None, "a host token always names its host"
    return sites_out(app, list(app.grid.sites(who.host_id)))


@router.post("/host/sites", status_code=201)
def host_add_site(app: AppDep, body: HostSiteIn, who: Host) -> SiteOut:
    """A site of yours: its supply limit, shared with the house."""
    assert who.host_id is not None, "a host token always names its host"
    site = app.grid.add_site(who.host_id, body.name, body.limit_w, house_load_w=body.house_load_w)
    return sites_out(app, [site])[0]


@router.put("/host/sites/{site_id}/house-load")
def host_house_load(app: AppDep, site_id: IdPath, body: HouseLoadIn, who: Host) -> HouseLoadOut:
    """What the house draws, as the site meter measured it: the chargers share what it leaves.
    A reading older than the one in force is ignored, answered with the one in force and
    `applied` false (a meter need not retry it); one stamped ahead of the server's clock by
    more than a few seconds is a 400."""
    assert who.host_id is not None, "a host token always names its host"
    measured_at = None if body.measured_at is None else _utc(body.measured_at)
    outcome = app.grid.set_house_load(
        site_id, body.house_load_w, measured_at=measured_at, host_id=who.host_id
    )
    (site,) = sites_out(app, [outcome.site])
    return HouseLoadOut(**site.model_dump(), applied=outcome.applied)


@router.put("/host/chargers/{charger_id}/site", status_code=204)
def host_place(app: AppDep, charger_id: IdPath, body: ChargerSiteIn, who: Host) -> None:
    """Put your charger on one of your sites (null: on none)."""
    assert who.host_id is not None, "a host token always names its host"
    app.grid.place(charger_id, body.site_id, host_id=who.host_id)


# ---- the operator's ---------------------------------------------------------------------------
@router.get("/admin/feeders")
def admin_feeders(app: AppDep, _who: Admin) -> list[FeederOut]:
    return [feeder_out(f) for f in app.grid.feeders()]


@router.post("/admin/feeders", status_code=201)
def admin_add_feeder(app: AppDep, body: FeederIn, _who: Admin) -> FeederOut:
    """A feeder and the limit the distribution network operator sets for it."""
    return feeder_out(app.grid.add_feeder(body.name, body.limit_w))


@router.get("/admin/sites")
def admin_sites(app: AppDep, _who: Admin) -> list[SiteOut]:
    return sites_out(app, list(app.grid.sites()))


@router.post("/admin/sites", status_code=201)
def admin_add_site(app: AppDep, body: SiteIn, _who: Admin) -> SiteOut:
    """A host's site, on a feeder (or on none)."""
    site = app.grid.add_site(
        body.host_id, body.name, body.limit_w, house_load_w=body.house_load_w, feeder_id=body.feeder_id
    )
    return sites_out(app, [site])[0]


@router.get("/admin/flex-events")
def admin_flex_events(app: AppDep, _who: Admin, current: bool = False) -> list[FlexEventOut]:
    """Flexibility events (`current`: only those not over yet)."""
    return [event_out(e) for e in app.grid.flex_events(current_only=current)]


@router.post("/admin/flex-events", status_code=201)
def admin_add_flex_event(app: AppDep, body: FlexEventIn, _who: Admin) -> FlexEventOut:
    """A DNO's flexibility event: a site's or feeder's limit lowered over the window. One already
    running takes effect at once; the housekeeping sweep follows its start and end."""
    event = app.grid.add_flex_event(
        Scope(body.scope), body.target_id, body.limit_w, _utc(body.starts_at), _utc(body.ends_at)
    )
    return event_out(event)
