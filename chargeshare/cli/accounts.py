"""`chargeshare accounts`: operator accounts and hosts' KYC status, straight in the backend's database."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.domain.accounts import KycStatus

app = typer.Typer(help="Admin accounts and hosts' KYC status.", no_args_is_help=True)
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
