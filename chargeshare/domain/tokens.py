"""Id tokens (RFID cards, app and contract ids) and the decision who may charge where.

A driver may hold several tokens. A token has a status set by an operator (Accepted, Blocked,
Expired, Invalid), an optional expiry, a group id (OCPP 1.6 parentIdTag, 2.0.1 groupIdToken) and a
master-pass flag (it may stop any transaction on a charger but never start one). The driver's own
booking id tag is a token too: Accepted, without expiry, unless a token row of that value says
otherwise.

A value names one driver. OCPP's idTag is a CiString (IdToken is CiString20Type in 1.6, and
case-insensitive in 2.0.1 too), so values are compared by `token_key`, without regard to the case of
ASCII letters: no two tokens, and no token and another driver's booking id tag, and no two drivers'
tags, differ only in that. The stores hold it with unique indexes on the folded value (tokens,
drivers' tags) and take the two tables' writers of one folded value in turn.

`decide` is the whole authorisation rule, pure: what the token says first, then the booking rules,
then the host's walk-in setting.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chargeshare.domain.errors import InvalidRequest

# The longest id token a charger may present, by version: 1.6 IdToken is CiString20, 2.0.1's
# IdTokenType.idToken 36 characters, 2.1's 255. A token is kept up to the longest; one longer than
# a charger's version allows is one that charger can never present (nor be sent, in a local list).
TOKEN_LENGTH = {"1.6": 20, "2.0.1": 36, "2.1": 255}
MAX_TOKEN_LENGTH = max(TOKEN_LENGTH.values())
# A driver's booking id tag and a group id are said to every charger (ReserveNow, RemoteStart; a 1.6
# Authorize answer's parentIdTag), so they keep to what every version takes.
MAX_TAG_LENGTH = min(TOKEN_LENGTH.values())
MAX_GROUP_LENGTH = MAX_TAG_LENGTH


class TokenType(StrEnum):
    """OCPP 2.0.1 IdTokenEnumType."""

    CENTRAL = "Central"
    EMAID = "eMAID"
    ISO14443 = "ISO14443"
    ISO15693 = "ISO15693"
    KEY_CODE = "KeyCode"
    LOCAL = "Local"
    MAC_ADDRESS = "MacAddress"
    NO_AUTHORIZATION = "NoAuthorization"


class TokenStatus(StrEnum):
    """What an operator set; EXPIRED is also what an Accepted token becomes once its expiry passes."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


class Basis(StrEnum):
    """Why a token was let charge: its driver's booking, or the host's walk-in setting."""

    BOOKING = "booking"
    WALK_IN = "walk_in"
    MASTER_PASS = "master_pass"  # Authorize only: it may stop, never start


@dataclass(frozen=True)
class IdToken:
    token_id: int
    driver_id: int
    value: str
    type: TokenType
    status: TokenStatus
    expires_at: datetime | None
    group_id: str | None
    master_pass: bool
    created_at: datetime

    def status_at(self, now: datetime) -> TokenStatus:
        """The status in force at `now`: an Accepted token past its expiry is Expired."""
        if self.status is TokenStatus.ACCEPTED and self.expires_at is not None and self.expires_at <= now:
            return TokenStatus.EXPIRED
        return self.status


_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def token_key(value: str) -> str:
    """What a token value or a driver's id tag is compared as: its ASCII letters in upper case,
    anything else as it is. SQLite's upper() and PostgreSQL's under the "C" collation fold just
    the same, so the stores' unique indexes on it agree with this, byte for byte."""
    return value.translate(_ASCII_UPPER)


def check_token(value: str, group_id: str | None, expires_at: datetime | None) -> None:
    """Raise InvalidRequest for what no charger could be told or no store should keep."""
    if not value or len(value) > MAX_TOKEN_LENGTH or not value.isprintable() or value != value.strip():
        raise InvalidRequest(f"a token is 1 to {MAX_TOKEN_LENGTH} printable characters without outer spaces")
    if group_id is not None and (
        not group_id or len(group_id) > MAX_GROUP_LENGTH or not group_id.isprintable()
    ):
        raise InvalidRequest(f"a group id is 1 to {MAX_GROUP_LENGTH} printable characters")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidRequest("a token's expiry must say its time zone")


@dataclass(frozen=True)
class Verdict:
    status: TokenStatus
    basis: Basis | None = None  # set when Accepted

    @property
    def accepted(self) -> bool:
        return self.status is TokenStatus.ACCEPTED


@dataclass(frozen=True)
class Situation:
    """What the decision needs to know about a token presented at a charger, at one instant.

    `token`: the token's status in force (None: nobody knows it). `booked_here`: its driver holds a
    confirmed booking on this connector (any of the charger's, for an Authorize without one) that
    has begun. `walk_in`: the host lets any valid token charge here without a booking. `starting`:
    a transaction start rather than an Authorize."""

    token: TokenStatus | None
    booked_here: bool = False
    walk_in: bool = False
    master_pass: bool = False
    starting: bool = False


def decide(s: Situation) -> Verdict:
    """Unknown: Invalid. A token not Accepted is answered with its own status, booking or not. An
    Accepted one charges on its driver's booking, else by walk-in if the host allows it; a master
    pass is Accepted to Authorize (so it can stop a transaction) and never starts one; anything
    else is Blocked (valid, but not here and now)."""
    if s.token is None:
        return Verdict(TokenStatus.INVALID)
    if s.token is not TokenStatus.ACCEPTED:
        return Verdict(s.token)
    if s.master_pass:
        return (
            Verdict(TokenStatus.BLOCKED) if s.starting else Verdict(TokenStatus.ACCEPTED, Basis.MASTER_PASS)
        )
    if s.booked_here:
        return Verdict(TokenStatus.ACCEPTED, Basis.BOOKING)
    if s.walk_in:
        return Verdict(TokenStatus.ACCEPTED, Basis.WALK_IN)
    return Verdict(TokenStatus.BLOCKED)


# ---- the local authorisation list a charger keeps --------------------------------------------------


class UpdateType(StrEnum):
    FULL = "Full"
    DIFFERENTIAL = "Differential"


@dataclass(frozen=True)
class ListEntry:
    """One entry of a charger's local list. `status` None in a Differential update removes it."""

    value: str
    status: TokenStatus | None
    expires_at: datetime | None = None
    group_id: str | None = None
    type: TokenType = TokenType.ISO14443
