"""Chargers, connectors, weekly calendars and access notes; the map search is `search`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, text, update

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql import search as map_search
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.grid import take_deciding_turn
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.adapters.sql.rows import (
    CHARGER_COLUMNS,
    CHARGER_ID_OF,
    CHARGER_STATUSES,
    CONNECTOR_STATUSES,
    hydrate,
    insert_of,
)
from chargeshare.adapters.sql.sqlite_geo import RTREE_OFFER_COLUMNS, rtree_offer, rtree_offer_sql
from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.charger import BootPolicy, ChargerSpec, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.search import SearchQuery
from chargeshare.ocpp import OcppVersion
from chargeshare.services.records import ChargerView, StoredCredentials

_c, _k, _a = t.chargers.c, t.connectors.c, t.availability.c

# Built once with bound parameters and run straight on the driver (`direct`): a charger's frames
# and the housekeeping sweep run these.
BY_CP = DirectStatement(select(*CHARGER_COLUMNS).where(_c.charge_point_id == bindparam("cp_id")))
BY_ID = DirectStatement(select(*CHARGER_COLUMNS).where(_c.id == bindparam("charger_pk")))
ALL = DirectStatement(select(*CHARGER_COLUMNS).order_by(_c.id))
TOUCH = DirectStatement(
    update(t.chargers)
    .where(_c.charge_point_id == bindparam("cp_id"))
    .values(last_seen_at=bindparam("seen_at"))
)
# Stamps written behind: a charger marked offline meanwhile (by another process) is left to its
# next frame, which brings it back online and announces it. A stamp written behind never sets it
# back: a process whose link was replaced may flush an older stamp after the new link's process
# wrote a newer one.
TOUCH_UNLESS_OFFLINE = DirectStatement(
    update(t.chargers)
    .where(
        _c.charge_point_id == bindparam("cp_id"),
        _c.status != ChargerStatus.OFFLINE.value,
        or_(_c.last_seen_at.is_(None), _c.last_seen_at <= bindparam("seen_at")),
    )
    .values(last_seen_at=bindparam("seen_at"))
)
# A StatusNotification's lookup: the charger's status and the id of the connector it names, if any.
STATUS_AND_CONNECTOR = DirectStatement(
    select(_c.status, _k.id, _k.status)
    .select_from(
        t.chargers.outerjoin(t.connectors, and_(_k.charger_id == _c.id, _k.connector_no == bindparam("no")))
    )
    .where(_c.charge_point_id == bindparam("cp_id"))
)
# A report sets a connector's status unless the connector has one from a later report: compared in
# the UPDATE itself, so of two reports written at once the later one stands whichever commits last.
_SET_CONNECTORS_STATUS = (
    update(t.connectors)
    .values(status=bindparam("new_status"), status_at=bindparam("at"))
    .where(
        _k.charger_id == CHARGER_ID_OF.scalar_subquery(),
        or_(_k.status_at.is_(None), _k.status_at <= bindparam("at")),
    )
)
SET_CONNECTORS_STATUS = DirectStatement(_SET_CONNECTORS_STATUS)
SET_CONNECTOR_STATUS = DirectStatement(_SET_CONNECTORS_STATUS.where(_k.connector_no == bindparam("no")))
STATUS_OF_CONNECTORS = DirectStatement(select(_k.id, _k.status).where(in_ids(_k.id, "ids")))
_MARK_AVAILABLE = (
    update(t.connectors).where(_k.id == bindparam("connector_pk")).values(available_at=bindparam("at"))
)
MARK_AVAILABLE = DirectStatement(_MARK_AVAILABLE)
# A free report that is not a status report (a 2.0.1 departure): noted unless a later status report
# stands, compared in the UPDATE itself, as a status report is.
MARK_AVAILABLE_IF = DirectStatement(
    _MARK_AVAILABLE.where(or_(_k.status_at.is_(None), _k.status_at <= bindparam("placed_at")))
)
AVAILABLE_AT = DirectStatement(select(_k.available_at).where(_k.id == bindparam("connector_pk")))
SILENT = DirectStatement(
    select(*CHARGER_COLUMNS)
    .where(_c.status == ChargerStatus.ONLINE.value, _c.last_seen_at < bindparam("before"))
    .order_by(_c.id)
)
_SET_STATUS = (
    update(t.chargers)
    .where(_c.charge_point_id == bindparam("cp_id"))
    .values(status=bindparam("new_status"), last_seen_at=bindparam("seen_at"))
)
SET_STATUS = DirectStatement(_SET_STATUS)
# A compare-and-set: of two processes changing a charger's status at once, only one changes it.
_SET_STATUS_IF = _SET_STATUS.where(_c.status == bindparam("expected_status"))
SET_STATUS_IF = DirectStatement(_SET_STATUS_IF)
# The watchdog's: also only if still not heard since its cut-off, compared in the UPDATE itself, so a
# stamp committed after the silent list was read (or one this UPDATE waited on) keeps the charger.
SET_STATUS_IF_SILENT = DirectStatement(_SET_STATUS_IF.where(_c.last_seen_at < bindparam("before")))
SET_STATUS_AND_VERSION = DirectStatement(_SET_STATUS.values(ocpp_version=bindparam("version")))
ADD = DirectStatement(
    insert_of(
        t.chargers,
        "charge_point_id",
        "host_id",
        "title",
        "lat",
        "lon",
        "price_per_kwh",
        "status",
        "boot_policy",
        "best_power_w",
        *t.POWER_COLUMN.values(),
    ).returning(_c.id)
)
BOOT_POLICY = DirectStatement(select(_c.boot_policy).where(_c.charge_point_id == bindparam("cp_id")))
ADD_CONNECTOR = DirectStatement(
    insert_of(t.connectors, "charger_id", "connector_no", "type", "max_power_w", "status", "fence_token")
)
_n = t.charger_notes.c
NOTES_IN = DirectStatement(select(_n.charger_id, _n.access_notes).where(in_ids(_n.charger_id, "ids")))
AVAILABILITY_IN = DirectStatement(select(t.availability).where(in_ids(_a.charger_id, "ids")).order_by(_a.id))
# SQLite only: PostgreSQL has no R*Tree table (PostGIS indexes the row itself).
ADD_RTREE_BOX = DirectStatement(
    insert_of(t.charger_rtree, "id", "min_lon", "max_lon", "min_lat", "max_lat", *RTREE_OFFER_COLUMNS)
)


def _best_power(*conds: Any, none: int) -> Any:
    best = select(func.max(_k.max_power_w)).where(_k.charger_id == bindparam("charger_pk"), *conds)
    return func.coalesce(best.scalar_subquery(), none)


# A charger's offer after its connectors changed (see `schema.chargers`), and on SQLite its copy in
# the R*Tree (after a price change too).
REFRESH_OFFER = (
    update(t.chargers)
    .where(_c.id == bindparam("charger_pk"))
    .values(
        best_power_w=_best_power(none=0),
        **{name: _best_power(_k.type == kind.value, none=-1) for kind, name in t.POWER_COLUMN.items()},
    )
)
_in_rtree = rtree_offer_sql(*(f"c.{name}" for name in t.OFFER_COLUMNS))
COPY_OFFER_TO_RTREE = text(
    f"UPDATE charger_rtree SET ({', '.join(RTREE_OFFER_COLUMNS)}) = "
    f"(SELECT {', '.join(_in_rtree)} FROM chargers c WHERE c.id = :charger_pk) WHERE id = :charger_pk"
)

STATEMENTS = {
    "chargers.by_cp": BY_CP,
    "chargers.by_id": BY_ID,
    "chargers.all": ALL,
    "chargers.touch": TOUCH,
    "chargers.touch_unless_offline": TOUCH_UNLESS_OFFLINE,
    "chargers.status_and_connector": STATUS_AND_CONNECTOR,
    "chargers.set_connectors_status": SET_CONNECTORS_STATUS,
    "chargers.set_connector_status": SET_CONNECTOR_STATUS,
    "chargers.status_of_connectors": STATUS_OF_CONNECTORS,
    "chargers.mark_available": MARK_AVAILABLE,
    "chargers.mark_available_if": MARK_AVAILABLE_IF,
    "chargers.available_at": AVAILABLE_AT,
    "chargers.silent": SILENT,
    "chargers.set_status": SET_STATUS,
    "chargers.set_status_if": SET_STATUS_IF,
    "chargers.set_status_if_silent": SET_STATUS_IF_SILENT,
    "chargers.set_status_and_version": SET_STATUS_AND_VERSION,
    "chargers.add": ADD,
    "chargers.boot_policy": BOOT_POLICY,
    "chargers.add_connector": ADD_CONNECTOR,
    "chargers.availability_in": AVAILABILITY_IN,
    "chargers.notes_in": NOTES_IN,
}
SQLITE_ONLY = {"chargers.add_rtree_box": ADD_RTREE_BOX}


class SqlChargers:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(self, spec: ChargerSpec) -> int:
        row = {
            "row_charge_point_id": spec.charge_point_id,
            "row_host_id": spec.host_id,
            "row_title": spec.title,
            "row_lat": spec.location.lat,
            "row_lon": spec.location.lon,
            "row_price_per_kwh": spec.tariff.price_per_kwh,
            "row_status": ChargerStatus.REGISTERED.value,
            "row_boot_policy": spec.boot_policy.value,
        }
        best = {kind: -1 for kind in t.POWER_COLUMN}  # -1: none of the type
        for c in spec.connectors:
            best[c.type] = max(best[c.type], c.max_power_w)
        offer = {"price_per_kwh": spec.tariff.price_per_kwh, "best_power_w": max(0, *best.values())}
        offer.update({t.POWER_COLUMN[kind]: w for kind, w in best.items()})
        row.update({f"row_{name}": offer[name] for name in t.OFFER_COLUMNS})
        found = ADD.first(self.conn, row)
        assert found is not None
        charger_id = int(found[0])
        for c in spec.connectors:
            connector = {
                "row_charger_id": charger_id,
                "row_connector_no": c.connector_no,
                "row_type": c.type.value,
                "row_max_power_w": c.max_power_w,
                "row_status": ConnectorStatus.UNAVAILABLE.value,
                "row_fence_token": 0,
            }
            ADD_CONNECTOR.write(self.conn, connector)
        if self.dialect == "sqlite":
            lon, lat = spec.location.lon, spec.location.lat
            box = {"row_id": charger_id, "row_min_lon": lon, "row_max_lon": lon}
            in_rtree = rtree_offer(*(offer[name] for name in t.OFFER_COLUMNS))
            box.update({f"row_{name}": v for name, v in zip(RTREE_OFFER_COLUMNS, in_rtree, strict=True)})
            ADD_RTREE_BOX.write(self.conn, {**box, "row_min_lat": lat, "row_max_lat": lat})
        return charger_id

    def get(self, charge_point_id: str) -> ChargerView:
        views = hydrate(self.conn, BY_CP.rows(self.conn, {"cp_id": charge_point_id}), with_distance=False)
        if not views:
            raise NotFound(f"no charger {charge_point_id!r}")
        return views[0]

    def by_id(self, charger_id: int) -> ChargerView:
        views = hydrate(self.conn, BY_ID.rows(self.conn, {"charger_pk": charger_id}), with_distance=False)
        if not views:
            raise NotFound(f"no charger {charger_id}")
        return views[0]

    def all(self) -> Sequence[ChargerView]:
        return hydrate(self.conn, ALL.rows(self.conn, {}), with_distance=False)

    def of_host(self, host_id: int) -> Sequence[ChargerView]:
        q = select(*CHARGER_COLUMNS).where(_c.host_id == host_id).order_by(_c.id)
        return hydrate(self.conn, list(self.conn.execute(q)), with_distance=False)

    def status_and_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None]:
        found = STATUS_AND_CONNECTOR.first(self.conn, {"cp_id": charge_point_id, "no": connector_no})
        if found is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        return CHARGER_STATUSES[found[0]], found[1]

    def connector_state(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None, ConnectorStatus | None]:
        found = STATUS_AND_CONNECTOR.first(self.conn, {"cp_id": charge_point_id, "no": connector_no})
        if found is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        connector = None if found[2] is None else CONNECTOR_STATUSES[found[2]]
        return CHARGER_STATUSES[found[0]], found[1], connector

    def search(self, query: SearchQuery) -> Sequence[ChargerView]:
        return map_search.search(self.conn, self.dialect, query, self.availability)

    def set_availability(self, charger_id: int, windows: Sequence[WeeklyWindow]) -> None:
        self.conn.execute(t.availability.delete().where(_a.charger_id == charger_id))
        if windows:
            self.conn.execute(
                insert(t.availability),
                [
                    {
                        "charger_id": charger_id,
                        "weekday": w.weekday,
                        "start_minute": w.start_minute,
                        "end_minute": w.end_minute,
                    }
                    for w in windows
                ],
            )

    def availability(self, charger_ids: Sequence[int]) -> dict[int, list[WeeklyWindow]]:
        if not charger_ids:
            return {}
        out: dict[int, list[WeeklyWindow]] = defaultdict(list)
        for r in AVAILABILITY_IN.mappings(self.conn, {"ids": charger_ids}):
            out[r["charger_id"]].append(WeeklyWindow(r["weekday"], r["start_minute"], r["end_minute"]))
        return dict(out)

    def set_status(
        self,
        charge_point_id: str,
        status: ChargerStatus,
        at: datetime,
        ocpp_version: OcppVersion | None = None,
        *,
        expected: ChargerStatus | None = None,
        seen_before: datetime | None = None,
    ) -> bool:
        params = {
            "cp_id": charge_point_id,
            "new_status": status.value,
            "seen_at": at,
            "version": ocpp_version,
        }
        if expected is not None:
            assert ocpp_version is None, "a boot sets its version unconditionally"
            params["expected_status"] = expected.value
            if seen_before is not None:
                return SET_STATUS_IF_SILENT.write(self.conn, {**params, "before": seen_before}) == 1
            return SET_STATUS_IF.write(self.conn, params) == 1
        assert seen_before is None, "a charger's silence is compared with its expected status"
        q = SET_STATUS if ocpp_version is None else SET_STATUS_AND_VERSION
        if q.write(self.conn, params) == 0:
            raise NotFound(f"no charger {charge_point_id!r}")
        return True

    def boot_policy(self, charge_point_id: str) -> BootPolicy:
        found = BOOT_POLICY.first(self.conn, {"cp_id": charge_point_id})
        if found is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        return BootPolicy(found[0])

    def set_boot_policy(self, charger_id: int, policy: BootPolicy) -> None:
        values: dict[str, Any] = {"boot_policy": policy.value}
        if policy is not BootPolicy.ACCEPTED:
            values["status"] = ChargerStatus.REGISTERED.value  # out of service, not merely offline
        q = update(t.chargers).where(_c.id == charger_id).values(**values)
        if self.conn.execute(q).rowcount == 0:
            raise NotFound(f"no charger {charger_id}")

    def touch(self, charge_point_id: str, at: datetime) -> None:
        if not TOUCH.write(self.conn, {"cp_id": charge_point_id, "seen_at": at}):
            raise NotFound(f"no charger {charge_point_id!r}")

    def _touched(self, charge_point_id: str, at: datetime) -> bool:
        return TOUCH_UNLESS_OFFLINE.write(self.conn, {"cp_id": charge_point_id, "seen_at": at}) > 0

    def touch_many(self, stamps: Mapping[str, datetime]) -> list[str]:
        rows = [{"cp_id": cp_id, "seen_at": at} for cp_id, at in stamps.items()]
        if TOUCH_UNLESS_OFFLINE.write_many(self.conn, rows) == len(rows):
            return []
        # Some id matched no row, an offline one or one heard later elsewhere (or the driver cannot
        # count): find which, one by one. Rewriting a stamp just written changes nothing.
        return [cp_id for cp_id, at in stamps.items() if not self._touched(cp_id, at)]

    def set_password(self, charge_point_id: str, password_hash: str | None) -> None:
        res = self.conn.execute(
            update(t.chargers)
            .where(_c.charge_point_id == charge_point_id)
            .values(password_hash=password_hash)
        )
        if res.rowcount == 0:
            raise NotFound(f"no charger {charge_point_id!r}")

    def credentials(self, charge_point_id: str) -> StoredCredentials:
        r = self.conn.execute(
            select(_c.id, _c.password_hash).where(_c.charge_point_id == charge_point_id)
        ).first()
        if r is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        return StoredCredentials(int(r[0]), None if r[1] is None else str(r[1]))

    def has_bookings(self, charger_id: int) -> bool:
        booked = (
            select(t.bookings.c.id)
            .join(t.connectors, t.connectors.c.id == t.bookings.c.connector_id)
            .where(t.connectors.c.charger_id == charger_id)
            .limit(1)
        )
        return self.conn.execute(booked).first() is not None

    def remove(self, charge_point_id: str) -> None:
        take_deciding_turn(self.conn, self.dialect)  # before its limits and deliveries go
        view = self.get(charge_point_id)
        self._hold_for_removal(view.charger_id)
        if self.has_bookings(view.charger_id):
            raise InvalidRequest(f"charger {charge_point_id!r} has bookings; it cannot be removed")
        self.conn.execute(t.availability.delete().where(_a.charger_id == view.charger_id))
        self.conn.execute(t.charger_notes.delete().where(t.charger_notes.c.charger_id == view.charger_id))
        self.conn.execute(t.charger_reports.delete().where(t.charger_reports.c.charger_id == view.charger_id))
        self.conn.execute(
            t.walk_in_chargers.delete().where(t.walk_in_chargers.c.charger_id == view.charger_id)
        )
        self.conn.execute(
            t.charger_smart_settings.delete().where(t.charger_smart_settings.c.charger_id == view.charger_id)
        )
        self.conn.execute(
            t.grid_site_chargers.delete().where(t.grid_site_chargers.c.charger_id == view.charger_id)
        )
        self.conn.execute(t.grid_deliveries.delete().where(t.grid_deliveries.c.charger_id == view.charger_id))
        connectors = select(_k.id).where(_k.charger_id == view.charger_id).scalar_subquery()
        for table in (t.grid_allocation_steps, t.grid_allocations):
            self.conn.execute(table.delete().where(table.c.connector_id.in_(connectors)))
        self.conn.execute(t.connectors.delete().where(_k.charger_id == view.charger_id))
        if self.dialect == "sqlite":
            self.conn.execute(t.charger_rtree.delete().where(t.charger_rtree.c.id == view.charger_id))
        self.conn.execute(t.chargers.delete().where(_c.id == view.charger_id))

    def silent(self, seen_before: datetime) -> Sequence[ChargerView]:
        return hydrate(self.conn, SILENT.rows(self.conn, {"before": seen_before}), with_distance=False)

    def set_connector_status(
        self, charge_point_id: str, connector_no: int, status: ConnectorStatus, at: datetime
    ) -> bool:
        params = {"cp_id": charge_point_id, "new_status": status.value, "no": connector_no, "at": at}
        # OCPP connectorId 0 means the whole charger
        statement = SET_CONNECTORS_STATUS if connector_no == 0 else SET_CONNECTOR_STATUS
        return statement.write(self.conn, params) > 0

    def connector_statuses(self, connector_ids: Sequence[int]) -> dict[int, ConnectorStatus]:
        if not connector_ids:
            return {}
        rows = STATUS_OF_CONNECTORS.rows(self.conn, {"ids": connector_ids})
        return {r[0]: CONNECTOR_STATUSES[r[1]] for r in rows}

    def mark_available(
        self, connector_id: int, at: datetime, *, unless_reported_after: datetime | None = None
    ) -> bool:
        params = {"connector_pk": connector_id, "at": at}
        if unless_reported_after is None:
            return MARK_AVAILABLE.write(self.conn, params) > 0
        return MARK_AVAILABLE_IF.write(self.conn, {**params, "placed_at": unless_reported_after}) > 0

    def available_at(self, connector_id: int) -> datetime | None:
        found = AVAILABLE_AT.first(self.conn, {"connector_pk": connector_id})
        return None if found is None else found[0]

    def update(self, charger_id: int, *, title: str | None = None, price_per_kwh: int | None = None) -> None:
        values: dict[str, Any] = {}
        if title is not None:
            values["title"] = title
        if price_per_kwh is not None:
            values["price_per_kwh"] = price_per_kwh
        if values:
            res = self.conn.execute(update(t.chargers).where(_c.id == charger_id).values(**values))
            if res.rowcount == 0:
                raise NotFound(f"no charger {charger_id}")
            if price_per_kwh is not None:
                self._offer_changed(charger_id, connectors=False)

    def _offer_changed(self, charger_id: int, *, connectors: bool = True) -> None:
        """Bring the charger's offer (and SQLite's copy of it) up to date with its rows."""
        if connectors:
            self.conn.execute(REFRESH_OFFER, {"charger_pk": charger_id})
        if self.dialect == "sqlite":
            self.conn.execute(COPY_OFFER_TO_RTREE, {"charger_pk": charger_id})

    def access_notes(self, charger_id: int) -> str:
        n = t.charger_notes.c
        r = self.conn.execute(select(n.access_notes).where(n.charger_id == charger_id)).first()
        return "" if r is None else str(r[0])

    def access_notes_of(self, charger_ids: Sequence[int]) -> dict[int, str]:
        if not charger_ids:
            return {}
        rows = NOTES_IN.rows(self.conn, {"ids": charger_ids})
        return {int(r[0]): str(r[1]) for r in rows if r[1]}

    def set_access_notes(self, charger_id: int, notes: str) -> None:
        n = t.charger_notes.c
        self.conn.execute(t.charger_notes.delete().where(n.charger_id == charger_id))
        if notes:
            self.conn.execute(insert(t.charger_notes).values(charger_id=charger_id, access_notes=notes))

    def add_connector(
        self, charger_id: int, connector_no: int, type_: ConnectorType, max_power_w: int
    ) -> None:
        if self.conn.execute(
            select(_k.id).where(_k.charger_id == charger_id, _k.connector_no == connector_no)
        ).first():
            raise InvalidRequest(f"charger {charger_id} already has connector {connector_no}")
        self.conn.execute(
            insert(t.connectors).values(
                charger_id=charger_id,
                connector_no=connector_no,
                type=type_.value,
                max_power_w=max_power_w,
                status=ConnectorStatus.UNAVAILABLE.value,
                fence_token=0,
            )
        )
        self._offer_changed(charger_id)

    def update_connector(
        self,
        charger_id: int,
        connector_no: int,
        *,
        type_: ConnectorType | None = None,
        max_power_w: int | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if type_ is not None:
            values["type"] = type_.value
        if max_power_w is not None:
            values["max_power_w"] = max_power_w
        where = (_k.charger_id == charger_id) & (_k.connector_no == connector_no)
        self._hold_charger(charger_id)
        if not self.conn.execute(select(_k.id).where(where)).first():
            raise NotFound(f"charger {charger_id} has no connector {connector_no}")
        if values:
            self.conn.execute(update(t.connectors).where(where).values(**values))
            self._offer_changed(charger_id)

    def _hold_for_removal(self, charger_id: int) -> None:
        """PostgreSQL: lock the charger and its connectors before their rows are deleted. A report,
        placement or booking inserted meanwhile (each takes a key-share lock on the row it names)
        then commits first and is seen and deleted or refused below, or waits and finds it gone,
        instead of failing this removal on a foreign key. In the order other writers take them: the
        charger's row without its key first (a status report stamps the charger, then writes its
        connector), then the connectors (a start locks its connector, then names the charger in a
        key share, which that first lock lets through), and only then the charger for update."""
        if self.dialect == "postgresql":
            self._hold_charger(charger_id)
            self.conn.execute(select(_k.id).where(_k.charger_id == charger_id).with_for_update())
            self.conn.execute(select(_c.id).where(_c.id == charger_id).with_for_update())

    def _hold_charger(self, charger_id: int) -> None:
        """PostgreSQL: take the charger's row before one of its connectors' rows, as a status report
        does (its last seen, then the connector). A connector's change ends by writing the charger's
        offer: taking the connector first, it would wait on the report while the report waited on it.
        No key: rows naming the charger may still be inserted meanwhile."""
        if self.dialect == "postgresql":
            mine = select(_c.id).where(_c.id == charger_id)
            self.conn.execute(mine.with_for_update(key_share=True))

    def remove_connector(self, charger_id: int, connector_no: int) -> None:
        """Delete a connector that has never been booked (bookings keep their history)."""
        take_deciding_turn(self.conn, self.dialect)  # before its limits go
        self._hold_charger(charger_id)
        mine = select(_k.id).where(_k.charger_id == charger_id, _k.connector_no == connector_no)
        # Locked as in `_hold_for_removal` (SQLite renders no FOR UPDATE).
        r = self.conn.execute(mine.with_for_update()).first()
        if r is None:
            raise NotFound(f"charger {charger_id} has no connector {connector_no}")
        if self.conn.execute(
            select(t.bookings.c.id).where(t.bookings.c.connector_id == r[0]).limit(1)
        ).first():
            raise InvalidRequest(f"connector {connector_no} has bookings; it cannot be removed")
        count = self.conn.execute(select(func.count()).where(_k.charger_id == charger_id)).scalar_one()
        if count <= 1:
            raise InvalidRequest("a charger needs at least one connector")
        for table in (t.grid_allocation_steps, t.grid_allocations):
            self.conn.execute(table.delete().where(table.c.connector_id == r[0]))
        self.conn.execute(t.connectors.delete().where(_k.id == r[0]))
        self._offer_changed(charger_id)
