"""Token values and drivers' id tags are unique in any case of their letters (OCPP idTags are
CiStrings): unique indexes on the folded value.

The fold is ASCII upper case (`domain.tokens.token_key`): SQLite's upper(), and PostgreSQL's under
the "C" collation. Values that already clash so are not chosen between here: the upgrade stops and
names them, for an operator to change or remove all but one, and is run again.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = (
    ("ux_drivers_id_tag_folded", "drivers", "id_tag"),
    ("ux_id_tokens_value_folded", "id_tokens", "value"),
)


class CaseClash(RuntimeError):
    """Values the new rule takes for one idTag are in the database already."""


def _folded(column: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f'upper({column} COLLATE "C")'
    return f"upper({column})"


def _clashes() -> list[str]:
    bind = op.get_bind()
    found: list[str] = []
    for _, table, column in INDEXES:
        folded = _folded(column)
        rows = bind.execute(
            sa.text(
                f"SELECT {column} FROM {table} WHERE {folded} IN "
                f"(SELECT {folded} FROM {table} GROUP BY {folded} HAVING count(*) > 1) ORDER BY {column}"
            )
        )
        found += [f"{table}.{column} {r[0]!r}" for r in rows]
    # A token of one driver naming another's tag would now decide for that tag (a token row wins).
    rows = bind.execute(
        sa.text(
            f"SELECT k.value, d.id_tag FROM id_tokens k JOIN drivers d "
            f"ON {_folded('k.value')} = {_folded('d.id_tag')} AND k.driver_id <> d.id ORDER BY k.value"
        )
    )
    found += [f"token {r[0]!r} of another driver than tag {r[1]!r}" for r in rows]
    return found


def upgrade() -> None:
    clashes = _clashes()
    if clashes:
        raise CaseClash(
            "these id tags and token values differ only in the case of their letters, which OCPP "
            f"takes for one idTag: {'; '.join(clashes)}. Change or remove all but one of each in the "
            "database, then upgrade again."
        )
    for name, table, column in INDEXES:
        op.create_index(name, table, [sa.text(_folded(column))], unique=True)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
