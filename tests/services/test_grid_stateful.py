"""A stateful hypothesis model of GridService on the in-memory store: sessions start and stop,
flexibility events are announced, the clock runs with the sweep, and each charger takes any subset
of the decisions it was sent (in the order sent) and acknowledges any of those it took, in any order,
late, twice, or never.

At every step, under every site and feeder, at now and at every moment the next clock advance can
reach, the sum over chargers of the most each may draw (the highest sum of any decision sent since
it last acknowledged its latest decision, that one included) stays within the limit. A
flexibility event counts against a limit once every charger under it has acknowledged a decision
made with the event within the look-ahead: before that, a charger still holding an older plan
cannot know of it. Once every charger takes and acknowledges all it is sent, the limits settle
on the fair shares.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chargeshare.bootstrap import Config
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.grid_limits import (
    Charging,
    FlexEvent,
    Idle,
    Plan,
    Scope,
    allocate,
    capacities_w,
    constraints,
)
from chargeshare.domain.tariff import Tariff
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import GridLimitsDue, InProcessBus
from chargeshare.services.grid import HOLD_RAISES_FOR, LOOK_AHEAD, GridService
from chargeshare.services.ports import Store
from tests.conftest import T0, build_for_tests, examples

# The clock never jumps further than this between sweeps (the sweep runs every 30 s in service).
MAX_ADVANCE = timedelta(seconds=150)
# (charge point, connector ratings, site index)
CHARGERS = (("A", (7_400,), 0), ("B", (7_400, 3_680), 0), ("C", (7_400,), 1), ("D", (11_000,), 1))


@dataclass(frozen=True)
class _Open:
    started_at: datetime


class _Sessions:
    def __init__(self, open_: dict[int, datetime]) -> None:
        self.open_ = open_

    def open_on(self, connector_id: int) -> _Open | None:
        at = self.open_.get(connector_id)
        return None if at is None else _Open(at)


class _Tx:
    """A unit of work whose sessions are the model's (the rest is the store's)."""

    def __init__(self, tx: Any, sessions: _Sessions) -> None:
        self._tx, self.sessions = tx, sessions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class _Store:
    def __init__(self, store: Any, sessions: _Sessions) -> None:
        self._store, self._sessions = store, sessions

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        with self._store.transaction() as tx:
            yield _Tx(tx, self._sessions)

    @contextmanager
    def reading(self) -> Iterator[_Tx]:
        with self._store.reading() as tx:
            yield _Tx(tx, self._sessions)


@dataclass
class _Charger:
    cp_id: str
    charger_id: int
    connectors: dict[int, tuple[int, int]]  # connector number -> (connector id, rating)
    site: int
    inbox: list[GridLimitsDue] = field(default_factory=list)  # sent, not yet taken or dropped
    acks: list[int] = field(default_factory=list)  # decisions taken, not yet acknowledged
    plans: dict[int, dict[int, Plan]] = field(default_factory=dict)  # decision -> connector id -> plan
    latest: int = 0  # the latest decision published
    full: int | None = None  # the latest decision acknowledged while it was the latest
    full_at: datetime | None = None  # when that decision was made
    full_seq: int = -1  # and when it was published, in the model's order of things
    decided_at: dict[int, datetime] = field(default_factory=dict)
    seq: dict[int, int] = field(default_factory=dict)


def _plans(due: GridLimitsDue, connectors: dict[int, tuple[int, int]]) -> dict[int, Plan]:
    return {
        connectors[no][0]: Plan(w, tuple((then, tw) for n, then, tw in due.steps if n == no))
        for no, w in due.limits_w
    }


class GridModel(RuleBasedStateMachine):
    url = "memory://"
    hold_raises_for = HOLD_RAISES_FOR

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.app = build_for_tests(
            Config(database_url=self.url, locks_enabled=False, password_hash="fast"), clock=self.clock
        )
        self.open: dict[int, datetime] = {}
        self.bus = InProcessBus()
        store = cast(Store, _Store(self.app.store, _Sessions(self.open)))
        self.grid = GridService(store, self.bus, self.clock, hold_raises_for=self.hold_raises_for)
        self.bus.subscribe(GridLimitsDue, self._heard)
        self.events: list[tuple[FlexEvent, int]] = []  # with when each was announced (`seq`)
        self.seq = 0
        self.chargers: dict[str, _Charger] = {}
        feeder = self.grid.add_feeder("F", 14_000)
        self.feeder_id = feeder.feeder_id
        self.sites = [
            self.grid.add_site(
                self.app.marketplace.add_host(f"h{n}"),
                f"s{n}",
                9_000,
                house_load_w=1_000,
                feeder_id=feeder.feeder_id,
            )
            for n in (0, 1)
        ]
        for cp_id, ratings, site in CHARGERS:
            host = self.app.marketplace.add_host(f"host of {cp_id}")
            view = self.app.marketplace.add_charger(
                ChargerSpec(
                    cp_id,
                    host,
                    Point(51.45, -2.59),
                    Tariff(30),
                    tuple(ConnectorSpec(no, ConnectorType.TYPE2, w) for no, w in enumerate(ratings, 1)),
                )
            )
            with self.app.store.reading() as tx:
                found = tx.chargers.get(cp_id)
            self.chargers[cp_id] = _Charger(
                cp_id,
                view.charger_id,
                {c.connector_no: (c.connector_id, c.max_power_w) for c in found.connectors},
                site,
            )
            self.grid.place(view.charger_id, self.sites[site].site_id)
        self._all_take_everything()

    # ---- the chargers ----------------------------------------------------------------------------
    def _heard(self, due: GridLimitsDue) -> None:
        ch = self.chargers[due.charge_point_id]
        ch.inbox.append(due)
        ch.plans.setdefault(due.decision, _plans(due, ch.connectors))
        ch.decided_at.setdefault(due.decision, self.clock.now())
        self.seq += 1
        ch.seq.setdefault(due.decision, self.seq)
        ch.latest = max(ch.latest, due.decision)

    def _take(self, ch: _Charger) -> None:
        due = ch.inbox.pop(0)
        ch.acks.append(due.decision)

    def _ack(self, ch: _Charger, decision: int) -> None:
        if decision == ch.latest:
            ch.full, ch.full_at, ch.full_seq = decision, ch.decided_at[decision], ch.seq[decision]
        self.grid.limits_delivered(ch.cp_id, decision)

    def _all_take_everything(self) -> None:
        for cp_id in self.chargers:
            self.reconnect(cp_id)
        for _ in range(50):
            busy = False
            for ch in self.chargers.values():
                while ch.inbox:
                    self._take(ch)
                while ch.acks:
                    busy = True
                    self._ack(ch, ch.acks.pop(0))
            if not busy:
                return
        raise AssertionError("the limits never settle with every charger taking them")

    # ---- rules -----------------------------------------------------------------------------------
    def _connectors(self) -> list[int]:
        return sorted(cid for ch in self.chargers.values() for cid, _ in ch.connectors.values())

    @rule(data=st.data())
    def start_or_stop(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self._connectors()))
        if cid in self.open:
            del self.open[cid]
        else:
            self.open[cid] = self.clock.now()
        self.grid.rebalance()

    @rule(
        site=st.sampled_from([None, 0, 1]),
        limit_w=st.integers(0, 12_000),
        starts_in=st.integers(0, 900),
        lasts=st.integers(1, 900),
    )
    def flex_event(self, site: int | None, limit_w: int, starts_in: int, lasts: int) -> None:
        now = self.clock.now()
        scope, target = (
            (Scope.FEEDER, self.feeder_id) if site is None else (Scope.SITE, self.sites[site].site_id)
        )
        starts = now + timedelta(seconds=starts_in)
        event = self.grid.add_flex_event(scope, target, limit_w, starts, starts + timedelta(seconds=lasts))
        self.seq += 1
        self.events.append((event, self.seq))

    @rule(seconds=st.integers(1, int(MAX_ADVANCE.total_seconds())))
    def advance_and_sweep(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.grid.rebalance()
        self.grid.resend_owed()

    @rule(cp=st.sampled_from([c[0] for c in CHARGERS]), keep=st.booleans())
    def take_next(self, cp: str, keep: bool) -> None:
        """The charger takes (or drops: refused, lost) the next decision it was sent."""
        ch = self.chargers[cp]
        if ch.inbox:
            if keep:
                self._take(ch)
            else:
                ch.inbox.pop(0)

    @rule(cp=st.sampled_from([c[0] for c in CHARGERS]), data=st.data(), twice=st.booleans())
    def acknowledge_one(self, cp: str, data: st.DataObject, twice: bool) -> None:
        """Any decision it took is acknowledged, in any order, perhaps again later."""
        ch = self.chargers[cp]
        if ch.acks:
            i = data.draw(st.integers(0, len(ch.acks) - 1))
            decision = ch.acks[i] if twice else ch.acks.pop(i)
            self._ack(ch, decision)

    @rule(cp=st.sampled_from([c[0] for c in CHARGERS]))
    def reconnect(self, cp: str) -> None:
        due = self.grid.limits_due(cp)
        if due is not None:
            self._heard(due)

    # ---- what must hold --------------------------------------------------------------------------
    def _most(self, ch: _Charger, at: datetime) -> int:
        """The most a charger may draw at `at`: the highest sum of any decision since its last full
        acknowledgement (it takes its charger-wide maximum first, so connectors holding limits of
        different decisions still draw no more than the later decision's sum)."""
        assert ch.full is not None
        return max(sum(p.at(at) for p in plans.values()) for d, plans in ch.plans.items() if d >= ch.full)

    @invariant()
    def within_every_limit(self) -> None:
        now = self.clock.now()
        moments = {now} | {
            t
            for ch in self.chargers.values()
            for plans in ch.plans.values()
            for p in plans.values()
            for t, _ in p.steps
            if now < t <= now + MAX_ADVANCE
        }
        moments |= {
            t for e, _ in self.events for t in (e.starts_at, e.ends_at) if now < t <= now + MAX_ADVANCE
        }
        for key in [(Scope.SITE, s.site_id) for s in self.sites] + [(Scope.FEEDER, self.feeder_id)]:
            under = [ch for ch in self.chargers.values() if key in constraints(self.sites[ch.site])]
            # Events every charger under it has had the chance to take in a decision it acknowledged.
            known = [
                e
                for e, announced in self.events
                if all(
                    ch.full_at is not None
                    and ch.full_seq > announced
                    and ch.full_at >= e.starts_at - LOOK_AHEAD
                    for ch in under
                )
            ]
            for at in sorted(moments):
                cap = capacities_w(self.sites, [self._feeder()], known, at)[key]
                drawn = sum(self._most(ch, at) for ch in under)
                assert drawn <= cap, (key, at, drawn, cap)

    @invariant()
    def held_is_the_most_since_the_last_full_acknowledgement(self) -> None:
        with self.app.store.reading() as tx:
            held = tx.grid.held()
        for ch in self.chargers.values():
            for cid, _ in ch.connectors.values():
                assert ch.full is not None
                want = max(
                    max([p[cid].limit_w, *(w for _, w in p[cid].steps)])
                    for d, p in ch.plans.items()
                    if d >= ch.full and cid in p
                )
                assert held.get(cid) == want, (ch.cp_id, cid, held.get(cid), want)

    def _feeder(self) -> Any:
        return self.grid.feeders()[0]

    def teardown(self) -> None:
        try:
            self._settles_on_the_fair_shares()
        finally:
            self.app.close()

    def _settles_on_the_fair_shares(self) -> None:
        self._all_take_everything()
        now = self.clock.now()
        by_connector = {
            cid: (self.sites[ch.site].site_id, w)
            for ch in self.chargers.values()
            for cid, w in ch.connectors.values()
        }
        fair = allocate(
            self.sites,
            [self._feeder()],
            [Charging(c, *by_connector[c], at) for c, at in self.open.items()],
            [e for e, _ in self.events],
            now,
            idle=[Idle(c, *by_connector[c]) for c in by_connector if c not in self.open],
        )
        with self.app.store.reading() as tx:
            plans = tx.grid.plans()
        assert {c: p.from_(now).limit_w for c, p in plans.items()} == dict(fair.limits_w)


GridModel.TestCase.settings = settings(
    max_examples=examples(100), stateful_step_count=40, deadline=None, suppress_health_check=list(HealthCheck)
)
test_grid_model = GridModel.TestCase


class _ShortHold(GridModel):
    hold_raises_for = timedelta(seconds=40)


def test_an_unheard_charger_is_never_raised_past_what_another_unheard_one_leaves() -> None:
    """A and B share a site; both fall silent. A was raised while B was counted at what B held
    then; B's connectors' most grew since (one lowered, one raised). Deciding for B as if heard,
    capped only by its own most per connector, raised B while A may still hold its raise."""
    m = _ShortHold()
    try:

        def toggle(connector_id: int) -> None:
            if connector_id in m.open:
                del m.open[connector_id]
            else:
                m.open[connector_id] = m.clock.now()
            m.grid.rebalance()
            m.within_every_limit()

        toggle(1)  # A starts: B's idle connectors lowered to 0, A's raise held
        m.advance_and_sweep(40)  # B unheard: A raised against what B holds
        m.within_every_limit()
        toggle(3)
        toggle(3)
        toggle(4)
        m.take_next("B", True)
        m.advance_and_sweep(40)
        m.advance_and_sweep(40)
        toggle(3)  # B's second connector charges
        b = m.chargers["B"]
        m._ack(b, b.acks.pop(0))  # B acknowledges an older decision: heard again, briefly
        m.within_every_limit()
        m.advance_and_sweep(40)  # A and B both unheard
        toggle(2)
    finally:
        m.app.close()
