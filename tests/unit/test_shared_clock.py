"""The simulation's clock shared with backend processes through a file: followers read the same "now"
as the publisher, time stops while a follower's loop gets no turn or while the simulation holds it,
and a bad setting is one clear error."""

from __future__ import annotations

import multiprocessing
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import pytest

from chargeshare.adapters.shared_clock import ClockFileError, FollowedClock, PublishedClock
from chargeshare.bootstrap import ConfigError, clock_from_env
from chargeshare.services.clock import SystemClock
from tests.fake_monotonic import FakeMonotonic

START = datetime(2026, 6, 1, 8, tzinfo=UTC)

# A clock refused at opening must not leave its file open: a backend retrying would leak one a try.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


@pytest.fixture(autouse=True)
def _close_every_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each clock a test opens is closed after it: no file or mapping outlives its test."""
    opened: list[PublishedClock | FollowedClock] = []
    for cls in (PublishedClock, FollowedClock):

        def tracking(self: Any, *args: Any, __init: Any = cls.__init__, **kwargs: Any) -> None:
            __init(self, *args, **kwargs)
            opened.append(self)

        monkeypatch.setattr(cls, "__init__", tracking)
    yield
    for clock in opened:
        with suppress(ValueError, BufferError):  # closed by the test itself
            clock.close()


def sim_s(clock: PublishedClock | FollowedClock) -> float:
    return (clock.now() - START).total_seconds()


def test_a_follower_reads_the_publishers_time(tmp_path: Path, real: FakeMonotonic) -> None:
    clock = PublishedClock(tmp_path / "clock", START, 120, monotonic=real)
    follower = FollowedClock(tmp_path / "clock", 0, monotonic=real)
    assert follower.start == START and follower.factor == 120
    clock.keep_up(0.1)
    real.t += 0.05
    assert sim_s(follower) == sim_s(clock) == pytest.approx(6)
    real.t += 5  # past the slack: both stand still where the leash ends
    assert sim_s(follower) == sim_s(clock) == pytest.approx(12)
    clock.keep_up(0.1)
    real.t += 0.01
    assert sim_s(follower) == sim_s(clock) == pytest.approx(13.2)
    assert follower.real_seconds(120) == 1


def test_time_waits_for_a_follower_whose_loop_gets_no_turn(tmp_path: Path, real: FakeMonotonic) -> None:
    clock = PublishedClock(tmp_path / "clock", START, 100, monotonic=real)
    follower = FollowedClock(tmp_path / "clock", 3, monotonic=real)
    clock.followers.add(3)
    follower.stamp()
    clock.keep_up(0.1)
    real.t += 1  # the follower stamped nothing for a second: the leash is not lengthened
    clock.keep_up(0.1)
    assert sim_s(follower) == pytest.approx(10)
    follower.stamp()  # its loop runs again: time goes on from where it stood
    clock.keep_up(0.1)
    real.t += 0.05
    assert sim_s(follower) == sim_s(clock) == pytest.approx(15)
    assert clock.held_s == pytest.approx(0.9)


def test_a_hold_stops_time_until_it_ends(tmp_path: Path, real: FakeMonotonic) -> None:
    clock = PublishedClock(tmp_path / "clock", START, 100, monotonic=real)
    clock.keep_up(0.1)
    real.t += 0.02
    with clock.hold():
        real.t += 4
        clock.keep_up(0.1)
        assert sim_s(clock) == pytest.approx(2)
    clock.keep_up(0.1)
    real.t += 0.05
    assert sim_s(clock) == pytest.approx(7)


def test_a_hold_stops_time_at_once_even_before_the_clock_was_ever_kept_up(
    tmp_path: Path, real: FakeMonotonic
) -> None:
    """A run starts its backend processes under a hold before its loop has kept the clock up even
    once: their start (seconds on a loaded machine) must be no simulated time."""
    clock = PublishedClock(tmp_path / "clock", START, 300, monotonic=real)
    follower = FollowedClock(tmp_path / "clock", 0, monotonic=real)
    with clock.hold():
        real.t += 10
        clock.keep_up(0.1)
        assert sim_s(clock) == sim_s(follower) == 0
    clock.keep_up(0.1)
    real.t += 0.05
    assert sim_s(clock) == sim_s(follower) == pytest.approx(15)


def test_time_held_counts_while_the_hold_lasts(tmp_path: Path, real: FakeMonotonic) -> None:
    """A run's budget grows by the held time: a restart holding time for longer than the budget has
    left must not end the run while it is still starting."""
    clock = PublishedClock(tmp_path / "clock", START, 100, monotonic=real)
    clock.keep_up(0.1)
    with clock.hold():
        real.t += 40
        clock.keep_up(0.1)
        assert clock.held_s == pytest.approx(40)
    clock.keep_up(0.1)
    assert clock.held_s == pytest.approx(40)


def test_time_held_for_a_starved_follower_counts_while_it_lasts(tmp_path: Path, real: FakeMonotonic) -> None:
    clock = PublishedClock(tmp_path / "clock", START, 100, monotonic=real)
    follower = FollowedClock(tmp_path / "clock", 0, monotonic=real)
    clock.followers.add(0)
    follower.stamp()
    clock.keep_up(0.1)
    real.t += 20
    clock.keep_up(0.1)
    assert clock.held_s == pytest.approx(19.9)


def test_time_leaves_behind_a_follower_that_never_gets_another_turn(
    tmp_path: Path, real: FakeMonotonic
) -> None:
    """A stopped backend (SIGSTOP, a deadlock) would otherwise hold time, and the run whose budget
    grows with held time, for ever."""
    clock = PublishedClock(tmp_path / "clock", START, 100, monotonic=real, patience_s=60)
    follower = FollowedClock(tmp_path / "clock", 2, monotonic=real)
    clock.followers.add(2)
    follower.stamp()
    clock.keep_up(0.1)
    real.t += 30
    clock.keep_up(0.1)
    assert sim_s(clock) == pytest.approx(10) and not clock.left_behind  # still waited for
    real.t += 31
    clock.keep_up(0.1)
    real.t += 0.05
    assert sim_s(clock) == pytest.approx(15)
    assert clock.left_behind == {2}


def _read_in_another_process(setting: str, out: multiprocessing.Queue[float]) -> None:
    clock = FollowedClock.from_setting(setting)
    out.put((clock.now() - clock.start).total_seconds())


@pytest.mark.slow  # another process
def test_another_process_follows_the_real_monotonic_clock(tmp_path: Path) -> None:
    clock = PublishedClock(tmp_path / "clock", START, 60)
    clock.keep_up(0)  # no slack: time stands still from here, so what the child reads is exact
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[float] = context.Queue()
    child = context.Process(target=_read_in_another_process, args=(f"{tmp_path / 'clock'}#1", out))
    child.start()
    child.join(60)
    assert out.get(timeout=5) == pytest.approx(sim_s(clock))
    assert sim_s(clock) > 0


WRITES = 500_000  # publishes or stamps by the other process: a few seconds, racing the reader


def _publish_on(path: str, ready: EventType, go: EventType) -> None:
    clock = PublishedClock(Path(path), START, 60)
    ready.set()
    go.wait(60)
    for _ in range(WRITES):
        clock.keep_up(0.1)


def _stamp_on(setting: str, go: EventType) -> None:
    follower = FollowedClock.from_setting(setting)
    go.wait(60)
    for _ in range(WRITES):
        follower.stamp()


def _racing(target: Callable[..., None], *args: object) -> tuple[Any, EventType]:
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    child = context.Process(target=target, args=(*args, go))
    child.start()
    return child, go


@pytest.mark.slow  # another process
def test_a_follower_never_reads_a_half_written_clock(tmp_path: Path) -> None:
    """Another process publishes as fast as it can while this one reads: time never goes back (a
    torn read of the header, as struct's zero-fill before it writes gave, read as the run's start)."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    writer, go = _racing(_publish_on, str(tmp_path / "clock"), ready)
    try:
        assert ready.wait(60)
        follower = FollowedClock(tmp_path / "clock", 0)
        go.set()
        last, reads, went_back = follower.now(), 0, []
        while writer.is_alive() or reads == 0:
            now = follower.now()
            reads += 1
            if now < last:
                went_back.append((last, now))
            last = now
        assert not went_back, went_back[:3]
        assert writer.exitcode == 0
    finally:
        writer.join(60)


@pytest.mark.slow  # another process
def test_the_publisher_never_reads_a_half_written_stamp(tmp_path: Path) -> None:
    clock = PublishedClock(tmp_path / "clock", START, 60)
    stamper, go = _racing(_stamp_on, f"{tmp_path / 'clock'}#5")
    try:
        go.set()
        while clock.stamp_of(5) == 0 and stamper.is_alive():
            pass
        last, went_back = clock.stamp_of(5), []
        while stamper.is_alive():
            stamp = clock.stamp_of(5)
            if stamp < last:
                went_back.append((last, stamp))
            last = stamp
        assert not went_back, went_back[:3]
        assert stamper.exitcode == 0 and last > 0
    finally:
        stamper.join(60)


@pytest.mark.parametrize(
    ("setting", "why"),
    [("no-slot-given", "PATH#SLOT"), ("{tmp}/clock#99", "out of range"), ("{tmp}/absent#0", "cannot open")],
)
def test_a_bad_setting_is_one_clear_error(tmp_path: Path, setting: str, why: str) -> None:
    PublishedClock(tmp_path / "clock", START, 60)
    with pytest.raises(ConfigError, match=why):
        clock_from_env({"CHARGESHARE_SIM_CLOCK": setting.format(tmp=tmp_path)})


def test_a_file_that_is_no_clock_is_refused(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"x")
    with pytest.raises(ClockFileError, match="not a simulation clock"):
        FollowedClock(tmp_path / "short", 0)


def test_a_clock_left_mid_update_is_a_clear_error_not_a_spin(tmp_path: Path) -> None:
    """Its simulation died between the two writes of the sequence number: odd for ever."""
    clock = PublishedClock(tmp_path / "clock", START, 60)
    clock.close()
    with (tmp_path / "clock").open("r+b") as f:
        (seq,) = struct.unpack("=Q", f.read(8))
        f.seek(0)
        f.write(struct.pack("=Q", seq + 1))

    ticks = iter(range(1_000_000))  # each look at the monotonic clock a second later

    def monotonic() -> float:
        return float(next(ticks))

    refused: list[ClockFileError] = []

    def follow() -> None:
        try:
            FollowedClock(tmp_path / "clock", 0, monotonic=monotonic)
        except ClockFileError as exc:
            refused.append(exc)

    follower = threading.Thread(target=follow, daemon=True)  # a spin for ever must not hang the test
    follower.start()
    follower.join(30)
    assert not follower.is_alive(), "the follower spun on a clock left mid-update"
    assert len(refused) == 1 and "mid-update" in str(refused[0])


def test_without_the_setting_the_system_clock(tmp_path: Path) -> None:
    assert isinstance(clock_from_env({}), SystemClock)
