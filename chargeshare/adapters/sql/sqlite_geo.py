"""Great-circle distance inside SQLite, in its own math functions.

SQLite has no geodesy, and a Python function called for every charger in the search box would be
most of a search's time in a dense city. So the haversine is written in SQLite's built-in math
functions (3.35+, when compiled in, as in Debian's and most Python builds) and runs in C. Where
they are missing, the same names are registered as Python functions, so the SQL is the same
everywhere and only the speed differs.
tests/unit/test_sqlite_geo.py holds both forms to `domain.geo.haversine_m`.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from sqlalchemy import func

from chargeshare.domain.geo import EARTH_RADIUS_M

_MATH = {"sin": math.sin, "cos": math.cos, "asin": math.asin, "sqrt": math.sqrt, "radians": math.radians}


def ensure_math_functions(dbapi_conn: sqlite3.Connection) -> bool:
    """Register Python stand-ins for the math functions this SQLite lacks; True if it had them all."""
    missing = []
    for name in _MATH:
        try:
            dbapi_conn.execute(f"SELECT {name}(0.5)")
        except sqlite3.OperationalError:
            missing.append(name)
    for name in missing:
        dbapi_conn.create_function(name, 1, _MATH[name], deterministic=True)
    return not missing


def distance_sql(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """The haversine distance in metres as SQL text over four SQL operands (columns or `?`)."""
    sdp = f"sin((radians({lat2}) - radians({lat1})) / 2)"
    sdl = f"sin(radians({lon2} - {lon1}) / 2)"
    h = f"{sdp} * {sdp} + cos(radians({lat1})) * cos(radians({lat2})) * {sdl} * {sdl}"
    return f"(2 * {EARTH_RADIUS_M!r} * asin(min(1.0, sqrt({h}))))"


def distance_expr(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """The same distance as a SQLAlchemy expression (operands are columns or bound parameters)."""
    sdp = func.sin((func.radians(lat2) - func.radians(lat1)) / 2)
    sdl = func.sin(func.radians(lon2 - lon1) / 2)
    h = sdp * sdp + func.cos(func.radians(lat1)) * func.cos(func.radians(lat2)) * sdl * sdl
    return 2 * EARTH_RADIUS_M * func.asin(func.min(1.0, func.sqrt(h)))


# ---- the offer in SQLite's R*Tree ------------------------------------------------------------------
# A charger's offer (price, best power, best power of each type) as three more R*Tree dimensions, so
# the search's filters are checked in the R*Tree's own C scan: auxiliary columns would cost a lookup
# in a shadow table per charger, 30 times the cost of the box test. Each dimension holds two values
# (its min and max), paired so that min <= max always holds:
#   (type2 + 1, best + 1), (-price, ccs + 1), (chademo + 1, best + 1)
# with powers shifted by one (a type's -1, "none of it", becomes 0). Values are scaled by 2**-40: the
# R*Tree stores 32-bit floats, and an integer below 2**24 times a power of two is stored exactly (so
# the comparisons are exact), while the scale keeps these dimensions negligible beside degrees when
# the tree chooses where to split (so it stays a spatial index).
OFFER_SCALE = 2.0**-40
OFFER_MAX = 2**24 - 1  # the largest value stored exactly; powers above it are stored as it
RTREE_OFFER_COLUMNS = ("type2_w", "best_w_a", "neg_price", "ccs_w", "chademo_w", "best_w")
# Which R*Tree column holds each type's best power (by ConnectorType value).
RTREE_POWER_COLUMN = {"type2": "type2_w", "ccs": "ccs_w", "chademo": "chademo_w"}


def offer_value(n: int) -> float:
    """An integer (a shifted power, a negated price) as the R*Tree stores it."""
    return max(-OFFER_MAX, min(OFFER_MAX, n)) * OFFER_SCALE


def rtree_offer(price: int, best: int, type2: int, ccs: int, chademo: int) -> tuple[float, ...]:
    """The R*Tree's offer columns (`RTREE_OFFER_COLUMNS`) for a charger (powers: -1 for none)."""
    return (
        offer_value(type2 + 1),
        offer_value(best + 1),
        offer_value(-price),
        offer_value(ccs + 1),
        offer_value(chademo + 1),
        offer_value(best + 1),
    )


def rtree_offer_sql(price: str, best: str, type2: str, ccs: str, chademo: str) -> tuple[str, ...]:
    """`rtree_offer` as SQL over five SQL operands, in the same order."""

    def v(expr: str) -> str:
        return f"(max({-OFFER_MAX}, min({OFFER_MAX}, {expr})) * {OFFER_SCALE!r})"

    return (
        v(f"{type2} + 1"),
        v(f"{best} + 1"),
        v(f"-{price}"),
        v(f"{ccs} + 1"),
        v(f"{chademo} + 1"),
        v(f"{best} + 1"),
    )


def power_floor(min_power_w: int) -> float:
    """The R*Tree bound a power column must reach for a connector of at least `min_power_w`."""
    return offer_value(min_power_w + 1)


def price_floor(max_price: int) -> float:
    """The R*Tree bound `neg_price` must reach for a price of at most `max_price`."""
    return offer_value(-max_price)
