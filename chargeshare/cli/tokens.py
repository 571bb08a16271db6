"""`chargeshare tokens`: drivers' id tokens (RFID cards and others) and chargers' walk-in setting,
straight in the backend's database."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import json_list_option, write_rows
from chargeshare.domain.tokens import TokenStatus, TokenType

app = typer.Typer(help="Drivers' id tokens and chargers' walk-in charging.", no_args_is_help=True)
console = Console(soft_wrap=True)


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint="--expires") from None
    if when.tzinfo is None:
        raise typer.BadParameter(f"{value!r} must say its time zone (e.g. Z)", param_hint="--expires")
    return when


def _row(view: Any) -> dict[str, Any]:
    k = view.token
    return {
        "token_id": k.token_id,
        "driver_id": k.driver_id,
        "value": k.value,
        "type": k.type.value,
        "status": k.status.value,
        "status_now": view.status_now.value,
        "expires_at": None if k.expires_at is None else k.expires_at.isoformat(),
        "group_id": k.group_id,
        "master_pass": k.master_pass,
    }


@app.command("add")
def add(
    driver_id: Annotated[int, typer.Argument(help="The driver's id (see `accounts list`).")],
    value: Annotated[str, typer.Argument(help="The token as the charger reads it (up to 20 characters).")],
    type_: Annotated[
        TokenType, typer.Option("--type", help="The OCPP 2.0.1 token type.")
    ] = TokenType.ISO14443,
    status: Annotated[TokenStatus, typer.Option(help="Its status.")] = TokenStatus.ACCEPTED,
    expires: Annotated[
        str | None,
        typer.Option(help="When it expires: an ISO 8601 time with its zone, e.g. 2027-01-31T00:00Z."),
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Its group id (1.6 parentIdTag, 2.0.1 groupIdToken).")
    ] = None,
    master_pass: Annotated[
        bool, typer.Option("--master-pass", help="It may stop any transaction, and never starts one.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Give a driver an id token."""
    with open_app(database_url) as a:
        view = a.tokens.add(
            driver_id,
            value,
            type_=type_,
            status=status,
            expires_at=_instant(expires),
            group_id=group,
            master_pass=master_pass,
        )
    console.print(
        f"token {view.token.token_id} {view.token.value!r} for driver {driver_id}: {view.status_now}"
    )


@app.command("block")
def block(
    value: Annotated[str, typer.Argument(help="The token (a card, or a driver's booking id tag).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Block a token: chargers are answered Blocked for it from now on."""
    with open_app(database_url) as a:
        view = a.tokens.block(value)
    console.print(f"token {view.token.value!r} of driver {view.token.driver_id}: {view.status_now}")


@app.command("list")
def list_tokens(
    driver: Annotated[int | None, typer.Option(help="Only this driver's tokens.")] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Every token with its status as set and as answered now (an Accepted token past expiry is
    Expired). Drivers' booking id tags are tokens too, Accepted, unless listed here otherwise."""
    with open_app(database_url) as a:
        views = a.tokens.list(driver)
    if json_out is not None:
        write_rows(json_out, [_row(v) for v in views])
        return
    table = Table("token", "driver", "value", "type", "status", "now", "expires", "group", "master pass")
    for v in views:
        r = _row(v)
        table.add_row(
            str(r["token_id"]),
            str(r["driver_id"]),
            r["value"],
            r["type"],
            r["status"],
            r["status_now"],
            r["expires_at"] or "",
            r["group_id"] or "",
            "yes" if r["master_pass"] else "",
        )
    console.print(table)
    console.print(f"{len(views)} tokens")


@app.command("walk-in")
def walk_in(
    charge_point_id: Annotated[str, typer.Argument(help="The charger's charge point id.")],
    price: Annotated[
        int | None,
        typer.Option(help="Let any valid token charge without a booking, at this many pence per kWh."),
    ] = None,
    off: Annotated[
        bool, typer.Option("--off", help="Bookings only (the default for every charger).")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Set or show a charger's walk-in charging (its cost is charged to the driver's card at the end)."""
    if price is not None and off:
        raise typer.BadParameter("give --price or --off, not both", param_hint="--off")
    with open_app(database_url) as a:
        with a.store.reading() as tx:
            charger_id = tx.chargers.get(charge_point_id).charger_id
        if price is not None or off:
            a.tokens.set_walk_in(charger_id, price)
        now = a.tokens.walk_in_price(charger_id)
    console.print(
        f"{charge_point_id}: bookings only" if now is None else f"{charge_point_id}: walk-in at {now}p/kWh"
    )
