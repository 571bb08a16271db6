"""What every command shares: -q/--quiet and -v/--verbose with one meaning, and shell completion."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from chargeshare.cli import options
from chargeshare.cli.app import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def leaves(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
    for name, sub in sorted((subcommands or {}).items()):
        yield from leaves(sub, [*path, name])


LEAVES = list(leaves(typer.main.get_command(app), []))


@pytest.fixture
def root_level() -> Iterator[None]:
    """-v sets the root logger to debug: put it back for the tests that follow."""
    before = logging.getLogger().level
    yield
    logging.getLogger().setLevel(before)


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_takes_quiet_and_verbose_with_one_meaning(path: list[str], command: Any) -> None:
    by_name = {p.name: p for p in command.params}
    quiet, verbose = by_name["quiet"], by_name["verbose"]
    assert (quiet.opts, quiet.help) == (["--quiet", "-q"], options.QUIET_HELP), path
    assert (verbose.opts, verbose.help) == (["--verbose", "-v"], options.VERBOSE_HELP), path
    assert quiet.is_flag and verbose.is_flag


def test_quiet_and_verbose_together_are_refused() -> None:
    result = runner.invoke(app, ["scenario", "schema", "-q", "-v"])
    assert result.exit_code == 2
    assert "-q/--quiet and -v/--verbose contradict each other" in result.output


def test_verbose_logs_at_debug_and_the_next_command_is_not_verbose(root_level: None) -> None:
    assert runner.invoke(app, ["version", "-v"]).exit_code == 0
    assert options.verbose() and logging.getLogger().level == logging.DEBUG
    assert runner.invoke(app, ["version"]).exit_code == 0
    assert not options.verbose() and not options.quiet()


def test_shell_completion_is_offered_and_shown() -> None:
    helped = runner.invoke(app, ["--help"], env=WIDE)
    assert "--install-completion" in helped.output and "--show-completion" in helped.output
    shown = runner.invoke(app, ["--show-completion", "bash"])
    assert shown.exit_code == 0
    assert "complete -o default -F" in shown.output and "_COMPLETE=complete_bash" in shown.output


def test_accounts_list_quiet_prints_the_rows_only(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    assert runner.invoke(app, ["db", "upgrade", *db]).exit_code == 0
    loud = runner.invoke(app, ["accounts", "list", *db], env=WIDE)
    quiet = runner.invoke(app, ["accounts", "list", "-q", *db], env=WIDE)
    assert loud.exit_code == quiet.exit_code == 0
    assert "0 accounts" in loud.stdout and "0 accounts" not in quiet.stdout
    assert "email" in quiet.stdout  # the table is the result
