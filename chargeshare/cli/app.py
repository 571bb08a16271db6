"""The `chargeshare` command: one Typer sub-app per command group."""

from __future__ import annotations

import typer

from chargeshare import __version__
from chargeshare.cli import accounts, bench, chargers, db, payments, replay, scenario, serve, simulate
from chargeshare.cli import certify as certify_cli

app = typer.Typer(
    name="chargeshare",
    help="ChargeShare testbed: reference backend, virtual OCPP chargers, scripted drivers, invariants.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.command("simulate")(simulate.simulate)
app.command("replay")(replay.replay_command)
app.command("certify")(certify_cli.certify)
app.command("certify-csms")(certify_cli.certify_csms)
app.add_typer(bench.app, name="bench")
app.add_typer(scenario.app, name="scenario")
app.add_typer(payments.app, name="payments")
app.add_typer(chargers.app, name="chargers")
app.add_typer(accounts.app, name="accounts")
app.add_typer(db.app, name="db")


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
