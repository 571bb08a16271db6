"""What a run looks like over time: periodic samples of the backend's own view (the store), so a live
run, a replay and a plot all read the same numbers."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerStatus, ConnectorStatus
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.session import SessionStatus


@dataclass(frozen=True)
class Sample:
    t_s: float  # simulated seconds since the run began
    chargers: int
    online: int
    offline: int
    charging: int  # chargers with at least one connector charging
    connectors: int
    connectors_charging: int
    sessions: int
    open_sessions: int
    energy_wh: int  # delivered so far, open sessions included
    captured_pence: int
    faults_fired: int = 0
    drivers_done: int = 0
    conflicts: int = 0
    capacity_w: int = 0  # every connector at its maximum at once; 0: not known

    @property
    def utilisation(self) -> float:
        """Share of connectors charging, 0 to 1."""
        return self.connectors_charging / self.connectors if self.connectors else 0.0


def take_sample(app: App, start: datetime, **extra: int) -> Sample:
    with app.store.reading() as tx:
        chargers = list(tx.chargers.all())
        sessions = list(tx.sessions.all())
        entries = list(tx.ledger.entries())
    charging_connectors = [
        sum(1 for x in c.connectors if x.status is ConnectorStatus.CHARGING) for c in chargers
    ]
    energy = sum(
        (s.billed_wh or 0)
        if s.status is SessionStatus.STOPPED
        else max(0, s.meter_last_wh - s.meter_start_wh)
        for s in sessions
    )
    return Sample(
        t_s=(app.clock.now() - start).total_seconds(),
        chargers=len(chargers),
        online=sum(1 for c in chargers if c.status is ChargerStatus.ONLINE),
        offline=sum(1 for c in chargers if c.status is ChargerStatus.OFFLINE),
        charging=sum(1 for n in charging_connectors if n),
        connectors=sum(len(c.connectors) for c in chargers),
        connectors_charging=sum(charging_connectors),
        sessions=len(sessions),
        open_sessions=sum(1 for s in sessions if s.status is not SessionStatus.STOPPED),
        energy_wh=energy,
        captured_pence=sum(e.amount for e in entries if e.kind is EntryKind.CAPTURE),
        capacity_w=sum(x.max_power_w for c in chargers for x in c.connectors),
        **extra,
    )


# An interval between samples this many times the usual one is a gap: drawn as one, never bridged.
GAP_FACTOR = 2.0


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    # What power is averaged over: at least the chargers' meter sampling interval, or it swings
    # between zero and a multiple of the truth with each reading.
    power_window_s: float = 300.0

    def add(self, sample: Sample) -> None:
        if self.samples and sample.t_s <= self.samples[-1].t_s:
            self.samples[-1] = sample  # same instant sampled twice: keep the later view
        else:
            self.samples.append(sample)

    def minutes(self) -> list[float]:
        return [s.t_s / 60 for s in self.samples]

    def utilisation_pct(self) -> list[float]:
        return [100 * s.utilisation for s in self.samples]

    def drawn_wh(self) -> list[float]:
        """Energy drawn by each sample's time. Readings a charger queued while offline arrive in a
        burst, later than the energy was drawn: what an interval shows beyond the fleet's capacity
        was drawn before it, so it is moved back into earlier intervals that had room."""
        pairs = list(itertools.pairwise(self.samples))
        per = [0.0] + [max(0.0, float(b.energy_wh - a.energy_wh)) for a, b in pairs]
        capacity_w = max((s.capacity_w for s in self.samples), default=0)
        if capacity_w > 0:
            room = [0.0] + [capacity_w * max(0.0, b.t_s - a.t_s) / 3600 for a, b in pairs]
            for i in range(len(per)):
                excess = per[i] - room[i]
                j = i - 1
                while excess > 0 and j >= 1:
                    moved = min(excess, room[j] - per[j])
                    if moved > 0:
                        per[j] += moved
                        per[i] -= moved
                        excess -= moved
                    j -= 1
        drawn, total = [], 0.0
        for e in per:
            total += e
            drawn.append(total)
        return drawn

    def segments(self) -> list[range]:
        """The samples in runs without a gap: a gap is an interval more than `GAP_FACTOR` times the
        usual (median) one, when the sampler got no turn, and nothing is known of what it hid."""
        if len(self.samples) < 3:
            return [range(len(self.samples))] if self.samples else []
        steps = [b.t_s - a.t_s for a, b in itertools.pairwise(self.samples)]
        usual = statistics.median(steps)
        cuts = [i + 1 for i, step in enumerate(steps) if step > GAP_FACTOR * usual]
        bounds = [0, *cuts, len(self.samples)]
        return [range(a, b) for a, b in itertools.pairwise(bounds)]

    def gaps_s(self) -> list[tuple[float, float]]:
        """The intervals no sample covers, in simulated seconds since the start."""
        parts = self.segments()
        return [(self.samples[a[-1]].t_s, self.samples[b[0]].t_s) for a, b in itertools.pairwise(parts)]

    def power_kw(self, window_s: float | None = None) -> list[float]:
        """Average power drawn over `window_s` (by default `power_window_s`; if the samples are
        sparser, the one interval) before each sample, from `drawn_wh`. Meter readings arrive in
        steps, so a window wider than one sample keeps the line from jumping with the steps. The
        window never reaches back across a gap: the first sample after one has no power of its own
        (NaN), since what was drawn in the gap is known only as a total."""
        window_s = self.power_window_s if window_s is None else window_s
        drawn = self.drawn_wh()
        out: list[float] = []
        for part in self.segments():
            for i in part:
                s = self.samples[i]
                j = i - 1
                while j > part.start and s.t_s - self.samples[j - 1].t_s <= window_s:
                    j -= 1
                if j < part.start:
                    out.append(0.0 if i == 0 else math.nan)
                    continue
                if s.t_s <= self.samples[j].t_s:
                    out.append(0.0)
                    continue
                out.append(max(0.0, drawn[i] - drawn[j]) / 1000 / ((s.t_s - self.samples[j].t_s) / 3600))
        return out

    def revenue_pence(self) -> list[int]:
        return [s.captured_pence for s in self.samples]

    def to_dict(self) -> dict[str, Any]:
        return {
            "minutes": [round(m, 3) for m in self.minutes()],
            "utilisation_pct": [round(u, 2) for u in self.utilisation_pct()],
            "power_kw": [None if math.isnan(p) else round(p, 3) for p in self.power_kw()],
            "revenue_pence": self.revenue_pence(),
        }
