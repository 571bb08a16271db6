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
    with pytest.raises(InvalidRequest, match="not a readable PEM"):
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


@pytest.mark.slow  # two more processes
def test_two_processes_issuing_at_once_lose_no_entry_of_the_index(ca: CertificateAuthority) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_issue_many, args=(str(ca.directory), p, 40)) for p in ("A", "B")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert sorted(i.cp_id for i in ca.issued()) == sorted(f"{p}-{i}" for p in "AB" for i in range(40))


def _csr_on(curve: ec.EllipticCurve, cp_id: str = "CP-1") -> str:
    key = ec.generate_private_key(curve)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("curve", [ec.SECP192R1(), ec.SECP224R1(), ec.SECP256K1()], ids=lambda c: c.name)
def test_keys_on_other_curves_are_refused(ca: CertificateAuthority, curve: ec.EllipticCurve) -> None:
    with pytest.raises(InvalidRequest, match="P-256 or P-384"):
        ca.sign_request("CP-1", _csr_on(curve))
    assert ca.issued() == []


def test_an_operator_revocation_stops_renewals_until_the_charger_is_issued_again(
    ca: CertificateAuthority,
) -> None:
    ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))
    assert len(ca.revoke("CP-1")) == 1
    with pytest.raises(InvalidRequest, match="revoked"):
        ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))  # over a link still open, or with its password
    ca.issue("CP-1")  # re-provisioned by an operator
    assert ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))
    # Revoked for a new password or a freed id, the charger may ask afresh.
    ca.revoke("CP-1", block=False)
    assert ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))
    assert [i.revoked_at is not None for i in ca.issued()] == [True, True, True, False]


def test_a_leftover_temporary_file_lends_no_mode_to_a_key(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    directory.mkdir()
    planted = directory / "ca-key.pem.tmp"
    planted.write_bytes(b"")
    planted.chmod(0o644)
    ca = CertificateAuthority.init(directory, "Test Operator")
    assert (ca.directory / "ca-key.pem").stat().st_mode & 0o077 == 0
    assert (ca.directory / "server-key.pem").stat().st_mode & 0o077 == 0


def test_an_unreadable_revocation_list_refuses_every_certificate(ca: CertificateAuthority) -> None:
    cert_pem, _ = ca.issue("CP-1")
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    (ca.directory / "crl.pem").write_text("damaged")
    check = ca.check_client("CP-1", der)
    assert not check.ok and "revocation list cannot be read" in check.reason


def test_a_password_change_revokes_only_what_the_charger_bought(ca: CertificateAuthority) -> None:
    ca.issue("CP-1")  # the operator's provisioning
    bought = _leaf(ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))).serial_number
    assert [i.origin for i in ca.issued()] == ["operator", "request"]
    assert ca.revoke("CP-1", block=False, requested_only=True) == [bought]
    assert [i.revoked_at is not None for i in ca.issued()] == [False, True]
    assert len(ca.revoke("CP-1", block=False)) == 1  # a freed id: the rest goes too


def test_credentials_that_changed_while_signing_void_the_certificate(ca: CertificateAuthority) -> None:
    with pytest.raises(InvalidRequest, match="credentials changed"):
        ca.sign_request("CP-1", _csr_on(ec.SECP256R1()), still_valid=lambda: False)
    [issued] = ca.issued()
    assert issued.revoked_at is not None and issued.serial in ca.revoked_serials()
    assert _leaf(ca.sign_request("CP-1", _csr_on(ec.SECP256R1()), still_valid=lambda: True))


def test_an_operator_issue_racing_a_revocation_leaves_the_revocation_standing(
    ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ca issue` read no block; `ca revoke` lands while its certificate is being made."""
    sign = ca._sign

    def revoked_meanwhile(*args: object, **kwargs: object) -> x509.Certificate:
        CertificateAuthority(ca.directory).revoke("CP-1")  # another process
        return sign(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ca, "_sign", revoked_meanwhile)
    with pytest.raises(CaError, match="revoked while"):
        ca.issue("CP-1")
    monkeypatch.undo()
    assert "CP-1" in ca.blocked()
    with pytest.raises(InvalidRequest, match="revoked"):
        ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))
    ca.issue("CP-1")  # asked again, knowing of the revocation: lifted
    assert ca.blocked() == {}


def test_an_index_written_before_origins_reads_as_bought(ca: CertificateAuthority) -> None:
    """Its rows have no origin: read as a charger's own purchases, so a new password revokes them
    (failing safe), rather than every read of the index failing."""
    import json

    bought = _leaf(ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))).serial_number
    index = ca.directory / "issued.json"
    body = json.loads(index.read_text())
    for row in body["issued"]:
        del row["origin"]
    index.write_text(json.dumps(body))
    assert [i.origin for i in ca.issued()] == ["request"]
    assert ca.revoke("CP-1", block=False, requested_only=True) == [bought]
    assert ca.sign_request("CP-1", _csr_on(ec.SECP256R1()))
