"""Process settings for a long-running server (`chargeshare serve`, and `bench ocpp`'s "ours").

Thousands of connected chargers keep a large, long-lived heap. CPython's default collector scans the
whole of it now and then (most of a second with thousands of chargers connected), and the
event loop stands still meanwhile: every charger's acknowledgement waits. Two settings fix the cause:

- everything alive once the server is built (modules, the app, caches) is frozen out of the
  collector's sight: it lives as long as the process anyway;
- young collections run after 50,000 new container objects (CPython's default is 700), so the
  objects of calls in flight (thousands at once under load) are mostly gone before a collection
  looks at them, instead of surviving into the old generation and triggering full collections.
  Garbage in reference cycles is still collected, a little later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_gc_for_serving() -> None:
    """Call once, after the app is built and before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
