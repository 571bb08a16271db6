"""`column IN (a list of ids bound as ONE parameter)`, on SQLite and PostgreSQL alike.

SQLAlchemy's `in_([...])` expands into one placeholder per id when it runs, so the SQL differs with
the list's length and is re-rendered on every call; such a statement cannot be compiled once and run
straight on the driver (`direct`). Here the whole list is one bound value: a JSON array read with
`json_each` on SQLite, an integer array compared with `= ANY(...)` on PostgreSQL. One SQL text for
every length also lets PostgreSQL keep its plan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, Integer, String, bindparam
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine


class IdList(TypeDecorator[Sequence[int]]):
    """A list of integer ids as one parameter: an integer array on PostgreSQL, JSON text elsewhere."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(pg.ARRAY(Integer))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Sequence[int] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        ids = [int(v) for v in value]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


class InIdList(ColumnElement[bool]):
    """True where `column` is one of the ids bound to `param` (an `IdList` parameter)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate in itself: no `= 1` appended where booleans are ints
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy declares it an instance attribute)
        ("column", InternalTraversal.dp_clauseelement),
        ("param", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], param: BindParameter[Any]) -> None:
        self.column = column
        self.param = param


def in_ids(column: ColumnElement[Any], name: str) -> InIdList:
    """`column` is one of the ids given as the parameter `name` (any sequence of ints)."""
    return InIdList(column, bindparam(name, type_=IdList()))


@compiles(InIdList)
def _in_json_each(element: InIdList, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} IN (SELECT value FROM json_each({compiler.process(element.param, **kw)}))"


@compiles(InIdList, "postgresql")
def _any_of_array(element: InIdList, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.param, **kw)})"
