"""Every command's help is complete: each command, argument and option says what it is, flags show no
type, and no help text loses words to Rich markup. One option name keeps one meaning across commands."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import typer
from rich.markup import render

from chargeshare.cli.app import app, reflow
from tests.cli_runner import CliRunner

runner = CliRunner()


def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, [*path, name])


COMMANDS = list(walk(typer.main.get_command(app), []))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {
        "simulate",
        "scenario run",
        "scenario list",
        "bench des",
        "chargers add",
        "payments status",
    } <= names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=lambda x: " ".join(x) if isinstance(x, list) else ""
)
def test_every_command_and_parameter_says_what_it_is(path: list[str], command: Any) -> None:
    assert (command.help or "").strip(), f"{path}: no help"
    for param in command.params:
        text = (getattr(param, "help", None) or "").strip()
        assert text, f"{' '.join(path)} {param.opts}: empty help"
        # Typer renders help as Rich markup: "[default: x]" in a help text would vanish.
        assert render(text).plain == text, f"{' '.join(path)} {param.opts}: markup eats {text!r}"


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=lambda x: " ".join(x) if isinstance(x, list) else ""
)
def test_help_shows_no_type_beside_flags(path: list[str], command: Any) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, " ".join(path)


def option_meanings() -> dict[str, set[str]]:
    """Each option name, and what its values are across commands: a path, a duration, a flag..."""
    kinds: dict[str, set[str]] = {}
    for _path, command in COMMANDS:
        for param in command.params:
            if param.param_type_name != "option":
                continue
            kind = "flag" if param.is_flag else str(param.metavar or param.type_descriptor.annotation)
            for name in param.opts:
                kinds.setdefault(name, set()).add(kind)
    return kinds


def test_report_duration_and_bind_options_have_one_kind_of_value() -> None:
    kinds = option_meanings()
    for name in ("--json", "--junit", "--html", "--plot"):
        assert kinds[name] == {"PATH"}, (name, kinds[name])
    for name in ("--duration", "--timeout", "--wait", "--stay", "--paced", "--slow-provider"):
        assert kinds[name] == {"DURATION"}, (name, kinds[name])
    assert "DURATION" not in kinds["--listen"]  # an address to bind, wherever it appears
    assert "--report" not in kinds and "--hours" not in kinds
    assert "flag" not in kinds["--profile"]  # certify's OCPP profiles; bench des profiles with --cprofile


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=lambda x: " ".join(x) if isinstance(x, list) else ""
)
def test_help_wraps_at_the_terminal_not_at_the_source(path: list[str], command: Any) -> None:
    # Rich keeps a paragraph's single line breaks: a docstring's own wrapping would show as ragged lines.
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    description = result.output.split("╭")[0]  # above the first panel: the command's own text
    lines = [line.strip() for line in description.splitlines()]
    for line, following in pairwise(lines):
        if line and following and not following.startswith(("- ", "* ")):
            # Ragged: the next line's first word would have fitted on this one (80 columns less margins).
            fits = len(line) + 1 + len(following.split()[0]) <= 78
            assert not fits, f"{' '.join(path)}: a line broken short mid-paragraph: {line!r}"


def test_reflow_keeps_paragraphs_and_list_items() -> None:
    text = "First line\n    wraps here.\n\n    - an item\n      continues\n    - another\n\n    Last."
    assert reflow(text) == "First line wraps here.\n\n- an item continues\n- another\n\nLast."
