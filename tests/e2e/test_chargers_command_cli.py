"""`chargeshare chargers command`: from a separate process's CLI, through Redis, to the server process
holding the charger's link, and its typed result printed as JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app as cli
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.services.clock import SystemClock
from tests.cli_runner import CliRunner
from tests.conftest import REDIS_URL, add_charger
from tests.e2e.ocpp_clients import Script, boot16, library_cp16

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

runner = CliRunner()


async def test_a_command_from_the_cli_reaches_the_charger_and_says_how_it_ended(
    tmp_path: Path, redis_client: object
) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    app = build(Config(database_url=url, redis_url=REDIS_URL), clock=SystemClock())
    try:
        add_charger(app, "CP1", online=False)
        async with LoopbackServer(create_api(app)) as server:
            script = Script(status={"ChangeAvailability": "Rejected"})
            async with library_cp16(f"ws://127.0.0.1:{server.port}/ocpp", "CP1", script) as cp:
                await boot16(cp)

                def run(*args: str, redis: str = REDIS_URL) -> tuple[int, str]:
                    env = {"CHARGESHARE_REDIS_URL": redis}
                    done = runner.invoke(cli, ["chargers", "command", *args, "--database-url", url], env=env)
                    return done.exit_code, done.output

                code, out = await asyncio.to_thread(run, "CP1", "Reset", "--payload", '{"hard": true}')
                assert code == 0, out
                assert json.loads(out) == {"result": "done", "status": "Accepted", "details": None}
                assert script.asked("Reset") == [{"type": "Hard"}]
                payload = '{"connector_no": 1, "operative": false}'
                code, out = await asyncio.to_thread(run, "CP1", "ChangeAvailability", "--payload", payload)
                assert code == 1 and json.loads(out)["result"] == "rejected"
                # A payload that makes the command but breaks the charger's schema: one line,
                # exit 2 as for any bad --payload, and nothing sent (not a timeout, no traceback).
                too_long = json.dumps({"key": {"name": "K" * 51}, "value": "1"})
                code, out = await asyncio.to_thread(
                    run, "CP1", "ChangeSetting", "--payload", too_long, "--timeout", "2"
                )
                assert code == 2, out
                assert out.count("\n") == 1 and "not sent: in OCPP 1.6" in out and "key" in out, out
                assert "Traceback" not in out and script.asked("ChangeConfiguration") == []
                code, out = await asyncio.to_thread(run, "CP1", "Explode")
                assert code == 2 and "no command 'Explode'" in out
                code, out = await asyncio.to_thread(run, "CP1", "Reset", redis="")
                assert code == 2 and "CHARGESHARE_REDIS_URL" in out
                code, out = await asyncio.to_thread(run, "NOPE", "Reset")
                assert code == 2 and "NOPE" in out
    finally:
        app.close()
