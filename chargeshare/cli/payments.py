"""`chargeshare payments`: the payments outbox of a running backend (status, reconcile, payouts)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from chargeshare.domain.money import format_gbp

app = typer.Typer(help="Payments outbox and host payouts of a running backend.", no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Server = Annotated[str, typer.Option(envvar="CHARGESHARE_SERVER", help="The backend's base URL.")]
DEFAULT_SERVER = "http://127.0.0.1:8180"


def _call(method: str, server: str, path: str, **kw: Any) -> Any:
    try:
        r = httpx.request(method, server.rstrip("/") + path, timeout=120, **kw)
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/] cannot reach the backend at {server}: {exc}")
        raise typer.Exit(2) from exc
    if r.status_code >= 400:
        err.print(f"[red]error:[/] {method} {path} answered {r.status_code}: {r.text[:300]}")
        raise typer.Exit(2)
    return r.json()


@app.command()
def status(
    server: Server = DEFAULT_SERVER,
    only: Annotated[str | None, typer.Option(help="pending, done or dead")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List payment steps (the dead-letter queue with --only dead)."""
    items = _call("GET", server, "/admin/payments", params={} if only is None else {"status": only})
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table("id", "booking", "step", "amount", "status", "attempts", "next attempt", "last error")
    for i in items:
        table.add_row(
            str(i["id"]),
            str(i["booking_id"]),
            i["step"],
            format_gbp(i["amount"]),
            i["status"],
            str(i["attempts"]),
            i["next_attempt_at"],
            i["last_error"] or "",
        )
    console.print(table)


@app.command()
def reconcile(server: Server = DEFAULT_SERVER) -> None:
    """Retry every dead letter and the pending backlog now (once the provider is back). Exit 1 if any
    step is still dead afterwards."""
    run = _call("POST", server, "/admin/payments/reconcile")
    left = run["dead_letters_left"]
    console.print(f"settled {run['done']}, still retrying {run['retried']}, dead letters left {left}")
    if left:
        raise typer.Exit(1)


@app.command()
def payout(server: Server = DEFAULT_SERVER) -> None:
    """Pay every host their payable balance."""
    paid = _call("POST", server, "/admin/payouts")
    for host, pence in paid.items():
        console.print(f"host {host}: {format_gbp(pence)}")
    console.print(f"{len(paid)} hosts paid, {format_gbp(sum(paid.values()))} in all")
