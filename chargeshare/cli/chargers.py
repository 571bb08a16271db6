"""`chargeshare chargers`: register, list and remove chargers in the backend's database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import duration_option, json_list_option, write_rows
from chargeshare.domain.charger import BootPolicy, ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff

if TYPE_CHECKING:
    from chargeshare.bootstrap import App
    from chargeshare.ocpp.commands import Command, CommandResult

app = typer.Typer(
    help="Register, list and remove chargers, set their passwords, send them commands.", no_args_is_help=True
)
console = Console(soft_wrap=True)


@app.command()
def add(
    charge_point_id: Annotated[str, typer.Argument(help="The id the charger connects with.")],
    lat: Annotated[float, typer.Option(help="Latitude.")],
    lon: Annotated[float, typer.Option(help="Longitude.")],
    price_per_kwh: Annotated[int, typer.Option(help="Pence per kWh.", min=0)] = 35,
    power_w: Annotated[int, typer.Option(help="Connector power in watts.", min=1000)] = 7_400,
    connector_type: Annotated[ConnectorType, typer.Option(help="Connector type.")] = ConnectorType.TYPE2,
    host_name: Annotated[
        str, typer.Option(help="The name of the host (homeowner) to register, who owns the charger.")
    ] = "Host",
    password: Annotated[
        str | None, typer.Option(help="16-40 characters; generated and printed if not given.")
    ] = None,
    public_url: Annotated[
        str, typer.Option(help="Where chargers reach the backend.")
    ] = "ws://127.0.0.1:8180",
    boot_policy: Annotated[
        BootPolicy,
        typer.Option(help="How its boots are answered: Pending keeps it out of service until accepted."),
    ] = BootPolicy.ACCEPTED,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a charger with one connector and print what to configure on it."""
    import secrets

    password = password or secrets.token_urlsafe(18)[:24]
    with open_app(database_url) as a:
        host_id = a.marketplace.add_host(host_name)
        spec = ChargerSpec(
            charge_point_id,
            host_id,
            Point(lat, lon),
            Tariff(price_per_kwh),
            (ConnectorSpec(1, connector_type, power_w),),
            title=f"{host_name}'s charger",
            boot_policy=boot_policy,
        )
        a.marketplace.add_charger(spec, password=password)
    console.print(f"registered [bold]{charge_point_id}[/]")
    console.print(f"  central system URL: {public_url.rstrip('/')}/ocpp/{charge_point_id}")
    console.print("  subprotocol:        ocpp1.6, ocpp2.0.1 or ocpp2.1")
    console.print(f"  Basic auth:         user {charge_point_id}, password {password}")


@app.command("list")
def list_(
    database_url: DatabaseUrl = None, json_out: Annotated[Path | None, json_list_option()] = None
) -> None:
    """List registered chargers and their state."""
    with open_app(database_url) as a, a.store.transaction() as tx:
        views = tx.chargers.all()
    if json_out is not None:
        rows = [
            {
                "charge_point_id": v.charge_point_id,
                "status": v.status.value,
                "boot_policy": v.boot_policy.value,
                "ocpp_version": v.ocpp_version,
                "last_seen_at": None if v.last_seen_at is None else v.last_seen_at.isoformat(),
                "lat": v.location.lat,
                "lon": v.location.lon,
                "price_per_kwh": v.price_per_kwh,
                "connectors": [
                    {
                        "connector_no": c.connector_no,
                        "type": c.type.value,
                        "max_power_w": c.max_power_w,
                        "status": c.status.value,
                    }
                    for c in v.connectors
                ],
            }
            for v in views
        ]
        write_rows(json_out, rows)
        return
    table = Table("id", "status", "boot", "ocpp", "last seen", "lat", "lon", "p/kWh", "connectors")
    for v in views:
        table.add_row(
            v.charge_point_id,
            v.status.value,
            v.boot_policy.value,
            v.ocpp_version or "-",
            "-" if v.last_seen_at is None else f"{v.last_seen_at:%Y-%m-%d %H:%M:%S}",
            f"{v.location.lat:.5f}",
            f"{v.location.lon:.5f}",
            str(v.price_per_kwh),
            ", ".join(
                f"{c.connector_no}:{c.type.value}/{c.max_power_w // 1000}kW {c.status.value}"
                for c in v.connectors
            ),
        )
    console.print(table)


ChargerId = Annotated[str, typer.Argument(help="The charger's id, as it connects.")]


@app.command("boot-policy")
def boot_policy_(
    charge_point_id: ChargerId,
    policy: Annotated[
        BootPolicy, typer.Argument(help="Accepted puts it in service; Pending or Rejected take it out.")
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Accept a charger into service, or take it out. It hears the answer at its next boot; ask a
    connected one to boot now with `chargers command <id> TriggerMessage`."""
    from chargeshare.cli.errors import USAGE, Problem
    from chargeshare.domain.errors import NotFound

    with open_app(database_url) as a:
        try:
            view = a.marketplace.set_boot_policy(charge_point_id, policy)
        except NotFound:
            raise Problem(f"no charger {charge_point_id!r}", USAGE) from None
    console.print(f"{charge_point_id}: boot policy {view.boot_policy.value}, status {view.status.value}")


@app.command("smart-charging")
def smart_charging(
    charge_point_id: ChargerId,
    delay_max: Annotated[
        int | None, typer.Option(help="The randomised delay's maximum, seconds (0-1800).", min=0, max=1_800)
    ] = None,
    delay_override: Annotated[
        bool | None,
        typer.Option("--delay-override/--no-delay-override", help="The owner's override of the delay."),
    ] = None,
    default_hours: Annotated[
        bool | None,
        typer.Option(
            "--default-hours/--no-default-hours", help="Keep the default charging hours (off-peak)."
        ),
    ] = None,
    dsr: Annotated[
        bool | None, typer.Option("--dsr/--no-dsr", help="Providing response DSR services now (no delay).")
    ] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Show or change a charger's settings under the UK's Smart Charge Points Regulations 2021. A
    change is written to the database: the charger is sent its settings when it next boots (a
    running server sends a change made through its API at once)."""
    from chargeshare.cli.errors import USAGE, Problem
    from chargeshare.domain.errors import NotFound

    with open_app(database_url) as a:
        try:
            with a.store.reading() as tx:
                charger_id = tx.chargers.get(charge_point_id).charger_id
            view = a.smart.view(charger_id)
            owner = (delay_max, delay_override, default_hours)
            if any(x is not None for x in owner):
                s = view.settings
                view = a.smart.set_owner_choices(
                    charger_id,
                    randomised_delay_max_s=s.randomised_delay_max_s if delay_max is None else delay_max,
                    randomised_delay_override=s.randomised_delay_override
                    if delay_override is None
                    else delay_override,
                    default_charging_hours=s.default_charging_hours
                    if default_hours is None
                    else default_hours,
                )
            if dsr is not None:
                view = a.smart.set_demand_side_response(charger_id, dsr)
        except NotFound:
            raise Problem(f"no charger {charge_point_id!r}", USAGE) from None
    s = view.settings
    row = {
        "charge_point_id": charge_point_id,
        "randomised_delay_max_s": s.randomised_delay_max_s,
        "randomised_delay_override": s.randomised_delay_override,
        "default_charging_hours": s.default_charging_hours,
        "demand_side_response": s.demand_side_response,
        "configured": view.configured,
    }
    if json_out is not None:
        write_rows(json_out, [row])
        return
    table = Table(*row)
    table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@app.command()
def remove(charge_point_id: ChargerId, database_url: DatabaseUrl = None) -> None:
    """Remove a charger that has never been booked."""
    with open_app(database_url) as a:
        a.marketplace.remove_charger(charge_point_id)
    console.print(f"removed {charge_point_id}")


@app.command()
def passwd(
    charge_point_id: ChargerId,
    password: Annotated[str | None, typer.Option(help="16-40 characters; generated if not given.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a new password for a charger."""
    import secrets

    password = password or secrets.token_urlsafe(18)[:24]
    with open_app(database_url) as a:
        a.marketplace.set_charger_password(charge_point_id, password)
    console.print(f"{charge_point_id}: new password {password}")


@app.command("security-events")
def security_events(
    charge_point_id: Annotated[
        str | None, typer.Argument(help="Only this charger's (the culprit's id, as it connected).")
    ] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """What chargers did that they must not, such as naming another charger's transaction."""
    with open_app(database_url) as a, a.store.reading() as tx:
        events = tx.security.all(charge_point_id)
    if json_out is not None:
        rows = [
            {"at": e.at.isoformat(), "charge_point_id": e.charge_point_id, "kind": e.kind}
            | {"detail": e.detail, "source": e.source}
            for e in events
        ]
        write_rows(json_out, rows)
        return
    table = Table("at", "charger", "kind", "detail", "source")
    for e in events:
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.charge_point_id, e.kind, e.detail, e.source)
    console.print(table if events else "no security events")


@app.command()
def reports(
    charge_point_id: Annotated[str, typer.Argument(help="The charger's id, as it connects.")],
    action: Annotated[
        list[str] | None, typer.Option(help="Only this OCPP action (repeatable), e.g. NotifyReport.")
    ] = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """What the charger reported about itself (firmware and log status, device-model reports, charging
    limits, EV charging needs, certificate requests, vendor data), oldest first."""
    with open_app(database_url) as a:
        kept = a.reports.reports(charge_point_id, action or ())
    if json_out is not None:
        rows = [{"action": k.action, "received_at": k.received_at.isoformat(), "body": k.body} for k in kept]
        write_rows(json_out, rows)
        return
    table = Table("received", "action", "summary")
    for k in kept:
        table.add_row(f"{k.received_at:%Y-%m-%d %H:%M:%S}", k.action, k.summary)
    console.print(table if kept else "no reports")


@app.command()
def state(
    charge_point_id: Annotated[str, typer.Argument(help="The charger's id, as it connects.")],
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """What the charger's reports add up to now: firmware, log and diagnostics status, charging limits
    in force, what the cars on it asked for, and its device model."""
    from dataclasses import asdict

    with open_app(database_url) as a:
        now = a.reports.reported_state(charge_point_id)
    if json_out is not None:
        write_rows(json_out, {"charge_point_id": charge_point_id, **asdict(now)})
        return
    statuses = Table("job", "status", "request", "since", title="Status")
    for s in now.statuses:
        statuses.add_row(
            s.kind, s.status, "-" if s.request_id is None else str(s.request_id), f"{s.at:%Y-%m-%d %H:%M:%S}"
        )
    limits = Table("source", "where", "grid critical", "since", title="Charging limits in force")
    for x in now.charging_limits:
        where = "charger" if x.evse_id is None else f"EVSE {x.evse_id}"
        limits.add_row(
            x.source,
            where,
            {None: "-", True: "yes", False: "no"}[x.grid_critical],
            f"{x.since:%Y-%m-%d %H:%M:%S}",
        )
    needs = Table("EVSE", "transfer", "energy Wh", "departure", "car's schedule", title="EV charging needs")
    for n in now.ev_charging_needs:
        needs.add_row(
            str(n.evse_id),
            n.transfer_mode,
            "-" if n.energy_wh is None else str(n.energy_wh),
            n.departure_at or "-",
            "yes" if n.schedule is not None else "no",
        )
    model = Table("component", "variable", "attribute", "value", "mutability", title="Device model")
    for v in now.device_model:
        component = v.component if v.evse_id is None else f"{v.component} (EVSE {v.evse_id})"
        model.add_row(component, v.variable, v.attribute, v.value or "", v.mutability or "")
    for table, rows in (
        (statuses, now.statuses),
        (limits, now.charging_limits),
        (needs, now.ev_charging_needs),
        (model, now.device_model),
    ):
        console.print(table if rows else f"{table.title}: none reported")


@app.command()
def unmetered(
    database_url: DatabaseUrl = None, json_out: Annotated[Path | None, json_list_option()] = None
) -> None:
    """Sessions billed without a meter measurement: their chargers' metering needs a look."""
    with open_app(database_url) as a, a.store.reading() as tx:
        flagged = [(s, tx.sessions.charger_of(s.session_id)) for s in tx.sessions.unmetered()]
    if json_out is not None:
        rows = [
            {"session_id": s.session_id, "booking_id": s.booking_id, "charge_point_id": cp_id}
            | {"started_at": s.started_at.isoformat(), "billed_wh": s.billed_wh}
            for s, cp_id in flagged
        ]
        write_rows(json_out, rows)
        return
    table = Table("session", "booking", "charger", "started", "billed Wh")
    for s, cp_id in flagged:
        table.add_row(
            str(s.session_id),
            str(s.booking_id),
            cp_id or "-",
            f"{s.started_at:%Y-%m-%d %H:%M:%S}",
            str(s.billed_wh),
        )
    console.print(table if flagged else "no unmetered sessions")


@app.command("late-stops")
def late_stops(
    after: Annotated[
        int, typer.Option(help="List sessions after this session id (the page before's last).", min=0)
    ] = 0,
    limit: Annotated[int, typer.Option(help="At most this many sessions.", min=1, max=500)] = 100,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Sessions whose stop came after the lost-stop sweep closed them, one row per session with
    where all its late stops left it: billed in full on one (rebilled, and when), or its energy,
    and a V2G session's export, after the last reading left unbilled, with the pence."""
    with open_app(database_url) as a:
        found = a.queries.admin.late_stops(after, limit)
    if json_out is not None:
        rows = [
            {
                "session_id": v.session_id,
                "booking_id": v.booking_id,
                "charge_point_id": v.charge_point_id,
                "outcome": "rebilled" if v.rebilled else "unbilled",
                "late_stop_wh": v.late_stop_wh,
                "billed_wh": v.billed_wh,
                "cost": v.cost,
                "unbilled_wh": v.unbilled_wh,
                "unbilled_p": v.unbilled_p,
                "late_export_wh": v.late_export_wh,
                "uncredited_export_wh": v.uncredited_export_wh,
                "uncredited_export_p": v.uncredited_export_p,
                "rebilled_at": None if v.rebilled_at is None else v.rebilled_at.isoformat(),
                "at": v.at.isoformat(),
            }
            for v in found
        ]
        write_rows(json_out, rows)
        return
    table = Table(
        "session",
        "booking",
        "charger",
        "outcome",
        "late Wh",
        "billed Wh",
        "unbilled Wh",
        "unbilled p",
        "late export Wh",
        "uncredited export Wh",
        "uncredited export p",
        "rebilled at",
        "last at",
        title="late stops: one row per session, where its late stops left it",
    )
    for v in found:
        table.add_row(
            str(v.session_id),
            str(v.booking_id),
            v.charge_point_id or "-",
            "rebilled" if v.rebilled else "unbilled",
            str(v.late_stop_wh),
            str(v.billed_wh),
            str(v.unbilled_wh),
            str(v.unbilled_p),
            "-" if v.late_export_wh is None else str(v.late_export_wh),
            str(v.uncredited_export_wh),
            str(v.uncredited_export_p),
            "-" if v.rebilled_at is None else f"{v.rebilled_at:%Y-%m-%d %H:%M:%S}",
            f"{v.at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table if found else "no late stops")


@app.command()
def command(
    charge_point_id: Annotated[str, typer.Argument(help="The charger's id, as it connects.")],
    action: Annotated[
        str, typer.Argument(help="A typed command's name: Reset, TriggerMessage, ChangeSetting, ...")
    ],
    payload: Annotated[str, typer.Option(help="The command's fields, as a JSON object.")] = "{}",
    timeout: Annotated[
        float, duration_option("How long the charger has to answer.", "s", default_s=30, min_s=0.1, max_s=120)
    ] = 30.0,
    database_url: DatabaseUrl = None,
) -> None:
    """Send a command to a charger connected to any `chargeshare serve` process sharing this database
    and CHARGESHARE_REDIS_URL; prints its typed result as JSON. Exit 0 when done, 1 otherwise; 2
    (one line, nothing sent) for a payload that does not make the command or breaks the schema of
    the charger's OCPP version."""
    import json

    from chargeshare.cli.errors import FAILED, USAGE, Problem, run_async
    from chargeshare.ocpp import commands as cmd
    from chargeshare.ocpp.command_names import BadCommand, parse_command, result_json

    try:
        fields = json.loads(payload)
        if not isinstance(fields, dict):
            raise BadCommand("--payload must be a JSON object")
        parsed = parse_command(action, fields)
    except ValueError as exc:  # BadCommand is one
        raise Problem(str(exc), USAGE) from exc
    with open_app(database_url) as a:
        if a.config.redis_url is None:
            raise Problem(
                "set CHARGESHARE_REDIS_URL to the serve processes' Redis: a charger is reached through "
                "the process holding its connection",
                USAGE,
            )
        with a.store.reading() as tx:
            tx.chargers.get(charge_point_id)  # an unknown id is an error, not "not connected"
        result = run_async(_send(a, charge_point_id, parsed, timeout))
    if isinstance(result, cmd.Invalid):  # the operator's payload, as a bad --payload is
        raise Problem(f"{action}: {result.reason}", USAGE)
    console.print_json(json.dumps(result_json(result)))
    if not isinstance(result, cmd.Done):
        raise typer.Exit(FAILED)


async def _send(a: App, cp_id: str, command: Command[Any], timeout_s: float) -> CommandResult[Any]:
    """Through a registry holding no links: every command is routed to the process holding the link."""
    from chargeshare.adapters.command_routing import router_for
    from chargeshare.entrypoints.ocpp_server import ChargerRegistry

    router = router_for(a.config.redis_url, a.config.database_url)
    assert router is not None
    registry = ChargerRegistry(a, router=router)
    try:
        await registry.start()
        return await registry.send(cp_id, command, timeout_s=timeout_s)
    finally:
        await registry.stop()
        await router.close()


@app.command("owed")
def owed(
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """V2G exports and drivers' overrides owed to running sessions' chargers until they take them,
    with each charger's refusals: owed (asked at the next sweep), waiting (refused, asked again
    from "retry at") or refused (too often: no longer asked for the session)."""
    from chargeshare.services.owed_commands import owed_rows

    with open_app(database_url) as a:
        found = owed_rows(a.store, a.clock.now())
    if json_out is not None:
        rows = [
            {
                "charge_point_id": o.charge_point_id,
                "kind": o.kind,
                "session_id": o.session_id,
                "state": o.state,
                "refusals": o.refusals,
                "retry_at": None if o.retry_at is None else o.retry_at.isoformat(),
            }
            for o in found
        ]
        write_rows(json_out, rows)
        return
    table = Table("charger", "kind", "session", "state", "refusals", "retry at", title="commands owed")
    for o in found:
        retry = "-" if o.retry_at is None else f"{o.retry_at:%Y-%m-%d %H:%M:%S}"
        table.add_row(o.charge_point_id, o.kind, str(o.session_id), o.state, str(o.refusals), retry)
    console.print(table if found else "no commands owed")
