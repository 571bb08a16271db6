"""`chargeshare db`: the database schema's version, and upgrades to the code's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chargeshare.cli.errors import doing
from chargeshare.cli.open_backend import DatabaseUrl
from chargeshare.cli.options import output_option, write_rows

app = typer.Typer(help="The database schema: its version, and upgrades to this code's.", no_args_is_help=True)
console = Console(soft_wrap=True)


def _url(database_url: str | None) -> str:
    from chargeshare.bootstrap import DEFAULT_DATABASE_URL

    return database_url or DEFAULT_DATABASE_URL


@app.command()
def upgrade(database_url: DatabaseUrl = None) -> None:
    """Bring the schema to this code's version (PostgreSQL: one process at a time, by advisory lock)."""
    from chargeshare.adapters.sql import migrate
    from chargeshare.adapters.sql.store import make_engine

    engine = make_engine(_url(database_url))
    try:
        with doing("cannot upgrade the database"):
            done = migrate.upgrade(engine)
    finally:
        engine.dispose()
    console.print(f"schema {migrate.HEAD}: {done}")


@app.command()
def version(
    database_url: DatabaseUrl = None,
    json_out: Annotated[
        Path | None,
        output_option("Write the two versions as JSON here instead of a line (-: to stdout).", "--json"),
    ] = None,
) -> None:
    """Print the schema version the database is at, and the one this code needs. Exit 1 when they
    differ (`db upgrade` brings the database to this code's)."""
    from chargeshare.adapters.sql import migrate
    from chargeshare.adapters.sql.store import make_engine

    engine = make_engine(_url(database_url))
    try:
        with doing("cannot read the database"), engine.connect() as conn:
            at = migrate.current(conn)
    finally:
        engine.dispose()
    if json_out is not None:
        write_rows(json_out, {"database": at, "code": migrate.HEAD, "current": at == migrate.HEAD})
    else:
        console.print(f"database: {at or 'no version'}; this code: {migrate.HEAD}")
    if at != migrate.HEAD:
        raise typer.Exit(1)
