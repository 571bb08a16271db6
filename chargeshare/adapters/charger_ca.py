"""The certificate authority for OCPP security profile 3: TLS with client certificates.

A directory holds it: the CA's key and certificate, the server's certificate for the hosts it serves,
an index of what was issued (`issued.json`) and a certificate revocation list (`crl.pem`). A charger's
certificate names the charger in its subject's commonName, as both versions' security texts require,
and the server refuses an upgrade whose certificate names another charger or is on the list.

X.509 validity is checked by the TLS stack against the machine's clock, so the clock given here is
the system clock wherever certificates meet a real TLS handshake, never a simulation's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chargeshare.domain.errors import InvalidRequest
from chargeshare.services.clock import Clock, SystemClock
from chargeshare.services.ports import ClientCheck

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
SERVER_CERT, SERVER_KEY = "server.pem", "server-key.pem"
INDEX, CRL, LOCK = "issued.json", "crl.pem", ".lock"
CA_YEARS, SERVER_YEARS, CHARGER_YEARS = 10, 2, 2
CURVES = (ec.SECP256R1, ec.SECP384R1)  # what the OCPP security texts name for ECDSA
BACKDATE = timedelta(minutes=5)  # a peer whose clock is a little behind still accepts a new certificate
DEFAULT_HOSTS = ("127.0.0.1", "localhost")


class CaError(Exception):
    """The directory is not a usable certificate authority; the message says what to do."""


# Who a certificate went to: a charger's own SignCertificate, bought with its credentials at the
# time, or an operator's `ca issue` (provisioning), which no change of password touches.
REQUESTED, OPERATOR = "request", "operator"


@dataclass(frozen=True)
class Issued:
    serial: int
    cp_id: str
    not_after: datetime
    revoked_at: datetime | None = None
    origin: str = REQUESTED


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Whole or not at all: a reader never sees half a file. A fresh temporary file each time, so a
    leftover or planted one can neither lend its mode to a key nor redirect it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _common_name(name: x509.Name) -> str | None:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else None


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass
class Index:
    """What the authority issued, and which chargers an operator revoked (and since when)."""

    issued: list[Issued]
    blocked: dict[str, datetime]


class CertificateAuthority:
    """A CA kept in `directory`; `init` makes one, the constructor opens one."""

    def __init__(self, directory: Path, clock: Clock | None = None) -> None:
        self.directory = directory
        self.clock = clock or SystemClock()
        missing = [n for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY) if not (directory / n).is_file()]
        if missing:
            raise CaError(
                f"{directory} is not a certificate authority (missing {', '.join(missing)}); "
                "make one with `chargeshare ca init`"
            )
        self.cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CaError(f"{directory / CA_KEY} is not an EC private key")
        self.key = key
        self._crl_seen: tuple[tuple[int, int, int], frozenset[int]] | None = None

    # ---- making one ---------------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        directory: Path,
        organisation: str,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        clock: Clock | None = None,
    ) -> CertificateAuthority:
        """A new CA and a server certificate for `hosts`; refuses a directory that already holds one."""
        if (directory / CA_KEY).exists():
            raise CaError(f"{directory} already holds a certificate authority")
        directory.mkdir(parents=True, exist_ok=True)
        clock = clock or SystemClock()
        now = clock.now()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} charger CA"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        _write(directory / CA_KEY, _key_pem(key), private=True)
        _write(directory / CA_CERT, _pem(cert))
        _write(directory / INDEX, b'{"issued": [], "blocked": {}}\n')
        ca = cls.__new__(cls)
        ca.directory, ca.clock, ca.cert, ca.key, ca._crl_seen = directory, clock, cert, key, None
        ca._write_crl([])
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = ca._sign(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]),
            server_key.public_key(),
            years=SERVER_YEARS,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            san=_san(hosts),
        )
        _write(directory / SERVER_KEY, _key_pem(server_key), private=True)
        _write(directory / SERVER_CERT, _pem(server))
        return ca

    # ---- issuing ------------------------------------------------------------------------------------
    def issue(self, cp_id: str) -> tuple[bytes, bytes]:
        """A new key and certificate for a charger (provisioning at the factory, or again after a
        revocation, which it lifts): PEM (cert, key)."""
        key = ec.generate_private_key(ec.SECP256R1())
        # The block as it stood when asked: a revocation landing meanwhile is newer, and stands.
        blocked_since = self._read_index().blocked.get(cp_id)
        cert = self._issue_for(cp_id, key.public_key(), operator=True, lifts=blocked_since)
        return _pem(cert), _key_pem(key)

    def sign_request(self, cp_id: str, csr_pem: str, *, still_valid: Callable[[], bool] | None = None) -> str:
        """A charger's SignCertificate: its CSR signed, as the PEM chain CertificateSigned carries
        (the charger's certificate, then ours). Raises InvalidRequest for a CSR that is unreadable,
        badly signed, or names another charger. `still_valid` says whether the credentials the
        request came with still hold; asked once the certificate is on record, so a change racing
        the signing either sees it (and revokes it) or is seen (and it is revoked here)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            valid = csr.is_signature_valid
            named = _common_name(csr.subject)
            public = csr.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidRequest("the CSR is not a readable PEM certificate signing request") from None
        if not valid:
            raise InvalidRequest("the CSR's signature does not match its key")
        if named != cp_id:
            raise InvalidRequest(f"the CSR names {named!r}, not this charger ({cp_id!r})")
        if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, CURVES):
            raise InvalidRequest("the CSR's key is not an ECDSA P-256 or P-384 key")
        if cp_id in self._read_index().blocked:
            raise InvalidRequest(
                f"{cp_id}'s certificates are revoked: an operator issues it a new one (chargeshare ca issue)"
            )
        cert = self._issue_for(cp_id, public)
        if still_valid is not None and not still_valid():
            self._revoke_where(lambda i: i.serial == cert.serial_number)
            raise InvalidRequest(f"{cp_id}'s credentials changed while its request was signed")
        return (_pem(cert) + _pem(self.cert)).decode()

    def _issue_for(
        self,
        cp_id: str,
        public: ec.EllipticCurvePublicKey,
        *,
        operator: bool = False,
        lifts: datetime | None = None,
    ) -> x509.Certificate:
        """Sign and record. A charger's request is refused while it is blocked; an `operator`'s
        lifts the block it saw (`lifts`: since when, or None), and no newer one."""
        org = self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]
        if org:
            subject.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(org[0].value)))
        cert = self._sign(
            x509.Name(subject), public, years=CHARGER_YEARS, usage=ExtendedKeyUsageOID.CLIENT_AUTH
        )
        with self._locked():
            index = self._read_index()
            if cp_id in index.blocked and not operator:
                # Revoked while its request was being signed: the revocation wins.
                raise InvalidRequest(f"{cp_id}'s certificates are revoked")
            if operator and index.blocked.get(cp_id) != lifts:
                raise CaError(f"{cp_id} was revoked while its certificate was made; issue it again")
            index.blocked.pop(cp_id, None)
            origin = OPERATOR if operator else REQUESTED
            index.issued.append(Issued(cert.serial_number, cp_id, cert.not_valid_after_utc, origin=origin))
            self._write_index(index)
        return cert

    def _sign(
        self,
        subject: x509.Name,
        public: ec.EllipticCurvePublicKey,
        *,
        years: int,
        usage: x509.ObjectIdentifier,
        san: x509.SubjectAlternativeName | None = None,
    ) -> x509.Certificate:
        now = self.clock.now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    # ---- revoking -----------------------------------------------------------------------------------
    def issued(self) -> list[Issued]:
        return self._read_index().issued

    def blocked(self) -> dict[str, datetime]:
        """Chargers revoked by an operator, and since when: none may have a CSR signed."""
        return self._read_index().blocked

    def revoke(self, cp_id: str, *, block: bool = True, requested_only: bool = False) -> list[int]:
        """Revoke every certificate issued to `cp_id` and not revoked yet; their serials. `block`
        (an operator's revocation): the charger may not have another signed either, even over a
        link still open or with its password, until an operator issues it one. Without (its
        registration removed, its password changed): what the old credentials bought is void, and
        the charger may ask afresh with the new ones. `requested_only`: only what it bought with
        SignCertificate (a new password leaves the operator's provisioning alone)."""
        return self._revoke_where(
            lambda i: i.cp_id == cp_id and (i.origin == REQUESTED or not requested_only),
            block=cp_id if block else None,
        )

    def _revoke_where(self, which: Callable[[Issued], bool], *, block: str | None = None) -> list[int]:
        now = self.clock.now()
        with self._locked():
            index = self._read_index()
            serials = [i.serial for i in index.issued if i.revoked_at is None and which(i)]
            index.issued = [
                dataclasses.replace(i, revoked_at=now) if i.serial in serials else i for i in index.issued
            ]
            if block is not None:
                index.blocked.setdefault(block, now)
            self._write_index(index)
            self._write_crl([i for i in index.issued if i.revoked_at is not None])
        return serials

    def revoked_serials(self) -> frozenset[int]:
        """The serials on the list, read again only when the file changes (another process revoked)."""
        path = self.directory / CRL
        st = path.stat()
        # Each version is a new file (written aside, then renamed): its inode tells it apart even
        # where modification times are coarse.
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._crl_seen is None or self._crl_seen[0] != version:
            crl = x509.load_pem_x509_crl(path.read_bytes())
            if not crl.is_signature_valid(self.key.public_key()):
                raise CaError(f"{path} is not signed by this certificate authority")
            self._crl_seen = (version, frozenset(r.serial_number for r in crl))
        return self._crl_seen[1]

    def _write_crl(self, revoked: Sequence[Issued]) -> None:
        now = self.clock.now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now)
            .next_update(now + timedelta(days=7))
        )
        for r in revoked:
            assert r.revoked_at is not None
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.revoked_at).build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        _write(self.directory / CRL, crl.public_bytes(serialization.Encoding.PEM))

    # ---- serving ------------------------------------------------------------------------------------
    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """TLS for `serve`: our server certificate, and a charger's certificate asked for and checked
        against this CA (required, or optional so profile 2 chargers may still use their password)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # the OCPP security texts' floor
        ctx.load_cert_chain(self.directory / SERVER_CERT, self.directory / SERVER_KEY)
        ctx.load_verify_locations(cafile=str(self.directory / CA_CERT))
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
        return ctx

    def check_client(self, cp_id: str, der: bytes) -> ClientCheck:
        """A certificate the TLS stack already verified against this CA: it must name `cp_id` and
        not be revoked."""
        try:
            cert = x509.load_der_x509_certificate(der)
            named = _common_name(cert.subject)
        except ValueError:
            return ClientCheck(False, "the certificate cannot be read")
        if named != cp_id:
            return ClientCheck(False, f"the certificate names {named!r}, not {cp_id!r}")
        try:
            revoked = self.revoked_serials()
        except (OSError, ValueError, CaError) as exc:  # fail closed, and say why
            return ClientCheck(False, f"the revocation list cannot be read ({exc})")
        if cert.serial_number in revoked:
            return ClientCheck(False, f"certificate {cert.serial_number:x} is revoked")
        return ClientCheck(True, "certificate")

    # ---- the index ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across processes (a server signing while `ca revoke` runs)."""
        with open(self.directory / LOCK, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _read_index(self) -> Index:
        body = json.loads((self.directory / INDEX).read_text())
        return Index(
            [
                Issued(
                    int(r["serial"], 16),
                    r["cp_id"],
                    datetime.fromisoformat(r["not_after"]),
                    None if r.get("revoked_at") is None else datetime.fromisoformat(r["revoked_at"]),
                    # An index written before origins were kept: treated as bought, so a new password
                    # revokes it (failing safe).
                    r.get("origin", REQUESTED),
                )
                for r in body["issued"]
            ],
            {cp: datetime.fromisoformat(at) for cp, at in body["blocked"].items()},
        )

    def _write_index(self, index: Index) -> None:
        rows = [
            {
                "serial": f"{i.serial:x}",
                "cp_id": i.cp_id,
                "not_after": i.not_after.isoformat(),
                "revoked_at": None if i.revoked_at is None else i.revoked_at.isoformat(),
                "origin": i.origin,
            }
            for i in index.issued
        ]
        body = {"issued": rows, "blocked": {cp: at.isoformat() for cp, at in index.blocked.items()}}
        _write(self.directory / INDEX, (json.dumps(body, indent=1) + "\n").encode())
