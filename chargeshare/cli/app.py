"""The `chargeshare` command: one Typer sub-app per command group.

Command modules import only typer, rich, the standard library and chargeshare.domain at the top, and
the rest inside the command, so that `--help` and `--version` load no web, database or simulator code.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from chargeshare import __version__
from chargeshare.cli import accounts, bench, chargers, db, errors, payments, replay, scenario, serve, simulate
from chargeshare.cli import certify as certify_cli


class Commands(TyperGroup):
    """Every command's failures end here: one line on stderr and a documented exit code."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's Context type lives in a private module
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):  # usage errors, exits: typer's own
            raise
        except (Exception, KeyboardInterrupt) as exc:
            problem = errors.describe(exc)
            if problem is None:
                raise
            prefix = "" if problem.code == errors.INTERRUPTED else "[red]error:[/] "
            Console(stderr=True, soft_wrap=True, highlight=False).print(prefix + escape(problem.message))
            raise typer.Exit(problem.code) from None


EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in errors.EXIT_CODES) + "."

app = typer.Typer(
    name="chargeshare",
    cls=Commands,
    help="ChargeShare testbed: reference backend, virtual OCPP chargers, scripted drivers, invariants.",
    epilog=EPILOG,
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
