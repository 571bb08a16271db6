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
