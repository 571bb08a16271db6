"""A certificate's OCPP identity (CertificateHashData), as OCSP's CertID computes it: the hashes of
its issuer's distinguished name and public key, and its serial number in hex without leading zeros."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from chargeshare.ocpp.commands import CertificateHash


def certificate_hash(certificate_pem: str, issuer_pem: str | None = None) -> CertificateHash:
    """The hash data of a PEM certificate; a root certificate is its own issuer."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    issuer = cert if issuer_pem is None else x509.load_pem_x509_certificate(issuer_pem.encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    return CertificateHash(
        request.issuer_name_hash.hex(), request.issuer_key_hash.hex(), f"{cert.serial_number:x}"
    )
