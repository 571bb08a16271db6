"""Site and feeder supply limits, as pure rules: how much power each charging connector may draw.

A host's site has a supply limit shared with the house (its main fuse: 60 A at 230 V is 13.8 kW),
whose own load comes first. Sites hang off a feeder whose limit the distribution network operator
sets. A flexibility event (a DNO's demand-side-response signal) lowers a site's or a feeder's limit
for a window. The connectors charging under a limit share what is left of it max-min fairly (each
gets the same, except those whose rating is lower, whose spare goes to the others), none below the
minimum charging power; when there is not enough for every car to get that minimum, the most
recently started are paused (0 W) until there is, and then any of them whose own minimum fits
after all charges again. The minimum is 6 A on each phase a connector
draws on: 1,380 W on one phase, 4,140 W for a three-phase connector whose charger cannot switch
to one phase (`min_charging_w`); a connector rated under 6 A on each phase it declares draws on
one (`phases_within`: a UK supply has one phase or three), and one rated under 6 A on one phase
cannot charge under a limit, so it is given 0. Power in W, time aware UTC.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from chargeshare.domain.errors import InvalidRequest

VOLTS = 230
MIN_AMPS = 6  # IEC 61851's lowest current a car must accept, on each phase it draws on
MIN_CHARGING_W = MIN_AMPS * VOLTS  # 6 A on one phase


_K = TypeVar("_K")


def phases_carried(rating_w: int, per_phase_w: int = MIN_CHARGING_W) -> int:
    """How many phases a rating carries 6 A (`per_phase_w`) on each of (0: not even one)."""
    return rating_w // per_phase_w


def phases_on(phases: int, carried: int) -> int:
    """The phases a connector declared wired to `phases` charges on, its rating carrying 6 A on
    `carried` phases: all it declares if it carries 6 A on each of them, else one. A UK supply is
    one- or three-phase, so a three-phase connector rated under 4,140 W is a one-phase EVSE (a
    16 A one under a station that says three), never a two-phase one."""
    return phases if 1 <= phases <= carried else 1


def phases_within(phases: int, rating_w: int, per_phase_w: int = MIN_CHARGING_W) -> int:
    """`phases_on` for a connector rated `rating_w`: its declared phases if the rating carries 6 A
    (`per_phase_w`) on each of them, else one."""
    return phases_on(phases, phases_carried(rating_w, per_phase_w))


def min_charging_w(
    phases: int, switches_3to1: bool, per_phase_w: int = MIN_CHARGING_W, rating_w: int | None = None
) -> int:
    """The least a connector wired to `phases` may be given and still charge: 6 A (`per_phase_w`)
    on each of its phases (`phases_within` its `rating_w`, if given), or on one if its charger
    switches three phases to one during a transaction. Below it a car cannot charge, so a limit
    there could only be obeyed by pausing; a connector rated under it cannot charge under a limit
    at all (`allocate` gives it 0)."""
    if rating_w is not None:
        phases = phases_within(phases, rating_w, per_phase_w)
    return per_phase_w * (1 if switches_3to1 else max(1, phases))


class Scope(StrEnum):
    """What a limit belongs to."""

    SITE = "site"
    FEEDER = "feeder"


@dataclass(frozen=True)
class Feeder:
    feeder_id: int
    name: str
    limit_w: int

    def __post_init__(self) -> None:
        _enough_for_one_car("a feeder's limit", self.limit_w)


@dataclass(frozen=True)
class Site:
    """A host's premises: its supply limit, the house's own load, and the feeder it hangs off.
    `house_load_at`: when the reading in force was measured (None: none yet), so an older reading
    arriving late cannot replace it."""

    site_id: int
    host_id: int
    name: str
    limit_w: int
    house_load_w: int = 0
    feeder_id: int | None = None
    house_load_at: datetime | None = None

    def __post_init__(self) -> None:
        _enough_for_one_car("a site's limit", self.limit_w)
        if self.house_load_w < 0:
            raise InvalidRequest(f"a house load is 0 W or more, got {self.house_load_w}")


@dataclass(frozen=True)
class FlexEvent:
    """A limit lowered to `limit_w` over [starts_at, ends_at)."""

    event_id: int
    scope: Scope
    target_id: int
    limit_w: int
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        if self.limit_w < 0:
            raise InvalidRequest(f"a flexibility event's limit is 0 W or more, got {self.limit_w}")
        if self.starts_at.utcoffset() is None or self.ends_at.utcoffset() is None:
            raise InvalidRequest("a flexibility event's times must say their time zone")
        if self.ends_at <= self.starts_at:
            raise InvalidRequest("a flexibility event ends after it starts")

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def applies_to(self, scope: Scope, target_id: int) -> bool:
        return self.scope is scope and self.target_id == target_id


@dataclass(frozen=True)
class Charging:
    """A connector with a car charging on it, under a site."""

    connector_id: int
    site_id: int
    rating_w: int
    started_at: datetime
    min_w: int | None = None  # its own minimum (`min_charging_w`); None: the allocation's


@dataclass(frozen=True)
class Idle:
    """A connector with no car charging on it, under a site: a car may start there before the
    backend hears of it, so its limit is what that car may draw meanwhile."""

    connector_id: int
    site_id: int
    rating_w: int
    min_w: int | None = None  # its own minimum (`min_charging_w`); None: the allocation's


@dataclass(frozen=True)
class Unheard:
    """A connector whose charger has not been heard from for long: it is not decided for, and it
    is counted as drawing `w` (the most its charger may still hold) under its site and feeder."""

    connector_id: int
    site_id: int
    w: int


@dataclass(frozen=True)
class Allocation:
    """Each connector's limit in W (0: paused, idle with no room for a car's minimum, or rated under
    its own minimum, so no car could charge on it under a limit), and which charging connectors
    were paused for want of power."""

    limits_w: Mapping[int, int]
    paused: frozenset[int]


def _enough_for_one_car(what: str, watts: int) -> None:
    # Below one car's minimum no charger on it could ever charge: a typo, not a supply.
    if watts < MIN_CHARGING_W:
        raise InvalidRequest(f"{what} must be at least {MIN_CHARGING_W} W (6 A on one phase), got {watts}")


def effective_limit_w(
    base_w: int, scope: Scope, target_id: int, events: Iterable[FlexEvent], at: datetime
) -> int:
    """The limit in force at `at`: the base one, or the lowest an active flexibility event sets."""
    lowered = [e.limit_w for e in events if e.active(at) and e.applies_to(scope, target_id)]
    return min([base_w, *lowered])


def edges_within(events: Iterable[FlexEvent], after: datetime, until: datetime) -> list[datetime]:
    """Every moment in (after, until] at which a flexibility event begins or ends, in order."""
    return sorted({t for e in events for t in (e.starts_at, e.ends_at) if after < t <= until})


def capacities_w(
    sites: Sequence[Site], feeders: Sequence[Feeder], events: Sequence[FlexEvent], at: datetime
) -> dict[tuple[Scope, int], int]:
    """What each site and feeder leaves for charging at `at`: its limit in force less the house
    loads under it (never below 0)."""
    caps: dict[tuple[Scope, int], int] = {}
    for f in feeders:
        houses = sum(s.house_load_w for s in sites if s.feeder_id == f.feeder_id)
        limit = effective_limit_w(f.limit_w, Scope.FEEDER, f.feeder_id, events, at)
        caps[(Scope.FEEDER, f.feeder_id)] = max(0, limit - houses)
    for s in sites:
        limit = effective_limit_w(s.limit_w, Scope.SITE, s.site_id, events, at)
        caps[(Scope.SITE, s.site_id)] = max(0, limit - s.house_load_w)
    return caps


def constraints(site: Site) -> list[tuple[Scope, int]]:
    """The limits a connector on `site` sits under: its site's, and its feeder's if it has one."""
    under = [(Scope.SITE, site.site_id)]
    if site.feeder_id is not None:
        under.append((Scope.FEEDER, site.feeder_id))
    return under


def allocate(
    sites: Sequence[Site],
    feeders: Sequence[Feeder],
    charging: Sequence[Charging],
    events: Sequence[FlexEvent],
    at: datetime,
    *,
    idle: Sequence[Idle] = (),
    unheard: Sequence[Unheard] = (),
    min_w: int = MIN_CHARGING_W,
) -> Allocation:
    """Every connector's limit at `at`. A connector on a site not listed is not limited (its
    rating, or the minimum when idle); sites and feeders are as listed. A connector rated under its
    minimum (`Charging.min_w`, else `min_w`) is given 0 and holds no capacity: no limit within its
    rating lets a car charge on it.

    The cars charging share what each site and feeder leaves after the `unheard` (left out of the
    answer); an idle connector is given a car's minimum only from what is left after them, so a car
    starting unheard never takes a site or feeder past its limit (on a full one it waits at 0 until
    its start is decided)."""
    by_site = {s.site_id: s for s in sites}
    caps = capacities_w(sites, feeders, events, at)
    for u in unheard:
        for k in constraints(by_site[u.site_id]) if u.site_id in by_site else []:
            caps[k] = max(0, caps[k] - u.w)
    under = {c.connector_id: constraints(by_site[c.site_id]) for c in charging if c.site_id in by_site}
    floor = {c.connector_id: min_w if c.min_w is None else c.min_w for c in charging}
    # Rated under its own minimum, a connector could charge on no limit it is sent (it goes out
    # as 0): it is given 0 and holds nothing, rather than a share no car could draw.
    unable = {c.connector_id for c in charging if floor[c.connector_id] > c.rating_w}
    # Pause the latest started (ties: the higher connector id) until every car can have its minimum.
    running = sorted(
        (c for c in charging if c.connector_id not in unable), key=lambda c: (c.started_at, c.connector_id)
    )
    paused: set[int] = set()
    while True:
        need: dict[tuple[Scope, int], int] = {}
        for c in running:
            for k in under.get(c.connector_id, []):
                need[k] = need.get(k, 0) + floor[c.connector_id]
        short = {k for k, w in need.items() if w > caps[k]}
        if not short:
            break
        latest = next(c for c in reversed(running) if short.intersection(under.get(c.connector_id, [])))
        running.remove(latest)
        paused.add(latest.connector_id)
    # Minimums differ, so a car paused before a larger one was may fit once that one is paused:
    # the earliest started of them charge again where their minimum fits beside those running.
    for c in sorted(charging, key=lambda c: (c.started_at, c.connector_id)):
        if c.connector_id not in paused:
            continue
        keys = under.get(c.connector_id, [])
        if all(need.get(k, 0) + floor[c.connector_id] <= caps[k] for k in keys):
            for k in keys:
                need[k] = need.get(k, 0) + floor[c.connector_id]
            paused.discard(c.connector_id)
            running.append(c)
    limits = fair_shares(
        caps,
        {c.connector_id: (c.rating_w, under.get(c.connector_id, [])) for c in running},
        {c.connector_id: floor[c.connector_id] for c in running},
    )
    left = dict(caps)
    for connector_id, w in limits.items():
        for k in under.get(connector_id, []):
            left[k] -= w
    spare: dict[int, int] = {}
    for i in sorted(idle, key=lambda i: i.connector_id):  # lower ids first: the same answer every time
        want = min_w if i.min_w is None else i.min_w
        keys = constraints(by_site[i.site_id]) if i.site_id in by_site else []
        fits = want <= i.rating_w and all(left[k] >= want for k in keys)
        spare[i.connector_id] = want if fits else 0
        for k in keys:
            left[k] -= spare[i.connector_id]
    return Allocation({**spare, **limits, **dict.fromkeys(paused | unable, 0)}, frozenset(paused))


@dataclass(frozen=True)
class Plan:
    """A connector's limit from now on: `limit_w` now, then each later step (when, W) in time order,
    as its charger holds it in the periods of its profiles."""

    limit_w: int
    steps: tuple[tuple[datetime, int], ...] = ()

    def at(self, when: datetime) -> int:
        """The limit in force at `when` (a step applies from its moment on)."""
        return next((w for then, w in reversed(self.steps) if then <= when), self.limit_w)

    def from_(self, now: datetime) -> Plan:
        """The same plan with the steps whose moment has passed taken as its limit now."""
        return Plan(self.at(now), tuple(s for s in self.steps if s[0] > now))

    def _both(self, other: Plan) -> list[tuple[int, int]]:
        """(self's, other's) limit now and at every step of either."""
        moments = sorted({then for then, _ in (*self.steps, *other.steps)})
        return [(self.limit_w, other.limit_w), *((self.at(t), other.at(t)) for t in moments)]

    def passes(self, other: Plan) -> bool:
        """Somewhere above `other` (from now on)."""
        return any(mine > theirs for mine, theirs in self._both(other))

    def capped_by(self, other: Plan) -> Plan:
        """Never above `other` at any moment: the lower of the two throughout."""
        moments = sorted({then for then, _ in (*self.steps, *other.steps)})
        steps: list[tuple[datetime, int]] = []
        last = min(self.limit_w, other.limit_w)
        for t in moments:
            w = min(self.at(t), other.at(t))
            if w != last:
                steps.append((t, w))
                last = w
        return Plan(min(self.limit_w, other.limit_w), tuple(steps))


def lower_before_raise(
    before: Mapping[int, Plan],
    wanted: Mapping[int, Plan],
    under: Mapping[int, Sequence[_K]],
    charger_of: Mapping[int, int],
    settling: Collection[int],
    *,
    counted: Collection[int] = (),
) -> dict[int, Plan]:
    """The plans to send now, given those sent `before` (both from now on). Each charger takes its
    own commands in order, but chargers take theirs in no set order: so a plan that is anywhere above
    the one before is held to the lower of the two while another charger under the same site or
    feeder is being lowered anywhere (or limited for the first time), or is still taking a decision
    (`settling`, connectors), and goes out whole when decided again after that charger acknowledged.
    At every moment the sum then stays within what one of the two decisions fits. A connector
    `counted` at the most it may hold (its charger unheard) holds no raise: the others' plans
    already leave that to it."""
    lowering: dict[_K, set[int]] = {}
    for c, plan in wanted.items():
        if c in counted:
            continue
        if c in settling or c not in before or before[c].passes(plan):
            for k in under.get(c, ()):
                lowering.setdefault(k, set()).add(charger_of[c])

    def held(c: int) -> bool:
        return any(lowering.get(k, set()) - {charger_of[c]} for k in under.get(c, ()))

    return {
        c: plan.capped_by(before[c]) if c in before and plan.passes(before[c]) and held(c) else plan
        for c, plan in wanted.items()
    }


def fair_shares(
    capacities: Mapping[_K, int],
    demands: Mapping[int, tuple[int, Sequence[_K]]],
    floors: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Max-min fair shares (progressive filling) in whole watts: each item's (rating, the
    constraints it sits under), each constraint's capacity, and each item's floor (none: 0; at most
    its rating, and the floors under each constraint within its capacity). A common level rises;
    every item takes the level, or its floor while the level is below it, until it reaches its
    rating or one of its constraints is full; floors keep each sum within its capacity."""
    low = floors or {}
    share: dict[int, int] = {}
    rising = set(demands)
    while rising:
        used: dict[_K, int] = {}
        members: dict[_K, list[int]] = {}
        for item, (_, keys) in demands.items():
            for k in keys:
                if item in rising:
                    members.setdefault(k, []).append(low.get(item, 0))
                else:
                    used[k] = used.get(k, 0) + share[item]
        levels = {k: _level(capacities[k] - used.get(k, 0), fl) for k, fl in members.items()}
        lowest_rating = min(demands[i][0] for i in rising)
        bottleneck = min([lowest_rating, *levels.values()])
        full = {k for k, level in levels.items() if level == bottleneck}
        done = {i for i in rising if demands[i][0] <= bottleneck or full.intersection(demands[i][1])}
        for i in done:
            share[i] = max(0, min(max(bottleneck, low.get(i, 0)), demands[i][0]))
        rising -= done
    return share


def _level(room: int, floors: Sequence[int]) -> int:
    """The highest whole level L at which items taking max(L, their floor) fit in `room`: the
    items whose floor is above L take their floor, the rest share what those leave."""
    pinned = sorted(floors, reverse=True)
    left, n = room, len(pinned)
    level = left // n
    while n > 1 and pinned[len(floors) - n] > level:
        left -= pinned[len(floors) - n]
        n -= 1
        level = left // n
    return level


# ---- the invariant: measured load against the limit ---------------------------------------------
@dataclass(frozen=True)
class LoadSample:
    """What a site or feeder drew at `at` (house load included), and its limit in force then."""

    at: datetime
    load_w: int
    limit_w: int


@dataclass(frozen=True)
class Overload:
    scope: Scope
    target_id: int
    starts_at: datetime
    ends_at: datetime  # the first sample back within the limit, or the last sample
    peak_w: int
    limit_w: int

    @property
    def lasted(self) -> timedelta:
        return self.ends_at - self.starts_at


def overloads(
    samples: Mapping[tuple[Scope, int], Sequence[LoadSample]], tolerance: timedelta
) -> list[Overload]:
    """Every stretch in which a site or feeder drew more than its limit for longer than
    `tolerance` (one meter interval: a limit takes that long to be measured as obeyed)."""
    found: list[Overload] = []
    for (scope, target), series in sorted(samples.items()):
        start: LoadSample | None = None
        peak = 0
        ordered = sorted(series, key=lambda s: s.at)
        for s in ordered:
            if s.load_w > s.limit_w:
                if start is None:
                    start, peak = s, s.load_w
                peak = max(peak, s.load_w)
                continue
            if start is not None:
                if s.at - start.at > tolerance:
                    found.append(Overload(scope, target, start.at, s.at, peak, start.limit_w))
                start = None
        if start is not None and ordered[-1].at - start.at > tolerance:
            found.append(Overload(scope, target, start.at, ordered[-1].at, peak, start.limit_w))
    return found


def site_loads_w(
    sites: Sequence[Site], power_w: Mapping[int, int], site_of: Mapping[int, int]
) -> dict[tuple[Scope, int], int]:
    """Each site's and feeder's load: its houses' loads and the power its connectors draw
    (`power_w` by connector id, `site_of` each connector's site)."""
    loads: dict[tuple[Scope, int], int] = {}
    for s in sites:
        chargers = sum(w for c, w in power_w.items() if site_of.get(c) == s.site_id)
        for k in constraints(s):
            loads[k] = loads.get(k, 0) + s.house_load_w + chargers
    return loads
