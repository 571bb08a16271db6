"""The simulated apps' HTTP over a backend that crashes: what is sent again and what is given up."""

from __future__ import annotations

import httpx
import pytest

from simulators.http_retry import RequestLost, RetryWhileAway


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
    transport = RetryWhileAway(5.0, inner)
    with pytest.raises(RequestLost):
        await send(transport, "POST", {})
    assert (inner.seen, transport.lost) == (1, 1)


async def test_a_post_under_an_idempotency_key_is_sent_again_after_a_lost_answer() -> None:
    inner = DiesOnce(LOST_ANSWER)
    transport = RetryWhileAway(5.0, inner)
    answer = await send(transport, "POST", {"Idempotency-Key": "attempt-1"})
    assert (answer.status_code, inner.seen, transport.retried, transport.lost) == (201, 2, 1, 0)


async def test_a_post_that_never_connected_is_sent_again() -> None:
    inner = DiesOnce(httpx.ConnectError("connection refused"))
    transport = RetryWhileAway(5.0, inner)
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
    assert (await send(RetryWhileAway(5.0, keyed), "POST", {"Idempotency-Key": "a-1"})).status_code == 201
    plain = BalancerLost()
    with pytest.raises(RequestLost):
        await send(RetryWhileAway(5.0, plain), "POST", {})
    assert (keyed.seen, plain.seen) == (2, 1)
