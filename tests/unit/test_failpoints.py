"""Failpoints armed at a later hit (`name@N`): the spelling, and a process that passes the earlier
hits and dies at the Nth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargeshare.failpoints import EXIT_CODE, armed

ROOT = Path(__file__).resolve().parents[2]


def test_a_name_fires_at_its_first_hit_unless_a_later_one_is_given() -> None:
    assert armed("") == {}
    assert armed(" stop-committed , capture-called@2,") == {"stop-committed": 1, "capture-called": 2}


@pytest.mark.parametrize("text", ["capture-called@", "capture-called@0", "capture-called@two", "x@-1"])
def test_a_hit_that_is_not_a_whole_number_from_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="whole number from 1"):
        armed(text)


def run(armed_as: str, hits: int, *, file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A process hitting `capture-called` `hits` times, saying so before each; armed by the
    variable, or by `file` holding `armed_as`."""
    code = (
        "from chargeshare.failpoints import failpoint\n"
        f"for n in range(1, {hits} + 1):\n"
        "    print(n, flush=True)\n"
        "    failpoint('capture-called')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGESHARE_")}
    env["PYTHONPATH"] = str(ROOT)
    if file is None:
        env["CHARGESHARE_FAILPOINT"] = armed_as
    else:
        file.write_text(armed_as)
        env["CHARGESHARE_FAILPOINT_FILE"] = str(file)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_process_passes_the_earlier_hits_and_dies_at_the_nth() -> None:
    died = run("capture-called@3", 5)
    assert (died.returncode, died.stdout.split()) == (EXIT_CODE, ["1", "2", "3"])
    assert "failpoint capture-called@3: exiting" in died.stderr
    lived = run("capture-called@6", 5)  # never reached
    assert (lived.returncode, lived.stdout.split()) == (0, ["1", "2", "3", "4", "5"])


def test_a_file_arms_a_later_hit_as_the_variable_does(tmp_path: Path) -> None:
    died = run("release-called, capture-called@2", 5, file=tmp_path / "failpoints")
    assert (died.returncode, died.stdout.split()) == (EXIT_CODE, ["1", "2"])


def test_a_malformed_or_unknown_failpoint_stops_the_process_at_once() -> None:
    for text, said in [("capture-called@0", "whole number"), ("captured@2", "unknown failpoints: captured")]:
        refused = run(text, 1)
        assert refused.returncode == 1 and said in refused.stderr and refused.stdout == ""
