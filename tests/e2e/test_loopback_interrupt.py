"""Ctrl-C in a process serving the backend on loopback (a live `simulate`) stops it at once, even with
a request held open: the in-process server must neither take the signal for itself nor wait without
limit for its connections to finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    from chargeshare.cli.errors import run_async
    from chargeshare.entrypoints.loopback import LoopbackServer

    async def never_answers(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await asyncio.Event().wait()  # a request the app is still working on

    async def main():
        async with LoopbackServer(never_answers) as server:
            async with httpx.AsyncClient(timeout=None) as http:
                request = asyncio.create_task(http.get(f"http://127.0.0.1:{server.port}/"))
                while not server.server.server_state.tasks:
                    await asyncio.sleep(0.01)
                print("held", flush=True)
                await request

    try:
        run_async(main())
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    """
)


@pytest.mark.slow  # another process
def test_ctrl_c_stops_a_loopback_server_holding_a_request_open() -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", PROGRAM],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert run.stdout is not None
        seen = []
        for line in run.stdout:
            seen.append(line)
            if line.strip() == "held":
                break
        else:
            pytest.fail("the request was never held:\n" + "".join(seen))
        run.send_signal(signal.SIGINT)
        # The server's graceful shutdown is bounded well inside this: past it, the stop hung.
        rest, _ = run.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("still running 30 s after Ctrl-C")
    finally:
        run.kill()
    assert run.returncode == 130, rest
    assert "interrupted" in rest, rest
