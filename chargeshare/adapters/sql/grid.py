"""Site and feeder supply limits: feeders, sites, the chargers on each, flexibility events, and the
connectors' limits as last decided."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, func, insert, null, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.domain.errors import NotFound
from chargeshare.domain.grid_limits import MIN_CHARGING_W, Feeder, FlexEvent, Plan, Scope, Site

_f = t.grid_feeders.c
_s = t.grid_sites.c
_m = t.grid_site_chargers.c
_e = t.grid_flex_events.c
_a = t.grid_allocations.c
_p = t.grid_allocation_steps.c
_d = t.grid_deliveries.c

# pg_advisory_xact_lock key ("CSGL") taken by whoever decides connectors' grid limits.
DECIDING_LOCK_KEY = 0x4353474C


def take_deciding_turn(conn: Connection, dialect: str) -> None:
    """The deciding turn on PostgreSQL, until the transaction ends (SQLite's write transactions take
    turns already). Removing a connector or a charger takes it too, so a decision that read one
    never writes its limits after it is gone."""
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DECIDING_LOCK_KEY})


# Read on every rebalance (each session's start and end, and each sweep).
MEMBERS = DirectStatement(select(_m.charger_id, _m.site_id).order_by(_m.charger_id))
ALLOCATIONS = DirectStatement(select(_a.connector_id, _a.limit_w).order_by(_a.connector_id))
# One statement: each limit with its own steps, never one decision's limit with another's steps.
PLANS = DirectStatement(
    select(_a.connector_id, _a.limit_w, _p.at, _p.limit_w.label("then_w"))
    .select_from(t.grid_allocations.outerjoin(t.grid_allocation_steps, _p.connector_id == _a.connector_id))
    .order_by(_a.connector_id, _p.at)
)
# Read at every boot (whether the charger is owed its limits) and every sweep (who is owed them).
DELIVERY = DirectStatement(select(_d.decision, _d.delivered).where(_d.charger_id == bindparam("charger_pk")))
# Read on every rebalance: who owes a decision, since when; what an unheard one may hold.
OWING = DirectStatement(
    select(_d.charger_id, func.coalesce(_d.owed_since, _d.decided_at))
    .where(_d.delivered < _d.decision)
    .order_by(_d.charger_id)
)
HELD = DirectStatement(
    select(_a.connector_id, _a.held_w).where(_a.held_w.is_not(None)).order_by(_a.connector_id)
)
OWED = DirectStatement(
    select(_d.charger_id)
    .where(_d.delivered < _d.decision, _d.decided_at <= bindparam("before"))
    .order_by(_d.charger_id)
)

STATEMENTS = {
    "grid.members": MEMBERS,
    "grid.allocations": ALLOCATIONS,
    "grid.plans": PLANS,
    "grid.delivery": DELIVERY,
    "grid.owed": OWED,
    "grid.owing": OWING,
    "grid.held": HELD,
}


def _site(r: Any) -> Site:
    feeder = None if r.feeder_id is None else int(r.feeder_id)
    return Site(
        int(r.id), int(r.host_id), r.name, int(r.limit_w), int(r.house_load_w), feeder, r.house_load_at
    )


def _event(r: Any) -> FlexEvent:
    return FlexEvent(int(r.id), Scope(r.scope), int(r.target_id), int(r.limit_w), r.starts_at, r.ends_at)


class SqlGrid:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def _exists(self, table: Any, row_id: int, what: str) -> None:
        if self.conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is None:
            raise NotFound(f"no {what} {row_id}")

    # ---- feeders and sites -------------------------------------------------------------------------
    def add_feeder(self, name: str, limit_w: int) -> Feeder:
        Feeder(0, name, limit_w)  # checks the limit before anything is written
        q = insert(t.grid_feeders).values(name=name, limit_w=limit_w).returning(_f.id)
        return Feeder(int(self.conn.execute(q).scalar_one()), name, limit_w)

    def feeders(self) -> Sequence[Feeder]:
        rows = self.conn.execute(select(t.grid_feeders).order_by(_f.id))
        return [Feeder(int(r.id), r.name, int(r.limit_w)) for r in rows]

    def add_site(
        self, host_id: int, name: str, limit_w: int, house_load_w: int, feeder_id: int | None
    ) -> Site:
        Site(0, host_id, name, limit_w, house_load_w, feeder_id)
        self._exists(t.hosts, host_id, "host")
        if feeder_id is not None:
            self._exists(t.grid_feeders, feeder_id, "feeder")
        q = (
            insert(t.grid_sites)
            .values(
                host_id=host_id, name=name, limit_w=limit_w, house_load_w=house_load_w, feeder_id=feeder_id
            )
            .returning(_s.id)
        )
        return Site(int(self.conn.execute(q).scalar_one()), host_id, name, limit_w, house_load_w, feeder_id)

    def sites(self, host_id: int | None = None) -> Sequence[Site]:
        q = select(t.grid_sites).order_by(_s.id)
        if host_id is not None:
            q = q.where(_s.host_id == host_id)
        return [_site(r) for r in self.conn.execute(q)]

    def set_house_load(self, site_id: int, house_load_w: int, measured_at: datetime) -> tuple[Site, bool]:
        Site(0, 0, "", MIN_CHARGING_W, house_load_w)  # checks the load before anything is written
        # Compare and set in one statement: on PostgreSQL a writer waiting on the row re-reads the
        # time in force once the other commits, so an older reading never lands over a newer one.
        q = (
            update(t.grid_sites)
            .where(_s.id == site_id, or_(_s.house_load_at.is_(None), _s.house_load_at <= measured_at))
            .values(house_load_w=house_load_w, house_load_at=measured_at)
            .returning(*t.grid_sites.c)
        )
        row = self.conn.execute(q).first()
        if row is not None:
            return _site(row), True
        row = self.conn.execute(select(t.grid_sites).where(_s.id == site_id)).first()
        if row is None:
            raise NotFound(f"no site {site_id}")
        return _site(row), False

    # ---- which charger is on which site ------------------------------------------------------------
    def place(self, charger_id: int, site_id: int | None) -> None:
        self._exists(t.chargers, charger_id, "charger")
        if site_id is not None:
            self._exists(t.grid_sites, site_id, "site")
        if site_id is None:
            self.conn.execute(delete(t.grid_site_chargers).where(_m.charger_id == charger_id))
            return
        # An upsert: two placements at once wait on the charger's row, and the later one stands.
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.grid_site_chargers).values(charger_id=charger_id, site_id=site_id)
        self.conn.execute(q.on_conflict_do_update(index_elements=[_m.charger_id], set_={"site_id": site_id}))

    def members(self) -> dict[int, int]:
        return {int(charger_id): int(site_id) for charger_id, site_id in MEMBERS.rows(self.conn, {})}

    # ---- flexibility events ------------------------------------------------------------------------
    def add_flex_event(
        self, scope: Scope, target_id: int, limit_w: int, starts_at: datetime, ends_at: datetime, at: datetime
    ) -> FlexEvent:
        FlexEvent(0, scope, target_id, limit_w, starts_at, ends_at)
        if scope is Scope.SITE:
            self._exists(t.grid_sites, target_id, "site")
        else:
            self._exists(t.grid_feeders, target_id, "feeder")
        q = (
            insert(t.grid_flex_events)
            .values(
                scope=scope.value,
                target_id=target_id,
                limit_w=limit_w,
                starts_at=starts_at,
                ends_at=ends_at,
                created_at=at,
            )
            .returning(_e.id)
        )
        return FlexEvent(
            int(self.conn.execute(q).scalar_one()), scope, target_id, limit_w, starts_at, ends_at
        )

    def flex_events(self, ending_after: datetime | None = None) -> Sequence[FlexEvent]:
        q = select(t.grid_flex_events).order_by(_e.starts_at, _e.id)
        if ending_after is not None:
            q = q.where(_e.ends_at > ending_after)
        return [_event(r) for r in self.conn.execute(q)]

    # ---- the connectors' limits as last decided ----------------------------------------------------
    def deciding(self) -> None:
        """PostgreSQL: take the turn to decide, until the transaction ends. Under read committed,
        what is read after it includes every decision committed before, so an older decision can
        no longer be written over a newer one. SQLite's write transactions take turns already."""
        take_deciding_turn(self.conn, self.dialect)

    def allocations(self) -> dict[int, int]:
        return {int(connector_id): int(limit_w) for connector_id, limit_w in ALLOCATIONS.rows(self.conn, {})}

    def plans(self) -> dict[int, Plan]:
        limits: dict[int, int] = {}
        steps: dict[int, list[tuple[datetime, int]]] = {}
        for connector_id, limit_w, then, then_w in PLANS.rows(self.conn, {}):
            limits[int(connector_id)] = int(limit_w)
            if then is not None:
                steps.setdefault(int(connector_id), []).append((then, int(then_w)))
        return {c: Plan(w, tuple(steps.get(c, ()))) for c, w in limits.items()}

    def save_allocations(
        self,
        limits_w: Mapping[int, int | None],
        at: datetime,
        planned: Mapping[int, Sequence[tuple[datetime, int]]] | None = None,
    ) -> None:
        # One statement per connector, so two processes deciding at once do not collide on a new
        # row: the later decision stands.
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        steps = planned or {}
        for connector_id, limit_w in sorted(limits_w.items()):
            self.conn.execute(delete(t.grid_allocation_steps).where(_p.connector_id == connector_id))
            if limit_w is None:
                self.conn.execute(delete(t.grid_allocations).where(_a.connector_id == connector_id))
                continue
            values = {"limit_w": limit_w, "decided_at": at}
            # The most it may hold grows by this plan until its charger acknowledges all it was sent
            # (unknown, NULL, while it never has).
            most = max([limit_w, *(w for _, w in steps.get(connector_id, ()))])
            held = case((_a.held_w.is_(None), null()), (_a.held_w > most, _a.held_w), else_=most)
            q = make(t.grid_allocations).values(connector_id=connector_id, **values)
            self.conn.execute(
                q.on_conflict_do_update(index_elements=[_a.connector_id], set_={**values, "held_w": held})
            )
            for then, then_w in sorted(steps.get(connector_id, ())):
                self.conn.execute(
                    insert(t.grid_allocation_steps).values(connector_id=connector_id, at=then, limit_w=then_w)
                )

    # ---- which chargers are owed their limits ------------------------------------------------------
    def owe(self, charger_ids: Sequence[int], at: datetime) -> dict[int, int]:
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        for charger_id in sorted(charger_ids):
            q = make(t.grid_deliveries).values(
                charger_id=charger_id, decision=1, delivered=0, decided_at=at, owed_since=at
            )
            # Owed since now unless it owed one already (every SET reads the row as it was).
            since = case((_d.delivered >= _d.decision, at), else_=_d.owed_since)
            self.conn.execute(
                q.on_conflict_do_update(
                    index_elements=[_d.charger_id],
                    set_={"decision": _d.decision + 1, "decided_at": at, "owed_since": since},
                )
            )
        rows = self.conn.execute(
            select(_d.charger_id, _d.decision).where(_d.charger_id.in_(list(charger_ids)))
        )
        return {int(r.charger_id): int(r.decision) for r in rows}

    def delivery(self, charger_id: int) -> tuple[int, int] | None:
        row = DELIVERY.first(self.conn, {"charger_pk": charger_id})
        return None if row is None else (int(row[0]), int(row[1]))

    def delivered(self, charger_id: int, decision: int, at: datetime) -> None:
        # A decision's turn first: it writes limits then deliveries, this deliveries then held_w.
        self.deciding()
        # Never backwards: an older decision acknowledged late leaves a newer one acknowledged. A
        # charger acknowledging an older one is heard from: it owes the rest since now.
        self.conn.execute(
            update(t.grid_deliveries)
            .where(_d.charger_id == charger_id, _d.decision >= decision)
            .values(
                delivered=case((_d.delivered < decision, decision), else_=_d.delivered),
                owed_since=case(
                    (_d.decision == decision, null()), (_d.delivered < decision, at), else_=_d.owed_since
                ),
            )
        )
        latest = self.conn.execute(select(_d.decision).where(_d.charger_id == charger_id)).scalar()
        if latest != decision:
            return
        # All it was sent is acknowledged: it holds its plans now and nothing older.
        mine = select(t.connectors.c.id).where(t.connectors.c.charger_id == charger_id)
        top_step = select(func.max(_p.limit_w)).where(_p.connector_id == _a.connector_id).scalar_subquery()
        self.conn.execute(
            update(t.grid_allocations).where(_a.connector_id.in_(mine)).values(held_w=_a.limit_w)
        )
        self.conn.execute(
            update(t.grid_allocations)
            .where(_a.connector_id.in_(mine), top_step > _a.held_w)
            .values(held_w=top_step)
        )

    def owing(self) -> dict[int, datetime]:
        return {int(charger_id): since for charger_id, since in OWING.rows(self.conn, {})}

    def held(self) -> dict[int, int]:
        return {int(connector_id): int(w) for connector_id, w in HELD.rows(self.conn, {})}

    def owed(self, decided_before: datetime) -> list[int]:
        return [int(r[0]) for r in OWED.rows(self.conn, {"before": decided_before})]
