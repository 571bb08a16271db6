"""Where a charger's timestamps fall on our clock, learned on one connection (sans-I/O: `now` is given).

A connector keeps the status of its latest report, by the report's own time (see
`ChargingService.status`). That order holds only while the charger's clock runs forward: one that
jumps back (its real-time clock reset by a reboot, a wrong time server, a manual setting) stamps
what it reports now earlier than what it reported before, and each report would be taken for late
until its clock passed the old stamps again. So every timestamp is placed on our clock first:
`placed = stamp + behind`, at `now` at the latest, where `behind` is how far the charger's clock is
behind ours, learned from its status reports on this connection. With its clock right `behind` is
zero and a report is placed at its own time, as before.

Which reports say where the charger's clock is: a status report (StatusNotification, or a 2.0.1
availability event) is the connector's state as it is sent. Chargers queue only transaction
messages while offline (StartTransaction, StopTransaction, MeterValues, TransactionEvent) and
replay them as they connect, so:

- the first status report on a connection, and the first after a BootNotification (a reboot may
  reset the clock; OCPP has a charger report each connector as it boots), shows the clock as it is:
  `behind` is what it lags by, beyond the tolerance;
- a status report stamped later than `behind` says the clock went forward (set right): `behind`
  shrinks to it at once;
- a status report lagging by more than `behind` and the tolerance, and stamped before what this
  connection already carried, is a clock gone back once the connection has been up for the replay
  window: frames on one connection are handled in order, one at a time, and a queue is replayed as
  the charger connects. `behind` grows to it. Within the window it is taken for a report replayed
  late, placed at its own time, and a later report's status stands, as before. One stamped after
  everything its connection carried is in order there, whatever it lags by (a frame still handled
  on an old link after the charger connected again is at its own time, and late).

Transaction messages are placed with the same `behind` but never teach it: they are the ones a
charger queues. Each connection learns afresh: nothing of it outlives its link. So a start sent on a
link before any status report on it (a queue replayed first as the charger connects again) is not
ordered against the connector's free report, which an earlier link placed: it is taken as a new
session, and the connector's status is asked for, whose answer says both where the clock is and
whether the car is still there (see `ChargingService.start`, `clock_known`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chargeshare.services.rules import MarketplaceRules

ZERO = timedelta(0)


@dataclass
class ReportClock:
    """One connection's view of its charger's clock."""

    tolerance: timedelta  # a stamp this close to now is now (travel time, a slow answer)
    replay_window: timedelta  # how long after connecting a late report may be a replayed one
    opened_at: datetime  # when the connection opened, or the charger last booted on it
    behind: timedelta = ZERO  # how far the charger's clock is behind ours
    fresh: bool = True  # no status report yet since the connection opened or the charger booted
    newest: datetime | None = None  # the latest stamp this connection carried

    @classmethod
    def opened(cls, rules: MarketplaceRules, now: datetime) -> ReportClock:
        """A connection opened at `now`: its first status report says where the charger's clock is."""
        return cls(
            timedelta(seconds=rules.past_start_tolerance_s), timedelta(seconds=rules.replay_window_s), now
        )

    def booted(self, now: datetime) -> None:
        """A BootNotification: the clock may have been reset (so stamps from before are no measure
        of those after), and what the charger reports next is its state as it boots."""
        self.behind, self.fresh, self.opened_at, self.newest = ZERO, True, now, None

    def status(self, stamp: datetime, now: datetime) -> datetime:
        """A status report stamped `stamp` arrives at `now`: learn from it, then place it."""
        lag = max(now - stamp, ZERO)
        if self.fresh:
            self.fresh = False
            self.behind = lag if lag > self.tolerance else ZERO
        elif lag < self.behind:
            self.behind = lag  # set right, or forward: never later than the charger says
        elif (
            lag > self.behind + self.tolerance
            and self.newest is not None
            and stamp < self.newest - self.tolerance
            and now - self.opened_at >= self.replay_window
        ):
            self.behind = lag  # the clock went back
        return self.transaction(stamp, now)

    @property
    def known(self) -> bool:
        """Whether a status report since the link opened (or the charger booted) said where the
        charger's clock is: before one, a stamp is placed as if the clock were right, which orders
        it against nothing placed on an earlier link (whose clock may have been found behind)."""
        return not self.fresh

    def transaction(self, stamp: datetime, now: datetime) -> datetime:
        """A transaction message's stamp (which teaches nothing) on our clock: made then, at `now`
        at the latest."""
        self.newest = stamp if self.newest is None else max(self.newest, stamp)
        return min(stamp + self.behind, now)
