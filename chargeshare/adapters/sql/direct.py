"""Prebuilt statements run straight on the database driver, inside SQLAlchemy's transaction.

A charger's frame runs a handful of small statements. Through `Connection.execute` each pays
SQLAlchemy's bookkeeping (execution context, events, result set-up), several times what SQLite
itself spends on such a statement. A statement built once at import is
compiled here once per dialect, and then only its parameters are converted (SQLAlchemy's own bind
processors: the same values reach the database as through `execute`) and its rows converted back
(the same result processors), on the DBAPI connection of the transaction's own `Connection`.

Only statements without parameters rendered per call ("expanding" IN, literal_execute) qualify;
anything else keeps `Connection.execute`.
tests/integration/test_sql_direct.py runs every statement given to `DirectStatement` both ways on
SQLite and PostgreSQL and compares the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from chargeshare.adapters.sql.schema import UTCDateTime, sqlite_text_to_utc, utc_to_sqlite_text

Processor = Callable[[Any], Any]


def _converted(value: Any, fn: Processor | None) -> Any:
    return value if fn is None else fn(value)


class Compiled:
    """One statement's SQL for one dialect, with how to bind its parameters and read its rows."""

    def __init__(self, stmt: Executable, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, cast(ClauseElement, stmt).compile(dialect=dialect))
        if any(bp.expanding for bp in compiled.binds.values()):
            raise ValueError("expanding IN parameters are rendered per call: use Connection.execute")
        if compiled.literal_execute_params:  # the SQL holds a placeholder SQLAlchemy fills per call
            raise ValueError("literal_execute parameters are rendered per call: use Connection.execute")
        self.sql = compiled.string
        self.positional = compiled.positional
        self.order = tuple(compiled.positiontup or ())
        # Values the statement carries itself (`status == 'Charging'` becomes a bound literal).
        self.fixed = {name: bp.value for name, bp in compiled.binds.items() if not bp.required}
        binds: list[tuple[str, Processor]] = []
        sqlite = dialect.name == "sqlite"
        for name, fn in compiled._bind_processors.items():
            if not callable(fn):  # a processor per element: tuple-valued parameters
                raise ValueError("tuple-valued parameters are not supported: use Connection.execute")
            if sqlite and isinstance(compiled.binds[name].type, UTCDateTime):
                fn = utc_to_sqlite_text  # the same text in one step (tests/unit/test_sqlite_datetimes.py)
            binds.append((name, fn))
        self.binds = tuple(binds)
        # How each parameter is made, in the order the driver takes them: a constant the statement
        # carries (converted once, here), or a caller's value and its processor (None: as given).
        # Converting per call was a fifth of a frame's time in the store.
        processors = dict(binds)
        names = self.order if self.positional else tuple(compiled.binds)
        self._plan = tuple(
            (name, None, True, _converted(self.fixed[name], processors.get(name)))
            if name in self.fixed
            else (name, processors.get(name), False, None)
            for name in names
        )
        # A name the SQL could not hold as written (`a b`, `x%y` for psycopg) appears there escaped.
        escaped = dict(compiled.escaped_bind_names or {})
        self.parameters = _parameters_of(self._plan, positional=bool(self.positional), keys=escaped)
        self._dialect = dialect
        self._sqlite = sqlite
        self._types = [c.type for c in compiled._result_columns or ()]
        self.keys = tuple(c.keyname for c in compiled._result_columns or ())
        # Some result processors depend on the driver's column type codes (PostgreSQL numerics),
        # so they are chosen from the first cursor's description, as SQLAlchemy does.
        self._results: Results | None = None

    def results(self, description: Sequence[Sequence[Any]]) -> Results:
        """The columns to convert, by position, and how (most of a row's columns need nothing)."""
        if self._results is None:
            found = [
                # the same value in one step (tests/unit/test_sqlite_datetimes.py); None stays None
                sqlite_text_to_utc
                if self._sqlite and isinstance(type_, UTCDateTime)
                else type_._cached_result_processor(self._dialect, column[1])
                for type_, column in zip(self._types, description, strict=True)
            ]
            self._results = tuple((i, fn) for i, fn in enumerate(found) if fn is not None)
        return self._results

    def row(self, raw: Sequence[Any], results: Results) -> tuple[Any, ...]:
        if not results:
            return tuple(raw)
        out = list(raw)
        for i, fn in results:
            value = out[i]
            if value is not None:
                out[i] = fn(value)
        return tuple(out)


Results = tuple[tuple[int, Processor], ...]


def _parameters_of(
    plan: tuple[tuple[str, Processor | None, bool, Any], ...],
    *,
    positional: bool,
    keys: Mapping[str, str] | None = None,
) -> Callable[[Mapping[str, Any]], Sequence[Any] | dict[str, Any]]:
    """A statement's parameters from a caller's values, as one expression written for its plan
    (each a constant, a value as given, or a value converted), built once as dataclasses builds
    its methods: a call then walks no plan and tests no flags."""
    scope: dict[str, Any] = {}
    items = []
    for i, (name, fn, fixed, constant) in enumerate(plan):
        if fixed:
            scope[f"c{i}"] = constant
            item = f"c{i}"
        elif fn is None:
            item = f"values[{name!r}]"
        else:
            scope[f"f{i}"] = fn
            item = f"f{i}(values[{name!r}])"
        items.append(item if positional else f"{(keys or {}).get(name, name)!r}: {item}")
    body = f"[{', '.join(items)}]" if positional else f"{{{', '.join(items)}}}"
    # Parameter names go in as repr()s and converters as names in `scope`: no caller's text is run.
    exec(f"def parameters(values):\n    return {body}\n", scope)
    return cast(Callable[[Mapping[str, Any]], Sequence[Any] | dict[str, Any]], scope["parameters"])


class DirectStatement:
    """A statement built once at import, compiled lazily for each dialect it meets."""

    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        self._by_dialect: dict[str, Compiled] = {}
        self._last: tuple[Dialect, Compiled] | None = None

    def compiled(self, dialect: Dialect) -> Compiled:
        last = self._last  # a store has one dialect: the one met last, without a lookup by name
        if last is not None and last[0] is dialect:
            return last[1]
        done = self._by_dialect.get(dialect.name)
        if done is None:
            done = self._by_dialect[dialect.name] = Compiled(self.stmt, dialect)
        self._last = (dialect, done)
        return done

    def _cursor(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Compiled, Any]:
        c = self.compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(c.sql, c.parameters(values))
        return c, cursor

    def rows(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        c, cursor = self._cursor(conn, values)
        try:
            results = c.results(cursor.description)
            return [c.row(r, results) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def batches(
        self, conn: Connection, values: Mapping[str, Any], size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows `size` at a time, for a reader that may stop early (the cursor closes then)."""
        c, cursor = self._cursor(conn, values)
        try:
            results = c.results(cursor.description)
            while batch := cursor.fetchmany(size):
                yield [c.row(r, results) for r in batch]
        finally:
            cursor.close()

    def first(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        c, cursor = self._cursor(conn, values)
        try:
            raw = cursor.fetchone()
            return None if raw is None else c.row(raw, c.results(cursor.description))
        finally:
            cursor.close()

    def first_mapping(self, conn: Connection, values: Mapping[str, Any]) -> dict[str, Any] | None:
        c, cursor = self._cursor(conn, values)
        try:
            raw = cursor.fetchone()
            if raw is None:
                return None
            return dict(zip(c.keys, c.row(raw, c.results(cursor.description)), strict=True))
        finally:
            cursor.close()

    def mappings(self, conn: Connection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, keyed by column name (as `Connection.execute(...).mappings()`)."""
        c, cursor = self._cursor(conn, values)
        try:
            results, keys = c.results(cursor.description), c.keys
            return [dict(zip(keys, c.row(r, results), strict=True)) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def write_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run an INSERT/UPDATE/DELETE once per row of values, in one driver call; the rows touched
        in all (as the driver reports it: -1 if it cannot tell)."""
        c = self.compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            params: Any = [c.parameters(values) for values in rows]
            cursor.executemany(c.sql, params)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def write(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run an INSERT/UPDATE/DELETE without RETURNING; the number of rows it touched."""
        _c, cursor = self._cursor(conn, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()
