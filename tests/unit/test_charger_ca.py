"""The chargers' certificate authority on its own: what it signs, what it refuses, and revocation
seen by every process that reads the directory."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chargeshare.adapters.charger_ca import CaError, CertificateAuthority
from chargeshare.domain.errors import InvalidRequest
from simulators.charger_certificates import ChargerCertificates


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "ca", "Test Operator")


def _leaf(chain: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain.encode())[0]


def test_a_charger_csr_is_signed_for_client_auth_naming_the_charger(ca: CertificateAuthority) -> None:
    mine = ChargerCertificates("CP-1")
    chain = ca.sign_request("CP-1", mine.csr())
    leaf, issuer = x509.load_pem_x509_certificates(chain.encode())
    assert issuer == ca.cert
    leaf.verify_directly_issued_by(ca.cert)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Test Operator"
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert mine.install(chain) and mine.installed == 1
    assert [i.cp_id for i in ca.issued()] == ["CP-1"]


def test_csrs_it_must_not_sign(ca: CertificateAuthority) -> None:
    with pytest.raises(InvalidRequest, match="names 'CP-2'"):
        ca.sign_request("CP-1", ChargerCertificates("CP-2").csr())
    with pytest.raises(InvalidRequest, match="not a PEM"):
        ca.sign_request(
            "CP-1", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )
    p384 = ec.generate_private_key(ec.SECP384R1())  # an EC key on another curve is signed too
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CP-1")]))
        .sign(p384, hashes.SHA256())
    )
    assert ca.sign_request("CP-1", csr.public_bytes(serialization.Encoding.PEM).decode())
    assert [i.cp_id for i in ca.issued()] == ["CP-1"]  # the refused ones left no entry


def test_a_charger_refuses_a_chain_for_a_key_it_did_not_ask_for(ca: CertificateAuthority) -> None:
    mine, other = ChargerCertificates("CP-1"), ChargerCertificates("CP-1")
    mine.csr()
    assert not mine.install(ca.sign_request("CP-1", other.csr()))
    assert not mine.install("garbage")
    assert (mine.installed, mine.refused, mine.cert_pem) == (0, 2, None)


def test_revocation_is_seen_by_another_reader_of_the_directory(ca: CertificateAuthority) -> None:
    server = CertificateAuthority(ca.directory)  # another process's view
    cert_pem, _ = ca.issue("CP-1")
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert server.check_client("CP-1", der).ok
    assert not server.check_client("CP-2", der).ok
    assert ca.revoke("CP-1") == [x509.load_pem_x509_certificate(cert_pem).serial_number]
    check = server.check_client("CP-1", der)
    assert not check.ok and "revoked" in check.reason
    assert ca.revoke("CP-1") == []  # nothing left to revoke


def test_opening_what_is_not_an_authority_says_what_to_do(tmp_path: Path, ca: CertificateAuthority) -> None:
    with pytest.raises(CaError, match="chargeshare ca init"):
        CertificateAuthority(tmp_path / "nothing")
    with pytest.raises(CaError, match="already holds"):
        CertificateAuthority.init(ca.directory, "Again")


def _issue_many(directory: str, prefix: str, n: int) -> None:
    ca = CertificateAuthority(Path(directory))
    for i in range(n):
        ca.issue(f"{prefix}-{i}")


def test_two_processes_issuing_at_once_lose_no_entry_of_the_index(ca: CertificateAuthority) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_issue_many, args=(str(ca.directory), p, 40)) for p in ("A", "B")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert sorted(i.cp_id for i in ca.issued()) == sorted(f"{p}-{i}" for p in "AB" for i in range(40))
