"""`serve --log-format json`: every log line, uvicorn's included, is one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chargeshare.cli.log_format import JsonLines


def test_a_record_is_one_json_object_with_its_traceback() -> None:
    import logging

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x.y", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    line = JsonLines().format(record)
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("error", "x.y", "failed here")
    assert "ValueError: boom" in entry["exception"] and entry["time"].endswith("+00:00")


@pytest.mark.slow
def test_serve_writes_json_lines(tmp_path: Path) -> None:
    env = {**os.environ, "CHARGESHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'cs.db'}"}
    env.pop("CHARGESHARE_REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "chargeshare", "serve", "--port", "0", "--log-format", "json"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(60, server.kill)  # bounded: reading ends when the server is gone
    watchdog.start()
    try:
        assert server.stderr is not None
        entries = []
        for line in server.stderr:
            if line.startswith("{"):
                entries.append(json.loads(line))
                if "startup complete" in entries[-1]["message"]:
                    break
        assert entries and entries[-1]["logger"] == "uvicorn.error"
        assert {"time", "level", "logger", "message"} <= set(entries[-1])
    finally:
        watchdog.cancel()
        server.terminate()
        server.wait(30)
