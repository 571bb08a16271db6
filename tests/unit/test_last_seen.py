"""The last-seen write-behind over a fake store: renewed at most once per interval, written in
batches oldest first, kept when a write fails, and written when it closes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from chargeshare.adapters.last_seen import WriteBehindLastSeen
from chargeshare.bootstrap import App
from chargeshare.entrypoints.api.housekeeping import sweep_once
from chargeshare.services.ports import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=1)


class FakeChargers:
    def __init__(self, registered: list[str]) -> None:
        self.last_seen: dict[str, datetime | None] = dict.fromkeys(registered)
        self.batches: list[list[str]] = []

    def touch_many(self, stamps: Mapping[str, datetime]) -> list[str]:
        self.batches.append(list(stamps))
        for cp_id, at in stamps.items():
            if cp_id in self.last_seen:
                self.last_seen[cp_id] = at
        return [cp_id for cp_id in stamps if cp_id not in self.last_seen]


class FakeStore:
    def __init__(self, *registered: str) -> None:
        self.chargers = FakeChargers(list(registered))
        self.down = False

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if self.down:
            raise ConnectionError("database away")
        yield SimpleNamespace(chargers=self.chargers)


def write_behind(*registered: str, known: tuple[str, ...] = ()) -> tuple[WriteBehindLastSeen, FakeStore]:
    """Its first stamps (for `known`) written at T0, as ChargingService writes them."""
    store = FakeStore(*registered)
    last_seen = WriteBehindLastSeen(cast(Store, store), EVERY)
    for cp_id in known:
        last_seen.written(cp_id, T0)
    return last_seen, store


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_charger_not_known_here_is_left_to_the_caller() -> None:
    last_seen, _ = write_behind("CP1")
    assert not last_seen.record("CP1", T0)
    assert last_seen.pending() == 0


def test_a_stamp_is_renewed_at_most_once_per_interval_and_written_behind() -> None:
    last_seen, store = write_behind("CP1", known=("CP1",))
    assert last_seen.record("CP1", at(30))
    assert last_seen.pending() == 0  # within the interval: nothing to write
    assert last_seen.record("CP1", at(60))
    assert last_seen.record("CP1", at(61))
    assert store.chargers.last_seen["CP1"] is None  # not yet
    assert last_seen.flush() == 1
    assert store.chargers.last_seen["CP1"] == at(60)
    assert last_seen.flush() == 0


def test_a_clock_gone_back_renews_the_stamp() -> None:
    last_seen, _ = write_behind("CP1", known=("CP1",))
    assert last_seen.record("CP1", at(-5))
    assert last_seen.pending() == 1


async def test_flushing_in_batches_writes_everything_oldest_first() -> None:
    last_seen, store = write_behind("CP1", "CP2", "CP3", known=("CP1", "CP2", "CP3"))
    for n, cp_id in enumerate(["CP3", "CP1", "CP2"]):
        last_seen.record(cp_id, at(60 + n))
    assert await last_seen.flush_in_batches(2) == 3
    assert store.chargers.batches == [["CP3", "CP1"], ["CP2"]]
    assert last_seen.pending() == 0


def test_a_flush_can_take_only_the_oldest() -> None:
    last_seen, store = write_behind("CP1", "CP2", known=("CP1", "CP2"))
    last_seen.record("CP2", at(60))
    last_seen.record("CP1", at(61))
    assert last_seen.flush(most=1) == 1
    assert store.chargers.last_seen == {"CP1": None, "CP2": at(60)}


def test_stamps_a_failed_write_held_wait_for_the_next_and_a_newer_one_wins() -> None:
    last_seen, store = write_behind("CP1", known=("CP1",))
    last_seen.record("CP1", at(60))
    store.down = True
    with pytest.raises(ConnectionError):
        last_seen.flush()
    store.down = False
    assert last_seen.pending() == 1
    last_seen.record("CP1", at(120))  # renewed meanwhile
    assert last_seen.flush() == 1
    assert store.chargers.last_seen["CP1"] == at(120)


def test_a_charger_dropped_or_written_has_nothing_pending() -> None:
    last_seen, _ = write_behind("CP1", "CP2", known=("CP1", "CP2"))
    last_seen.record("CP1", at(60))
    last_seen.record("CP2", at(60))
    last_seen.drop("CP1")  # gone offline: its status change wrote its last seen
    last_seen.written("CP2", at(61))  # a status change wrote it
    assert last_seen.pending() == 0
    assert not last_seen.record("CP1", at(62))  # its next frame is written at once
    assert last_seen.record("CP2", at(62))


def test_a_forgotten_charger_is_written_at_its_next_frame_and_its_pending_stamp_kept() -> None:
    last_seen, _ = write_behind("CP1", known=("CP1",))
    last_seen.record("CP1", at(60))
    last_seen.forget("CP1")
    assert not last_seen.record("CP1", at(61))
    assert last_seen.pending() == 1


def test_a_charger_removed_meanwhile_is_forgotten_when_flushed() -> None:
    last_seen, _ = write_behind(known=("GONE",))
    last_seen.record("GONE", at(60))
    assert last_seen.flush() == 1  # written to no row
    assert not last_seen.record("GONE", at(61))


def test_closing_writes_what_is_pending_and_a_failure_does_not_raise() -> None:
    last_seen, store = write_behind("CP1", "CP2", known=("CP1", "CP2"))
    last_seen.record("CP1", at(60))
    last_seen.close()
    assert store.chargers.last_seen["CP1"] == at(60)
    last_seen.record("CP2", at(60))
    store.down = True
    last_seen.close()  # logged; closing carries on
    assert last_seen.pending() == 1


def test_the_app_owns_the_one_the_charging_service_stamps_through(app: App) -> None:
    assert app.charging.last_seen is app.last_seen
    assert app.last_seen.every == timedelta(seconds=app.config.rules.heartbeat_interval_s / 4)


async def test_a_sweep_writes_a_fleets_stamps_in_small_units_of_work() -> None:
    # Each unit of work holds the event loop, and with it every charger's acknowledgement.
    fleet = [f"CP{i}" for i in range(120)]
    last_seen, store = write_behind(*fleet, known=tuple(fleet))
    for cp_id in fleet:
        last_seen.record(cp_id, at(60))
    app = SimpleNamespace(last_seen=last_seen, housekeeping=SimpleNamespace(sweep=lambda payments: None))
    await sweep_once(cast(App, app))
    assert sum(map(len, store.chargers.batches)) == 120
    assert max(map(len, store.chargers.batches)) <= 50
