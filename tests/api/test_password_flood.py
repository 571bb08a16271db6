"""Password hashing is bounded: a flood of logins and sign-ups beyond the hashing gate's workers and
queue is answered 503 with Retry-After at once, never more than `workers` argon2 calls run together,
and /health still answers meanwhile. Sign-up is limited per address (429), unless lifted.

argon2 itself is instrumented (its hash and verify count how many run at once and are held until the
test lets them go), so what is counted is the real work, whatever wraps it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import httpx
import pytest
from argon2 import PasswordHasher

from chargeshare.bootstrap import App, Config, build
from chargeshare.entrypoints.api import create_api
from chargeshare.services.clock import ManualClock
from chargeshare.services.rate_limits import ApiLimits
from tests import api_helpers as accounts
from tests.conftest import T0
from tests.waiting import eventually

WORKERS, QUEUE = 2, 3
FLOOD = 48  # more requests than the server has threads for sync routes (40)
SIGN_UPS = 6  # of the flood; within the per-address sign-up limit
SAFETY_S = 20.0  # only a broken bound ever waits this long: the test waits for conditions

T = TypeVar("T")


class HeldArgon2:
    """Every argon2 hash and verify waits for `release`; counts how many run at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        original_hash, original_verify = PasswordHasher.hash, PasswordHasher.verify

        def hash_(hasher: PasswordHasher, password: str | bytes, **kw: Any) -> str:
            return self._held(lambda: original_hash(hasher, password, **kw))

        def verify(hasher: PasswordHasher, hashed: str | bytes, password: str | bytes) -> bool:
            return self._held(lambda: original_verify(hasher, hashed, password))

        monkeypatch.setattr(PasswordHasher, "hash", hash_)
        monkeypatch.setattr(PasswordHasher, "verify", verify)

    def _held(self, work: Callable[[], T]) -> T:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(SAFETY_S)
            return work()
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def gated() -> Iterator[App]:
    """A backend whose hashing gate is set through the environment, as an operator would."""
    env = {"CHARGESHARE_HASH_WORKERS": str(WORKERS), "CHARGESHARE_HASH_QUEUE": str(QUEUE)}
    app = build(Config.from_env(env, database_url="sqlite://", password_hash="fast"), clock=ManualClock(T0))
    yield app
    app.close()


def _client(app: App, address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_api(app), client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


async def test_a_login_flood_is_refused_past_the_gate_and_health_still_answers(
    gated: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = accounts.driver(gated, "Known")
    async with _client(gated) as http:
        # The first unknown email makes the decoy hash; made now, each request below hashes once.
        warm = await http.post("/auth/login", json={"email": "nobody@x.example", "password": "whatever pw"})
        assert warm.status_code == 401
        argon2 = HeldArgon2(monkeypatch)
        bodies = [
            (
                "/auth/register/driver",
                {"email": f"new{i}@x.example", "password": "long enough pw", "name": "N"},
            )
            for i in range(SIGN_UPS)
        ]
        bodies += [("/auth/login", {"email": known.email, "password": "wrong password"}) for _ in range(4)]
        bodies += [
            ("/auth/login", {"email": f"guess{i}@x.example", "password": "wrong password"})
            for i in range(FLOOD - len(bodies))
        ]
        tasks = [asyncio.create_task(http.post(path, json=body)) for path, body in bodies]
        try:
            refused = FLOOD - WORKERS - QUEUE
            await eventually(
                lambda: sum(t.done() for t in tasks) == refused and argon2.running == WORKERS,
                f"{refused} requests refused and {WORKERS} hashing",
                tries=1_000,
            )
            answers = [t.result() for t in tasks if t.done()]
            assert {a.status_code for a in answers} == {503}
            assert {a.json()["error"] for a in answers} == {"busy"}
            assert all(int(a.headers["Retry-After"]) >= 1 for a in answers)
            health = await asyncio.wait_for(http.get("/health"), SAFETY_S)
            assert health.status_code == 200
        finally:
            argon2.release.set()
            done = await asyncio.wait_for(asyncio.gather(*tasks), SAFETY_S)
    # The admitted ones did their work once let go: sign-ups made, wrong passwords refused.
    admitted = [
        (path, r.status_code) for (path, _), r in zip(bodies, done, strict=True) if r.status_code != 503
    ]
    assert len(admitted) == WORKERS + QUEUE
    assert all(code == (201 if path.endswith("/driver") else 401) for path, code in admitted)
    assert argon2.most == WORKERS


async def sign_up(http: httpx.AsyncClient, i: int, role: str = "driver") -> int:
    body = {"email": f"s{i}@x.example", "password": "long enough pw", "name": "S"}
    return (await http.post(f"/auth/register/{role}", json=body)).status_code


@pytest.mark.slow
async def test_sign_up_is_limited_per_address_unless_lifted(gated: App) -> None:
    limit, clock = gated.config.limits.signup_per_address, gated.clock
    assert limit is not None and isinstance(clock, ManualClock)
    async with _client(gated) as http, _client(gated, "198.51.100.9") as elsewhere:
        codes = [await sign_up(http, i, ("driver", "host")[i % 2]) for i in range(limit.burst)]
        assert codes == [201] * limit.burst  # drivers and hosts in one count
        over = await http.post(
            "/auth/register/driver",
            json={"email": "over@x.example", "password": "long enough pw", "name": "O"},
        )
        assert over.status_code == 429 and over.json()["error"] == "rate_limited"
        retry = int(over.headers["Retry-After"])
        assert retry >= 1
        assert await sign_up(http, 100, "host") == 429
        assert await sign_up(elsewhere, 101) == 201  # per address
        clock.advance(retry)
        assert await sign_up(http, 102) == 201

    lifted = build(
        Config(
            database_url="sqlite://",
            password_hash="fast",
            limits=replace(ApiLimits(), signup_per_address=None),
        )
    )
    try:
        async with _client(lifted) as http:
            assert [await sign_up(http, i) for i in range(limit.burst + 5)] == [201] * (limit.burst + 5)
    finally:
        lifted.close()
