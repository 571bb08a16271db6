"""What each charger's connectors offer, in the map search's spatial index.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# As the schema had them when this revision was written (a later change of types needs its own).
_TYPES = ("type2", "ccs", "chademo")
_POWER = ("best_power_w", *(f"{kind}_power_w" for kind in _TYPES))
_OFFER = ("price_per_kwh", *_POWER)
# SQLite's R*Tree: the offer as three more dimensions (see `sqlite_geo`), as it was at this revision.
_SCALE = 2.0**-40
_MAX = 2**24 - 1
_RTREE = {
    "type2_w": "type2_power_w + 1",
    "best_w_a": "best_power_w + 1",
    "neg_price": "-price_per_kwh",
    "ccs_w": "ccs_power_w + 1",
    "chademo_w": "chademo_power_w + 1",
    "best_w": "best_power_w + 1",
}


def _best(where: str, none: int) -> str:
    best = f"SELECT max(k.max_power_w) FROM connectors k WHERE k.charger_id = chargers.id{where}"
    return f"coalesce(({best}), {none})"


def upgrade() -> None:
    for name in _POWER:
        none = "0" if name == "best_power_w" else "-1"  # -1: no connector of the type
        op.add_column("chargers", sa.Column(name, sa.Integer, nullable=False, server_default=none))
    sets = [f"best_power_w = {_best('', 0)}"]
    sets += [f"{kind}_power_w = {_best(f' AND k.type = {kind!r}', -1)}" for kind in _TYPES]
    op.execute(f"UPDATE chargers SET {', '.join(sets)}")
    if op.get_bind().dialect.name == "sqlite":
        _rtree({name: f"max({-_MAX}, min({_MAX}, {expr})) * {_SCALE!r}" for name, expr in _RTREE.items()})
    else:
        op.execute(
            f"CREATE INDEX ix_chargers_location_offer ON chargers USING gist (location, {', '.join(_OFFER)})"
        )
        op.execute("DROP INDEX IF EXISTS ix_chargers_location")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rtree({})
    else:
        op.execute("CREATE INDEX IF NOT EXISTS ix_chargers_location ON chargers USING gist (location)")
        op.execute("DROP INDEX IF EXISTS ix_chargers_location_offer")
    for name in reversed(_POWER):
        op.drop_column("chargers", name)


def _rtree(extra: dict[str, str]) -> None:
    """Rebuild SQLite's R*Tree with `extra` columns (name: value from `chargers`); a virtual table's
    columns are fixed at its creation."""
    more = "".join(f", {name}" for name in extra)
    values = "".join(f", {expr}" for expr in extra.values())
    op.execute("DROP TABLE IF EXISTS charger_rtree")
    op.execute(
        f"CREATE VIRTUAL TABLE charger_rtree USING rtree(id, min_lon, max_lon, min_lat, max_lat{more})"
    )
    op.execute(f"INSERT INTO charger_rtree SELECT id, lon, lon, lat, lat{values} FROM chargers")
