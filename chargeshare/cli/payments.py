"""`chargeshare payments`: the payments outbox of a running backend (status, reconcile, payouts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.errors import ENVIRONMENT, Problem
from chargeshare.cli.options import json_list_option, output_option, write_rows
from chargeshare.domain.money import format_gbp

if TYPE_CHECKING:
    import httpx

app = typer.Typer(help="Payments outbox and host payouts of a running backend.", no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Server = Annotated[str, typer.Option(envvar="CHARGESHARE_SERVER", help="The backend's base URL.")]
Email = Annotated[
    str | None, typer.Option(envvar="CHARGESHARE_ADMIN_EMAIL", help="An admin account (see 'accounts').")
]
Password = Annotated[str | None, typer.Option(envvar="CHARGESHARE_ADMIN_PASSWORD", help="Its password.")]
Token = Annotated[
    str | None, typer.Option(envvar="CHARGESHARE_TOKEN", help="An admin access token, instead of logging in.")
]
DEFAULT_SERVER = "http://127.0.0.1:8180"
ResultJson = Annotated[
    Path | None,
    output_option("Write the backend's answer as JSON here instead of lines (-: to stdout).", "--json"),
]


@dataclass(frozen=True)
class Operator:
    server: str
    email: str | None
    password: str | None
    token: str | None


def _request(method: str, op: Operator, path: str, **kw: Any) -> httpx.Response:
    import httpx

    try:
        return httpx.request(method, op.server.rstrip("/") + path, timeout=120, **kw)
    except httpx.HTTPError as exc:
        raise Problem(f"cannot reach the backend at {op.server}: {exc}", ENVIRONMENT) from exc


def _token(op: Operator) -> str:
    if op.token:
        return op.token
    if not (op.email and op.password):
        err.print("[red]error:[/] give --token, or --email and --password of an admin account")
        raise typer.Exit(2)
    r = _request("POST", op, "/auth/login", json={"email": op.email, "password": op.password})
    if r.status_code != 200:
        err.print(f"[red]error:[/] login as {op.email} answered {r.status_code}: {r.text[:300]}")
        raise typer.Exit(2)
    return str(r.json()["access_token"])


def _call(method: str, op: Operator, path: str, **kw: Any) -> Any:
    r = _request(method, op, path, headers={"Authorization": f"Bearer {_token(op)}"}, **kw)
    if r.status_code >= 400:
        err.print(f"[red]error:[/] {method} {path} answered {r.status_code}: {r.text[:300]}")
        raise typer.Exit(2)
    return r.json()


@app.command()
def status(
    server: Server = DEFAULT_SERVER,
    email: Email = None,
    password: Password = None,
    token: Token = None,
    only: Annotated[
        str | None, typer.Option(help="Only steps in this status: pending, done or dead.")
    ] = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """List payment steps (the dead-letter queue with --only dead)."""
    op = Operator(server, email, password, token)
    items = _call("GET", op, "/admin/payments", params={} if only is None else {"status": only})
    if json_out is not None:
        write_rows(json_out, items)
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
def reconcile(
    server: Server = DEFAULT_SERVER,
    email: Email = None,
    password: Password = None,
    token: Token = None,
    json_out: ResultJson = None,
) -> None:
    """Retry every dead letter and the pending backlog now (once the provider is back). Exit 1 if any
    step is still dead afterwards."""
    run = _call("POST", Operator(server, email, password, token), "/admin/payments/reconcile")
    left = run["dead_letters_left"]
    if json_out is not None:
        write_rows(json_out, run)
    else:
        console.print(f"settled {run['done']}, still retrying {run['retried']}, dead letters left {left}")
    if left:
        raise typer.Exit(1)


@app.command()
def payout(
    server: Server = DEFAULT_SERVER,
    email: Email = None,
    password: Password = None,
    token: Token = None,
    json_out: ResultJson = None,
) -> None:
    """Pay every verified host their payable balance; hosts whose KYC is not verified are skipped."""
    run = _call("POST", Operator(server, email, password, token), "/admin/payouts")
    if json_out is not None:
        write_rows(json_out, run)
        return
    paid: dict[str, int] = run["paid"]
    for host, pence in paid.items():
        console.print(f"host {host}: {format_gbp(pence)}")
    for skipped in run["skipped"]:
        console.print(
            f"host {skipped['host_id']}: {format_gbp(skipped['amount'])} not paid: {skipped['reason']}"
        )
    console.print(
        f"{len(paid)} hosts paid, {format_gbp(sum(paid.values()))} in all; {len(run['skipped'])} skipped"
    )
