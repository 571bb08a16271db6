"""Chargers' last-seen stamps, renewed in this process's memory and written behind.

Every frame is a sign of life, but writing `last_seen_at` on each one would be a row update per
MeterValues. The watchdog only needs it to within a fraction of a heartbeat interval (it waits
`offline_after_intervals` whole intervals), so a charger's stamp is renewed at most every quarter
interval, and the stamp this process last made is remembered (only this process talks to the
charger while it holds its link). A renewed stamp is written behind: the housekeeping sweep writes
all of them just before the watchdog reads them, and closing writes what is left. So the stored stamp
may lag by one sweep, or by one more if the process dies; both are far inside the watchdog's margin.

A charger's first stamp in a process is not made here: `ChargingService` writes it at once in a unit
of work, which must find the charger's row (that is how an unregistered charger is told apart) and
reads its status (a frame from a charger marked offline brings it back), then says so (`written`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import datetime, timedelta

from chargeshare.services.ports import Store

log = logging.getLogger(__name__)


class WriteBehindLastSeen:
    """The `LastSeen` port over the store."""

    def __init__(self, store: Store, every: timedelta) -> None:
        self.store = store
        self.every = every  # a stamp is renewed at most this often
        self._stamps: dict[str, datetime] = {}  # last_seen_at this process last stamped, per charger
        self._unwritten: dict[str, datetime] = {}  # renewed stamps not yet in the store, oldest first

    def record(self, cp_id: str, now: datetime) -> bool:
        """A frame from the charger at `now`. True when it is known here: its stamp is renewed in
        memory (if not renewed lately) and written behind. False when it is not: its first stamp
        is for the caller to write."""
        last = self._stamps.get(cp_id)
        if last is None:
            return False
        if not timedelta(0) <= now - last < self.every:
            self._stamps[cp_id] = self._unwritten[cp_id] = now
        return True

    def written(self, cp_id: str, at: datetime) -> None:
        """The store was just given `at` as the charger's last seen (its first stamp, or a status
        change that writes it): what was pending for it is older."""
        self._stamps[cp_id] = at
        self._unwritten.pop(cp_id, None)

    def forget(self, cp_id: str) -> None:
        """Stop trusting this memory of the charger: its next frame is written at once, and brings it
        back online if another process marked it offline meanwhile. A renewed stamp still pending is
        written all the same."""
        self._stamps.pop(cp_id, None)

    def drop(self, cp_id: str) -> datetime | None:
        """The charger goes offline, which writes its own last seen: nothing of it is kept. Returns
        its stamp here, if any (one not yet written included), for a caller to judge it by."""
        self._unwritten.pop(cp_id, None)
        return self._stamps.pop(cp_id, None)

    def pending(self) -> int:
        return len(self._unwritten)

    def flush(self, most: int | None = None) -> int:
        """Write the stamps not yet written (the `most` oldest, if given), in one unit of work; how
        many. A charger removed meanwhile is forgotten, and so is one another process marked offline
        (its next frame is written at once, which brings it back online) or stamped later (its link
        is elsewhere now: the older stamp from here is not written over it). If the write fails, they
        wait for the next (and the failure is raised)."""
        if most is None or most >= len(self._unwritten):
            batch, self._unwritten = self._unwritten, {}
        else:
            batch = dict(itertools.islice(self._unwritten.items(), most))
            for cp_id in batch:
                del self._unwritten[cp_id]
        if not batch:
            return 0
        try:
            with self.store.transaction() as tx:
                gone = tx.chargers.touch_many(batch)
        except BaseException:
            for cp_id, at in batch.items():
                self._unwritten.setdefault(cp_id, at)  # a newer stamp made meanwhile wins
            raise
        for cp_id in gone:
            self._stamps.pop(cp_id, None)
        return len(batch)

    async def flush_in_batches(self, per_batch: int) -> int:
        """Everything pending, `per_batch` stamps per unit of work, letting the event loop serve
        frames in between (a fleet's worth at once would hold every charger's acknowledgement)."""
        total = 0
        while True:
            written = self.flush(most=per_batch)
            total += written
            if written < per_batch:
                return total
            await asyncio.sleep(0)

    def close(self) -> None:
        """Write what is still pending: a clean stop loses no stamp. A failure is logged, not raised,
        so closing carries on."""
        try:
            self.flush()
        except Exception:
            log.exception("could not write the last-seen stamps still pending; closing anyway")
