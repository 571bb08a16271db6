"""Every statement the repositories run straight on the driver, by name: the list that
tests/integration/test_sql_direct.py checks against `Connection.execute` on both databases."""

from __future__ import annotations

from chargeshare.adapters.sql import (
    accounts,
    bookings,
    chargers,
    command_refusals,
    fleet,
    grid,
    ledger,
    notices,
    outbox,
    pricing,
    rows,
    sessions,
    smart_charging,
    tokens,
    v2g,
)
from chargeshare.adapters.sql.direct import DirectStatement

ALL: dict[str, DirectStatement] = {
    **rows.STATEMENTS,
    **accounts.STATEMENTS,
    **chargers.STATEMENTS,
    **bookings.STATEMENTS,
    **sessions.STATEMENTS,
    **ledger.STATEMENTS,
    **outbox.STATEMENTS,
    **notices.STATEMENTS,
    **grid.STATEMENTS,
    **tokens.STATEMENTS,
    **pricing.STATEMENTS,
    **smart_charging.STATEMENTS,
    **fleet.STATEMENTS,
    **v2g.STATEMENTS,
}
# Statements for one dialect only, checked on it alone.
SQLITE_ONLY: dict[str, DirectStatement] = {
    **chargers.SQLITE_ONLY,
    **command_refusals.SQLITE_ONLY,
    **ledger.SQLITE_ONLY,
    **bookings.SQLITE_ONLY,
    **pricing.SQLITE_ONLY,
}
POSTGRES_ONLY: dict[str, DirectStatement] = {**ledger.POSTGRES_ONLY, **bookings.POSTGRES_ONLY}
