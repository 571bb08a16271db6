"""Certificates a charger bought follow the credentials it bought them with: every interleaving of
a SignCertificate with a password change or a removal ends with nothing signed for the old
credentials left unrevoked; a change refused revokes nothing. In-memory store, a real CA."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chargeshare.adapters.charger_ca import CertificateAuthority
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.errors import InvalidRequest
from chargeshare.services.booking import BookRequest
from chargeshare.services.charger_reports import SignAnswer
from chargeshare.services.clock import ManualClock
from tests.conftest import add_charger


@pytest.fixture
def secure_app(tmp_path: Path, clock: ManualClock) -> Iterator[App]:
    CertificateAuthority.init(tmp_path / "ca", "Test Operator")
    app = build(Config(database_url="memory://", ca_dir=tmp_path / "ca"), clock=clock)
    yield app
    app.close()


def _csr(cp_id: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cp_id)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def _credentials(app: App, cp_id: str) -> str:
    with app.store.reading() as tx:
        return tx.chargers.credentials(cp_id).fingerprint


def _unrevoked(app: App) -> list[str]:
    assert isinstance(app.ca, CertificateAuthority)
    return [i.origin for i in app.ca.issued() if i.revoked_at is None]


CHANGES: dict[str, Callable[[App], None]] = {
    "password": lambda app: app.marketplace.set_charger_password("CP1", "rotated-after-a-leak"),
    "removal": lambda app: app.marketplace.remove_charger("CP1"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("at", ["before signing", "after recording"])
def test_a_change_racing_a_signing_leaves_nothing_signed_for_the_old(
    secure_app: App, monkeypatch: pytest.MonkeyPatch, change: str, at: str
) -> None:
    """`before signing`: the change lands after the link's credentials were checked, before the
    certificate is made (the signing sees it afterwards and revokes its own). `after recording`:
    it lands once the certificate is on record (the change's second revocation takes it)."""
    add_charger(secure_app, online=False)
    ca = secure_app.ca
    assert isinstance(ca, CertificateAuthority)
    link = _credentials(secure_app, "CP1")
    step = "_sign" if at == "before signing" else "_issue_for"
    original = getattr(ca, step)

    def interleaved(*args: Any, **kwargs: Any) -> Any:
        if at == "before signing":
            CHANGES[change](secure_app)
            return original(*args, **kwargs)
        made = original(*args, **kwargs)
        CHANGES[change](secure_app)
        return made

    monkeypatch.setattr(ca, step, interleaved)
    answer = secure_app.reports.sign_certificate("CP1", _csr("CP1"), None, {}, credentials=link)
    monkeypatch.undo()
    assert _unrevoked(secure_app) == []
    if at == "before signing":
        assert not answer.accepted  # it saw the change itself


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_signing_while_a_change_commits_is_revoked_once_it_has(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Another thread's SignCertificate is signed after the change's first revocation and before
    its commit, so it still sees the old credentials (a SQLite file: two connections) and its
    certificate is recorded; the revocation after the commit takes it."""
    CertificateAuthority.init(tmp_path / "ca", "Test Operator")
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'cs.db'}", ca_dir=tmp_path / "ca"), clock=clock)
    try:
        add_charger(app, online=False)
        ca = app.ca
        assert isinstance(ca, CertificateAuthority)
        link = _credentials(app, "CP1")
        revoke, sign = ca.revoke, ca.sign_request
        signed = threading.Event()
        answers: list[SignAnswer] = []

        def signed_then_told(*args: Any, **kwargs: Any) -> str:
            try:
                return sign(*args, **kwargs)
            finally:
                signed.set()

        def first_revocation_then_a_signing(*args: Any, **kwargs: Any) -> Any:
            revoked = revoke(*args, **kwargs)
            if not signer.is_alive() and not answers:
                signer.start()
                assert signed.wait(10), "the signing never finished"
            return revoked

        def signing() -> None:
            answers.append(app.reports.sign_certificate("CP1", _csr("CP1"), None, {}, credentials=link))

        signer = threading.Thread(target=signing)
        monkeypatch.setattr(ca, "sign_request", signed_then_told)
        monkeypatch.setattr(ca, "revoke", first_revocation_then_a_signing)
        CHANGES[change](app)
        signer.join(10)
        monkeypatch.undo()
        assert [i.origin for i in ca.issued()] == ["request"]  # it was signed, under the old credentials
        assert _unrevoked(app) == []
    finally:
        app.close()


def test_a_refused_removal_revokes_nothing(secure_app: App, clock: ManualClock) -> None:
    charger = add_charger(secure_app)
    assert isinstance(secure_app.ca, CertificateAuthority)
    secure_app.ca.issue("CP1")
    link = _credentials(secure_app, "CP1")
    assert secure_app.reports.sign_certificate("CP1", _csr("CP1"), None, {}, credentials=link).accepted
    driver = secure_app.marketplace.add_driver("D", "TAG").driver_id
    secure_app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000))
    with pytest.raises(InvalidRequest, match="has bookings"):
        secure_app.marketplace.remove_charger("CP1")
    with secure_app.store.reading() as tx:
        host = tx.chargers.get("CP1").host_id
    with pytest.raises(InvalidRequest, match="has bookings"):
        secure_app.hosting.remove_charger(host, charger)
    assert _unrevoked(secure_app) == ["operator", "request"]


def test_a_new_password_keeps_the_operators_provisioning(secure_app: App) -> None:
    add_charger(secure_app, online=False)
    assert isinstance(secure_app.ca, CertificateAuthority)
    secure_app.ca.issue("CP1")
    link = _credentials(secure_app, "CP1")
    assert secure_app.reports.sign_certificate("CP1", _csr("CP1"), None, {}, credentials=link).accepted
    secure_app.marketplace.set_charger_password("CP1", "rotated-after-a-leak")
    assert _unrevoked(secure_app) == ["operator"]
    stale = secure_app.reports.sign_certificate("CP1", _csr("CP1"), None, {}, credentials=link)
    assert (stale.accepted, stale.code) == (False, "InvalidCredentials")
    fresh = _credentials(secure_app, "CP1")
    assert secure_app.reports.sign_certificate("CP1", _csr("CP1"), None, {}, credentials=fresh).accepted
