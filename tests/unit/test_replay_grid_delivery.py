"""A replay counts a decision delivered when the recorded charger takes it, even where the recorded
backend decided first: its housekeeping sweep runs at another phase than the replay's, so a charger
can take the recorded decision before the replay makes the same one."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

from simulators.replay import replay
from simulators.replay_grid import recorded_limits
from simulators.trace import read_trace

DATA = Path(__file__).parent.parent / "data"


def test_a_take_recorded_before_the_replay_decides_acknowledges_that_decision(tmp_path: Path) -> None:
    # A live `small-flex` run (tests/e2e/test_replay_grid_and_hub.py) recorded under load. As the
    # DNO's event began, the recorded backend's sweep lowered CS00001 to 0 W at 17:18:09 and the
    # charger took it at 17:18:15; the replay decided the same 0 W at 17:18:15.9, after the take.
    # Left owed, CS00001 was counted at the most it might hold and held the others' limits, and at
    # the end the replay raised CS00002 where the recorded backend had kept it at 0 W.
    trace = tmp_path / "small-flex.jsonl"
    trace.write_bytes(gzip.decompress((DATA / "small-flex-take-before-decision.jsonl.gz").read_bytes()))
    recorded = read_trace(trace)
    assert (0, 0) in {(w, p) for t, w, p in recorded_limits(recorded)[("CS00001", 1)]}
    report = asyncio.run(replay(recorded, database_url="memory://"))
    assert report.divergence_count == 0, report.divergences
    assert report.ok and report.run.errors == []
