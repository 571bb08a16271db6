"""Id tokens as long as OCPP lets a charger present them: 255 characters (2.1's IdTokenType.idToken;
2.0.1 allows 36, 1.6's IdToken 20), in drivers' tags, token values and group ids, and sessions.

PostgreSQL widens the columns in place (a longer varchar needs no rewrite of rows or indexes).
SQLite never enforces a varchar's length and keeps text affinity either way, so only the declared
type changes, by SQLite's documented procedure for changes that leave stored rows as they are: a
table rebuild would need foreign keys off, which cannot be switched inside this transaction.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SHORT, LONG = 20, 255
COLUMNS = (("drivers", "id_tag"), ("sessions", "id_tag"), ("id_tokens", "value"), ("id_tokens", "group_id"))


class TooLong(RuntimeError):
    """Values longer than the narrower columns take are in the database already."""


def _declare(table: str, column: str, old: int, new: int) -> None:
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    declared = re.compile(rf'(\b|"){column}\1\s+VARCHAR\({old}\)', re.IGNORECASE)
    changed, n = declared.subn(lambda m: f"{m.group(1)}{column}{m.group(1)} VARCHAR({new})", sql, count=1)
    if n != 1:
        raise RuntimeError(f"{table}.{column} is not declared VARCHAR({old}): {sql}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (changed, table)
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")  # others re-read the schema
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _resize(old: int, new: int) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, column in COLUMNS:
        if sqlite:
            _declare(table, column, old, new)
        else:
            op.alter_column(table, column, type_=sa.String(new), existing_type=sa.String(old))


def upgrade() -> None:
    _resize(SHORT, LONG)


def downgrade() -> None:
    bind = op.get_bind()
    found = [
        f"{table}.{column} {value!r}"
        for table, column in COLUMNS
        for value in bind.execute(
            sa.text(f"SELECT {column} FROM {table} WHERE length({column}) > {SHORT} ORDER BY {column}")
        ).scalars()
    ]
    if found:
        raise TooLong(
            f"these are longer than {SHORT} characters, which the older schema cannot hold: "
            f"{'; '.join(found)}. Remove or shorten them, then downgrade again."
        )
    _resize(LONG, SHORT)
