"""The simulated apps' HTTP when the backend is processes that crash and restart: what a mobile app
does about a server that is away.

A request that could not even connect (the process is down or restarting), or that HAProxy could
give to no process, never reached the backend: it waits and goes again. A GET whose answer was lost
goes again too, as does a request carrying an `Idempotency-Key` (the backend answers its copy as it
answered, or would have answered, the first). Anything else that may have reached a dying process is
`RequestLost`: the app cannot know whether it took effect, and says so rather than guess.
"""

from __future__ import annotations

import asyncio
import time

import httpx

RETRY_EVERY_S = 0.1  # real seconds between attempts while the backend is away
BALANCER_NO_SERVER = 503  # HAProxy: no process to give the request to
BALANCER_LOST = 502  # HAProxy: the process died with the request


class RequestLost(httpx.TransportError):
    """The request may or may not have reached a backend process that died with it."""


def _from_balancer(response: httpx.Response) -> bool:
    # The backend answers JSON, always; HAProxy's own error pages are HTML.
    return response.status_code in (BALANCER_NO_SERVER, BALANCER_LOST) and response.headers.get(
        "content-type", ""
    ).startswith("text/html")


class RetryWhileAway(httpx.AsyncBaseTransport):
    def __init__(self, give_up_after_s: float, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.give_up_after_s = give_up_after_s
        self.retried = 0
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.give_up_after_s
        safe = request.method in ("GET", "HEAD") or "Idempotency-Key" in request.headers
        while True:
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if time.monotonic() > deadline:
                    raise
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if not safe or time.monotonic() > deadline:
                    self.lost += 1
                    raise RequestLost(
                        f"{request.method} {request.url.path}: {exc!r}", request=request
                    ) from exc
            else:
                if not _from_balancer(response):
                    return response
                await response.aclose()
                if response.status_code == BALANCER_LOST and not safe:
                    self.lost += 1
                    raise RequestLost(
                        f"{request.method} {request.url.path}: the balancer lost it", request=request
                    )
                if time.monotonic() > deadline:
                    raise RequestLost(
                        f"{request.method} {request.url.path}: no backend came back", request=request
                    )
            self.retried += 1
            await asyncio.sleep(RETRY_EVERY_S)

    async def aclose(self) -> None:
        await self.inner.aclose()
