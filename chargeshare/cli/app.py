"""The `chargeshare` command: one Typer sub-app per command group.

Command modules import only typer, rich, the standard library and chargeshare.domain at the top, and
the rest inside the command, so that `--help` and `--version` load no web, database or simulator code.
"""

from __future__ import annotations

from typing import Annotated

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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    pass  # only --version: the help text is the Typer's above


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
