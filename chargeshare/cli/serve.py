"""`chargeshare serve`: the reference backend on one port (REST API + OCPP WebSocket endpoint)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console

from chargeshare.cli import log_format as log_format_module
from chargeshare.cli.errors import ENVIRONMENT, Problem, doing
from chargeshare.cli.options import chatter, quiet, verbose


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
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error (-v: debug, -q: error).")
    ] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            help="text (lines for people) or json (one JSON object per line, uvicorn's log included).",
        ),
    ] = "text",
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            help="PEM certificate (chain): serve https and wss (OCPP security profile 2).", exists=True
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="PEM private key for --ssl-certfile.", exists=True)
    ] = None,
    ca_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="CHARGESHARE_CA_DIR",
            help="Certificate authority from `chargeshare ca init` (OCPP security profile 3): serve wss "
            "with its server certificate (unless --ssl-certfile), take chargers' client certificates in "
            "place of passwords, and sign their SignCertificate requests.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    require_client_cert: Annotated[
        bool,
        typer.Option(help="With --ca-dir: refuse a TLS connection without a client certificate."),
    ] = False,
) -> None:
    """Start the reference backend: REST API and ws://HOST:PORT/ocpp/{charge_point_id} (https and
    wss with --ssl-certfile/--ssl-keyfile or --ca-dir; chargers authenticate with HTTP Basic, or
    with a client certificate from the --ca-dir authority)."""
    console = Console(stderr=True, soft_wrap=True)
    note = chatter(console)
    log_level = "debug" if verbose() else "error" if quiet() else log_level
    if log_format not in ("text", "json"):
        raise typer.BadParameter(f"{log_format!r}: choose text or json", param_hint="--log-format")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        console.print("[red]error:[/] --ssl-certfile and --ssl-keyfile go together")
        raise typer.Exit(2)
    if require_client_cert and ca_dir is None:
        console.print("[red]error:[/] --require-client-cert needs --ca-dir (the authority to check against)")
        raise typer.Exit(2)
    if ca_dir is not None and ssl_certfile is None:
        ssl_certfile, ssl_keyfile = ca_dir / "server.pem", ca_dir / "server-key.pem"
    secure = ssl_certfile is not None
    http, ws = ("https", "wss") if secure else ("http", "ws")
    # The port and Redis are checked before the backend's code is even imported (seconds), so that
    # either one missing fails at once. The variable is read as Config.from_env reads it.
    redis_url = os.environ.get("CHARGESHARE_REDIS_URL") or None
    with bind(host, port) as sock:
        if redis_url is not None:
            check_redis(redis_url)
        import uvicorn

        from chargeshare.bootstrap import Config, build, clock_from_env
        from chargeshare.entrypoints.api import create_api
        from chargeshare.entrypoints.draining import DrainingServer
        from chargeshare.entrypoints.serving import tune_gc_for_serving
        from chargeshare.entrypoints.spread_pings import SpreadPingsProtocol
        from chargeshare.ocpp.frames import MAX_FRAME_BYTES

        log_format_module.configure(log_level, log_format)
        with doing("could not start the backend"):
            config = Config.from_env(
                database_url=database_url, allow_unknown_chargers=allow_unknown_chargers, ca_dir=ca_dir
            )
            app = build(config, clock=clock_from_env())
        try:
            port = sock.getsockname()[1]  # what --port 0 picked
            note.print(
                f"ChargeShare backend on {http}://{host}:{port}  (OCPP: {ws}://{host}:{port}/ocpp/"
                f"<charge_point_id>, subprotocols ocpp1.6 / ocpp2.0.1 / ocpp2.1; "
                f"database: {app.store.dialect})"
            )
            if allow_unknown_chargers:
                note.print(
                    "[yellow]unregistered chargers may connect (--known-chargers-only to refuse them)[/]"
                )
            api = create_api(app)
            tune_gc_for_serving()
            server = DrainingServer(
                uvicorn.Config(
                    api,
                    host=host,
                    port=port,
                    log_level=log_level,
                    # JSON: uvicorn's loggers pass through the root logger's JSON handler.
                    log_config=None if log_format == "json" else uvicorn.config.LOGGING_CONFIG,
                    ws=SpreadPingsProtocol,  # the sans-I/O protocol: the ASGI TLS extension, spread pings
                    ws_max_size=MAX_FRAME_BYTES,
                    ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
                    ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
                    ssl_ca_certs=None if ca_dir is None else str(ca_dir / "ca.pem"),
                    ssl_cert_reqs=_client_certs(ca_dir, require_client_cert),
                ),
                api.state.registry,
            )
            server.run(sockets=[sock])
        finally:
            app.close()
    if not server.started:
        raise Problem("the backend did not start (see the log above)", ENVIRONMENT)


def _client_certs(ca_dir: Path | None, required: bool) -> int:
    import ssl

    if ca_dir is None:
        return ssl.CERT_NONE
    # Optional: a charger on security profile 2 still connects with its password.
    return ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL


@contextmanager
def bind(host: str, port: int) -> Iterator[socket.socket]:
    """The listening address, taken before anything is built or announced, so that a port in use is
    one line rather than a server that says it started."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: no wait for TIME_WAIT
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = "the port is in use (choose another with --port)" if exc.errno == errno.EADDRINUSE else exc
            raise Problem(f"cannot listen on {host}:{port}: {why}", ENVIRONMENT) from exc
        sock.set_inheritable(True)
        yield sock
    finally:
        sock.close()


def check_redis(url: str) -> None:
    """One line within seconds when CHARGESHARE_REDIS_URL points at no Redis: the server would
    otherwise retry its subscription, a traceback each time, until its startup times out."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise Problem(f"cannot reach Redis at {_without_password(url)}: {exc}", ENVIRONMENT) from exc
    finally:
        client.close()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))
