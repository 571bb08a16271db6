"""A recorded charger's takes that come before the replay's own decision acknowledge that decision
only if they took what it decides for every connector: a two-connector charger takes one profile
per connector, and a decision differing on the connector taken first is not the one it took."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargeshare.ocpp.grid_limits import tx_default_profile_id
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import GridLimitsDue
from simulators.replay import Replayer

CP = "CS00001"


class Grid:
    """The replay's grid service as `_limits_taken` sees it: one charger's decisions."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.decision, self.delivered = 0, 0
        self.limits: tuple[tuple[int, int], ...] = ()

    def decide(self, *limits: tuple[int, int]) -> None:
        self.decision, self.limits = self.decision + 1, limits

    def limits_due(self, cp: str) -> GridLimitsDue | None:
        if not self.decision:
            return None
        return GridLimitsDue(self.clock.now(), cp, self.limits, self.decision)

    def limits_delivered(self, _cp: str, decision: int) -> None:
        self.delivered = max(self.delivered, decision)


class App:
    def __init__(self, grid: Grid) -> None:
        self.grid = grid


class Replay(Replayer):
    """Only the early-take bookkeeping: no trace, no backend."""

    def __init__(self) -> None:  # only what `_limits_taken` touches
        self.clock = ManualClock(datetime(2026, 3, 2, 17, 18, tzinfo=UTC))
        self.fake = Grid(self.clock)
        self.app: Any = App(self.fake)
        self._early_takes = {}
        self.divergences: list[str] = []

    def _owed_here(self, cp: str) -> bool:
        return self.fake.decision > self.fake.delivered

    def _diverge(self, what: str) -> None:
        self.divergences.append(what)


def taken(replay: Replay, connector_no: int, watts: int) -> None:
    replay._limits_taken(
        CP,
        {
            "connectorId": connector_no,
            "csChargingProfiles": {
                "chargingProfileId": tx_default_profile_id(connector_no),
                "chargingSchedule": {
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": watts}],
                },
            },
        },
    )


def delivered_after(replay: Replay, *decided: tuple[int, int]) -> bool:
    replay.clock.advance(5)
    replay.fake.decide(*decided)
    replay._deliver_early_takes()
    return replay.fake.delivered == replay.fake.decision


def test_takes_of_both_connectors_acknowledge_the_decision_giving_both_those_limits() -> None:
    replay = Replay()
    taken(replay, 1, 0)
    taken(replay, 2, 3_000)
    assert delivered_after(replay, (1, 0), (2, 3_000))
    assert replay.divergences == []


def test_a_decision_unlike_what_the_first_connector_took_stays_owed() -> None:
    replay = Replay()
    replay.fake.decide((1, 7_000), (2, 7_000))
    replay.fake.delivered = replay.fake.decision
    taken(replay, 1, 0)  # the recorded backend's next decision, taken before this replay makes it
    taken(replay, 2, 3_000)
    assert not delivered_after(replay, (1, 7_000), (2, 3_000))


def test_takes_before_any_decision_here_count_for_each_connector() -> None:
    replay = Replay()
    taken(replay, 1, 0)
    taken(replay, 2, 3_000)
    assert not delivered_after(replay, (1, 7_000), (2, 3_000))


def test_a_take_of_one_connector_alone_does_not_acknowledge_a_decision_for_two() -> None:
    replay = Replay()
    taken(replay, 2, 3_000)
    assert not delivered_after(replay, (1, 7_000), (2, 3_000))


def test_a_take_older_than_a_minute_acknowledges_nothing() -> None:
    replay = Replay()
    taken(replay, 1, 0)
    taken(replay, 2, 3_000)
    replay.clock.advance(61)
    assert not delivered_after(replay, (1, 0), (2, 3_000))


def test_takes_acknowledge_one_decision_only() -> None:
    replay = Replay()
    taken(replay, 1, 0)
    taken(replay, 2, 3_000)
    assert delivered_after(replay, (1, 0), (2, 3_000))
    assert not delivered_after(replay, (1, 0), (2, 3_000))
