"""OCPP security profile 2: wss (TLS) with HTTP Basic charger passwords, over real loopback sockets,
with a self-signed certificate made for the test; and `chargeshare serve --ssl-certfile/--ssl-keyfile`."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from chargeshare.bootstrap import App, Config, build
from chargeshare.cli.app import app as cli
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.credentials import basic_auth_header
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from tests.cli_runner import CliRunner
from tests.e2e.ocpp_clients import boot16, boot201, library_cp16, library_cp201
from tests.e2e.tls import SelfSigned, self_signed

pytestmark = pytest.mark.e2e
PASSWORD = "correct-horse-battery"
OCPP16 = [Subprotocol("ocpp1.6")]


@pytest.fixture
def cert(tmp_path: Path) -> SelfSigned:
    return self_signed(tmp_path)


@pytest.fixture
async def secure(cert: SelfSigned) -> AsyncIterator[tuple[App, str]]:
    app = build(Config(database_url="sqlite://"))  # unknown chargers refused
    host = app.marketplace.add_host("h")
    for cp_id in ("TLS16", "TLS201"):
        spec = ChargerSpec(
            cp_id, host, Point(51.5, -0.1), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
        )
        app.marketplace.add_charger(spec, password=PASSWORD)
    async with LoopbackServer(create_api(app), ssl_context=cert.server_context()) as server:
        yield app, f"wss://127.0.0.1:{server.port}/ocpp"
    app.close()


async def test_chargers_boot_over_wss_with_basic_auth(secure: tuple[App, str], cert: SelfSigned) -> None:
    app, url = secure
    tls = cert.client_context()
    auth = {"Authorization": basic_auth_header("TLS16", PASSWORD)}
    async with library_cp16(url, "TLS16", ssl=tls, additional_headers=auth) as cp:
        assert (await boot16(cp)).status == "Accepted"
    auth = {"Authorization": basic_auth_header("TLS201", PASSWORD)}
    async with library_cp201(url, "TLS201", ssl=tls, additional_headers=auth) as cp:
        assert (await boot201(cp)).status == "Accepted"
    with app.store.transaction() as tx:
        assert tx.chargers.get("TLS16").ocpp_version == "1.6"
        assert tx.chargers.get("TLS201").ocpp_version == "2.0.1"


async def test_a_wrong_password_over_wss_is_refused(secure: tuple[App, str], cert: SelfSigned) -> None:
    _, url = secure
    auth = {"Authorization": basic_auth_header("TLS16", "not-the-password")}
    with pytest.raises(websockets.InvalidStatus) as err:
        async with connect(
            f"{url}/TLS16", subprotocols=OCPP16, ssl=cert.client_context(), additional_headers=auth
        ):
            pass
    assert err.value.response.status_code == 401
    assert err.value.response.headers["WWW-Authenticate"].startswith("Basic ")


async def test_a_client_that_does_not_trust_the_certificate_cannot_connect(secure: tuple[App, str]) -> None:
    _, url = secure
    auth = {"Authorization": basic_auth_header("TLS16", PASSWORD)}
    with pytest.raises(ssl.SSLCertVerificationError):
        async with connect(
            f"{url}/TLS16",
            subprotocols=OCPP16,
            ssl=ssl.create_default_context(),
            additional_headers=auth,
        ):
            pass


def test_serve_wants_both_tls_files(cert: SelfSigned) -> None:
    result = CliRunner().invoke(cli, ["serve", "--ssl-certfile", str(cert.certfile)])
    assert result.exit_code == 2 and "go together" in result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_chargeshare_serve_speaks_wss(cert: SelfSigned, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CHARGESHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'cs.db'}"}
    command = [sys.executable, "-c", "from chargeshare.cli.app import main; main()"]
    args = ["serve", "--port", str(port), "--log-level", "warning"]
    tls_args = ["--ssl-certfile", str(cert.certfile), "--ssl-keyfile", str(cert.keyfile)]
    server = subprocess.Popen([*command, *args, *tls_args], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:  # unregistered chargers may connect by default, so no password is needed
            try:
                async with library_cp201(
                    f"wss://127.0.0.1:{port}/ocpp", "CLI201", ssl=cert.client_context()
                ) as cp:
                    assert (await boot201(cp)).status == "Accepted"
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                await asyncio.sleep(0.2)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    assert "wss://127.0.0.1" in stderr
