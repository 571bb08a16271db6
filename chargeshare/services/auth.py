"""Accounts and access tokens: sign up as a driver or host, log in, and check a bearer token.

Passwords are hashed with argon2id (through the bounded gate in `passwords`); tokens are HS256 JWTs
whose expiry is judged on the injected clock (not the wall clock), so tests and simulations can let
them lapse.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from chargeshare.domain.accounts import (
    KycStatus,
    Principal,
    Role,
    check_password_rules,
    normalise_email,
)
from chargeshare.domain.errors import InvalidRequest, Unauthorized
from chargeshare.domain.tokens import MAX_TAG_LENGTH
from chargeshare.services.clock import Clock
from chargeshare.services.passwords import PasswordHashing
from chargeshare.services.ports import Store
from chargeshare.services.records import AccountRecord

ALGORITHM = "HS256"
ID_TAG_PREFIX = "D"


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: datetime
    principal: Principal


class AuthService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        secret: str,
        token_minutes: int,
        hasher: PasswordHashing,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self.store, self.clock, self.secret, self.hasher = store, clock, secret, hasher
        self.token_lifetime = timedelta(minutes=token_minutes)
        self._decoy: str | None = None

    # ---- sign-up -------------------------------------------------------------------------------
    def register_driver(
        self, email: str, password: str, name: str, id_tag: str | None = None
    ) -> AccountRecord:
        email, hashed = self._credentials(email, password, name)
        tag = id_tag or ID_TAG_PREFIX + secrets.token_hex(8).upper()
        if not 0 < len(tag) <= MAX_TAG_LENGTH:  # said in every charger's ReserveNow
            raise InvalidRequest(f"id_tag must be 1 to {MAX_TAG_LENGTH} characters (OCPP 1.6 IdToken)")
        with self.store.transaction() as tx:
            if tx.accounts.by_email(email) is not None:
                raise InvalidRequest("an account with this email exists")
            # Another driver's card would decide for this tag (a token row wins over a booking tag).
            if tx.accounts.driver_by_tag(tag) is not None or tx.tokens.by_value(tag) is not None:
                raise InvalidRequest(f"id_tag {tag!r} is taken")
            driver_id = tx.accounts.add_driver(name.strip(), tag)
            account_id = tx.accounts.add(
                email=email,
                password_hash=hashed,
                role=Role.DRIVER.value,
                created_at=self.clock.now(),
                driver_id=driver_id,
            )
            return tx.accounts.get(account_id)

    def register_host(self, email: str, password: str, name: str) -> AccountRecord:
        """A host starts with KYC pending: they can list chargers but are not paid out until verified."""
        email, hashed = self._credentials(email, password, name)
        with self.store.transaction() as tx:
            if tx.accounts.by_email(email) is not None:
                raise InvalidRequest("an account with this email exists")
            host_id = tx.accounts.add_host(name.strip())
            tx.accounts.set_host_kyc(host_id, KycStatus.PENDING.value, self.clock.now())
            account_id = tx.accounts.add(
                email=email,
                password_hash=hashed,
                role=Role.HOST.value,
                created_at=self.clock.now(),
                host_id=host_id,
            )
            return tx.accounts.get(account_id)

    def register_fleet(self, email: str, password: str, name: str, id_tag: str) -> tuple[AccountRecord, int]:
        """A business account and the fleet it signs in for (its id second): made by an operator,
        under contract. Its vehicles charge with `id_tag`, as a driver of the fleet's own."""
        email, hashed = self._credentials(email, password, name)
        if not 0 < len(id_tag) <= MAX_TAG_LENGTH:
            raise InvalidRequest(f"id_tag must be 1 to {MAX_TAG_LENGTH} characters (OCPP 1.6 IdToken)")
        with self.store.transaction() as tx:
            if tx.accounts.by_email(email) is not None:
                raise InvalidRequest("an account with this email exists")
            if tx.accounts.driver_by_tag(id_tag) is not None or tx.tokens.by_value(id_tag) is not None:
                raise InvalidRequest(f"id_tag {id_tag!r} is taken")
            driver_id = tx.accounts.add_driver(name.strip(), id_tag)
            fleet_id = tx.fleet.add_account(name.strip(), driver_id, self.clock.now())
            account_id = tx.accounts.add(
                email=email,
                password_hash=hashed,
                role=Role.FLEET.value,
                created_at=self.clock.now(),
                driver_id=driver_id,
            )
            return tx.accounts.get(account_id), fleet_id

    def add_admin(self, email: str, password: str) -> AccountRecord:
        """Operators are made from the command line, never through the API."""
        email, hashed = self._credentials(email, password, "admin")
        with self.store.transaction() as tx:
            account_id = tx.accounts.add(
                email=email, password_hash=hashed, role=Role.ADMIN.value, created_at=self.clock.now()
            )
            return tx.accounts.get(account_id)

    def _credentials(self, email: str, password: str, name: str) -> tuple[str, str]:
        if not name.strip():
            raise InvalidRequest("give a name")
        check_password_rules(password)
        return normalise_email(email), self.hasher.hash(password)

    # ---- log in and tokens -----------------------------------------------------------------------
    def login(self, email: str, password: str) -> AccessToken:
        try:
            email = normalise_email(email)
        except InvalidRequest:
            email = ""
        with self.store.transaction() as tx:
            account = tx.accounts.by_email(email) if email else None
        # An unknown email is checked against the decoy, so it costs (and waits for) a real check.
        if not self.hasher.matches(account.password_hash if account else self._decoy_hash(), password):
            account = None
        if account is None:
            raise Unauthorized("wrong email or password")
        return self.issue(account)

    def _decoy_hash(self) -> str:
        """Verified against when the email is unknown: it costs what a real check costs, so the
        answer's timing does not tell which emails have accounts."""
        if self._decoy is None:
            self._decoy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._decoy

    def issue(self, account: AccountRecord) -> AccessToken:
        now = self.clock.now()
        expires = now + self.token_lifetime
        principal = principal_of(account)
        claims: dict[str, Any] = {
            "sub": str(account.account_id),
            "role": principal.role.value,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        if principal.driver_id is not None:
            claims["driver_id"] = principal.driver_id
        if principal.host_id is not None:
            claims["host_id"] = principal.host_id
        return AccessToken(jwt.encode(claims, self.secret, algorithm=ALGORITHM), expires, principal)

    def verify(self, token: str) -> Principal:
        """The principal a token stands for; Unauthorized if it is forged, malformed or expired."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                # Expiry is checked below against our clock, not the machine's.
                options={"require": ["sub", "role", "exp", "iat"], "verify_exp": False, "verify_iat": False},
            )
            role = Role(claims["role"])
            account_id = int(claims["sub"])
            expires = int(claims["exp"])
            driver_id = _optional_int(claims.get("driver_id"))
            host_id = _optional_int(claims.get("host_id"))
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise Unauthorized("the access token is not valid") from exc
        if self.clock.now().timestamp() >= expires:
            raise Unauthorized("the access token has expired; log in again")
        return Principal(account_id, role, driver_id, host_id)


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not an integer claim")
    return value


def principal_of(account: AccountRecord) -> Principal:
    return Principal(account.account_id, Role(account.role), account.driver_id, account.host_id)
