"""The simulated apps' HTTP when the backend is processes that crash and restart: what a mobile app
does about a server that is away.

A request that could not even connect (the process is down or restarting), or that HAProxy could
give to no process, never reached the backend: it waits and goes again. A GET whose answer was lost
goes again too, as does a request carrying an `Idempotency-Key` (the backend answers its copy as it
answered, or would have answered, the first). Anything else that may have reached a dying process is
`RequestLost`: the app cannot know whether it took effect, and says so rather than guess. An app
that waited its patience out gives up with `RequestLost` too, however the backend was away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from chargeshare.services.clock import ScaledClock

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
    """Gives up after `give_up_after_s` real seconds away, not counting those `clock` stood still:
    a restart holds simulated time for as long as it takes on a loaded machine, and an app must not
    give up for that, or a run's outcome would depend on the machine's load. Between attempts it
    pauses `retry_every_s` real seconds."""

    def __init__(
        self,
        give_up_after_s: float,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        clock: ScaledClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        retry_every_s: float = RETRY_EVERY_S,
    ) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.retry_every_s = retry_every_s
        self.give_up_after_s = give_up_after_s
        self.clock = clock
        self._monotonic = monotonic
        self.retried = 0
        self.lost = 0

    def _held_s(self) -> float:
        return 0.0 if self.clock is None else self.clock.held_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        began, held = self._monotonic(), self._held_s()

        def patience_out() -> bool:
            return self._monotonic() - began - (self._held_s() - held) > self.give_up_after_s

        safe = request.method in ("GET", "HEAD") or "Idempotency-Key" in request.headers
        while True:
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if patience_out():
                    raise RequestLost(
                        f"{request.method} {request.url.path}: no backend came back ({exc!r})",
                        request=request,
                    ) from exc
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if not safe or patience_out():
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
                if patience_out():
                    raise RequestLost(
                        f"{request.method} {request.url.path}: no backend came back", request=request
                    )
            self.retried += 1
            await asyncio.sleep(self.retry_every_s)

    async def aclose(self) -> None:
        await self.inner.aclose()
