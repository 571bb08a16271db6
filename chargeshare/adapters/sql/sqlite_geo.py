"""Great-circle distance inside SQLite, in its own math functions.

SQLite has no geodesy. The map search used to call a Python function for every charger in the
search box (twice for those it kept): at 10,000 chargers in a city that was most of a search's time.
The same haversine written in SQLite's built-in math functions (3.35+, when compiled in, as in
Debian's and most Python builds) runs in C. Where they are missing, the same names are registered
as Python functions, so the SQL is the same everywhere and only the speed differs.
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
