"""Chargers' settings under the smart charging regulations, and drivers' overrides of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.id_lists import in_ids
from chargeshare.adapters.sql.open_sessions import newest_open_on_its_connector
from chargeshare.domain.errors import NotFound
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.smart_charge_points import SmartSettings

_s = t.charger_smart_settings.c
_o = t.booking_overrides.c

# Read at every boot (the settings) and every start (whether its booking overrides the delay).
SETTINGS = DirectStatement(select(t.charger_smart_settings).where(_s.charger_id == bindparam("charger_pk")))
OVERRIDDEN = DirectStatement(select(_o.booking_id).where(in_ids(_o.booking_id, "booking_ids")))

_x, _k = t.sessions.c, t.connectors.c
# Open sessions (ix_sessions_open) on overridden bookings whose charger has not taken the override;
# each the newest open one on its connector, as a resend finds them (`sessions.open_on`): an older
# one left open is never sent its override, so listing it would have the sweep ask every round.
OVERRIDES_OWED = (
    select(_x.id, t.chargers.c.charge_point_id)
    .select_from(t.sessions.join(t.booking_overrides, _o.booking_id == _x.booking_id))
    .join(t.connectors, _k.id == _x.connector_id)
    .join(t.chargers, t.chargers.c.id == _k.charger_id)
    .where(
        _x.status == SessionStatus.CHARGING.value,
        (_o.taken_session.is_(None)) | (_o.taken_session != _x.id),
        newest_open_on_its_connector(_x),
    )
    .order_by(_x.id)
)

STATEMENTS = {"smart.settings": SETTINGS, "smart.overridden": OVERRIDDEN}


def _settings(r: Any) -> SmartSettings:
    return SmartSettings(
        randomised_delay_max_s=int(r.randomised_delay_max_s),
        randomised_delay_override=bool(r.randomised_delay_override),
        default_charging_hours=bool(r.default_charging_hours),
        demand_side_response=bool(r.demand_side_response),
    )


class SqlSmartCharging:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def settings(self, charger_id: int) -> SmartSettings | None:
        r = SETTINGS.first_mapping(self.conn, {"charger_pk": charger_id})
        return None if r is None else _settings(SimpleNamespace(**r))

    def save(self, charger_id: int, settings: SmartSettings, at: datetime) -> None:
        c = t.chargers.c
        if self.conn.execute(select(c.id).where(c.id == charger_id)).first() is None:
            raise NotFound(f"no charger {charger_id}")
        values = {
            "randomised_delay_max_s": settings.randomised_delay_max_s,
            "randomised_delay_override": settings.randomised_delay_override,
            "default_charging_hours": settings.default_charging_hours,
            "demand_side_response": settings.demand_side_response,
            "updated_at": at,
        }
        # One statement either way, so two writers racing on a new row do not collide: the later wins.
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.charger_smart_settings).values(charger_id=charger_id, **values)
        self.conn.execute(q.on_conflict_do_update(index_elements=[_s.charger_id], set_=values))

    def configured(self) -> dict[int, SmartSettings]:
        rows = self.conn.execute(select(t.charger_smart_settings).order_by(_s.charger_id))
        return {int(r.charger_id): _settings(r) for r in rows}

    def add_override(self, booking_id: int, at: datetime) -> None:
        b = t.bookings.c
        if self.conn.execute(select(b.id).where(b.id == booking_id)).first() is None:
            raise NotFound(f"no booking {booking_id}")
        if self.conn.execute(select(_o.booking_id).where(_o.booking_id == booking_id)).first() is None:
            self.conn.execute(insert(t.booking_overrides).values(booking_id=booking_id, created_at=at))

    def overridden(self, booking_ids: Sequence[int]) -> set[int]:
        if not booking_ids:
            return set()
        return {int(r[0]) for r in OVERRIDDEN.rows(self.conn, {"booking_ids": list(booking_ids)})}

    def hold_override_owed(self, booking_id: int, session_id: int) -> bool:
        # The row `override_taken` updates, held (SQLite: the write transaction is ours already).
        q = select(_o.taken_session).where(_o.booking_id == booking_id)
        if self.dialect == "postgresql":
            q = q.with_for_update(key_share=True)
        row = self.conn.execute(q).first()
        return row is not None and row.taken_session != session_id

    def override_taken(self, booking_id: int, session_id: int) -> None:
        self.conn.execute(
            update(t.booking_overrides).where(_o.booking_id == booking_id).values(taken_session=session_id)
        )

    def overrides_owed(self) -> Sequence[tuple[int, str]]:
        return [(int(r[0]), str(r[1])) for r in self.conn.execute(OVERRIDES_OWED)]
