"""A server told to stop (SIGTERM: a deploy, a restart, a scale-in) hands its chargers over: their
links close with 1012 (service restart) and they reconnect elsewhere, so they are not marked offline
and their hosts are not told they are. A charger that leaves a running server still is."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import pytest
import websockets

from chargeshare.domain.charger import ChargerStatus
from chargeshare.services.charging import CHARGER_OFFLINE
from tests.crash.harness import ANSWER_WITHIN_S, Crash, World, charger, poll

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def status_and_offline_notices(world: World) -> tuple[ChargerStatus, int]:
    with world.app.store.reading() as tx:
        status = tx.chargers.get(World.CP_ID).status
        notices = sum(1 for n in tx.notifications.all() if n["kind"] == CHARGER_OFFLINE)
    return status, notices


async def test_a_stopping_server_hands_its_chargers_over_and_a_leaving_charger_goes_offline(
    crash: Crash,
) -> None:
    server = crash.server
    server.start()
    world = crash.world
    await server.healthy()
    async with charger(server, World.CP_ID) as cp:
        assert status_and_offline_notices(world) == (ChargerStatus.ONLINE, 0)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(cp.reader, ANSWER_WITHIN_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart

        async def exited() -> int | None:
            assert server.proc is not None
            return server.proc.poll()

        # uvicorn shuts down gracefully, then re-raises the signal it caught, as processes should.
        assert await poll(exited, "the server to exit", ANSWER_WITHIN_S) in (0, -signal.SIGTERM)
    assert status_and_offline_notices(world) == (ChargerStatus.ONLINE, 0)

    # The same charger leaving a server that keeps running is offline, and its host told so.
    await server.restart()
    async with charger(server, World.CP_ID) as cp:
        await cp.cp._connection.close()
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(cp.reader, ANSWER_WITHIN_S)

    async def offline() -> tuple[ChargerStatus, int] | None:
        seen = status_and_offline_notices(world)
        return seen if seen[0] is ChargerStatus.OFFLINE else None

    assert await poll(offline, "the charger to be marked offline", ANSWER_WITHIN_S) == (
        ChargerStatus.OFFLINE,
        1,
    )
