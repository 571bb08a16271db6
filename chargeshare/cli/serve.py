"""`chargeshare serve`: the reference backend on one port (REST API + OCPP WebSocket endpoint)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chargeshare.cli.errors import doing


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=0, max=65535)] = 8180,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="CHARGESHARE_DATABASE_URL", help="SQLAlchemy URL; default a SQLite file."),
    ] = None,
    allow_unknown_chargers: Annotated[
        bool,
        typer.Option(
            "--allow-unknown-chargers/--known-chargers-only",
            help="Let chargers that are not registered boot and talk (nothing they say is stored).",
        ),
    ] = True,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            help="PEM certificate (chain): serve https and wss (OCPP security profile 2).", exists=True
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="PEM private key for --ssl-certfile.", exists=True)
    ] = None,
) -> None:
    """Start the reference backend: REST API and ws://HOST:PORT/ocpp/{charge_point_id} (https and
    wss with --ssl-certfile/--ssl-keyfile; chargers still authenticate with HTTP Basic)."""
    import uvicorn

    from chargeshare.adapters.http_api import create_api
    from chargeshare.adapters.serving import tune_gc_for_serving
    from chargeshare.bootstrap import Config, build
    from chargeshare.ocpp.frames import MAX_FRAME_BYTES

    console = Console(stderr=True, soft_wrap=True)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        console.print("[red]error:[/] --ssl-certfile and --ssl-keyfile go together")
        raise typer.Exit(2)
    secure = ssl_certfile is not None
    http, ws = ("https", "wss") if secure else ("http", "ws")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env(database_url=database_url, allow_unknown_chargers=allow_unknown_chargers)
    with doing("could not start the backend"):
        app = build(config)
    console.print(
        f"ChargeShare backend on {http}://{host}:{port}  (OCPP: {ws}://{host}:{port}/ocpp/<charge_point_id>, "
        f"subprotocols ocpp1.6 / ocpp2.0.1; database: {app.store.dialect})"
    )
    if allow_unknown_chargers:
        console.print("[yellow]unregistered chargers may connect (--known-chargers-only to refuse them)[/]")
    api = create_api(app)
    tune_gc_for_serving()
    try:
        uvicorn.run(
            api,
            host=host,
            port=port,
            log_level=log_level,
            ws="websockets-sansio",
            ws_max_size=MAX_FRAME_BYTES,
            ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
            ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
        )
    finally:
        app.close()
