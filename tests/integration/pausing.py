"""A store whose chosen thread stops inside its unit of work, right after one repository call,
until the test tells it to go on: how a race test holds one side at the point it attacks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, text


class PausesAfter:
    """The store, but the first `repository.method(...)` call of a unit of work run by a thread
    `thread()` says is the paused one returns only once `go` is set; `read` is set when it is reached."""

    def __init__(self, inner: Any, thread: Callable[[], bool], repository: str, method: str) -> None:
        self.inner, self.paused_thread = inner, thread
        self.repository, self.method = repository, method
        self.read, self.go = threading.Event(), threading.Event()
        self.reached = self.read  # as `PausesBeforeCommit` names it

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            if self.paused_thread() and not self.read.is_set():
                repository = getattr(tx, self.repository)
                call = getattr(repository, self.method)

                def call_then_wait(*args: Any, **kwargs: Any) -> Any:
                    found = call(*args, **kwargs)
                    if not self.read.is_set():
                        self.read.set()
                        assert self.go.wait(30), "never told to go on"
                    return found

                setattr(repository, self.method, call_then_wait)
            yield tx


class PausesBeforeCommit:
    """The store, but the first unit of work of a thread `thread()` says is the paused one, its
    work done, commits only once `go` is set (its row locks held meanwhile); `reached` is set then."""

    def __init__(self, inner: Any, thread: Callable[[], bool]) -> None:
        self.inner, self.paused_thread = inner, thread
        self.reached, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            yield tx
            if self.paused_thread() and not self.reached.is_set():
                self.reached.set()
                assert self.go.wait(30), "never told to go on"


def lock_waits(engine: Engine) -> int:
    """How many sessions of this PostgreSQL database wait on a lock now."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )
