"""The README's quick start and CI must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_the_two_quick_start_commands() -> None:
    commands = quick_start_commands()
    assert commands[0] == "pip install -e . && chargeshare simulate"
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = quick_start_commands()[1].replace("pip install", "python -m pip install -q")
    assert test_command in (ROOT / ".ci" / "run").read_text()


def settings_table() -> set[str]:
    """The names in the first column of the README's settings table."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| Setting | Default | Meaning |", 1)[1].split("\n\n", 1)[0]
    firsts = [row.split("|")[1] for row in table.splitlines() if row.startswith("| ")]
    return {name for first in firsts for name in re.findall(r"`(CHARGESHARE_[A-Z0-9_]+)`", first)}


def variables_read() -> set[str]:
    """Every CHARGESHARE_ name the shipped code mentions: what it reads, or sets for what it starts."""
    sources = [ROOT / "cli.py", *(ROOT / "chargeshare").rglob("*.py"), *(ROOT / "simulators").rglob("*.py")]
    return {name for path in sources for name in re.findall(r"\bCHARGESHARE_[A-Z0-9_]+\b", path.read_text())}


def test_the_settings_table_lists_every_environment_variable() -> None:
    read, listed = variables_read(), settings_table()
    assert {"CHARGESHARE_DATABASE_URL", "CHARGESHARE_SIM_CLOCK"} <= read  # the search finds them
    assert read - listed == set(), "read by the code, missing from the README's settings table"
    assert listed - read == set(), "in the README's settings table, read by nothing"


def test_the_quick_subset_and_every_exit_code_are_documented() -> None:
    from chargeshare.cli.errors import EXIT_CODES

    assert 'python -m pytest -m "not slow"' in quick_start_commands()
    text = (ROOT / "README.md").read_text()
    codes = text.split("| Code | Meaning |", 1)[1].split("\n\n", 1)[0]
    assert [int(row.split("|")[1]) for row in codes.splitlines()[2:]] == [c for c, _ in EXIT_CODES]
