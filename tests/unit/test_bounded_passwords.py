"""The password hashing gate: `workers` hashes at once, `queue` more waiting, the next refused at once
with Busy; once the running ones finish, the waiting ones run and new work is taken again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from chargeshare.bootstrap import Config, ConfigError
from chargeshare.domain.errors import Busy
from chargeshare.services.passwords import BoundedPasswords, password_hasher

SAFETY_S = 10.0  # only a broken gate ever waits this long: the tests wait for conditions


class HeldHasher:
    """Every call waits until `release` is set; counts the calls running at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.changed = threading.Condition()
        self.running = 0
        self.most = 0
        self.calls = 0

    def _held(self, result: Callable[[], str]) -> str:
        with self.changed:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
            self.changed.notify_all()
        try:
            assert self.release.wait(SAFETY_S), "the test never released the hasher"
            return result()
        finally:
            with self.changed:
                self.running -= 1
                self.changed.notify_all()

    def hash(self, password: str) -> str:
        return self._held(lambda: "hashed:" + password)

    def matches(self, hashed: str, password: str) -> bool:
        return self._held(lambda: "yes" if hashed == "hashed:" + password else "no") == "yes"

    def wait_running(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.running == n, SAFETY_S), f"{n} never ran at once"


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SAFETY_S
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.001)


def test_a_full_gate_refuses_at_once_and_takes_work_again_once_released() -> None:
    inner = HeldHasher()
    gate = BoundedPasswords(inner, workers=2, queue=1, retry_after_s=3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        running: list[Future[object]] = [
            pool.submit(gate.hash, "a"),
            pool.submit(gate.matches, "hashed:b", "b"),
        ]
        inner.wait_running(2)
        waiting: Future[object] = pool.submit(gate.hash, "c")
        until(lambda: gate.admitted == 3, "the third call to wait for a turn")
        assert inner.running == 2  # it waits: the pool is full

        # Past workers + queue: refused without waiting for the held calls (in a thread, so a gate
        # that waited instead would fail the test rather than hang it).
        refused: list[Future[object]] = [
            pool.submit(gate.hash, "d"),
            pool.submit(gate.matches, "hashed:e", "e"),
        ]
        for f in refused:
            with pytest.raises(Busy) as busy:
                f.result(timeout=SAFETY_S)
            assert busy.value.retry_after_s == 3 and busy.value.code == "busy"
        assert inner.calls == 2 and gate.admitted == 3

        inner.release.set()
        assert [f.result(timeout=SAFETY_S) for f in [*running, waiting]] == ["hashed:a", True, "hashed:c"]
    assert inner.most == 2 and inner.calls == 3
    assert gate.admitted == 0
    assert gate.hash("f") == "hashed:f" and not gate.matches("hashed:f", "g")


def test_a_refused_or_failing_call_gives_its_place_back() -> None:
    class Failing(HeldHasher):
        def hash(self, password: str) -> str:
            raise RuntimeError("broken hasher")

    inner = Failing()
    inner.release.set()
    gate = BoundedPasswords(inner, workers=1, queue=0)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            gate.hash("x")
    assert gate.admitted == 0
    assert gate.matches("hashed:x", "x")


def test_the_real_hashes_pass_through_the_gate() -> None:
    gate = BoundedPasswords(password_hasher("fast"), workers=1, queue=0)
    stored = gate.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert gate.matches(stored, "correct horse battery")
    assert not gate.matches(stored, "wrong horse battery")
    assert not gate.matches("not a hash", "correct horse battery")


def test_the_gate_size_is_configured_and_checked() -> None:
    config = Config.from_env({"CHARGESHARE_HASH_WORKERS": "3", "CHARGESHARE_HASH_QUEUE": "0"})
    assert (config.hash_workers, config.hash_queue) == (3, 0)
    defaults = Config.from_env({})
    assert 1 <= defaults.hash_workers <= 4 and defaults.hash_queue > 0
    for env in (
        {"CHARGESHARE_HASH_WORKERS": "0"},
        {"CHARGESHARE_HASH_QUEUE": "-1"},
        {"CHARGESHARE_HASH_WORKERS": "two"},
    ):
        with pytest.raises(ConfigError, match=next(iter(env))):
            Config.from_env(env)
    with pytest.raises(ValueError):
        BoundedPasswords(password_hasher("fast"), workers=0, queue=1)
