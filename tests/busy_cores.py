"""Keep every core busy while a test runs: live scenarios must pass on a loaded machine, not only on
an idle one. Each burner is a separate process, bounded in time even if this process dies."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# A burner spins until its deadline; the context manager kills it sooner.
BURN = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


@contextmanager
def busy_cores(count: int | None = None, *, limit_s: float = 300.0) -> Iterator[int]:
    """Start `count` (default: one per core) CPU burners at normal priority; yields how many."""
    n = count if count is not None else (os.cpu_count() or 2)
    burners = [
        subprocess.Popen([sys.executable, "-c", BURN.format(limit=limit_s)], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield n
    finally:
        for b in burners:
            b.kill()
        for b in burners:
            b.wait()
