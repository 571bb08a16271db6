"""A virtual charger's certificate store for OCPP security profile 3: a key pair it makes itself, the
CSR it sends with SignCertificate, and the certificate the CSMS signs back (CertificateSigned), which
it accepts only for the key it holds and its own id. `tls_context` is what it connects with."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

from chargeshare.ocpp.commands import CertificateHash, CertificateUse


class ChargerCertificates:
    def __init__(self, cp_id: str, cert_pem: bytes | None = None, key_pem: bytes | None = None) -> None:
        self.cp_id = cp_id
        self.cert_pem, self.key_pem = cert_pem, key_pem  # installed (PEM chain, and its key)
        self._pending: Any = None  # the key of the CSR last sent
        self.installed = 0  # certificates installed from CertificateSigned
        self.refused = 0  # CertificateSigned chains refused
        self.roots: list[tuple[CertificateUse, str, CertificateHash]] = []  # InstallCertificate's

    # ---- root certificates (InstallCertificate, GetInstalledCertificateIds, DeleteCertificate) ----
    def install_root(self, use: CertificateUse, pem: str) -> bool:
        """Keep a root certificate; False for one that is not a certificate. Installing one already
        held changes nothing, and is accepted."""
        from chargeshare.ocpp.certificate_ids import certificate_hash

        try:
            ident = certificate_hash(pem)
        except ValueError:
            return False
        if all(h != ident for _, _, h in self.roots):
            self.roots.append((use, pem, ident))
        return True

    def root_ids(self, uses: list[CertificateUse]) -> list[tuple[CertificateUse, CertificateHash]]:
        """The installed roots of these uses (all when none is named)."""
        return [(u, h) for u, _, h in self.roots if not uses or u in uses]

    def delete_root(self, ident: CertificateHash) -> bool:
        kept = [r for r in self.roots if r[2] != ident]
        found = len(kept) < len(self.roots)
        self.roots = kept
        return found

    def csr(self) -> str:
        """A new key and a PEM CSR for it naming this charger (commonName = its id)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.cp_id)]))
            .sign(key, hashes.SHA256())
        )
        self._pending = key
        return request.public_bytes(serialization.Encoding.PEM).decode()

    def install(self, chain_pem: str) -> bool:
        """CertificateSigned: install the chain if its first certificate is for the key of our last
        CSR and names us; otherwise refuse it and keep what we have."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import NameOID

        try:
            leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
        except (ValueError, IndexError):
            self.refused += 1
            return False
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ours = self._pending is not None and leaf.public_key() == self._pending.public_key()
        if not ours or not names or names[0].value != self.cp_id:
            self.refused += 1
            return False
        self.cert_pem = chain_pem.encode()
        self.key_pem = self._pending.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._pending = None
        self.installed += 1
        return True

    def tls_context(self, cafile: Path) -> ssl.SSLContext:
        """TLS trusting the CSMS's CA, presenting our certificate when we have one."""
        ctx = ssl.create_default_context(cafile=str(cafile))
        if self.cert_pem is not None and self.key_pem is not None:
            # The ssl module loads a key pair from files only.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
                cert.write_bytes(self.cert_pem)
                key.write_bytes(self.key_pem)
                ctx.load_cert_chain(cert, key)
        return ctx
