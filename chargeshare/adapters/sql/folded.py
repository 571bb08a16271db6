"""A token value or a driver's id tag as it is compared (`domain.tokens.token_key`): its ASCII
letters in upper case, anything else as it is, on SQLite and PostgreSQL alike.

SQLite's upper() folds ASCII letters only. PostgreSQL's folds what the collation says, which under
a UTF-8 locale is more than ASCII, so there it is asked under the "C" collation, which folds ASCII
only. The unique indexes on it (`schema`) and every lookup by it are this one expression, so
PostgreSQL's planner finds the index for the lookups.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, String, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class Folded(ColumnElement[str]):
    """`value` with its ASCII letters upper-cased."""

    inherit_cache = True
    type = String()
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy declares it an instance attribute)
        ("value", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, value: ColumnElement[Any]) -> None:
        self.value = value


@compiles(Folded)
def _upper(element: Folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"upper({compiler.process(element.value, **kw)})"


@compiles(Folded, "postgresql")
def _upper_in_c(element: Folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f'upper({compiler.process(element.value, **kw)} COLLATE "C")'


# pg_advisory_xact_lock key ("CSID") taken by whoever writes a token value or a driver's id tag.
NAMES_LOCK_KEY = 0x43534944


def writing_names(conn: Connection) -> None:
    """Take, until the transaction ends, the turn to write token values and drivers' id tags
    (PostgreSQL). A value must be checked against the other table before it is written (a token's
    against other drivers' tags, a tag against tokens), and no index spans two tables: so their
    writers take turns, one transaction at a time across the cluster (one lock however many it
    writes; such writes are few and short). SQLite's write transactions take turns already."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": NAMES_LOCK_KEY})
