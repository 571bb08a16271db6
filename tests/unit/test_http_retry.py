"""The simulated apps' HTTP while backend processes crash and restart (simulators.http_retry): what
never reached a backend goes again, what may have is lost, and patience is counted in real time the
simulation's clock went on, not in the time it stood still for a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from chargeshare.services.clock import ScaledClock
from simulators.http_retry import RequestLost, RetryWhileAway
from tests.fake_monotonic import FakeMonotonic

START = datetime(2026, 6, 1, 8, tzinfo=UTC)


class Away(httpx.AsyncBaseTransport):
    """Refuses `refusals` connections, `meanwhile` passing time before each refusal, then answers."""

    def __init__(self, refusals: int, meanwhile: Callable[[], None]) -> None:
        self.refusals, self.meanwhile = refusals, meanwhile
        self.tries = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.tries += 1
        if self.tries <= self.refusals:
            self.meanwhile()
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"ok": True})


async def _post(transport: RetryWhileAway) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport, base_url="http://backend") as http:
        return await http.post("/bookings", json={})


async def test_a_restart_that_holds_time_does_not_use_up_the_apps_patience(real: FakeMonotonic) -> None:
    # Ten refusals ten real seconds apart, all while the clock is held (nothing keeps it up): the
    # backend is restarting on a loaded machine; the app's 60 s of patience have not begun to run.
    clock = ScaledClock(START, 100, monotonic=real)
    clock.keep_up(0.1)

    def held_for_ten_seconds() -> None:
        real.t += 10

    away = Away(10, held_for_ten_seconds)
    transport = RetryWhileAway(60, away, clock=clock, monotonic=real)
    assert (await _post(transport)).status_code == 200
    assert transport.retried == 10 and transport.lost == 0


async def test_an_app_gives_up_when_time_went_on_and_no_backend_came_back(real: FakeMonotonic) -> None:
    clock = ScaledClock(START, 100, monotonic=real)
    clock.keep_up(0.1)

    def ten_seconds_of_time_going_on() -> None:
        for _ in range(200):  # the simulation's loop keeps its clock up all along
            real.t += 0.05
            clock.keep_up(0.1)

    away = Away(10, ten_seconds_of_time_going_on)
    transport = RetryWhileAway(60, away, clock=clock, monotonic=real)
    with pytest.raises(RequestLost, match="no backend came back"):
        await _post(transport)
    assert away.tries == 7
