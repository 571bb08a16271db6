"""deploy/: the compose file names every part of a cluster and wires them to one database, one Redis
and one token secret; HAProxy accepts its configuration and balances over the three backends."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import service_missing

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_three_backends_behind_haproxy_on_postgis_and_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"postgis", "redis", "migrate", "backend1", "backend2", "backend3", "haproxy"}
    backends = [services[f"backend{i}"] for i in (1, 2, 3)]
    for b in backends:
        env = b["environment"]
        assert env["CHARGESHARE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["CHARGESHARE_REDIS_URL"].startswith("redis://")
        assert "CHARGESHARE_JWT_SECRET" in env  # one secret: a token from one process works on all
        assert b["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert b["command"][:2] == ["chargeshare", "serve"]
    assert services["migrate"]["command"] == ["chargeshare", "db", "upgrade"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in services["haproxy"]["volumes"]


def test_haproxy_accepts_the_configuration_and_balances_over_the_three() -> None:
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert re.findall(r"^\s*server (backend\d) \1:8180$", text, re.M) == ["backend1", "backend2", "backend3"]
    binary = shutil.which("haproxy")
    if binary is None:
        service_missing("HAProxy", "not installed (apt-get install haproxy)")
    check = subprocess.run([binary, "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
