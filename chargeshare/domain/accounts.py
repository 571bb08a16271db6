"""People who sign in: drivers, hosts, fleets (business accounts) and operators (admins), and what
each role may hold."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chargeshare.domain.errors import InvalidRequest

MIN_PASSWORD = 10
MAX_PASSWORD = 128  # argon2 takes any length; a bound keeps a request from costing unbounded work
MAX_EMAIL = 254


class Role(StrEnum):
    DRIVER = "driver"
    HOST = "host"
    ADMIN = "admin"
    FLEET = "fleet"  # a business account: books blocks and is invoiced; charges as its own driver


class KycStatus(StrEnum):
    """Know-your-customer checks on a host. Only a verified host may be paid out."""

    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as a verified token says: the account and the party it acts for."""

    account_id: int
    role: Role
    driver_id: int | None = None
    host_id: int | None = None


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased, so one person cannot hold two accounts by changing case."""
    e = email.strip().lower()
    local, at, domain = e.partition("@")
    if not at or not local or "." not in domain or len(e) > MAX_EMAIL or any(c.isspace() for c in e):
        raise InvalidRequest("give a valid email address")
    return e


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
