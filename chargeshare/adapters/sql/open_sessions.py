"""The open session a resend finds on a connector: the newest one (`sessions.open_on`). An older
one left open is never sent what it is owed, so a query listing it would have the sweep ask every
round."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists

from chargeshare.adapters.sql import schema as t
from chargeshare.domain.session import SessionStatus


def newest_open_on_its_connector(session: Any) -> ColumnElement[bool]:
    """True for a row of `sessions` (its columns, `session`) that no later open session on its
    connector follows."""
    later = t.sessions.alias("later")
    return ~exists().where(
        later.c.connector_id == session.connector_id,
        later.c.status == SessionStatus.CHARGING.value,
        later.c.id > session.id,
    )
