"""Failures are one line, no traceback, and a documented exit code: 1 a failed check, 2 usage or
configuration, 3 an environment problem, 130 Ctrl-C."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeshare.cli import errors
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner
from tests.conftest import POSTGRES_URL, service_missing

runner = CliRunner()
CLI = [sys.executable, "-c", "from chargeshare.cli.app import main; main()"]
ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_exit_codes_are_in_the_help_and_the_readme() -> None:
    help_text = runner.invoke(app, ["--help"]).output
    readme = (ROOT / "README.md").read_text()
    for code, meaning in errors.EXIT_CODES:
        assert f"{code} {meaning}" in " ".join(help_text.replace("│", " ").split())
        assert f"| {code} |" in readme


def test_what_is_not_recognised_keeps_its_traceback() -> None:
    assert errors.describe(ValueError("a bug")) is None
    interrupted = errors.describe(KeyboardInterrupt())
    assert interrupted is not None and interrupted.code == errors.INTERRUPTED


def test_a_schema_lock_held_too_long_is_one_line_about_the_database() -> None:
    from chargeshare.adapters.sql.migrate import SchemaLocked

    problem = errors.describe(SchemaLocked("another process has held the schema lock for over 60 s"))
    assert problem is not None and problem.code == errors.ENVIRONMENT
    assert (
        problem.message == "cannot use the database: another process has held the schema lock for over 60 s"
    )


@pytest.mark.slow  # another process
def test_serve_with_redis_unreachable_is_one_line_and_exit_3() -> None:
    env = {"CHARGESHARE_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    result = cli("serve", "--port", "0", "--database-url", "sqlite://", env=env)
    assert result.returncode == errors.ENVIRONMENT, result.stderr
    assert "cannot reach Redis" in one_line(result.stderr)
    assert "backend on" not in result.stdout + result.stderr


@pytest.mark.slow  # another process
def test_serve_on_a_port_in_use_does_not_claim_to_have_started() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = cli("serve", "--port", port, "--database-url", "sqlite://")
    assert result.returncode == errors.ENVIRONMENT, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in one_line(result.stderr)
    assert "backend on" not in result.stdout + result.stderr


def test_a_postgres_scheme_url_gets_the_url_to_use_instead() -> None:
    url = "postgres://postgres@127.0.0.1:5432/chargeshare"
    result = runner.invoke(app, ["chargers", "list", "--database-url", url])
    assert result.exit_code == errors.USAGE
    assert "use postgresql+psycopg://" in one_line(result.output)


@pytest.fixture
def no_postgis_url() -> Iterator[str]:
    """A database whose owner may not create PostGIS. The local server has PostGIS installed, so a
    superuser would add it on the fly; a plain owner meets the same error a server without it gives."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    name = f"cs_test_nopostgis_{uuid.uuid4().hex[:8]}"
    password = secrets.token_hex(8)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"))
            conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    except Exception as exc:
        admin.dispose()
        service_missing("PostgreSQL", exc)
    try:
        url = base.set(database=name, username=name, password=password)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.mark.postgres
def test_a_database_without_postgis_names_the_fix_without_sql(no_postgis_url: str) -> None:
    listed = runner.invoke(app, ["chargers", "list", "--database-url", no_postgis_url])
    served = cli("serve", "--port", "0", "--log-level", "warning", "--database-url", no_postgis_url)
    for code, output in ((listed.exit_code, listed.output), (served.returncode, served.stderr)):
        assert code == errors.ENVIRONMENT, output
        line = one_line(output)
        assert "CREATE EXTENSION postgis" in line and "postgresql-15-postgis-3" in line
        assert "[SQL:" not in line and "sqlalche.me" not in line
    assert "backend on" not in served.stderr


def test_simulate_says_it_ignores_the_redis_url() -> None:
    env = {"CHARGESHARE_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    args = ["simulate", "--engine", "des", "--chargers", "2", "--drivers", "2", "--duration", "30"]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "CHARGESHARE_REDIS_URL ignored" in result.output


@pytest.mark.slow  # another process
def test_ctrl_c_during_simulate_stops_cleanly_with_a_partial_report(tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    args = ["simulate", "--chargers", "4", "--drivers", "6", "--duration", "600", "--speed", "60"]
    run = subprocess.Popen(
        [*CLI, *args, "--json", str(report)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(120, run.kill)  # a run that never shows progress fails, not hangs
    watchdog.start()
    try:
        assert run.stdout is not None
        seen = []
        for line in run.stdout:  # off a terminal, progress is a plain "sim ..." line
            seen.append(line)
            if line.startswith("sim ") and "online" in line:
                break
        else:
            pytest.fail("simulate showed no progress:\n" + "".join(seen))
        run.send_signal(signal.SIGINT)
        rest, _ = run.communicate(timeout=60)
    finally:
        watchdog.cancel()
        run.kill()
    assert run.returncode == errors.INTERRUPTED, rest
    assert "Traceback" not in rest and "Task exception" not in rest
    *progress, last = [line for line in rest.splitlines() if line.strip()]
    assert all(line.startswith("sim ") for line in progress), rest
    assert last.startswith("interrupted at simulated minute"), rest
    assert f"partial report written to {report} (complete: false)" in last
    body = json.loads(report.read_text())
    assert body["complete"] is False and body["ok"] is False and body["invariants"] == []
    assert body["params"]["chargers"] == 4 and body["last_sample"]["chargers"] == 4
