"""`chargeshare files`: firmware images served to chargers, and the logs they upload."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.errors import USAGE, Problem
from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import json_list_option, write_rows

app = typer.Typer(
    help="Firmware images for UpdateFirmware, and upload locations for GetLog / GetDiagnostics.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)

BaseUrl = Annotated[
    str | None,
    typer.Option(
        envvar="CHARGESHARE_PUBLIC_URL",
        help="Where chargers reach `chargeshare serve` over HTTP, e.g. http://10.0.0.5:8000.",
    ),
]


def _url(base: str | None, token: str) -> str:
    return f"{base.rstrip('/')}/files/{token}" if base else f"/files/{token}"


def _said(base: str | None, f: Any) -> dict[str, Any]:
    return {**asdict(f), "url": _url(base, f.token)}


@app.command()
def publish(
    path: Annotated[Path, typer.Argument(help="The firmware image.", exists=True, dir_okay=False)],
    name: Annotated[str | None, typer.Option(help="Its name (default: the file's).")] = None,
    base_url: BaseUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Publish an image; prints the URL to give UpdateFirmware (`chargers command <id>
    UpdateFirmware --payload '{"location": URL, "retrieve_at": ...}'`)."""
    with open_app(database_url) as a:
        f = a.files.publish_firmware(name or path.name, path.read_bytes())
    console.print(_url(base_url, f.token))


@app.command()
def slot(
    charge_point_id: Annotated[str, typer.Argument(help="The charger whose log will be uploaded.")],
    base_url: BaseUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Make a location for one upload of the charger's log; prints the URL to give GetLog."""
    with open_app(database_url) as a:
        f = a.files.log_slot(charge_point_id)
    console.print(_url(base_url, f.token))


@app.command("list")
def list_(
    charge_point_id: Annotated[
        str | None, typer.Option("--charger", help="This charger's logs (default: the firmware images).")
    ] = None,
    base_url: BaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The firmware images, or a charger's upload locations and what arrived in each."""
    with open_app(database_url) as a:
        found = a.files.firmware() if charge_point_id is None else a.files.logs(charge_point_id)
    rows = [_said(base_url, f) for f in found]
    if json_out is not None:
        write_rows(json_out, rows)
        return
    table = Table("name", "size", "received", "url")
    for r in rows:
        size = "awaited" if r["size"] is None else str(r["size"])
        table.add_row(r["name"], size, str(r["received_at"] or ""), r["url"])
    console.print(table)


@app.command()
def get(
    token: Annotated[str, typer.Argument(help="The file's token (the last part of its URL).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Write what a charger uploaded (or a published image) to a file."""
    from chargeshare.domain.errors import NotFound

    with open_app(database_url) as a:
        try:
            f, content = a.files.uploaded(token.rsplit("/", 1)[-1])
        except NotFound as exc:
            raise Problem(str(exc), USAGE) from None
    output.write_bytes(content)
    console.print(f"{f.name}: {len(content)} bytes written to {output}")
