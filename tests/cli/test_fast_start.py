"""`chargeshare --help`, `--version` and every `chargeshare <command> --help` load no web, database,
payment, plotting or simulator code. Checked by the modules a fresh interpreter has imported
afterwards, not by timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chargeshare import __version__

# What made `--help` take seconds: none of it may be imported before a command runs.
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "redis",
    "fakeredis",
    "stripe",
    "simpy",
    "matplotlib",
    "websockets",
    "ocpp",
    "simulators",
    "chargeshare.adapters",
    "chargeshare.bootstrap",
    "chargeshare.services",
    "chargeshare.benchmarks",
    "chargeshare.certify",
)

# Runs in a fresh interpreter: the top-level --help and --version, then --help of every command and
# command group (found by walking the app, so new commands are covered), then lists what is loaded.
# The command tree is built once, as a process does, not once per main() (tests/cli_runner.py).
PROBE = """
import contextlib, functools, io, json, sys
import typer
typer.main.get_command = functools.cache(typer.main.get_command)
from chargeshare.cli.app import app, main

def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, [*path, name])

commands = [[*path, "--help"] for path in walk(typer.main.get_command(app), []) if path]
runs = []
for args in (["--help"], ["--version"], *commands):
    sys.argv = ["chargeshare", *args]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
    runs.append({"args": args, "code": code, "out": out.getvalue()})
heavy = sorted({h for m in sys.modules for h in HEAVY if m == h or m.startswith(h + ".")})
with open(RESULT, "w") as f:
    json.dump({"runs": runs, "heavy": heavy, "modules": len(sys.modules)}, f)
"""


def probe(tmp_path: Path) -> dict[str, object]:
    result = tmp_path / "probe.json"
    code = f"HEAVY = {HEAVY!r}\nRESULT = {str(result)!r}\n" + PROBE
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    loaded: dict[str, object] = json.loads(result.read_text())
    return loaded


@pytest.mark.slow  # a fresh interpreter
def test_help_version_and_every_command_help_load_nothing_heavy(tmp_path: Path) -> None:
    found = probe(tmp_path)
    assert found["heavy"] == [], f"imported by --help/--version: {found['heavy']}"
    runs = found["runs"]
    assert isinstance(runs, list)
    by_args = {" ".join(r["args"]): r for r in runs}
    assert by_args["--version"]["out"].strip() == __version__
    assert "Exit codes" in by_args["--help"]["out"]
    for name in ("serve", "simulate", "replay", "certify", "scenario run", "bench geo", "db upgrade"):
        assert f"{name} --help" in by_args, f"the walk missed {name}"
    for r in runs:
        assert r["code"] == 0, r
        assert r["args"] == ["--version"] or "Usage:" in r["out"], r


def test_defaults_repeated_for_a_light_import_match_their_sources() -> None:
    from chargeshare.benchmarks.databases import DEFAULT_POSTGRES_ADMIN_URL
    from chargeshare.benchmarks.ocpp_cluster import DEFAULT_REDIS_URL as DEFAULT_OCPP_REDIS_URL
    from chargeshare.benchmarks.race import DEFAULT_REDIS_URL
    from chargeshare.certify.context import Settings
    from chargeshare.certify.model import Profile
    from chargeshare.cli import bench, certify, simulate
    from simulators.fleet import CITIES

    assert tuple(CITIES) == simulate.CITIES
    assert tuple(p.value for p in Profile) == certify.PROFILES
    assert Settings.id_tag == certify.DEFAULT_ID_TAG
    assert bench.DEFAULT_POSTGRES_ADMIN_URL == DEFAULT_POSTGRES_ADMIN_URL
    assert bench.DEFAULT_REDIS_URL == DEFAULT_REDIS_URL
    assert bench.DEFAULT_OCPP_REDIS_URL == DEFAULT_OCPP_REDIS_URL
