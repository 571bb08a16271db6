"""`chargeshare accounts`: operator accounts and hosts' KYC status, straight in the backend's database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import chatter, json_list_option, write_rows
from chargeshare.domain.accounts import KycStatus

app = typer.Typer(help="Accounts, admin accounts and hosts' KYC status.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.command("add-admin")
def add_admin(
    email: Annotated[str, typer.Argument(help="The operator's email.")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="10 to 128 characters."),
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Create an admin account (admins are never made through the API)."""
    with open_app(database_url) as a:
        account = a.auth.add_admin(email, password)
    console.print(f"admin account {account.account_id} for {account.email}")


@app.command("kyc")
def kyc(
    host_id: Annotated[int, typer.Argument(help="The host's id.")],
    status: Annotated[KycStatus, typer.Argument(help="The outcome of the host's identity checks.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Record a host's KYC status; only verified hosts are paid out."""
    with open_app(database_url) as a:
        host = a.hosting.set_kyc(host_id, status)
    console.print(f"host {host.host_id} ({host.name}): KYC {host.kyc_status}")


@app.command("list")
def list_accounts(
    role: Annotated[str | None, typer.Option(help="Only this role: driver, host or admin.")] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Every account with its role; hosts with their host id (what `accounts kyc` takes) and KYC."""
    if role not in (None, "driver", "host", "admin"):
        raise typer.BadParameter(f"{role!r}: choose driver, host or admin", param_hint="--role")
    with open_app(database_url) as a, a.store.reading() as tx:
        accounts = [x for x in tx.accounts.all() if role in (None, x.role)]
        hosts = {h.host_id: h for h in tx.accounts.hosts()}
    if json_out is not None:
        rows = []
        for x in accounts:
            host = None if x.host_id is None else hosts.get(x.host_id)
            rows.append(
                {"account_id": x.account_id, "email": x.email, "role": x.role, "host_id": x.host_id}
                | {"host_name": None if host is None else host.name, "driver_id": x.driver_id}
                | {"kyc_status": None if host is None else str(host.kyc_status)}
            )
        write_rows(json_out, rows)
        return
    table = Table("account", "email", "role", "host id", "host", "KYC", "driver id")
    for x in accounts:
        host = None if x.host_id is None else hosts.get(x.host_id)
        table.add_row(
            str(x.account_id),
            x.email,
            x.role,
            "" if x.host_id is None else str(x.host_id),
            "" if host is None else host.name,
            "" if host is None else host.kyc_status,
            "" if x.driver_id is None else str(x.driver_id),
        )
    console.print(table)
    chatter(console).print(f"{len(accounts)} accounts")
