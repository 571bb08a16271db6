"""`chargeshare grid`: feeders, sites and flexibility events in the backend's database.

What is written here is decided at a running server's next housekeeping sweep (every 30 s), which
sends the chargers concerned their new limits; the server's API decides at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import json_list_option, write_rows

if TYPE_CHECKING:
    from chargeshare.bootstrap import App

app = typer.Typer(
    help="Site and feeder supply limits: feeders, sites, flexibility events, connectors' limits.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)

Watts = Annotated[int, typer.Option(help="Watts.", min=0)]


def _show(rows: list[dict[str, Any]], json_out: Path | None) -> None:
    if json_out is not None:
        write_rows(json_out, rows)
        return
    if not rows:
        console.print("none")
        return
    table = Table(*rows[0])
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


def _charger_id(a: App, charge_point_id: str) -> int:
    with a.store.reading() as tx:
        return tx.chargers.get(charge_point_id).charger_id


@app.command("add-feeder")
def add_feeder(
    name: Annotated[str, typer.Argument(help="The feeder's name.")],
    limit_w: Annotated[int, typer.Option(help="The limit the DNO sets, watts.", min=1)],
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Add a feeder with the limit the distribution network operator sets for it."""
    with open_app(database_url) as a:
        f = a.grid.add_feeder(name, limit_w)
    _show([{"feeder_id": f.feeder_id, "name": f.name, "limit_w": f.limit_w}], json_out)


@app.command("add-site")
def add_site(
    charge_point_id: Annotated[str, typer.Argument(help="A charger to put on the new site (its host's).")],
    limit_w: Annotated[int, typer.Option(help="The supply's limit, watts (60 A at 230 V: 13800).", min=1)],
    house_load_w: Watts = 0,
    feeder: Annotated[int | None, typer.Option(help="The feeder the site hangs off.")] = None,
    name: Annotated[str | None, typer.Option(help="The site's name (default: after the charger).")] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Add a site for a charger's host, shared with the house, and put the charger on it."""
    with open_app(database_url) as a:
        charger_id = _charger_id(a, charge_point_id)
        with a.store.reading() as tx:
            host_id = tx.chargers.by_id(charger_id).host_id
        site = a.grid.add_site(
            host_id,
            name or f"site of {charge_point_id}",
            limit_w,
            house_load_w=house_load_w,
            feeder_id=feeder,
        )
        a.grid.place(charger_id, site.site_id, decide=False)
    _show([_site_row(site, [charge_point_id])], json_out)


@app.command("house-load")
def house_load(
    site_id: Annotated[int, typer.Argument(help="The site.")],
    watts: Annotated[int, typer.Argument(help="What the house draws besides the chargers, watts.", min=0)],
    database_url: DatabaseUrl = None,
) -> None:
    """Set what a site's house draws."""
    with open_app(database_url) as a:
        outcome = a.grid.set_house_load(site_id, watts, decide=False)
    if outcome.applied:
        console.print(f"site {site_id}: house load {watts} W")
    else:
        at = outcome.site.house_load_at
        console.print(f"site {site_id}: a reading measured at {at} stands ({outcome.site.house_load_w} W)")


@app.command("flex-event")
def flex_event(
    limit_w: Annotated[int, typer.Option(help="The limit during the event, watts.", min=0)],
    minutes: Annotated[int, typer.Option(help="How long it lasts.", min=1)],
    feeder: Annotated[int | None, typer.Option(help="The feeder it lowers.")] = None,
    site: Annotated[int | None, typer.Option(help="The site it lowers (instead of a feeder).")] = None,
    starts: Annotated[
        str | None, typer.Option(help="When it begins: ISO 8601 with its UTC offset (default: now).")
    ] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Announce a DNO flexibility event: a feeder's or a site's limit lowered for a window."""
    from chargeshare.cli.errors import USAGE, Problem
    from chargeshare.domain.grid_limits import Scope

    if (feeder is None) == (site is None):
        raise Problem("name a feeder or a site (one of --feeder and --site)", USAGE)
    begins = None
    if starts is not None:
        try:
            begins = datetime.fromisoformat(starts)
        except ValueError:
            begins = None
        if begins is None or begins.tzinfo is None:
            raise Problem(f"--starts {starts!r}: an ISO 8601 time with its UTC offset", USAGE)
    scope, target = (Scope.FEEDER, feeder) if feeder is not None else (Scope.SITE, site)
    assert target is not None
    with open_app(database_url) as a:
        at = (begins or a.clock.now()).astimezone(UTC)
        e = a.grid.add_flex_event(scope, target, limit_w, at, at + timedelta(minutes=minutes), decide=False)
    row = {
        "event_id": e.event_id,
        "scope": e.scope.value,
        "target_id": e.target_id,
        "limit_w": e.limit_w,
        "starts_at": e.starts_at.isoformat(),
        "ends_at": e.ends_at.isoformat(),
    }
    _show([row], json_out)


@app.command()
def show(
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Feeders, sites (with their chargers) and flexibility events not over yet."""
    with open_app(database_url) as a:
        feeders, sites, events = a.grid.feeders(), a.grid.sites(), a.grid.flex_events(current_only=True)
        members = a.grid.members()
        with a.store.reading() as tx:
            names = {c.charger_id: c.charge_point_id for c in tx.chargers.all()}
    rows: list[dict[str, Any]] = [
        {"kind": "feeder", "id": f.feeder_id, "name": f.name, "limit_w": f.limit_w, "detail": ""}
        for f in feeders
    ]
    for s in sites:
        on = sorted(names[c] for c, site in members.items() if site == s.site_id)
        detail = f"house {s.house_load_w} W, feeder {s.feeder_id or '-'}, chargers {', '.join(on) or '-'}"
        rows.append({"kind": "site", "id": s.site_id, "name": s.name, "limit_w": s.limit_w, "detail": detail})
    for e in events:
        window = f"{e.scope.value} {e.target_id}, {e.starts_at.isoformat()} to {e.ends_at.isoformat()}"
        rows.append(
            {"kind": "flex event", "id": e.event_id, "name": "", "limit_w": e.limit_w, "detail": window}
        )
    _show(rows, json_out)


@app.command()
def limits(
    charge_point_id: Annotated[str, typer.Argument(help="The charger.")],
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """A charger's connectors' limits as last decided (what it is sent when it connects)."""
    with open_app(database_url) as a:
        due = a.grid.limits_due(charge_point_id)
    rows = [] if due is None else [{"connector": no, "limit_w": w} for no, w in due.limits_w]
    _show(rows, json_out)


def _site_row(site: Any, chargers: list[str]) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "name": site.name,
        "limit_w": site.limit_w,
        "house_load_w": site.house_load_w,
        "feeder_id": site.feeder_id,
        "chargers": chargers,
    }
