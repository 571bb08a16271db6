"""The cluster scenarios: three `chargeshare serve` processes behind HAProxy on one PostgreSQL and one
Redis, through the CLI as CI runs them. Each passes with every invariant holding; a file asking for
several processes is refused at once without a Redis URL to share."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeshare.cli.app import app
from simulators.scenario import discover, load
from tests.cli_runner import CliRunner
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = discover([ROOT / "scenarios" / "cluster"])
runner = CliRunner()


def test_the_cluster_scenarios_ship_and_ask_for_processes() -> None:
    assert {p.stem for p in CLUSTER} == {
        "cluster-happy-path",
        "cluster-node-crash",
        "cluster-reconnect-elsewhere",
    }
    for path in CLUSTER:
        assert load(path).params.processes == 3, path.stem


def test_without_redis_a_cluster_scenario_is_refused_before_anything_starts() -> None:
    result = runner.invoke(app, ["scenario", "run", str(CLUSTER[0])])
    assert result.exit_code == 2
    assert "give a Redis URL" in result.output


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("path", CLUSTER, ids=[p.stem for p in CLUSTER])
def test_the_cluster_scenario_passes(path: Path, postgres_url: str, redis_client: object) -> None:
    args = [
        *("scenario", "run", str(path)),
        *("--backend", "postgres", "--postgres-url", postgres_url),
        *("--redis-url", REDIS_URL),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
