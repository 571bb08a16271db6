"""Account passwords: argon2id hashing, behind a gate that bounds how many hashes run and wait at once.

A standard-profile hash takes 64 MiB and a good part of a CPU. Request threads hashing as they please
let a flood of logins (right or wrong, known email or not) use a process's memory and every thread it
serves requests with. The gate lets `workers` hashes run and `queue` more wait for a turn; anything
past that is refused at once with `Busy`, which the API answers with 503 and Retry-After.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from chargeshare.domain.errors import Busy

DEFAULT_QUEUE = 16
MAX_DEFAULT_WORKERS = 4
BUSY_RETRY_AFTER_S = 1.0

T = TypeVar("T")


def default_workers() -> int:
    """One hash per CPU, at most a few: each holds 64 MiB while it runs."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


class PasswordHashing(Protocol):
    def hash(self, password: str) -> str:
        """A salted hash of `password`, to store."""
        ...

    def matches(self, hashed: str, password: str) -> bool:
        """Whether `password` is the one `hashed` was made from (False for a malformed hash)."""
        ...


class Argon2Passwords:
    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def matches(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False


def password_hasher(profile: str) -> Argon2Passwords:
    """`standard`: argon2-cffi's RFC 9106 low-memory profile. `fast`: a cheap one for tests and
    simulations, whose throw-away accounts must not spend seconds of CPU signing up."""
    if profile == "fast":
        return Argon2Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    if profile == "standard":
        return Argon2Passwords(PasswordHasher())
    raise ValueError(f"unknown password hash profile {profile!r}: standard or fast")


class BoundedPasswords:
    """At most `workers` hashes (or checks) at once and `queue` more waiting; past that, `Busy` at once.

    The caller's own thread does the work once it has a turn, so a waiting request holds its thread
    but no hashing memory: keep `workers + queue` well under the server's request threads."""

    def __init__(
        self,
        inner: PasswordHashing,
        *,
        workers: int,
        queue: int,
        retry_after_s: float = BUSY_RETRY_AFTER_S,
    ) -> None:
        if workers < 1:
            raise ValueError("password hashing needs at least 1 worker")
        if queue < 0:
            raise ValueError("the password hashing queue cannot be negative")
        self.inner, self.workers, self.queue, self.retry_after_s = inner, workers, queue, retry_after_s
        self._turns = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._admitted = 0  # running or waiting for a turn

    @property
    def admitted(self) -> int:
        """Hashes running or waiting now."""
        with self._lock:
            return self._admitted

    def hash(self, password: str) -> str:
        return self._bounded(self.inner.hash, password)

    def matches(self, hashed: str, password: str) -> bool:
        return self._bounded(lambda p: self.inner.matches(hashed, p), password)

    def _bounded(self, work: Callable[[str], T], password: str) -> T:
        with self._lock:
            if self._admitted >= self.workers + self.queue:
                raise Busy("too many passwords are being checked right now; try again", self.retry_after_s)
            self._admitted += 1
        try:
            with self._turns:
                return work(password)
        finally:
            with self._lock:
                self._admitted -= 1
