"""Site and feeder supply limits on the backend's side: the operator's feeders and flexibility
events, hosts' sites and the chargers on them, and each connector's limit, decided again whenever a
session starts or stops, a site changes, a connector's kept phases rise (`WiringRose`), or a
flexibility event begins or ends (a housekeeping step).

A connector with a car charging gets its fair share (chargeshare/domain/grid_limits.py); one
without gets the minimum charging power where the site and feeder have that much left after the
cars charging, and 0 where they do not, so a car that starts there before its start is heard and
the shares are decided again never takes them past their limits. The limits decided are kept
(grid_allocations), and a charger whose limits changed is told (`GridLimitsDue`;
chargeshare/ocpp/grid_limits.py says it in OCPP); a charger that connects is told its limits again
(`limits_due`).

A flexibility event beginning or ending within `LOOK_AHEAD` is decided ahead: each connector's limit
carries the step it takes then (the shares at that moment, for the cars charging now), which its
charger holds as a later period of its profiles, so the limit changes on time however late the
sweep or the commands run. At the edge itself the sweep decides again and the step becomes the limit.

Each charger's decisions are numbered and owed until it acknowledges one (`limits_delivered`): a
charger offline, a refused command or a process dying after the commit leaves them owed, and the
housekeeping sweep tells the charger again (`resend_owed`). Decisions take turns (`deciding`), so
a later decision always reads what an earlier one wrote.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.grid_limits import (
    MIN_CHARGING_W,
    Charging,
    Feeder,
    FlexEvent,
    Idle,
    Plan,
    Scope,
    Site,
    Unheard,
    allocate,
    constraints,
    edges_within,
    lower_before_raise,
    min_charging_w,
    phases_carried,
)
from chargeshare.ocpp import phases as ocpp_phases
from chargeshare.ocpp.phases import Wiring
from chargeshare.services.charger_reports import PHASES, PHASES_SEEN, known_wiring
from chargeshare.services.clock import Clock
from chargeshare.services.events import (
    GridLimitsDue,
    MessageBus,
    SessionClosedWithoutStop,
    SessionStarted,
    SessionStopped,
    WiringRose,
)
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.records import ChargerView

# How long a decision may be on its way before the sweep sends it again: long enough for a
# charger to answer the commands it is being sent, short against a meter interval.
RESEND_OWED_AFTER = timedelta(seconds=30)
# How long a decision not yet acknowledged holds other chargers' raises under its site or feeder:
# well past a busy charger's answer, so a raise never overtakes a lowering still on its way; a
# charger silent longer is taken as gone, so it does not hold its neighbours' shares for ever.
HOLD_RAISES_FOR = timedelta(minutes=5)
# How far ahead a flexibility event's edge is put on the chargers: many sweeps, so a busy charger
# or server still has it in hand well before the edge.
LOOK_AHEAD = timedelta(minutes=5)
# How far past the server's now a meter's reading may be stamped: clocks kept by NTP agree within a
# second or so. A stamp further ahead is a wrong clock, and taken it would stand until that moment,
# every honest reading before then ignored as older.
MEASURED_AHEAD_TOLERANCE = timedelta(seconds=5)

Step = tuple[datetime, int]
_Key = tuple[Scope, int]


@dataclass(frozen=True)
class HouseLoadOutcome:
    """The site after a meter's reading: `applied` False when the reading was older than the one in
    force, which stands (the site shows it)."""

    site: Site
    applied: bool


@dataclass(frozen=True)
class _Connector:
    connector_id: int
    connector_no: int
    charge_point_id: str
    charger_id: int


class GridService:
    def __init__(
        self,
        store: Store,
        bus: MessageBus,
        clock: Clock,
        *,
        min_w: int = MIN_CHARGING_W,
        resend_after: timedelta = RESEND_OWED_AFTER,
        look_ahead: timedelta = LOOK_AHEAD,
        hold_raises_for: timedelta = HOLD_RAISES_FOR,
    ) -> None:
        self.store, self.bus, self.clock, self.min_w = store, bus, clock, min_w
        self.resend_after, self.look_ahead = resend_after, look_ahead
        self.hold_raises_for = hold_raises_for
        for event in (SessionStarted, SessionStopped, SessionClosedWithoutStop):
            bus.subscribe(event, self._on_session_changed)
        bus.subscribe(WiringRose, self._on_wiring_rose)

    # ---- the operator's and the hosts' choices ----------------------------------------------------
    def add_feeder(self, name: str, limit_w: int) -> Feeder:
        with self.store.transaction() as tx:
            return tx.grid.add_feeder(name, limit_w)

    def add_site(
        self, host_id: int, name: str, limit_w: int, *, house_load_w: int = 0, feeder_id: int | None = None
    ) -> Site:
        with self.store.transaction() as tx:
            return tx.grid.add_site(host_id, name, limit_w, house_load_w, feeder_id)

    def set_house_load(
        self,
        site_id: int,
        house_load_w: int,
        *,
        measured_at: datetime | None = None,
        host_id: int | None = None,
        decide: bool = True,
    ) -> HouseLoadOutcome:
        """A site meter's reading, measured at `measured_at` (aware; None: now): the shares follow
        (`decide=False`: at the next housekeeping sweep, in whichever process runs it). A reading
        older than the one in force changes nothing; one stamped more than
        `MEASURED_AHEAD_TOLERANCE` ahead of now is InvalidRequest."""
        now = self.clock.now()
        if measured_at is None:
            measured_at = now
        elif measured_at.tzinfo is None:
            raise InvalidRequest("a reading's measured_at needs its time zone")
        elif measured_at > now + MEASURED_AHEAD_TOLERANCE:
            raise InvalidRequest(
                f"a reading measured at {measured_at.isoformat()} is ahead of the server's clock "
                f"({now.isoformat()}) by more than {MEASURED_AHEAD_TOLERANCE.total_seconds():g} s"
            )
        with self.store.transaction() as tx:
            self._site(tx, site_id, host_id)
            site, applied = tx.grid.set_house_load(site_id, house_load_w, measured_at)
        if decide and applied:
            self.rebalance()
        return HouseLoadOutcome(site, applied)

    def place(
        self, charger_id: int, site_id: int | None, *, host_id: int | None = None, decide: bool = True
    ) -> None:
        """Put a charger on a site (None: on none). With `host_id`, only that host's charger, on
        that host's site (another's is NotFound)."""
        with self.store.transaction() as tx:
            charger = tx.chargers.by_id(charger_id)
            if host_id is not None and charger.host_id != host_id:
                raise NotFound(f"no charger {charger_id}")
            if site_id is not None:
                self._site(tx, site_id, host_id)
            tx.grid.place(charger_id, site_id)
        if decide:
            self.rebalance()

    def add_flex_event(
        self,
        scope: Scope,
        target_id: int,
        limit_w: int,
        starts_at: datetime,
        ends_at: datetime,
        *,
        decide: bool = True,
    ) -> FlexEvent:
        """A DNO's flexibility event: the limit is lowered over the window. One already running
        takes effect now; the housekeeping sweep follows its start and end."""
        with self.store.transaction() as tx:
            event = tx.grid.add_flex_event(scope, target_id, limit_w, starts_at, ends_at, self.clock.now())
        if decide:
            self.rebalance()
        return event

    # ---- reading ----------------------------------------------------------------------------------
    def feeders(self) -> Sequence[Feeder]:
        with self.store.reading() as tx:
            return tx.grid.feeders()

    def sites(self, host_id: int | None = None) -> Sequence[Site]:
        with self.store.reading() as tx:
            return tx.grid.sites(host_id)

    def flex_events(self, *, current_only: bool = False) -> Sequence[FlexEvent]:
        with self.store.reading() as tx:
            return tx.grid.flex_events(self.clock.now() if current_only else None)

    def members(self) -> dict[int, int]:
        with self.store.reading() as tx:
            return tx.grid.members()

    def limits_due(self, charge_point_id: str) -> GridLimitsDue | None:
        """What a charger is told on connecting or when its limits are owed: its connectors' limits
        as last decided, under that decision's number (None: it is on no limited site and owes no
        clearing)."""
        with self.store.reading() as tx:
            charger = tx.chargers.get(charge_point_id)
            # The number first: a decision committing between the two reads then pairs newer limits
            # with an older number, which stays owed and is sent again, never old limits with its own.
            delivery = tx.grid.delivery(charger.charger_id)
            plans = tx.grid.plans()
        now = self.clock.now()
        # A step whose moment has passed is in force now (the sweep decides it again shortly).
        mine = {
            c.connector_no: plans[c.connector_id].from_(now)
            for c in charger.connectors
            if c.connector_id in plans
        }
        decision, delivered = delivery or (0, 0)
        if not mine and delivered >= decision:
            return None
        limits, steps = _told(mine)
        return GridLimitsDue(now, charge_point_id, limits, decision, steps, self._phase_caps(charger))

    def limits_delivered(self, charge_point_id: str, decision: int) -> None:
        """The charger acknowledged every command of `decision`: no longer owed (unless a newer one
        is). Then decided again: a raise held while this charger's limits were lowered goes out."""
        with self.store.transaction() as tx:
            tx.grid.delivered(tx.chargers.get(charge_point_id).charger_id, decision, self.clock.now())
        self.rebalance()

    def resend_owed(self) -> list[GridLimitsDue]:
        """Tell again each charger whose latest decision has gone unacknowledged for `resend_after`
        (offline when decided, a command refused, or the deciding process died after committing)."""
        with self.store.reading() as tx:
            owed = tx.grid.owed(self.clock.now() - self.resend_after)
            cp_ids = [tx.chargers.by_id(charger_id).charge_point_id for charger_id in owed]
        due = [d for d in (self.limits_due(cp_id) for cp_id in cp_ids) if d is not None]
        for event in due:
            self.bus.publish(event)
        return due

    # ---- deciding ---------------------------------------------------------------------------------
    def _on_session_changed(self, _event: object) -> None:
        self.rebalance()

    def _on_wiring_rose(self, event: WiringRose) -> None:
        """A connector of the charger has more phases now: decided again, and the charger told even
        where its limits in W stay as they were, since its profiles in A and its minimum depend on
        its phases. The report's own commit owed it a new decision (where it is on a limited site:
        `ChargerReportsService`), so a crash before this leaves it to the sweep (`resend_owed`), and
        a round in flight sends it after its own. Told here only if still owed, and not by this
        decision already."""
        cp_id = event.charge_point_id
        if any(due.charge_point_id == cp_id for due in self.rebalance()):
            return
        with self.store.reading() as tx:
            delivery = tx.grid.delivery(tx.chargers.get(cp_id).charger_id)
        if delivery is None or delivery[1] >= delivery[0]:
            return  # on no limited site, or its decision taken already
        due = self.limits_due(cp_id)
        if due is not None:
            self.bus.publish(due)

    def rebalance(self) -> list[GridLimitsDue]:
        """Decide every connector's limit now, keep those that changed, and tell their chargers."""
        with self.store.transaction() as tx:
            tx.grid.deciding()  # first: every read below sees the decisions committed before ours
            now = self.clock.now()
            members = tx.grid.members()
            plans = tx.grid.plans()
            if not members and not plans:
                return []
            # Against the limits in force now: a step already passed is what the charger holds.
            in_force = {c: p.from_(now) for c, p in plans.items()}
            # A charger owing a decision: still taking it (what it draws may be either limit), or,
            # unheard for longer than the hold, counted at the most it may hold.
            owing = tx.grid.owing()
            unheard = {c for c, since in owing.items() if since <= now - self.hold_raises_for}
            recent = owing.keys() - unheard
            wanted, where, under, counted = self._decide(tx, members, now, unheard)
            # An unheard connector is raised (never above what it may hold) only where no other
            # charger's unheard one shares a limit: the heard were shared out against what each
            # unheard one may hold, but each unheard one's plan is decided as if the others were
            # heard, so raising it could meet another's older, higher plan.
            wanted = {
                c: p.capped_by(in_force[c])
                if c in in_force and _beside_unheard(c, counted, where, under)
                else p
                for c, p in wanted.items()
            }
            settling = {c for c, k in where.items() if k.charger_id in recent}
            charger_of = {c: k.charger_id for c, k in where.items()}
            sent = lower_before_raise(in_force, wanted, under, charger_of, settling, counted=counted)
            for connector_id in plans.keys() - sent.keys():
                if connector_id not in where:
                    where[connector_id] = self._connector_of(tx, connector_id)
            changed = {c: sent.get(c) for c in sent.keys() | plans.keys() if sent.get(c) != plans.get(c)}
            if not changed:
                return []
            tx.grid.save_allocations(
                {c: None if p is None else p.limit_w for c, p in changed.items()},
                now,
                {c: p.steps for c, p in changed.items() if p is not None and p.steps},
            )
            # Owed in the same commit: a crash before the chargers are told leaves them owed.
            decisions = tx.grid.owe(sorted({where[c].charger_id for c in changed}), now)
            caps = {i: self._phase_caps(tx.chargers.by_id(i)) for i in decisions}
        chargers = sorted({(where[c].charge_point_id, where[c].charger_id) for c in changed})
        due: list[GridLimitsDue] = []
        for cp_id, charger_id in chargers:
            limits, steps = _told(
                {
                    k.connector_no: sent[c]
                    for c, k in where.items()
                    if k.charge_point_id == cp_id and c in sent
                }
            )
            due.append(GridLimitsDue(now, cp_id, limits, decisions[charger_id], steps, caps[charger_id]))
        for event in due:
            self.bus.publish(event)
        return due

    def _decide(
        self, tx: UnitOfWork, members: dict[int, int], now: datetime, unheard_chargers: Collection[int] = ()
    ) -> tuple[dict[int, Plan], dict[int, _Connector], dict[int, list[_Key]], set[int]]:
        """Each connector's plan: its limit now and the steps it takes at the flexibility event
        edges within `look_ahead` where its limit changes; where each connector is, the limits it
        sits under, and the connectors of the unheard chargers.

        An unheard charger's connectors are counted at the most they may hold: the others share
        what that leaves. Each is told what it would be given if heard, never above that most."""
        sites, feeders = tx.grid.sites(), tx.grid.feeders()
        by_site = {s.site_id: s for s in sites}
        under: dict[int, list[_Key]] = {}
        events = tx.grid.flex_events(now)
        where: dict[int, _Connector] = {}
        idle: list[Idle] = []
        charging: list[Charging] = []
        unheard: list[Unheard] = []
        held = tx.grid.held() if unheard_chargers else {}
        for charger_id, site_id in members.items():
            charger = tx.chargers.by_id(charger_id)
            wired = self._wiring(tx, charger_id)
            for c in charger.connectors:
                least = min_charging_w(
                    ocpp_phases.of_connector(wired, c.connector_no),
                    wired.switches_3to1,
                    self.min_w,
                    c.max_power_w,
                )
                where[c.connector_id] = _Connector(
                    c.connector_id, c.connector_no, charger.charge_point_id, charger_id
                )
                under[c.connector_id] = constraints(by_site[site_id]) if site_id in by_site else []
                if charger_id in unheard_chargers:
                    # Never acknowledged anything: it may hold no limit at all, so its rating.
                    unheard.append(Unheard(c.connector_id, site_id, held.get(c.connector_id, c.max_power_w)))
                session = tx.sessions.open_on(c.connector_id)
                if session is None:
                    idle.append(Idle(c.connector_id, site_id, c.max_power_w, least))
                else:
                    charging.append(
                        Charging(c.connector_id, site_id, c.max_power_w, session.started_at, least)
                    )
        plans = self._plans(sites, feeders, charging, idle, events, now)
        if unheard:
            apart = {u.connector_id for u in unheard}
            heard = self._plans(
                sites,
                feeders,
                [c for c in charging if c.connector_id not in apart],
                [i for i in idle if i.connector_id not in apart],
                events,
                now,
                unheard,
            )
            plans = {**heard, **{u.connector_id: plans[u.connector_id].capped_by(Plan(u.w)) for u in unheard}}
        return plans, where, under, {u.connector_id for u in unheard}

    def _phase_caps(self, charger: ChargerView) -> tuple[tuple[int, int], ...]:
        """Its connectors whose rating carries the minimum on fewer than every phase, and on how
        many it does: declared on more, it is told one (`phases_on`), as its minimum was taken."""
        most = ocpp_phases.MAX_PHASES
        caps = ((c.connector_no, phases_carried(c.max_power_w, self.min_w)) for c in charger.connectors)
        return tuple(sorted((no, n) for no, n in caps if n < most))

    @staticmethod
    def _wiring(tx: UnitOfWork, charger_id: int) -> Wiring:
        """The phases its charger last said, with those seen drawing where it said nothing, and its
        switch to one phase (unknown: one phase)."""
        return known_wiring(tx.reports.of(charger_id, (PHASES, PHASES_SEEN)))[0]

    def _plans(
        self,
        sites: Sequence[Site],
        feeders: Sequence[Feeder],
        charging: Sequence[Charging],
        idle: Sequence[Idle],
        events: Sequence[FlexEvent],
        now: datetime,
        unheard: Sequence[Unheard] = (),
    ) -> dict[int, Plan]:
        def limits_at(at: datetime) -> dict[int, int]:
            found = allocate(
                sites, feeders, charging, events, at, idle=idle, unheard=unheard, min_w=self.min_w
            )
            return dict(found.limits_w)

        wanted = limits_at(now)
        # Each connector's changes at the edges ahead (an edge where its limit stays adds nothing).
        steps: dict[int, tuple[Step, ...]] = {}
        last = dict(wanted)
        for edge in edges_within(events, now, now + self.look_ahead):
            then = limits_at(edge)
            for connector_id, w in last.items():
                if then.get(connector_id, w) != w:
                    steps[connector_id] = (*steps.get(connector_id, ()), (edge, then[connector_id]))
                    last[connector_id] = then[connector_id]
        return {c: Plan(w, steps.get(c, ())) for c, w in wanted.items()}

    @staticmethod
    def _connector_of(tx: UnitOfWork, connector_id: int) -> _Connector:
        """A connector whose charger left its site: where its cleared limit is to be told."""
        for charger in tx.chargers.all():
            for c in charger.connectors:
                if c.connector_id == connector_id:
                    cp_id = charger.charge_point_id
                    return _Connector(connector_id, c.connector_no, cp_id, charger.charger_id)
        raise NotFound(f"no connector {connector_id}")

    @staticmethod
    def _site(tx: UnitOfWork, site_id: int, host_id: int | None) -> Site:
        found = [s for s in tx.grid.sites(host_id) if s.site_id == site_id]
        if not found:
            raise NotFound(f"no site {site_id}")  # another host's: as if it did not exist
        return found[0]


def _beside_unheard(
    c: int, counted: Collection[int], where: dict[int, _Connector], under: dict[int, list[_Key]]
) -> bool:
    """Whether `c`, unheard, shares a site or feeder with another charger's unheard connector."""
    return c in counted and any(
        where[o].charger_id != where[c].charger_id and set(under[o]) & set(under[c]) for o in counted
    )


def _told(
    plans: dict[int, Plan],
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, datetime, int], ...]]:
    """A charger's plans, by connector number, as its GridLimitsDue carries them."""
    limits = tuple(sorted((no, p.limit_w) for no, p in plans.items()))
    steps = tuple(sorted((no, then, w) for no, p in plans.items() for then, w in p.steps))
    return limits, steps
