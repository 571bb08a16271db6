"""Registering hosts, drivers and chargers, and the driver's map search."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import BootPolicy, ChargerSpec, ChargerStatus, charge_point_id_problem
from chargeshare.domain.credentials import hash_password, parse_basic_auth, verify_password
from chargeshare.domain.errors import BookingConflict, InvalidRequest, NotFound
from chargeshare.domain.search import SearchQuery
from chargeshare.domain.tokens import MAX_TAG_LENGTH
from chargeshare.services.ports import CertificateAuthority, Store, UnitOfWork
from chargeshare.services.records import ChargerView, DriverRecord


@dataclass(frozen=True)
class Admission:
    """A charger's connection: `refused` says why not; `credentials` fingerprints what it passed
    (empty: an unregistered charger let in by `allow_unknown`, which no registration matches)."""

    refused: str | None
    credentials: str = ""


def _check_specs(specs: Sequence[ChargerSpec]) -> None:
    for spec in specs:
        problem = charge_point_id_problem(spec.charge_point_id)
        if problem is not None:
            raise InvalidRequest(problem)  # a charger it names could never connect
        if not spec.connectors:
            raise InvalidRequest("a charger needs at least one connector")


class MarketplaceService:
    def __init__(
        self,
        store: Store,
        salt: Callable[[], bytes] = lambda: secrets.token_bytes(16),
        *,
        ca: CertificateAuthority | None = None,
    ) -> None:
        self.store = store
        self.salt = salt
        self.ca = ca  # security profile 3: chargers' certificates follow their registrations

    def add_host(self, name: str) -> int:
        return self.add_hosts([name])[0]

    def add_hosts(self, names: Sequence[str]) -> list[int]:
        """Several hosts in one transaction (all or none): a simulated fleet's thousands at once."""
        if any(not name.strip() for name in names):
            raise InvalidRequest("a host needs a name")
        with self.store.transaction() as tx:
            return [tx.accounts.add_host(name) for name in names]

    def add_driver(self, name: str, id_tag: str) -> DriverRecord:
        return self.add_drivers([(name, id_tag)])[0]

    def add_drivers(self, people: Sequence[tuple[str, str]]) -> list[DriverRecord]:
        """Drivers (name, id_tag) in one transaction (all or none), each checked as `add_driver` does."""
        for name, id_tag in people:
            if not name.strip():
                raise InvalidRequest("a driver needs a name")
            if not 0 < len(id_tag) <= MAX_TAG_LENGTH:  # said in every charger's ReserveNow
                raise InvalidRequest(f"id_tag must be 1 to {MAX_TAG_LENGTH} characters (OCPP 1.6 IdToken)")
        with self.store.transaction() as tx:
            return [self._add_driver(tx, name, id_tag) for name, id_tag in people]

    @staticmethod
    def _add_driver(tx: UnitOfWork, name: str, id_tag: str) -> DriverRecord:
        # Another driver's card would decide for this tag (a token row wins over a booking tag).
        if tx.accounts.driver_by_tag(id_tag) is not None or tx.tokens.by_value(id_tag) is not None:
            raise InvalidRequest(f"id_tag {id_tag!r} is taken")
        return tx.accounts.driver(tx.accounts.add_driver(name, id_tag))

    def add_charger(self, spec: ChargerSpec, password: str | None = None) -> ChargerView:
        """Register a charger; with a password it must present HTTP Basic auth when it connects."""
        _check_specs([spec])  # before hashing: a refused charger costs no PBKDF2
        hashed = None if password is None else hash_password(password, self.salt())
        return self._add_chargers([spec], hashed)[0]

    def add_chargers(self, specs: Sequence[ChargerSpec]) -> list[ChargerView]:
        """Chargers without passwords in one transaction (all or none), each checked as `add_charger`."""
        _check_specs(specs)
        return self._add_chargers(specs, None)

    def _add_chargers(self, specs: Sequence[ChargerSpec], hashed: str | None) -> list[ChargerView]:
        with self.store.transaction() as tx:
            return [self._add_charger(tx, spec, hashed) for spec in specs]

    @staticmethod
    def _add_charger(tx: UnitOfWork, spec: ChargerSpec, hashed: str | None) -> ChargerView:
        try:
            tx.chargers.get(spec.charge_point_id)
        except NotFound:
            pass
        else:
            raise InvalidRequest(f"charger {spec.charge_point_id!r} is already registered")
        tx.chargers.add(spec)
        if hashed is not None:
            tx.chargers.set_password(spec.charge_point_id, hashed)
        return tx.chargers.get(spec.charge_point_id)

    def set_charger_password(self, charge_point_id: str, password: str) -> None:
        """A new password; the certificates the old one could have bought (SignCertificate) are
        revoked, so a leaked password leaves nothing behind. An operator's provisioning stays."""
        hashed = hash_password(password, self.salt())
        self.void_certificates(
            charge_point_id,
            lambda tx: tx.chargers.set_password(charge_point_id, hashed),
            requested_only=True,
        )

    def void_certificates(
        self, charge_point_id: str, change: Callable[[UnitOfWork], None], *, requested_only: bool = False
    ) -> None:
        """Change a charger's credentials (or free its id) in one unit of work, and revoke what
        the old ones bought: within it, once the change is made and before it commits (a change
        refused raises first, revoking nothing; a crash after the revocation leaves no
        certificate behind), and again once it has committed, for one signed meanwhile (a
        signing that sees the change revokes its own: `CertificateAuthority.sign_request`)."""
        with self.store.transaction() as tx:
            change(tx)
            if self.ca is not None:
                self.ca.revoke(charge_point_id, block=False, requested_only=requested_only)
        if self.ca is not None:
            self.ca.revoke(charge_point_id, block=False, requested_only=requested_only)

    def set_boot_policy(self, charge_point_id: str, policy: BootPolicy) -> ChargerView:
        """An operator's word on how the charger's boots are answered (see `change_boot_policy`)."""
        with self.store.transaction() as tx:
            return change_boot_policy(tx, tx.chargers.get(charge_point_id), policy)

    def remove_charger(self, charge_point_id: str) -> None:
        """Its id may be registered again, by anyone: its certificates must not come with it.
        Refused (InvalidRequest) while it has bookings, with nothing revoked."""
        self.void_certificates(charge_point_id, lambda tx: tx.chargers.remove(charge_point_id))

    def authenticate_charger(
        self,
        charge_point_id: str,
        authorization: str | None,
        *,
        allow_unknown: bool,
        certified: bool = False,
    ) -> str | None:
        """None if the charger may connect, else the reason it may not (said to nobody but the log).
        `certified`: it presented our CA's certificate naming it (security profile 3), which stands
        in for its password."""
        return self.admit_charger(
            charge_point_id, authorization, allow_unknown=allow_unknown, certified=certified
        ).refused

    def admit_charger(
        self,
        charge_point_id: str,
        authorization: str | None,
        *,
        allow_unknown: bool,
        certified: bool = False,
    ) -> Admission:
        """`authenticate_charger`, with the fingerprint of the credentials checked (kept by the link,
        so what it asks for later is refused once they change)."""
        problem = charge_point_id_problem(charge_point_id)
        if problem is not None:
            return Admission(problem)  # before the database, which may not even take it as a parameter
        try:
            with self.store.reading() as tx:
                stored = tx.chargers.credentials(charge_point_id)
        except NotFound:
            return Admission(None if allow_unknown else "unknown charge point")
        admitted = Admission(None, stored.fingerprint)
        if stored.password_hash is None or certified:
            return admitted  # registered without a password (development fleets), or certified
        creds = parse_basic_auth(authorization)
        if creds is None:
            return Admission("no HTTP Basic credentials")
        user, password = creds
        if user != charge_point_id or not verify_password(password, stored.password_hash):
            return Admission("wrong credentials")
        return admitted

    def search(self, query: SearchQuery) -> Sequence[ChargerView]:
        with self.store.reading() as tx:
            return tx.chargers.search(query)

    def set_availability(self, charger_id: int, windows: Sequence[WeeklyWindow]) -> None:
        with self.store.transaction() as tx:
            tx.chargers.by_id(charger_id)
            tx.chargers.set_availability(charger_id, windows)


# A booking in these states still needs its charger in service: to start, to charge, to stop.
_UNFINISHED = frozenset({BookingStatus.REQUESTED, BookingStatus.CONFIRMED, BookingStatus.ACTIVE})


def change_boot_policy(tx: UnitOfWork, charger: ChargerView, policy: BootPolicy) -> ChargerView:
    """Set how the charger's boots are answered. Taking it out of service is refused while a booking
    on it is unfinished (its session could not be started or stopped, and it would end as a no-show
    fee): those are cancelled first. Put back in service, a charger seen before is marked offline,
    so its next frame brings it online even if it never boots again."""
    if policy is not BootPolicy.ACCEPTED:
        live = [b.booking_id for b in tx.bookings.on_charger(charger.charger_id, _UNFINISHED)]
        if live:
            raise BookingConflict(
                f"charger {charger.charge_point_id} has {len(live)} unfinished booking(s) "
                f"({', '.join(map(str, live[:5]))}): cancel them before taking it out of service"
            )
    tx.chargers.set_boot_policy(charger.charger_id, policy)
    if (
        policy is BootPolicy.ACCEPTED
        and charger.status is ChargerStatus.REGISTERED
        and charger.last_seen_at is not None
    ):
        tx.chargers.set_status(charger.charge_point_id, ChargerStatus.OFFLINE, charger.last_seen_at)
    return tx.chargers.by_id(charger.charger_id)
