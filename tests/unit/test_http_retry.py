"""The simulated apps' HTTP while backend processes crash and restart (simulators.http_retry): what
never reached a backend goes again, and so does what carries an Idempotency-Key; what else may have
reached one is lost; and patience is counted in real time the simulation's clock went on, not in the
time it stood still for a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from chargeshare.services.clock import ScaledClock
from simulators.http_retry import RequestLost, RetryWhileAway
from tests.fake_monotonic import FakeMonotonic

START = datetime(2026, 6, 1, 8, tzinfo=UTC)
# No real pause between attempts: these tests count time on FakeMonotonic, or need only one retry.
NO_PAUSE = 0.0


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
    transport = RetryWhileAway(60, away, clock=clock, monotonic=real, retry_every_s=NO_PAUSE)
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
    transport = RetryWhileAway(60, away, clock=clock, monotonic=real, retry_every_s=NO_PAUSE)
    with pytest.raises(RequestLost, match="no backend came back"):
        await _post(transport)
    assert away.tries == 7


class DiesOnce(httpx.AsyncBaseTransport):
    """A backend process that dies with the first request it reads, then answers from its successor."""

    def __init__(self, failure: Exception) -> None:
        self.failure, self.seen = failure, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        if self.seen == 1:
            raise self.failure
        return httpx.Response(201, json={"id": 7}, headers={"content-type": "application/json"})


async def send(transport: RetryWhileAway, method: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport, base_url="http://backend") as http:
        return await http.request(method, "/bookings", headers=headers)


LOST_ANSWER = httpx.ReadError("connection reset by peer")


async def test_a_post_whose_answer_was_lost_is_not_sent_again() -> None:
    inner = DiesOnce(LOST_ANSWER)
    transport = RetryWhileAway(5.0, inner, retry_every_s=NO_PAUSE)
    with pytest.raises(RequestLost):
        await send(transport, "POST", {})
    assert (inner.seen, transport.lost) == (1, 1)


async def test_a_post_under_an_idempotency_key_is_sent_again_after_a_lost_answer() -> None:
    inner = DiesOnce(LOST_ANSWER)
    transport = RetryWhileAway(5.0, inner, retry_every_s=NO_PAUSE)
    answer = await send(transport, "POST", {"Idempotency-Key": "attempt-1"})
    assert (answer.status_code, inner.seen, transport.retried, transport.lost) == (201, 2, 1, 0)


async def test_a_post_that_never_connected_is_sent_again() -> None:
    inner = DiesOnce(httpx.ConnectError("connection refused"))
    transport = RetryWhileAway(5.0, inner, retry_every_s=NO_PAUSE)
    assert (await send(transport, "POST", {})).status_code == 201
    assert inner.seen == 2


class BalancerLost(httpx.AsyncBaseTransport):
    """HAProxy's own 502 page: the process died holding the request."""

    def __init__(self) -> None:
        self.seen = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        if self.seen == 1:
            return httpx.Response(
                502, text="<html>502 Bad Gateway</html>", headers={"content-type": "text/html"}
            )
        return httpx.Response(201, json={"id": 7}, headers={"content-type": "application/json"})


async def test_a_keyed_post_the_balancer_lost_is_sent_again_and_a_plain_one_is_given_up() -> None:
    keyed = BalancerLost()
    assert (
        await send(RetryWhileAway(5.0, keyed, retry_every_s=NO_PAUSE), "POST", {"Idempotency-Key": "a-1"})
    ).status_code == 201
    plain = BalancerLost()
    with pytest.raises(RequestLost):
        await send(RetryWhileAway(5.0, plain, retry_every_s=NO_PAUSE), "POST", {})
    assert (keyed.seen, plain.seen) == (2, 1)
