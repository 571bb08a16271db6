"""Exit codes, and the one line a failed command prints instead of a traceback.

Commands raise `Problem` for what they find themselves; failures from the libraries underneath
(databases, Redis, sockets, configuration) are recognised here by type, so commands need no
try/except of their own. What is not recognised is a bug, and keeps its traceback.
"""

from __future__ import annotations

import errno
import re
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

OK = 0
FAILED = 1  # an invariant, an expectation or a verdict failed
USAGE = 2  # usage or configuration
ENVIRONMENT = 3  # an environment problem: a service unreachable, a port in use, PostGIS missing
INTERRUPTED = 130  # Ctrl-C (or SIGTERM): 128 + SIGINT, as shells report it

EXIT_CODES = (
    (OK, "ok"),
    (FAILED, "an invariant, expectation or verdict failed"),
    (USAGE, "usage or configuration"),
    (ENVIRONMENT, "an environment problem (a service unreachable, a port in use, PostGIS missing)"),
    (INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"),
)

T = TypeVar("T")


class Problem(Exception):
    """A failure explained in one line, and the exit code it ends the command with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def describe(exc: BaseException) -> Problem | None:
    """The one line and exit code for `exc`, or None when it is not a failure we know (a bug)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Problem("interrupted", INTERRUPTED)
    for explain in (_configuration, _database, _redis, _network):
        problem = explain(exc)
        if problem is not None:
            return problem
    return None


@contextmanager
def doing(what: str) -> Iterator[None]:
    """Name what was being done in the one line of a failure known here: "what: message"."""
    try:
        yield
    except Exception as exc:
        problem = describe(exc)
        if problem is None:
            raise
        raise Problem(f"{what}: {problem.message}", problem.code) from exc


def _is(exc: BaseException, module: str, name: str) -> bool:
    """isinstance against a library's class, without importing the library just to ask."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


POSTGRES_URL_HINT = "use postgresql+psycopg://USER@HOST:PORT/DATABASE"


def _configuration(exc: BaseException) -> Problem | None:
    if _is(exc, "chargeshare.bootstrap", "ConfigError"):
        return Problem(str(exc), USAGE)
    if _is(exc, "sqlalchemy.exc", "NoSuchModuleError"):
        if "sqlalchemy.dialects:postgres" in str(exc) and "postgresql" not in str(exc):
            return Problem(
                f"the database URL scheme postgres:// is not SQLAlchemy's: {POSTGRES_URL_HINT}", USAGE
            )
        return Problem(f"the database URL names no known database: {_first_line(exc)}", USAGE)
    if _is(exc, "sqlalchemy.exc", "ArgumentError"):
        return Problem(f"invalid database URL: {_first_line(exc)}", USAGE)
    return None


_EXTENSION = re.compile(r'extension "(\w+)"')
_POSTGIS_TYPES = ('type "geometry" does not exist', 'type "geography" does not exist')


def _database(exc: BaseException) -> Problem | None:
    if _is(exc, "chargeshare.adapters.sql.migrate", "SchemaLocked"):
        return Problem(f"cannot use the database: {exc}", ENVIRONMENT)
    if not _is(exc, "sqlalchemy.exc", "DBAPIError"):
        return None
    # The driver's own message, without SQLAlchemy's echo of the statement and its parameters.
    orig = getattr(exc, "orig", None) or exc
    line = _first_line(orig)
    found = _EXTENSION.search(line)
    if found is not None or any(t in line for t in _POSTGIS_TYPES):
        name = "postgis" if found is None else found.group(1)
        fix = f"run CREATE EXTENSION {name}; in the database as a superuser"
        if name == "postgis":
            fix += " (the server needs PostGIS installed, e.g. Debian's postgresql-15-postgis-3)"
        return Problem(f"the database lacks the {name} extension ({line}): {fix}", ENVIRONMENT)
    unusable = _is(exc, "sqlalchemy.exc", "OperationalError") or _is(exc, "sqlalchemy.exc", "InterfaceError")
    if unusable or "permission denied" in line:
        return Problem(f"cannot use the database: {line}", ENVIRONMENT)
    return None  # a statement the database rejects is our bug: keep the traceback


def _redis(exc: BaseException) -> Problem | None:
    if _is(exc, "redis.exceptions", "ConnectionError") or _is(exc, "redis.exceptions", "TimeoutError"):
        return Problem(f"cannot reach Redis: {_first_line(exc)}", ENVIRONMENT)
    return None


def _network(exc: BaseException) -> Problem | None:
    if _is(exc, "simulators.backend_nodes", "BackendFailed"):
        return Problem(str(exc), ENVIRONMENT)  # what failed, then the log tail that says why
    if _is(exc, "httpx", "TransportError"):
        return Problem(f"cannot reach the server: {_first_line(exc)}", ENVIRONMENT)
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        return Problem(f"cannot listen: {exc.strerror or exc}", ENVIRONMENT)
    if isinstance(exc, ConnectionError) or _is(exc, "socket", "gaierror"):
        return Problem(f"cannot connect: {_first_line(exc)}", ENVIRONMENT)
    return None


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, without the "Task exception was never retrieved" tracebacks of every task a
    Ctrl-C stops mid-conversation (their peers hang up as the run unwinds). A SIGTERM (a CI job
    cancelled, a supervisor) stops it as Ctrl-C does, every clean-up run: Python's default would end
    the process on the spot, leaving a run's temporary files behind."""
    import asyncio
    import signal

    interrupted = False
    terminated = False

    def terminate(task: asyncio.Task[T]) -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    async def watched() -> T:
        nonlocal interrupted
        loop = asyncio.get_running_loop()
        this = asyncio.current_task()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if interrupted or (this is not None and this.cancelling()):
                return
            loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
        if this is not None:
            # Only in the main thread (elsewhere signals are not ours to take), and not on Windows.
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGTERM, terminate, this)
        try:
            return await main
        except asyncio.CancelledError:
            interrupted = True
            raise

    try:
        return asyncio.run(watched())
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
