"""Charger passwords (OCPP security profile 1/2: HTTP Basic auth on the WebSocket upgrade).

Stored as salted PBKDF2-SHA256; compared in constant time. Pure: the caller supplies the salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from chargeshare.domain.errors import InvalidRequest

ITERATIONS = 120_000
MIN_PASSWORD = 16  # OCPP 1.6 security whitepaper: AuthorizationKey of 16 to 40 bytes
MAX_PASSWORD = 40


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(f"a charger password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def hash_password(password: str, salt: bytes) -> str:
    check_password_rules(password)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return f"pbkdf2_sha256${ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(candidate.hex(), digest)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None if absent or malformed."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
