"""What every command shares: -q/--quiet and -v/--verbose with one meaning, shell completion, and a
run summary people read (tables, and why drivers found no charger)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from chargeshare.cli import options
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

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


def test_shell_completion_is_offered_and_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    helped = runner.invoke(app, ["--help"], env=WIDE)
    assert "--install-completion" in helped.output and "--show-completion" in helped.output
    # The shell is detected from the process's ancestors, which a CI job may not have: say it.
    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    shown = runner.invoke(app, ["--show-completion"])
    assert shown.exit_code == 0
    assert "complete -o default -F" in shown.output and "_COMPLETE=complete_bash" in shown.output


@pytest.mark.parametrize(
    ("words", "expected"),
    [("chargeshare scenario val", "validate"), ("chargeshare chargers state --js", "--json")],
)
def test_completion_completes_commands_and_options(words: str, expected: str) -> None:
    last = str(len(words.split()) - 1)  # the word being completed
    asked = {"_CHARGESHARE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": last}
    completed = runner.invoke(app, [], prog_name="chargeshare", env=asked)
    assert completed.exit_code == 0 and completed.output.split() == [expected]


def _des(*extra: str) -> Any:
    args = ["simulate", "--engine", "des", "--chargers", "1", "--drivers", "6", "--duration", "60"]
    return runner.invoke(app, [*args, "--seed", "3", *extra], env=WIDE)


def test_simulate_summary_is_tables_and_says_why_drivers_found_no_charger(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = _des("--json", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())["summary"]
    missed = summary["driver_outcomes"]["no_charger"]  # one charger, six drivers: most find none
    assert missed > 0 and sum(summary["no_charger_because"].values()) == missed
    assert "{" not in result.stdout  # no Python dict printed as a value
    for title in ("Summary", "Bookings by status", "Driver outcomes", "Invariants"):
        assert title in result.stdout
    row = next(line for line in result.stdout.splitlines() if "no charger" in line)
    assert f"│ {missed:>7} │" in row
    assert "the map showed no charger online and free" in result.stdout
    assert "all invariants hold" in result.stdout


def test_simulate_quiet_prints_the_verdict_only() -> None:
    result = _des("-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "all invariants hold"


def test_accounts_list_quiet_prints_the_rows_only(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    assert runner.invoke(app, ["db", "upgrade", *db]).exit_code == 0
    loud = runner.invoke(app, ["accounts", "list", *db], env=WIDE)
    quiet = runner.invoke(app, ["accounts", "list", "-q", *db], env=WIDE)
    assert loud.exit_code == quiet.exit_code == 0
    assert "0 accounts" in loud.stdout and "0 accounts" not in quiet.stdout
    assert "email" in quiet.stdout  # the table is the result
