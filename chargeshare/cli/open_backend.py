"""Open the backend's database for a CLI command, turning failures into a clean exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from chargeshare.cli.errors import doing
from chargeshare.domain.errors import DomainError

if TYPE_CHECKING:
    from chargeshare.bootstrap import App

err = Console(stderr=True, soft_wrap=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(envvar="CHARGESHARE_DATABASE_URL", help="SQLAlchemy URL; default the SQLite file."),
]


@contextmanager
def open_app(database_url: str | None) -> Iterator[App]:
    """Build the app and print domain errors as one line, exit 2 on them (configuration and database
    failures are chargeshare.cli.errors' to explain)."""
    from chargeshare.bootstrap import Config, build

    with doing("cannot open the database"):
        a = build(Config.from_env(database_url=database_url))
    try:
        yield a
    except DomainError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    finally:
        a.close()
