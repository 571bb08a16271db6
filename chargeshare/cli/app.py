"""The `chargeshare` command: one Typer sub-app per command group.

Command modules import only typer, rich, the standard library and chargeshare.domain at the top, and
the rest inside the command, so that `--help` and `--version` load no web, database or simulator code.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.core import Command
from typer._click.exceptions import UsageError
from typer.core import TyperGroup, TyperOption

from chargeshare import __version__
from chargeshare.cli import (
    accounts,
    bench,
    ca,
    chargers,
    compare_pricing,
    db,
    dpi,
    errors,
    files,
    fleet,
    grid,
    grid_buyer,
    options,
    payments,
    replay,
    scenario,
    serve,
    simulate,
    tokens,
)
from chargeshare.cli import certify as certify_cli


class Commands(TyperGroup):
    """Every command's failures end here: one line on stderr and a documented exit code. Every
    command takes -q/--quiet and -v/--verbose, given here once rather than by each command."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for command in self.commands.values():
            _add_verbosity(command)
            _reflow_help(command)

    def invoke(self, ctx: Any) -> Any:  # Any: typer's Context type lives in a private module
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help text itself, not an error
                raise
            hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            Console(stderr=True, soft_wrap=True, highlight=False).print(
                "[red]error:[/] " + escape(exc.format_message()) + hint
            )
            raise typer.Exit(errors.USAGE) from None
        except (typer.TyperException, typer.Exit, typer.Abort):  # exits: typer's own
            raise
        except (Exception, KeyboardInterrupt) as exc:
            problem = errors.describe(exc)
            if problem is None:
                raise
            prefix = "" if problem.code == errors.INTERRUPTED else "[red]error:[/] "
            Console(stderr=True, soft_wrap=True, highlight=False).print(prefix + escape(problem.message))
            raise typer.Exit(problem.code) from None

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _untype_flags(command, ctx)
        return command


def _add_verbosity(command: Command) -> None:
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        for sub in subcommands.values():
            _add_verbosity(sub)
    elif not any(getattr(p, "name", None) == "quiet" for p in command.params):
        command.params.extend(options.verbosity_options())


def _reflow_help(command: Command) -> None:
    """Docstrings wrap at the source's width and help at the terminal's: Rich keeps a paragraph's
    single line breaks, so join them (a list item's continuation into its item) and let Rich wrap."""
    if command.help:
        command.help = reflow(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


def reflow(text: str) -> str:
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines: list[str] = []
        for line in paragraph.splitlines():
            item = line.strip()
            if lines and not item.startswith(("- ", "* ")):
                lines[-1] += " " + item
            else:
                lines.append(item)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _untype_flags(command: Command, ctx: Any) -> None:
    """A flag takes no value: Typer's help would still print a `<bool>` type beside it."""
    _plain_flags(command.get_params(ctx))  # --help too: the command keeps the one it makes here
    for sub in getattr(command, "commands", {}).values():
        _untype_flags(sub, ctx)


def _plain_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # what the help shows as the type; a flag's value is never typed
    return params


EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in errors.EXIT_CODES) + "."

app = typer.Typer(
    name="chargeshare",
    cls=Commands,
    help="ChargeShare testbed: reference backend, virtual OCPP chargers, scripted drivers, invariants.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
)
app.command("serve")(serve.serve)
app.command("simulate")(simulate.simulate)
app.command("compare-pricing")(compare_pricing.compare_pricing)
app.command("replay")(replay.replay_command)
app.command("certify")(certify_cli.certify)
app.command("certify-csms")(certify_cli.certify_csms)
app.add_typer(bench.app, name="bench")
app.add_typer(scenario.app, name="scenario")
app.add_typer(payments.app, name="payments")
app.add_typer(chargers.app, name="chargers")
app.add_typer(accounts.app, name="accounts")
app.add_typer(tokens.app, name="tokens")
app.add_typer(ca.app, name="ca")
app.add_typer(files.app, name="files")
app.add_typer(fleet.app, name="fleet")
app.add_typer(db.app, name="db")
app.add_typer(dpi.app, name="dpi")
app.add_typer(grid.app, name="grid")
app.add_typer(grid_buyer.app, name="grid-buyer")


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
