"""One simulated clock for several processes: a simulation that runs its backend as `serve`
processes publishes its scaled clock in a small memory-mapped file, and each backend reads "now"
from it (`CHARGESHARE_SIM_CLOCK=PATH#SLOT`). Never used in production.

The file holds the clock's state (origin, where time stops, start, factor) behind a sequence number
(a seqlock: the writer makes it odd while it writes, readers retry on odd or changed), then one
slot per backend in which the backend stamps the monotonic instant its event loop last had a turn.
The simulation lets time go on only while every backend it counts on keeps stamping, so a backend
starved of CPU holds simulated time back as the simulation's own loop does (`ScaledClock.keep_up`).
CLOCK_MONOTONIC is one clock for every process of the machine, so all of them agree on "real".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import mmap
import struct
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chargeshare.services.clock import ScaledClock

# The sequence number (one 8-byte word), then: monotonic origin, monotonic instant time stops at
# (NaN: never), start (POSIX s), factor. Then the slots, one monotonic instant (a double) each.
# The sequence number and the slots are each read and written as one aligned 8-byte word through a
# memoryview, never with struct.pack_into, which zero-fills its bytes before it writes them: a
# reader could then see a sequence number of 0 (even, "written") over half-written fields, or a
# stamp of 0 ("no turn for ages"). Native byte order: the file never leaves its machine.
_SEQ_SIZE = 8
_FIELDS = struct.Struct("=dddd")
_HEADER_SIZE = _SEQ_SIZE + _FIELDS.size
_SLOT_SIZE = 8
MAX_SLOTS = 64
SIZE = _HEADER_SIZE + MAX_SLOTS * _SLOT_SIZE
# How often a backend stamps its slot (real seconds): well inside the simulation's slack.
STAMP_EVERY_S = 0.02
# How long (real seconds) time waits for one follower that has no turn at all: far past any starved
# loop on a loaded machine, so only a process that stopped (SIGSTOP, a deadlock) is left behind,
# rather than holding simulated time, and with it the whole run, for ever.
PATIENCE_S = 60.0
# A publisher's update takes microseconds; one descheduled on a loaded machine, milliseconds.
MID_UPDATE_LIMIT_S = 10.0
ENV = "CHARGESHARE_SIM_CLOCK"


class ClockFileError(ValueError):
    """The clock file named cannot be used; the message says why."""


def _slot_index(slot: int) -> int:
    if not 0 <= slot < MAX_SLOTS:
        raise ClockFileError(f"clock slot {slot} is out of range 0..{MAX_SLOTS - 1}")
    return slot


class _Words:
    """The file's sequence number and slots as 8-byte words, each a single load or store."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._all = memoryview(mapped)
        self.seq = self._all[:_SEQ_SIZE].cast("Q")
        self.slots = self._all[_HEADER_SIZE:SIZE].cast("d")

    def release(self) -> None:
        # The map cannot close while views of it are held.
        for view in (self.seq, self.slots, self._all):
            view.release()


class PublishedClock(ScaledClock):
    """The simulation's scaled clock, written to `path` at every change for backends to follow.

    `followers` are the slots whose backends must have had a turn within the slack for time to go
    on, unless one has had none for `patience_s` (then it is `left_behind`, for the run to report);
    `hold()` stops time outright (a backend restarting: its start-up is no simulated time)."""

    def __init__(
        self,
        path: Path,
        start: datetime,
        factor: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        patience_s: float = PATIENCE_S,
        paused: bool = False,
    ) -> None:
        super().__init__(start, factor, monotonic=monotonic, paused=paused)
        self.path = path
        self.patience_s = patience_s
        self.left_behind: set[int] = set()
        with path.open("wb") as f:
            f.write(b"\0" * SIZE)
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), SIZE)
        self._words = _Words(self._map)
        self._seq = 0
        self.followers: set[int] = set()
        # Whether a follower's process has ended (nothing to wait for): its owner says.
        self.gone: Callable[[int], bool] = lambda _slot: False
        self._holds = 0
        self._publish()

    def keep_up(self, slack_s: float) -> None:
        if self._holds == 0 and not any(self._waits_for(s, slack_s) for s in self.followers):
            super().keep_up(slack_s)
            self._publish()

    def _waits_for(self, slot: int, slack_s: float) -> bool:
        if self.had_turn(slot, slack_s) or self.gone(slot):
            return False
        if not self.had_turn(slot, self.patience_s):
            self.left_behind.add(slot)
            return False
        return True

    def had_turn(self, slot: int, within_s: float) -> bool:
        return self.stamp_of(slot) >= self._monotonic() - within_s

    def stamp_of(self, slot: int) -> float:
        """The monotonic instant the slot's backend last had a turn (0: never)."""
        return float(self._words.slots[_slot_index(slot)])

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Stop time until the context ends (nests). Time stops where it stands; `keep_up`
        afterwards takes the held time back."""
        self._holds += 1
        if self._holds == 1:
            # At once, not where the last `keep_up` let it run to: before any (a run's first start
            # of its processes) time ran free, and a slow start went by as simulated minutes.
            t0, stops_at = self._state
            real = self._monotonic()
            if stops_at is None or stops_at > real:
                self._state = (t0, real)
                self._publish()
        try:
            yield
        finally:
            self._holds -= 1

    def _publish(self) -> None:
        t0, stops_at = self._state
        self._seq += 1  # odd: being written
        self._words.seq[0] = self._seq
        _FIELDS.pack_into(
            self._map,
            _SEQ_SIZE,
            t0,
            math.nan if stops_at is None else stops_at,
            self.start.timestamp(),
            self.factor,
        )
        self._seq += 1
        self._words.seq[0] = self._seq

    def close(self) -> None:
        self._words.release()
        self._map.close()
        self._file.close()


class FollowedClock:
    """A backend's clock: "now" as the simulation's published clock says it is."""

    def __init__(self, path: Path, slot: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        try:
            self._file = path.open("r+b")
        except OSError as exc:
            raise ClockFileError(f"cannot open the simulation clock {path}: {exc.strerror}") from exc
        try:
            self._map = mmap.mmap(self._file.fileno(), SIZE)
        except (OSError, ValueError) as exc:
            self._file.close()
            raise ClockFileError(f"{path} is not a simulation clock file") from exc
        self._words = _Words(self._map)
        self._monotonic = monotonic
        try:
            self._slot = _slot_index(slot)
            if self._words.seq[0] == 0:  # never published (a publisher's first write makes it 2)
                raise ClockFileError(f"{path} is not a simulation clock file")
            _, _, start, factor = self._read()
            if factor <= 0:
                raise ClockFileError(f"{path} is not a simulation clock file")
        except BaseException:
            self.close()  # a refused clock leaves no file or mapping open behind it
            raise
        self.start = datetime.fromtimestamp(start, UTC)
        self.factor = factor

    @classmethod
    def from_setting(cls, setting: str) -> FollowedClock:
        """`PATH#SLOT`, as `CHARGESHARE_SIM_CLOCK` holds it."""
        path, sep, slot = setting.rpartition("#")
        if not sep or not slot.isdigit():
            raise ClockFileError(f"{ENV} must be PATH#SLOT, got {setting!r}")
        return cls(Path(path), int(slot))

    def _read(self) -> tuple[float, float, float, float]:
        """The fields as one write left them: the sequence number, read before and after them, is
        even (no write under way) and unchanged (none began and ended meanwhile)."""
        give_up_at: float | None = None
        while True:
            seq = self._words.seq[0]
            if seq % 2 == 0:
                fields: tuple[float, float, float, float] = _FIELDS.unpack_from(self._map, _SEQ_SIZE)
                if self._words.seq[0] == seq:
                    return fields
            # The writer is mid-update: let it finish. One that never does died in the middle: a
            # clear error then, rather than a backend spinning for ever.
            real = self._monotonic()
            if give_up_at is None:
                give_up_at = real + MID_UPDATE_LIMIT_S
            elif real > give_up_at:
                raise ClockFileError(
                    f"the simulation clock has been mid-update for {MID_UPDATE_LIMIT_S:g} s: "
                    "did its simulation die?"
                )
            time.sleep(0)

    def now(self) -> datetime:
        t0, stops_at, _, _ = self._read()
        real = self._monotonic()
        if not math.isnan(stops_at):
            real = min(real, stops_at)
        return self.start + timedelta(seconds=(real - t0) * self.factor)

    def real_seconds(self, simulated: float) -> float:
        return simulated / self.factor

    def stamp(self) -> None:
        """This process's event loop has had a turn."""
        self._words.slots[self._slot] = self._monotonic()

    async def keep_pace(self) -> None:
        """Stamp the slot from the event loop for as long as it runs."""
        while True:
            self.stamp()
            await asyncio.sleep(STAMP_EVERY_S)

    def close(self) -> None:
        self._words.release()
        self._map.close()
        self._file.close()
