"""The map search's SQL distance (SQLite math functions, or their Python stand-ins) is the domain's."""

from __future__ import annotations

import math
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Float, bindparam, select
from sqlalchemy.dialects import sqlite

from chargeshare.adapters.sql.sqlite_geo import distance_expr, distance_sql, ensure_math_functions
from chargeshare.domain.geo import haversine_m

lats = st.floats(-89.9, 89.9)
lons = st.floats(-179.9, 179.9)


def _db(with_builtins: bool) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    if not with_builtins:  # stand in for a SQLite built without math functions: Python's own
        for name in ("sin", "cos", "asin", "sqrt", "radians"):
            db.create_function(name, 1, getattr(math, name), deterministic=True)
    ensure_math_functions(db)
    return db


DBS = [_db(True), _db(False)]


@given(lats, lons, lats, lons)
@settings(deadline=None)  # a correctness property, not a timing: a busy machine must not fail it
@pytest.mark.slow
def test_sql_distance_is_the_domains(lat1: float, lon1: float, lat2: float, lon2: float) -> None:
    want = haversine_m(lat1, lon1, lat2, lon2)
    text = "SELECT " + distance_sql(":a", ":b", ":c", ":d")
    for db in DBS:
        params = {"a": lat1, "b": lon1, "c": lat2, "d": lon2}
        (got,) = db.execute(text, params).fetchone()
        assert abs(got - want) <= 1e-6 * max(1.0, want)
        compiled = select(distance_expr(*(bindparam(k, type_=Float) for k in "abcd"))).compile(
            dialect=sqlite.dialect(paramstyle="named")
        )
        (got_expr,) = db.execute(str(compiled), {**compiled.params, **params}).fetchone()
        assert abs(got_expr - want) <= 1e-6 * max(1.0, want)


def test_math_functions_are_there_after_ensuring_and_found_the_second_time() -> None:
    db = sqlite3.connect(":memory:")
    ensure_math_functions(db)
    (value,) = db.execute("SELECT sin(0.5)").fetchone()
    assert abs(value - math.sin(0.5)) < 1e-15
    assert ensure_math_functions(db) is True  # built in, or the stand-ins registered the first time
