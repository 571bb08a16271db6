"""OCPP security profile 3: TLS with client certificates from the backend's own certificate authority,
over real loopback sockets. A certificate naming the charger stands in for its password; one naming
another charger, revoked, or from another authority is refused; SignCertificate renews a certificate
(CertificateSigned), and `chargeshare serve --ca-dir` serves it all."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from chargeshare.adapters.charger_ca import CA_CERT, CertificateAuthority
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.credentials import basic_auth_header
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.services.clock import SystemClock
from simulators.charger import VirtualCharger
from tests.e2e.ocpp_clients import boot16, boot201, library_cp16, library_cp201
from tests.e2e.test_ocpp_tls import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.e2e
PASSWORD = "correct-horse-battery"
OCPP16 = [Subprotocol("ocpp1.6")]
CHARGERS = ("P3-16", "P3-201", "P3-OTHER")


@dataclass
class Secure:
    app: App
    ca: CertificateAuthority
    url: str
    tmp: Path
    registry: ChargerRegistry | None = None

    def client(self, cp_id: str | None) -> ssl.SSLContext:
        """Trusting our CA, presenting a new certificate of ours for `cp_id` (None: no certificate)."""
        ctx = ssl.create_default_context(cafile=str(self.ca.directory / CA_CERT))
        if cp_id is not None:
            cert, key = self.ca.issue(cp_id)
            ctx.load_cert_chain(*self._files(cp_id, cert, key))
        return ctx

    def _files(self, name: str, cert: bytes, key: bytes) -> tuple[Path, Path]:
        certfile, keyfile = self.tmp / f"{name}.pem", self.tmp / f"{name}-key.pem"
        certfile.write_bytes(cert)
        keyfile.write_bytes(key)
        return certfile, keyfile

    def reports(self, cp_id: str, action: str) -> list[str]:
        return [r.summary for r in self.app.reports.reports(cp_id, [action])]


def _register(app: App) -> None:
    host = app.marketplace.add_host("h")
    for cp_id in CHARGERS:
        spec = ChargerSpec(
            cp_id, host, Point(51.5, -0.1), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
        )
        app.marketplace.add_charger(spec, password=PASSWORD)


async def _serving(tmp_path: Path, *, require: bool) -> AsyncIterator[Secure]:
    ca = CertificateAuthority.init(tmp_path / "ca", "Test Operator")
    app = build(Config(database_url="sqlite://", ca_dir=ca.directory))  # unknown chargers refused
    _register(app)
    context = ca.server_context(require_client_cert=require)
    registry = ChargerRegistry(app, call_timeout_s=10)
    async with LoopbackServer(create_api(app, registry), ssl_context=context) as server:
        yield Secure(app, ca, f"wss://127.0.0.1:{server.port}/ocpp", tmp_path, registry)
    app.close()


@pytest.fixture
async def secure(tmp_path: Path) -> AsyncIterator[Secure]:
    async for s in _serving(tmp_path, require=False):
        yield s


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Secure]:
    async for s in _serving(tmp_path, require=True):
        yield s


async def _refused_status(url: str, cp_id: str, ctx: ssl.SSLContext, **kw: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as err:
        async with connect(f"{url}/{cp_id}", subprotocols=OCPP16, ssl=ctx, **kw):
            pass
    return err.value.response.status_code


async def test_our_certificate_naming_the_charger_stands_in_for_its_password(secure: Secure) -> None:
    async with library_cp16(secure.url, "P3-16", ssl=secure.client("P3-16")) as cp:
        assert (await boot16(cp)).status == "Accepted"
    async with library_cp201(secure.url, "P3-201", ssl=secure.client("P3-201")) as cp:
        assert (await boot201(cp)).status == "Accepted"
    with secure.app.store.transaction() as tx:
        assert tx.chargers.get("P3-16").ocpp_version == V16
        assert tx.chargers.get("P3-201").ocpp_version == V201


async def test_a_certificate_naming_another_charger_is_refused(secure: Secure) -> None:
    # Even with that charger's own password: the certificate says who is calling.
    auth = {"Authorization": basic_auth_header("P3-16", PASSWORD)}
    status = await _refused_status(secure.url, "P3-16", secure.client("P3-OTHER"), additional_headers=auth)
    assert status == 401


async def test_a_revoked_certificate_is_refused_at_the_next_upgrade(secure: Secure) -> None:
    ctx = secure.client("P3-16")
    async with library_cp16(secure.url, "P3-16", ssl=ctx) as cp:
        assert (await boot16(cp)).status == "Accepted"
    assert len(secure.ca.revoke("P3-16")) == 1
    assert await _refused_status(secure.url, "P3-16", ctx) == 401
    # A new certificate for the charger is good again.
    async with library_cp16(secure.url, "P3-16", ssl=secure.client("P3-16")) as cp:
        assert (await boot16(cp)).status == "Accepted"


async def test_a_certificate_from_another_authority_fails_the_handshake(secure: Secure) -> None:
    stranger = CertificateAuthority.init(secure.tmp / "stranger", "Someone Else")
    cert, key = stranger.issue("P3-16")
    ctx = ssl.create_default_context(cafile=str(secure.ca.directory / CA_CERT))
    ctx.load_cert_chain(*secure._files("stranger-P3-16", cert, key))
    with pytest.raises((ssl.SSLError, ConnectionError, websockets.InvalidMessage, EOFError)):
        async with connect(f"{secure.url}/P3-16", subprotocols=OCPP16, ssl=ctx) as ws:
            await ws.recv()  # TLS 1.3: the server's verdict on our certificate arrives after the handshake


async def test_without_a_certificate_the_password_still_counts(secure: Secure) -> None:
    """Client certificates are optional by default: a profile 2 charger keeps its password."""
    auth = {"Authorization": basic_auth_header("P3-16", PASSWORD)}
    async with library_cp16(secure.url, "P3-16", ssl=secure.client(None), additional_headers=auth) as cp:
        assert (await boot16(cp)).status == "Accepted"
    wrong = {"Authorization": basic_auth_header("P3-16", "not-it")}
    assert await _refused_status(secure.url, "P3-16", secure.client(None), additional_headers=wrong) == 401


async def test_required_client_certificates_refuse_a_password_only_charger(strict: Secure) -> None:
    auth = {"Authorization": basic_auth_header("P3-16", PASSWORD)}
    with pytest.raises((ssl.SSLError, ConnectionError, websockets.InvalidMessage, EOFError)):
        async with connect(
            f"{strict.url}/P3-16", subprotocols=OCPP16, ssl=strict.client(None), additional_headers=auth
        ) as ws:
            await ws.recv()
    async with library_cp16(strict.url, "P3-16", ssl=strict.client("P3-16")) as cp:
        assert (await boot16(cp)).status == "Accepted"


@pytest.mark.parametrize(("cp_id", "protocol"), [("P3-16", V16), ("P3-201", V201)])
async def test_sign_certificate_renews_and_the_new_certificate_connects(
    secure: Secure, cp_id: str, protocol: OcppVersion
) -> None:
    first = secure.client(cp_id)
    charger = VirtualCharger(cp_id, secure.url, SystemClock(), [7_400], protocol=protocol, ssl_context=first)
    await charger.start()
    try:
        assert await charger.renew_certificate()
        await eventually(lambda: charger.certificates.installed == 1, "CertificateSigned installed")
    finally:
        await charger.stop()
    assert charger.certificates.refused == 0
    assert len(secure.ca.issued()) == 2  # the provisioned one, and the renewal
    await eventually(lambda: secure.reports(cp_id, "CertificateSigned") == ["sent: Accepted"], "answer kept")
    assert secure.reports(cp_id, "SignCertificate") == ["ChargingStationCertificate issued"]
    # The charger reconnects with the certificate it was sent, and no password.
    renewed = charger.certificates.tls_context(secure.ca.directory / CA_CERT)
    again = VirtualCharger(cp_id, secure.url, SystemClock(), [7_400], protocol=protocol, ssl_context=renewed)
    await again.start()
    try:
        assert again.boot_accepted
    finally:
        await again.stop()


def _csr(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


async def test_a_csr_for_another_charger_or_unreadable_is_rejected(secure: Secure) -> None:
    async with library_cp201(secure.url, "P3-201", ssl=secure.client("P3-201")) as cp:
        assert (await boot201(cp)).status == "Accepted"
        other = await cp.call(call201.SignCertificate(csr=_csr("P3-OTHER")))
        assert other.status == "Rejected" and other.status_info["reason_code"] == "InvalidCSR"
        garbage = await cp.call(call201.SignCertificate(csr="not a CSR"))
        assert garbage.status == "Rejected" and garbage.status_info["reason_code"] == "InvalidCSR"
        v2g = await cp.call(call201.SignCertificate(csr=_csr("P3-201"), certificate_type="V2GCertificate"))
        assert v2g.status == "Rejected" and v2g.status_info["reason_code"] == "UnsupportedType"
    async with library_cp16(secure.url, "P3-16", ssl=secure.client("P3-16")) as cp:
        assert (await boot16(cp)).status == "Accepted"
        assert (await cp.call(call16.SignCertificate(csr=_csr("P3-OTHER")))).status == "Rejected"
    assert len(secure.ca.issued()) == 2  # the two provisioned: nothing signed for the refused CSRs
    assert secure.reports("P3-201", "CertificateSigned") == []
    summaries = secure.reports("P3-201", "SignCertificate")
    assert (
        summaries[0]
        == "ChargingStationCertificate refused: the CSR names 'P3-OTHER', not this charger ('P3-201')"
    )
    assert summaries[2] == "V2GCertificate refused: no certificate authority for V2GCertificate"


async def test_chargeshare_serve_with_a_ca_dir(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", "Test Operator")
    cert, key = ca.issue("CLI-P3")
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    ctx = ssl.create_default_context(cafile=str(ca.directory / CA_CERT))
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    port = free_port()
    env = {**os.environ, "CHARGESHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'cs.db'}"}
    command = [sys.executable, "-c", "from chargeshare.cli.app import main; main()"]
    args = ["serve", "--port", str(port), "--log-level", "warning", "--ca-dir", str(ca.directory)]
    server = subprocess.Popen(
        [*command, *args, "--require-client-cert"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with library_cp201(f"wss://127.0.0.1:{port}/ocpp", "CLI-P3", ssl=ctx) as cp:
                    assert (await boot201(cp)).status == "Accepted"
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                await asyncio.sleep(0.2)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    assert f"wss://127.0.0.1:{port}" in stderr


async def test_a_revoked_charger_still_connected_cannot_renew_itself(secure: Secure) -> None:
    charger = VirtualCharger(
        "P3-16", secure.url, SystemClock(), [7_400], protocol=V16, ssl_context=secure.client("P3-16")
    )
    await charger.start()
    try:
        secure.ca.revoke("P3-16")  # the operator's revocation; the link stays open
        assert not await charger.renew_certificate()
    finally:
        await charger.stop()
    assert secure.reports("P3-16", "SignCertificate")[0].startswith("ChargingStationCertificate refused:")
    assert [i.revoked_at is not None for i in secure.ca.issued()] == [True]


def _bought(secure: Secure, cp_id: str) -> ssl.SSLContext:
    """A certificate the charger bought with SignCertificate (not an operator's), as a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]))
        .sign(key, hashes.SHA256())
    )
    chain = secure.ca.sign_request(cp_id, request.public_bytes(serialization.Encoding.PEM).decode())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ctx = ssl.create_default_context(cafile=str(secure.ca.directory / CA_CERT))
    ctx.load_cert_chain(*secure._files(f"{cp_id}-bought", chain.encode(), key_pem))
    return ctx


async def test_a_new_password_voids_what_the_old_one_bought_and_a_freed_id_everything(
    secure: Secure,
) -> None:
    bought_16, provisioned_16 = _bought(secure, "P3-16"), secure.client("P3-16")
    old_other = secure.client("P3-OTHER")
    secure.app.marketplace.set_charger_password("P3-16", "rotated-after-a-leak")
    assert await _refused_status(secure.url, "P3-16", bought_16) == 401
    # The operator's provisioning is no credential the password bought: it still connects.
    async with library_cp16(secure.url, "P3-16", ssl=provisioned_16) as cp:
        assert (await boot16(cp)).status == "Accepted"
    secure.app.marketplace.remove_charger("P3-OTHER")
    host = secure.app.marketplace.add_host("someone else")
    spec = ChargerSpec(
        "P3-OTHER", host, Point(51.5, -0.1), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
    )
    secure.app.marketplace.add_charger(spec, password="the-new-owners-password")
    assert await _refused_status(secure.url, "P3-OTHER", old_other) == 401
    # The new credentials work, and buy a certificate afresh.
    auth = {"Authorization": basic_auth_header("P3-16", "rotated-after-a-leak")}
    async with library_cp16(secure.url, "P3-16", ssl=secure.client(None), additional_headers=auth) as cp:
        assert (await boot16(cp)).status == "Accepted"
        assert (await cp.call(call16.SignCertificate(csr=_csr("P3-16")))).status == "Accepted"


async def test_a_link_opened_with_old_credentials_buys_nothing_after_they_change(secure: Secure) -> None:
    """The password leaked; the host changed it. The thief's link, still open, asks for a
    certificate; so does a link to an id since freed and registered by someone else."""
    auth = {"Authorization": basic_auth_header("P3-16", PASSWORD)}
    async with library_cp16(secure.url, "P3-16", ssl=secure.client(None), additional_headers=auth) as cp:
        assert (await boot16(cp)).status == "Accepted"
        secure.app.marketplace.set_charger_password("P3-16", "rotated-after-a-leak")
        assert (await cp.call(call16.SignCertificate(csr=_csr("P3-16")))).status == "Rejected"
    auth = {"Authorization": basic_auth_header("P3-OTHER", PASSWORD)}
    async with library_cp201(secure.url, "P3-OTHER", ssl=secure.client(None), additional_headers=auth) as cp:
        assert (await boot201(cp)).status == "Accepted"
        secure.app.marketplace.remove_charger("P3-OTHER")
        spec = ChargerSpec(
            "P3-OTHER",
            secure.app.marketplace.add_host("the new owner"),
            Point(51.5, -0.1),
            Tariff(30),
            (ConnectorSpec(1, ConnectorType.TYPE2, 7400),),
        )
        secure.app.marketplace.add_charger(spec, password=PASSWORD)  # even the same password
        answer = await cp.call(call201.SignCertificate(csr=_csr("P3-OTHER")))
        assert answer.status == "Rejected" and answer.status_info["reason_code"] == "InvalidCredentials"
    assert secure.ca.issued() == []  # nothing was signed for them
    assert secure.reports("P3-16", "SignCertificate")[0].endswith("it must connect again")


async def test_certificate_signed_waits_for_the_sign_certificate_answer(tmp_path: Path) -> None:
    """On a SQLite file the answer waits for its flush: the CertificateSigned the answer implies must
    still come after it."""
    ca = CertificateAuthority.init(tmp_path / "ca", "Test Operator")
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'cs.db'}", ca_dir=ca.directory))
    _register(app)
    secure = Secure(app, ca, "", tmp_path)
    order: list[list[int]] = []
    try:
        async with LoopbackServer(create_api(app), ssl_context=ca.server_context()) as server:
            url = f"wss://127.0.0.1:{server.port}/ocpp/P3-16"
            async with connect(url, subprotocols=OCPP16, ssl=secure.client("P3-16")) as ws:
                for i in range(5):
                    await ws.send(json.dumps([2, f"s{i}", "SignCertificate", {"csr": _csr("P3-16")}]))
                    seen: list[int] = []
                    while len(seen) < 2:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        seen.append(frame[0])
                        if frame[0] == 2:  # our CertificateSigned: answered
                            await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                    order.append(seen)
    finally:
        app.close()
    assert order == [[3, 2]] * 5  # the answer (3), then the command (2)


async def test_a_command_queued_behind_an_answer_goes_with_its_link(
    secure: Secure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link breaks between handling SignCertificate and sending its answer: the CertificateSigned
    queued behind that answer is dropped with the link, not sent on the charger's next connection
    after whatever it says first."""
    from starlette.websockets import WebSocketDisconnect

    from chargeshare.ocpp import commands as cmd

    ctx = secure.client("P3-16")
    durability = secure.app.durability
    flushed = durability.flushed
    broken: list[bool] = []

    async def break_once() -> None:
        if not broken:
            broken.append(True)
            raise WebSocketDisconnect(1006)
        await flushed()

    monkeypatch.setattr(durability, "flushed", break_once)
    async with connect(f"{secure.url}/P3-16", subprotocols=OCPP16, ssl=ctx) as ws:
        await ws.send(json.dumps([2, "s1", "SignCertificate", {"csr": _csr("P3-16")}]))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)  # no answer: the link went
    async with connect(f"{secure.url}/P3-16", subprotocols=OCPP16, ssl=ctx) as ws:
        await ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))[:2] == [3, "h1"]
        # A command sent now arrives after anything the heartbeat's answer let loose.
        assert secure.registry is not None
        sent = asyncio.create_task(secure.registry.send("P3-16", cmd.ClearCache()))
        actions = []
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            actions.append(frame[2])
            await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            if frame[2] == "ClearCache":
                break
        assert await sent == cmd.Done(cmd.Status.ACCEPTED, None)
    assert actions == ["ClearCache"]
